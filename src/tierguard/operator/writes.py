"""Which API writes a reconcile needs: none when nothing changed ("idle means idle").

Pure bookkeeping, no I/O (the controller does the calls):

* :func:`status_needs_write`: status is written only when its content changes. The time
  of an evaluation that found nothing new (``lastEvaluatedAt`` alone moved) is kept in
  memory by the controller, not written.
* :class:`AppliedObjects`: what was last server-side applied, per policy and object, as
  a content hash. A rendered object is applied again only when its hash changes, or when
  a watch event shows the live object no longer :func:`contains` what was rendered (a
  hand edit, a deletion): never on a timer.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tierguard.api.status import RoutingPolicyStatus

#: Status fields whose change alone is not worth a write (see :func:`status_needs_write`).
VOLATILE_STATUS_FIELDS = frozenset({"lastEvaluatedAt"})


def status_needs_write(old: RoutingPolicyStatus, new: RoutingPolicyStatus) -> bool:
    """Whether ``new`` differs from ``old`` in anything but :data:`VOLATILE_STATUS_FIELDS`."""
    a, b = old.to_k8s(), new.to_k8s()
    for key in VOLATILE_STATUS_FIELDS:
        a.pop(key, None)
        b.pop(key, None)
    return a != b


def content_hash(obj: Mapping[str, Any]) -> str:
    """A stable hash of one rendered object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def compact(obj: Mapping[str, Any]) -> bytes:
    """One rendered object as compressed JSON: what :class:`AppliedObjects` keeps for
    drift checks. One bytes object instead of a tree of small dicts, lists and strings
    (~3.5 KB for the seven objects of a policy instead of ~16 KiB parsed); :func:`expanded`
    gives the same object back for a watch event to compare with (tens of µs)."""
    return zlib.compress(json.dumps(obj, separators=(",", ":")).encode(), 6)


def expanded(kept: bytes) -> Any:
    """The object :func:`compact` kept."""
    return json.loads(zlib.decompress(kept))


def contains(live: Any, want: Any) -> bool:
    """Whether the live object still holds every field the operator rendered.

    Fields the API server or other controllers add (defaults, status, managedFields,
    a ClusterIP) are ignored; a rendered list matches when each of its items is matched
    by some live item (lists like ``containers`` are merged by key, not position).
    """
    if isinstance(want, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(k in live and contains(live[k], v) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(live, list) or len(live) < len(want):
            return False
        return all(any(contains(item, w) for item in live) for w in want)
    if isinstance(want, bool) or isinstance(live, bool):
        return want is live
    if isinstance(want, (int, float)) and isinstance(live, (int, float)):
        return float(want) == float(live)
    return bool(want == live)


ObjectKey = tuple[str, str]  # (kind, name)


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    return (str(obj.get("kind", "")), str(obj.get("metadata", {}).get("name", "")))


@dataclass
class _PolicyObjects:
    uid: str
    hashes: dict[ObjectKey, str]
    #: The rendered objects, :func:`compact` (expanded again for a drift check).
    rendered: dict[ObjectKey, bytes]


class AppliedObjects:
    """Per policy (namespace, name): the objects last applied and their hashes.

    Thread-safe (reconciles of different policies run in parallel; watch events arrive on
    the event loop). Memory only: after a restart the controller compares the rendered
    objects with the live ones once (reads, not writes) before trusting this.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_policy: dict[tuple[str, str], _PolicyObjects] = {}

    def known(self, namespace: str, policy: str, uid: str) -> bool:
        """Whether this process has applied (or verified) the policy's objects."""
        with self._lock:
            entry = self._by_policy.get((namespace, policy))
            return entry is not None and entry.uid == uid

    def due(self, namespace: str, policy: str, uid: str, objs: list[dict[str, Any]]) -> list[int]:
        """Indexes into ``objs`` of the objects whose content differs from the last apply."""
        with self._lock:
            entry = self._by_policy.get((namespace, policy))
            hashes = entry.hashes if entry is not None and entry.uid == uid else {}
        return [i for i, o in enumerate(objs) if hashes.get(object_key(o)) != content_hash(o)]

    def record(self, namespace: str, policy: str, uid: str, objs: list[dict[str, Any]]) -> None:
        """``objs`` are now what the API server holds (applied, or verified unchanged)."""
        with self._lock:
            entry = self._by_policy.get((namespace, policy))
            if entry is None or entry.uid != uid:
                entry = _PolicyObjects(uid, {}, {})
                self._by_policy[(namespace, policy)] = entry
            for o in objs:
                key = object_key(o)
                entry.hashes[key] = content_hash(o)
                entry.rendered[key] = compact(o)
            wanted = {object_key(o) for o in objs}
            for key in [k for k in entry.rendered if k not in wanted]:
                entry.rendered.pop(key, None)
                entry.hashes.pop(key, None)

    def forget(self, namespace: str, policy: str) -> None:
        with self._lock:
            self._by_policy.pop((namespace, policy), None)

    def holds(self, namespace: str, policy: str, uid: str, key: ObjectKey) -> bool:
        """Whether this process last applied ``key`` for the policy with ``uid``."""
        with self._lock:
            entry = self._by_policy.get((namespace, policy))
            return entry is not None and entry.uid == uid and key in entry.rendered

    def again(self, namespace: str, policy: str, key: ObjectKey) -> None:
        """Make ``key`` due at the next reconcile although its content did not change
        (its apply left work undone: :meth:`~tierguard.operator.kube.Kube.apply`)."""
        with self._lock:
            entry = self._by_policy.get((namespace, policy))
            if entry is not None:
                entry.hashes.pop(key, None)

    def drifted(
        self, namespace: str, policy: str, kind: str, name: str, live: Mapping[str, Any] | None
    ) -> bool:
        """A watch event on an owned object: True (and the object marked for re-apply) if
        it no longer holds what was applied; ``live`` None means it was deleted."""
        with self._lock:
            entry = self._by_policy.get((namespace, policy))
            if entry is None:
                return False
            kept = entry.rendered.get((kind, name))
            if kept is None:
                return False
            if live is not None and contains(live, expanded(kept)):
                return False
            entry.hashes.pop((kind, name), None)
            return True
