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
"""

from __future__ import annotations

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
