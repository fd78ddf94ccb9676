"""The router's self-reported overhead (``tierguard_router_overhead_seconds``) read from
its ``/metrics``, to set beside the added latency the load generator measures
(bench/router/run.py). Pure parsing plus one stdlib HTTP GET."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from tierguard.api import metrics as m


@dataclass(frozen=True)
class Overhead:
    """Cumulative overhead counters of one scrape: seconds per phase and requests."""

    seconds: dict[str, float]
    requests: float

    def since(self, before: Overhead) -> dict[str, float] | None:
        """Mean milliseconds per request, per phase and ``total``, between two scrapes
        (None when no request was served between them)."""
        n = self.requests - before.requests
        if n <= 0:
            return None
        out = {
            p: (self.seconds.get(p, 0.0) - before.seconds.get(p, 0.0)) / n * 1e3 for p in m.PHASES
        }
        out["total"] = sum(out[p] for p in m.PHASES)
        return out


def parse(exposition: str) -> Overhead:
    """The overhead histogram's ``_sum`` per phase and its request count (the ``parse``
    phase's ``_count``: every served or failed request observes each phase once),
    summed over policies."""
    name = m.ROUTER_OVERHEAD.name
    seconds: dict[str, float] = {}
    requests = 0.0
    for line in exposition.splitlines():
        if not line.startswith(name) or "{" not in line:
            continue
        series = line[: line.index("{")]
        labels = dict(
            part.split("=", 1) for part in line[line.index("{") + 1 : line.index("}")].split(",")
        )
        phase = labels.get(m.PHASE, "").strip('"')
        value = float(line.rsplit(" ", 1)[1])
        if series == f"{name}_sum":
            seconds[phase] = seconds.get(phase, 0.0) + value
        elif series == f"{name}_count" and phase == m.PHASE_PARSE:
            requests += value
    return Overhead(seconds, requests)


def scrape(port: int) -> Overhead:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return parse(r.read().decode())
