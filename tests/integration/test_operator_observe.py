"""The operator's PromQL against a real Prometheus scraping a real router: for every
built-in signal (and a Custom one), ``observe`` returns exactly the per-tier, per-arm
counts the clients saw. This pins the metric-name contract between router and operator."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from routerkit import (
    COMPLEX_QUERY,
    SIMPLE_QUERY,
    fake_provider,
    http,
    router_config,
    router_process,
)
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api.enums import Signal
from tierguard.api.policy import CustomQuery
from tierguard.operator.gates import GateSpec
from tierguard.operator.observe import PrometheusReader, UnreachableError, observe

if TYPE_CHECKING:
    from tierguard.lab.prometheus import Prometheus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def chat(url: str, query: str, user: str) -> tuple[dict[str, Any], dict[str, str]]:
    req = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(
            {"model": "auto", "user": user, "messages": [{"role": "user", "content": query}]}
        ).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read()), {k.lower(): v for k, v in r.headers.items()}


def gate(signal: Signal, **kw: Any) -> GateSpec:
    return GateSpec(
        key=f"simple/{signal.value}",
        tier="simple",
        signal=signal,
        absolute=False,
        allowed=0.05,
        **kw,
    )


def test_observe_reads_what_clients_saw(
    tiny_classifier: Path,
    tmp_path: Path,
    prometheus: Prometheus,
    wait_for: Callable[..., Any],
) -> None:
    slow = {"models": {"small-1": {"latency_median_s": 0.3}, "*": {"latency_median_s": 0.01}}}
    with (
        fake_provider(tmp_path, "big", slow) as big,
        fake_provider(tmp_path, "small", slow) as small,
    ):
        cfg = router_config(
            tiny_classifier,
            big_url=f"{big}/v1",
            small_url=f"{small}/v1",
            weight=50,
            observability={"decisionLog": None, "latencyObjectives": ["200ms"]},
        )
        with router_process(tmp_path, cfg) as (url, _path, _proc):
            seen: Counter[str] = Counter()
            down: Counter[str] = Counter()
            for i in range(40):
                query = (COMPLEX_QUERY if i % 5 == 0 else SIMPLE_QUERY) + f" n{i}"
                body, headers = chat(url, query, f"u{i}")
                tier, arm = headers["x-tierguard-tier"], headers["x-tierguard-arm"]
                if tier != "simple":
                    continue
                seen[arm] += 1
                if i % 3 == 0:
                    assert (
                        http("POST", f"{url}/v1/feedback", {"id": body["id"], "rating": "down"})[0]
                        == 200
                    )
                    down[arm] += 1
            assert seen["canary"] and seen["control"], seen
            prometheus.set_targets([url.removeprefix("http://")])
            reader = PrometheusReader(prometheus.url, timeout=5)
            gates = [
                gate(Signal.ERROR_RATE),
                gate(Signal.THUMBS_DOWN),
                gate(Signal.LATENCY, latency_objective=0.2),
                gate(
                    Signal.CUSTOM,
                    query=CustomQuery(
                        bad='sum(tierguard_feedback_total{tier="$tier",arm="$arm",rating="down"})',
                        total='sum(tierguard_requests_total{tier="$tier",arm="$arm"})',
                    ),
                ),
            ]

            def totals() -> dict[str, dict[str, float]] | None:
                obs = observe(reader, "support", gates, datetime.now(UTC))
                assert obs.error is None
                out = {}
                for g in gates:
                    r = obs.gates[g.key]
                    assert r.error is None, r.error
                    out[g.key] = {arm: sum(a.total.values()) for arm, a in r.arms.items()}
                want = {a: float(n) for a, n in seen.items()}
                return out if out["simple/ErrorRate"] == want else None

            wait_for(totals, timeout=60, message=f"Prometheus to report {dict(seen)}")
            obs = observe(reader, "support", gates, datetime.now(UTC))
    er = obs.gates["simple/ErrorRate"].arms
    assert {a: sum(r.bad.values()) for a, r in er.items()} == {"canary": 0.0, "control": 0.0}
    td = obs.gates["simple/ThumbsDown"].arms
    assert {a: sum(r.total.values()) for a, r in td.items()} == {
        a: float(n) for a, n in down.items()
    }
    assert {a: sum(r.bad.values()) for a, r in td.items()} == {a: float(n) for a, n in down.items()}
    lat = obs.gates["simple/Latency"].arms
    # every canary answer took ~0.3 s (> 200 ms objective), control ~0.01 s
    assert sum(lat["canary"].bad.values()) == seen["canary"]
    assert sum(lat["control"].bad.values()) == 0
    custom = obs.gates["simple/Custom"].arms
    assert {a: r.total[""] for a, r in custom.items()} == {a: float(n) for a, n in seen.items()}


def test_unreachable_prometheus_is_reported_not_raised() -> None:
    from routerkit import free_port

    reader = PrometheusReader(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(UnreachableError):
        reader.query("up")
    obs = observe(reader, "support", [gate(Signal.ERROR_RATE)], datetime.now(UTC))
    assert obs.error is not None and "unreachable" in obs.error
