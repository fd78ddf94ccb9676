"""Taking over the fields of objects the operator created with a plain POST (pure).

A new policy's objects are created with a POST (cheaper for the API server than a
server-side apply that creates: see docs/benchmarks.md, "Where the time to Ready goes").
The API server records such a create as an ``Update`` entry of the operator's field
manager in ``metadata.managedFields`` -- it drops an ``Apply`` entry sent in the create
body -- and a later server-side apply by the same manager does not take ownership of the
fields the ``Update`` entry holds: a field the operator stops rendering would stay on the
object for ever. So when the response of an apply shows such an entry, the operator folds
it into its ``Apply`` entry (the union of both field sets, as client-go's ``csaupgrade``
does) with one merge patch of ``managedFields`` guarded by the resourceVersion, and
applies again: now the dropped fields are the apply's alone, and it removes them.

The guard makes the fold lose to any write in between (a Deployment's status, written
by the controller manager right after each change): :meth:`Kube.apply
<tierguard.operator.kube.Kube.apply>` then reads the object again and retries, up to
``ADOPTION_ATTEMPTS`` tries; if every try loses it answers False (the render is
applied, the fold is not), and the Applier applies the object again at the next
reconcile. Tested with a real racing write in tests/integration/test_fast_create.py.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def union(a: Obj, b: Obj) -> Obj:
    """The union of two ``fieldsV1`` sets (nested maps; a leaf is ``{}``)."""
    out = dict(a)
    for key, value in b.items():
        out[key] = union(out.get(key) or {}, value or {})
    return out


def _is_update_of(entry: Obj, manager: str, api_version: str) -> bool:
    return (
        entry.get("manager") == manager
        and entry.get("operation") == "Update"
        and not entry.get("subresource")
        and entry.get("apiVersion") == api_version
        and entry.get("fieldsType", "FieldsV1") == "FieldsV1"
    )


def adoption_patch(live: Obj, manager: str) -> Obj | None:
    """A merge patch that moves the fields of ``manager``'s ``Update`` entry (same
    apiVersion, main resource) into its ``Apply`` entry, or None if there is none.
    Other managers' entries are kept as they are."""
    meta = live.get("metadata") or {}
    entries: list[Obj] = list(meta.get("managedFields") or [])
    api_version = live.get("apiVersion", "")
    updates = [e for e in entries if _is_update_of(e, manager, api_version)]
    if not updates:
        return None
    applied = next(
        (
            e
            for e in entries
            if e.get("manager") == manager
            and e.get("operation") == "Apply"
            and not e.get("subresource")
            and e.get("apiVersion") == api_version
        ),
        None,
    )
    fields: Obj = dict((applied or {}).get("fieldsV1") or {})
    for entry in updates:
        fields = union(fields, entry.get("fieldsV1") or {})
    merged = {
        **(applied or {"manager": manager, "operation": "Apply", "apiVersion": api_version}),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    rest = [e for e in entries if e is not applied and not any(e is u for u in updates)]
    return {
        "metadata": {
            "resourceVersion": meta.get("resourceVersion"),
            "managedFields": [*rest, merged],
        }
    }
