"""Which copy of a policy a reconcile may decide on without reading it again.

kopf hands each policy's daemon the body its watch last delivered. Deciding on it saves a
GET per reconcile (one per new policy in a burst, one per policy per ``--resync`` when
idle), but the watch lags behind this process's own writes: a reconcile that starts just
after a status write could see the policy as it was before it. So the controller
remembers, per policy, the resourceVersion it last wrote or read, and uses the watch's
copy only when it carries exactly that version (or when this process has neither written
nor read the policy yet: then the watch's copy is as good as a GET). Anything else --
the watch not caught up, someone else wrote since -- means a GET. A concurrent writer
between the copy and the status write still makes the write fail with a conflict (the
write is resourceVersion-checked), after which the controller reads.

Pure bookkeeping, no I/O; one reconcile per policy at a time, so one writer per key.

The watch's copies are also what this process holds per policy the whole time (kopf keeps
each policy's latest body for its daemon), so they are kept lean: ``managedFields`` --
about a third of a policy's parsed body, read by neither kopf nor the operator -- is
dropped from kopf's copy as each watch event arrives (:func:`drop_managed_fields`), and
the copy a reconcile decides on is taken without it (:func:`watch_snapshot`, made
deep in the worker by :func:`decision_copy`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

Key = tuple[str, str]  # (namespace, name)


def resource_version(body: Mapping[str, Any]) -> str | None:
    rv = (body.get("metadata") or {}).get("resourceVersion")
    return None if rv is None else str(rv)


class KnownVersions:
    """Per policy: the resourceVersion this process last wrote or read."""

    def __init__(self) -> None:
        self._by_policy: dict[Key, str | None] = {}

    def usable(self, key: Key, seen: Mapping[str, Any] | None) -> bool:
        """Whether ``seen`` (the watch's copy) may stand in for a GET."""
        if seen is None:
            return False
        if key not in self._by_policy:
            return True
        known = self._by_policy[key]
        return known is not None and known == resource_version(seen)

    def note(self, key: Key, body: Mapping[str, Any]) -> None:
        """``body`` was just read from, or written to, the API server."""
        self._by_policy[key] = resource_version(body)

    def forget(self, key: Key) -> None:
        self._by_policy.pop(key, None)


def drop_managed_fields(raw: Any) -> None:
    """Remove ``metadata.managedFields`` from a body in place (any other input: nothing).
    The server-side-apply bookkeeping of every field manager: nothing here reads it, and
    status writes send only name, namespace and resourceVersion of ``metadata``."""
    meta = raw.get("metadata") if isinstance(raw, dict) else None
    if isinstance(meta, dict):
        meta.pop("managedFields", None)


def watch_snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """The watch's body as it is now, cheaply (on the event loop, where kopf replaces
    it): its top level and ``metadata`` copied, without ``managedFields``; the rest is
    shared with the watch's event, which nobody changes (kopf replaces a body with the
    next event's, it does not edit it). Cheap to hold while a reconcile waits for a
    worker: a burst queues one per policy."""
    out = {k: v for k, v in body.items() if k != "metadata"}
    meta = body.get("metadata")
    if isinstance(meta, Mapping):
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    elif "metadata" in body:
        out["metadata"] = meta
    return out


def decision_copy(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """A private deep copy of a :func:`watch_snapshot` for one reconcile to decide on
    (in the worker: only while the reconcile runs)."""
    return copy.deepcopy(dict(snapshot))
