"""The operator's PromQL against a real Prometheus scraping a real router: for every
built-in signal (and a Custom one), ``observe`` returns exactly the per-tier, per-arm
counts the clients saw. This pins the metric-name contract between router and operator."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from routerkit import (
    COMPLEX_QUERY,
    SIMPLE_QUERY,
    fake_provider,
    free_port,
    http,
    process,
    router_config,
    router_process,
)
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api.enums import Arm, Phase, Signal, Verdict
from tierguard.api.policy import CustomQuery, RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import rollout
from tierguard.operator import statistics as st
from tierguard.operator.gates import evaluate_gates
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gatetypes import GateSpec
from tierguard.operator.gateupdates import fresh_gate_state, update_gates
from tierguard.operator.observe import observe
from tierguard.operator.promreader import PrometheusReader, UnreachableError

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
                        bad="sum by (instance) "
                        '(tierguard_feedback_total{tier="$tier",arm="$arm",rating="down"})',
                        total="sum by (instance) "
                        '(tierguard_requests_total{tier="$tier",arm="$arm"})',
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
    assert {a: sum(r.total.values()) for a, r in custom.items()} == {
        a: float(n) for a, n in seen.items()
    }


def test_unreachable_prometheus_is_reported_not_raised() -> None:
    from routerkit import free_port

    reader = PrometheusReader(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(UnreachableError):
        reader.query("up")
    obs = observe(reader, "support", [gate(Signal.ERROR_RATE)], datetime.now(UTC))
    assert obs.error is not None and "unreachable" in obs.error


# ------------------------------------------------------------------ Custom queries, replicas


def _router_at(tmp: Path, name: str, cfg: dict[str, Any], port: int) -> Any:
    """A router process on a fixed port (so a restart keeps its ``instance`` label)."""
    import yaml

    home = tmp / name
    home.mkdir(exist_ok=True)
    path = home / "router.yaml"
    path.write_text(
        yaml.safe_dump({**cfg, "server": {"host": "127.0.0.1", "port": port}}), encoding="utf-8"
    )
    return process(
        ["router", "--config", str(path), "--poll-interval", "0.2"],
        f"http://127.0.0.1:{port}/readyz",
        home / f"router-{time.monotonic_ns()}.log",
    )


def _ask(url: str, n: int, seen: Counter[str], prefix: str) -> None:
    for i in range(n):
        _body, headers = chat(url, f"{SIMPLE_QUERY} {prefix}{i}", f"{prefix}-user-{i}")
        assert headers["x-tierguard-tier"] == "simple"
        seen[headers["x-tierguard-arm"]] += 1


PER_ROUTER = CustomQuery(
    bad='sum by (instance) (tierguard_requests_total{tier="$tier",arm="$arm",outcome="error"})',
    total='sum by (instance) (tierguard_requests_total{tier="$tier",arm="$arm"})',
)
SUMMED = CustomQuery(
    bad='sum(tierguard_requests_total{tier="$tier",arm="$arm",outcome="error"})',
    total='sum(tierguard_requests_total{tier="$tier",arm="$arm"})',
)


def test_custom_query_across_replicas_counts_a_router_restart_once(
    tiny_classifier: Path,
    tmp_path: Path,
    prometheus: Prometheus,
    wait_for: Callable[..., Any],
) -> None:
    """Two router replicas, one restarts: a Custom SLO counts exactly the requests served
    since the previous look (per-series resets), and a query that sums across replicas is
    refused with a message saying why, instead of counting the history again."""
    per_router = gate(Signal.CUSTOM, query=PER_ROUTER)
    summed = GateSpec(
        key="simple/Custom/summed",
        tier="simple",
        signal=Signal.CUSTOM,
        absolute=False,
        allowed=0.05,
        query=SUMMED,
    )
    reader = PrometheusReader(prometheus.url, timeout=5)
    ports = {"a": free_port(), "b": free_port()}
    urls = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
    with (
        fake_provider(tmp_path, "big") as big,
        fake_provider(tmp_path, "small") as small,
    ):
        cfg = router_config(
            tiny_classifier,
            big_url=f"{big}/v1",
            small_url=f"{small}/v1",
            weight=50,
            observability={"decisionLog": None},
        )

        def reading(expected: dict[str, float]) -> Any:
            """Observe once Prometheus holds ``expected`` per instance (summed over arms)."""

            def check() -> Any:
                obs = observe(reader, "support", [per_router, summed], datetime.now(UTC))
                r = obs.gates[per_router.key]
                if obs.error or r.error:
                    return None
                got: dict[str, float] = {}
                for arm in r.arms.values():
                    for key, value in arm.total.items():
                        got[key] = got.get(key, 0.0) + value
                want = {f'{{instance="127.0.0.1:{ports[k]}"}}': v for k, v in expected.items()}
                return obs if got == want else None

            return wait_for(check, timeout=60, message=f"Prometheus to report {expected}")

        seen_before: Counter[str] = Counter()
        seen_after: Counter[str] = Counter()
        with _router_at(tmp_path, "a", cfg, ports["a"]):
            b = _router_at(tmp_path, "b", cfg, ports["b"])
            b.__enter__()
            try:
                prometheus.set_targets([u.removeprefix("http://") for u in urls.values()])
                _ask(urls["a"], 12, seen_before, "a")
                _ask(urls["b"], 12, seen_before, "b")
                first = reading({"a": 12, "b": 12})
            finally:
                b.__exit__(None, None, None)
            # Router b restarts (same address): its counters start from zero again.
            with _router_at(tmp_path, "b", cfg, ports["b"]):
                _ask(urls["a"], 3, seen_after, "a2-")
                _ask(urls["b"], 4, seen_after, "b2-")
                second = reading({"a": 15, "b": 4})
    state = update_gates(fresh_gate_state("r"), [per_router], first, Arm.CONTROL)
    state = update_gates(state, [per_router], second, Arm.CONTROL)
    stats = st.GateState.from_json(state["gates"][per_router.key]["stats"])
    counted = {"control": stats.control_total, "canary": stats.canary_total}
    assert counted == {a: float(seen_after[a]) for a in ("control", "canary")}, (
        f"counted {counted} for {dict(seen_after)} requests after the restart"
    )
    # The summed query is refused, naming itself and the fix.
    err = second.gates[summed.key].error
    assert err is not None and "instance" in err and "sum(tierguard_requests_total" in err, err
    outcome = evaluate_gates(
        update_gates(fresh_gate_state("r"), [summed], second, Arm.CONTROL),
        [summed],
        second,
        0.95,
        10,
    )[0]
    assert outcome.verdict == Verdict.NO_DATA and "sum by (instance)" in outcome.message


def test_nan_and_inf_readings_are_no_data_naming_the_query_and_the_clock_runs(
    prometheus: Prometheus,
) -> None:
    """0/0 in a custom expression: the gate is NoData with the query named, every
    reconcile goes through, and noData.after pauses the rollout."""
    spec = RoutingPolicySpec.model_validate(
        {
            "models": [
                {"name": "big", "baseURL": "http://big/v1", "upstreamModel": "b"},
                {"name": "small", "baseURL": "http://small/v1", "upstreamModel": "s"},
            ],
            "routes": [
                {"tier": "simple", "baseline": "big", "candidate": "small"},
                {"tier": "complex", "baseline": "big"},
            ],
            "rollout": {"interval": "5s", "noData": {"after": "10s", "action": "Pause"}},
            "analysis": {
                "slos": [
                    {
                        "tier": "simple",
                        "signal": "Custom",
                        "query": {"bad": "vector(1) / vector(0)", "total": "vector(0) / vector(0)"},
                    }
                ]
            },
        }
    )
    reader = PrometheusReader(prometheus.url, timeout=5)
    gates = gate_specs(spec)
    t0 = datetime.now(UTC)
    status = rollout.reconcile(spec, None, t0).status
    for i, seconds in enumerate((0, 6, 12)):
        now = t0 + timedelta(seconds=seconds)
        obs = observe(reader, "support", gates, now)
        assert obs.error is None, obs.error
        err = obs.gates[gates[0].key].error
        assert err is not None and "vector(0) / vector(0)" in err and "NaN" in err, err
        decision = rollout.reconcile(spec, status, now, observations=obs)
        status = RoutingPolicyStatus.model_validate(decision.status.to_k8s())
        assert status.tiers[0].verdict == Verdict.NO_DATA
        assert "vector(0) / vector(0)" in status.tiers[0].signals[0].message
        if i == 0:
            assert status.no_data_since == now and status.phase == Phase.PROGRESSING
    assert status.phase == Phase.PAUSED, status.message
    assert "vector(0) / vector(0)" in status.message and "noData.after 10s" in status.message
    # +Inf is refused the same way.
    inf = GateSpec(
        key="simple/Custom/inf",
        tier="simple",
        signal=Signal.CUSTOM,
        absolute=False,
        allowed=0.05,
        query=CustomQuery(bad="vector(0)", total="vector(1) / vector(0)"),
    )
    err = observe(reader, "support", [inf], t0).gates[inf.key].error
    assert err is not None and "vector(1) / vector(0)" in err and "inf" in err.lower(), err
