"""Batched gate queries against a real Prometheus scraping a real exporter process:
every policy's readings equal those of its own queries on the same data (same evaluation
time), and the number of queries Prometheus served does not grow with the policies."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client.parser import text_string_to_metric_families

from routerkit import _env, free_port, wait_http
from tierguard.api.enums import Signal
from tierguard.operator.gatetypes import GateSpec
from tierguard.operator.observe import observe
from tierguard.operator.promreader import PrometheusReader
from tierguard.operator.shared_queries import SharedQueries

if TYPE_CHECKING:
    from tierguard.lab.prometheus import Prometheus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

POLICIES = [f"team-{n}/policy-{i}" for n in ("a", "b") for i in range(6)] + ["team-b/policy-0-twin"]
GATES = [
    GateSpec(f"{tier}/{sig.value}", tier, sig, False, 0.05, latency_objective=lat)
    for tier in ("simple", "complex")
    for sig, lat in (
        (Signal.THUMBS_DOWN, None),
        (Signal.ERROR_RATE, None),
        (Signal.SHADOW_DISAGREEMENT, None),
        (Signal.LATENCY, 2.0),
    )
]


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "tierguard.lab.policy_exporter",
        "--port",
        str(port),
        "--policies",
        ",".join(POLICIES),
        "--namespace-label",
        "namespace",
        "--latency",
        "--per-minute",
        "600",
    ]
    with open(tmp_path / "exporter.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/metrics", proc)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def _queries_served(prom_url: str) -> float:
    """Instant queries Prometheus has answered (its own /metrics, not a query)."""
    with urllib.request.urlopen(f"{prom_url}/metrics", timeout=5) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "prometheus_http_requests":
            return sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total") and s.labels.get("handler") == "/api/v1/query"
            )
    raise AssertionError("Prometheus does not export prometheus_http_requests_total")


@pytest.mark.parametrize("namespace_label", [None, "namespace"])
def test_batched_readings_equal_per_policy_readings(
    prometheus: Prometheus, exporter: str, wait_for: object, namespace_label: str | None
) -> None:
    prometheus.set_targets([exporter])
    probe = PrometheusReader(prometheus.url)
    wait_for(  # type: ignore[operator]
        lambda: (
            len(probe.query('count by (policy) (tierguard_requests_total{policy!=""})'))
            == len({p.split("/")[1] for p in POLICIES})
        ),
        timeout=60,
        message="Prometheus never scraped the exporter",
    )
    now = datetime.now(UTC)

    def ns_of(p: str) -> tuple[str, str] | None:
        return (namespace_label, p.split("/")[0]) if namespace_label else None

    def complete(at: float) -> bool:
        """Every policy's every gate has data at ``at`` (each signal's series appear with
        the scrape after their first event, which on a busy machine can trail the first)."""
        probe_at = PrometheusReader(prometheus.url, at=at)
        for p in POLICIES:
            obs = observe(probe_at, p.split("/")[1], GATES, now, namespace=ns_of(p))
            for key, reading in obs.gates.items():
                want = {"canary"} if "Shadow" in key else {"control", "canary"}
                if obs.error or reading.error or set(reading.arms) != want:
                    return False
        return True

    # A fixed evaluation time at which every series exists: the comparison below reads
    # the same data twice, so it must not straddle a scrape.
    deadline = time.monotonic() + 60
    at = time.time() - 1.0
    while not complete(at):
        assert time.monotonic() < deadline, "the exporter's series never all reached Prometheus"
        time.sleep(1.0)
        at = time.time() - 1.0
    reader = PrometheusReader(prometheus.url, at=at)

    before = _queries_served(prometheus.url)
    own = {p: observe(reader, p.split("/")[1], GATES, now, namespace=ns_of(p)) for p in POLICIES}
    per_policy_queries = _queries_served(prometheus.url) - before

    shared = SharedQueries(max_age=3600.0)
    before = _queries_served(prometheus.url)
    batched = {
        p: observe(reader, p.split("/")[1], GATES, now, namespace=ns_of(p), shared=shared)
        for p in POLICIES
    }
    batched_queries = _queries_served(prometheus.url) - before

    for p in POLICIES:
        assert own[p].error is None and batched[p].error is None
        assert batched[p].gates == own[p].gates, p
        for key, reading in own[p].gates.items():
            assert reading.error is None
            # The router shadows canary answers only: that signal has no control arm.
            arms = {"canary"} if "Shadow" in key else {"control", "canary"}
            assert set(reading.arms) == arms, f"the gates saw data: {key}"
            assert any(v > 0 for v in reading.arms["canary"].total.values())
    # 3 signals x (bad, total) + Latency's one bucket query (its total is the le="+Inf"
    # bucket): 7 queries for all policies, vs 7 per policy before.
    assert batched_queries == shared.queries == 7
    assert per_policy_queries == 7 * len(POLICIES)
