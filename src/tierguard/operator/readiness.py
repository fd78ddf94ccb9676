"""The operator's readiness, distinct from its liveness.

* **Liveness** (kopf's ``--liveness`` endpoint, ``/healthz``): kopf answers it from the
  operator's event loop, so it fails exactly when the loop is stuck or dead — restart.
* **Readiness** (``--readiness`` endpoint, ``/readyz``, served here): the API server has
  answered a list of RoutingPolicies in the watched scope within the last
  :data:`FRESH_SECONDS` — the operator is connected, authorised and has seen the
  policies. An unready pod is taken out of Service endpoints and counts as unhealthy for
  the PodDisruptionBudget, but is not restarted: an API-server outage is not cured by
  restarting every operator.

A standby replica (kopf peering) is ready too: it is connected and would take over.
:class:`ReadinessState` is pure (times in, verdict out); :func:`watch_api` and
:func:`serve` are the thin I/O around it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

#: A successful list older than this no longer counts.
FRESH_SECONDS = 30.0
#: Seconds between two lists.
INTERVAL_SECONDS = 5.0


@dataclass
class ReadinessState:
    """What the last API checks found (monotonic seconds)."""

    last_ok_at: float | None = None
    last_error: str | None = None
    policies_seen: int | None = None

    def verdict(self, now: float, fresh: float = FRESH_SECONDS) -> tuple[bool, str]:
        if self.last_ok_at is None:
            why = self.last_error or "no answer from the API server yet"
            return False, f"not synced: {why}"
        age = now - self.last_ok_at
        if age > fresh:
            why = f": {self.last_error}" if self.last_error else ""
            return False, f"the API server has not answered for {age:.0f}s{why}"
        return True, f"connected; {self.policies_seen} RoutingPolicies in scope at last list"


class Readiness:
    """Thread-safe holder of a :class:`ReadinessState`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._state = ReadinessState()
        self._lock = threading.Lock()
        self._clock = clock

    def record_ok(self, policies: int) -> None:
        with self._lock:
            self._state.last_ok_at = self._clock()
            self._state.last_error = None
            self._state.policies_seen = policies

    def record_error(self, error: str) -> None:
        with self._lock:
            self._state.last_error = error

    def verdict(self) -> tuple[bool, str]:
        with self._lock:
            return self._state.verdict(self._clock())


async def watch_api(
    readiness: Readiness, list_policies: Callable[[], int], interval: float = INTERVAL_SECONDS
) -> None:
    """Forever: list the policies (in a thread; the client is blocking) and record it."""
    while True:
        try:
            count = await asyncio.to_thread(list_policies)
        except Exception as exc:  # any failure means "not ready", with its reason
            readiness.record_error(f"{type(exc).__name__}: {exc}"[:300])
        else:
            readiness.record_ok(count)
        await asyncio.sleep(interval)


async def serve(endpoint: str, readiness: Readiness) -> web.AppRunner:
    """Serve ``GET <path>``: 200 when ready, 503 otherwise, with the reason as text."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme != "http" or not parts.port:
        raise ValueError(f"--readiness must be http://HOST:PORT/PATH, got {endpoint!r}")

    async def ready(_: web.Request) -> web.Response:
        ok, message = readiness.verdict()
        return web.Response(status=200 if ok else 503, text=message + "\n")

    app = web.Application()
    app.router.add_get(parts.path or "/readyz", ready)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname or "0.0.0.0", parts.port).start()
    return runner
