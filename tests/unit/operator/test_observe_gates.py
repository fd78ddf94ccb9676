"""PromQL construction, reading parsing and the gate glue (carry-forward of series)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rolloutsim import T0, make_spec

from tierguard.api.enums import Arm, Signal, Verdict
from tierguard.operator import observe as o
from tierguard.operator import promql, promreader, promseries
from tierguard.operator.gates import evaluate_gates
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gatetypes import GateReading, GateSpec, Observations
from tierguard.operator.gateupdates import fresh_gate_state, update_gates
from tierguard.operator.statistics import ArmReading


class FakeReader(promreader.PrometheusReader):
    """Answers PromQL from a table (unit test of parsing only; the real Prometheus is
    exercised in tests/integration). Only :meth:`query` is used by what is tested here."""

    def __init__(
        self, answers: dict[str, list[dict[str, Any]]], fail: type[Exception] | None = None
    ) -> None:
        self.answers = answers
        self.fail = fail
        self.asked: list[str] = []

    def query(self, promql: str) -> list[dict[str, Any]]:
        self.asked.append(promql)
        if self.fail is not None:
            raise self.fail("boom")
        return self.answers.get(promql, [])


def row(tier: str, arm: str, value: float, instance: str = "r1", **extra: str) -> dict[str, Any]:
    return {
        "metric": {"tier": tier, "arm": arm, "instance": instance, **extra},
        "value": [0, str(value)],
    }


def test_queries_use_contract_names_and_group_per_instance() -> None:
    bad, total = promql.signal_queries(Signal.THUMBS_DOWN, "shop")
    assert bad == (
        "sum by (tier, arm, instance, cluster) "
        '(tierguard_feedback_total{policy="shop", rating="down"})'
    )
    assert total == (
        'sum by (tier, arm, instance, cluster) (tierguard_feedback_total{policy="shop"})'
    )
    bad, _ = promql.signal_queries(Signal.ERROR_RATE, "shop", ("namespace", "a"))
    assert 'outcome=~"error|escalated"' in bad and 'namespace="a"' in bad
    bad, _ = promql.signal_queries(Signal.SHADOW_DISAGREEMENT, 'we"ird')
    assert 'policy="we\\"ird"' in bad


def test_observe_builds_arm_readings_per_gate() -> None:
    spec = make_spec()
    gates = gate_specs(spec)
    bad_q, total_q = promql.signal_queries(Signal.THUMBS_DOWN, "shop")
    reader = FakeReader(
        {
            total_q: [
                row("simple", "control", 100),
                row("simple", "canary", 10),
                row("simple", "canary", 5, instance="r2"),
                row("tricky", "control", 50),
            ],
            bad_q: [row("simple", "canary", 2)],
        }
    )
    obs = o.observe(reader, "shop", gates, T0)
    assert obs.error is None
    simple = obs.gates["simple/ThumbsDown"]
    assert simple.arms["canary"].total == {"r1": 10.0, "r2": 5.0}
    assert simple.arms["canary"].bad == {"r1": 2.0}
    assert simple.arms["control"].bad == {}
    assert set(obs.gates["tricky/ThumbsDown"].arms) == {"control"}
    # thumbs total, thumbs bad and the request counters (is traffic flowing?), each once
    assert len(set(reader.asked)) == 3, "one query per distinct PromQL, shared by tiers"
    assert len(reader.asked) == 3
    assert not simple.requests_flowing, "no request counters were answered"


def test_unreachable_prometheus_is_no_data_not_an_exception() -> None:
    obs = o.observe(
        FakeReader({}, fail=promreader.UnreachableError),
        "shop",
        gate_specs(make_spec()),
        T0,
    )
    assert obs.error is not None and not obs.gates
    obs = o.observe(
        FakeReader({}, fail=promreader.QueryError),
        "shop",
        gate_specs(make_spec()),
        T0,
    )
    assert obs.error is None and all(r.error for r in obs.gates.values())


def test_latency_bad_is_count_minus_bucket_at_objective() -> None:
    counts = {("simple", "canary"): {"r1": 100.0}}
    buckets = [row("simple", "canary", 90, le="2.0"), row("simple", "canary", 60, le="1.0")]
    bad = promseries.latency_bad(buckets, counts, 2.0, "q")
    assert bad == {("simple", "canary"): {"r1": 10.0}}


def test_latency_total_and_bad_come_from_one_bucket_query() -> None:
    """Regression: total was the separate ``_count`` query, read at another moment than
    the bucket (batched queries are cached per query); bad = count - bucket then dipped
    between looks, each dip read as a counter reset, and a healthy canary showed ~9 %
    slow requests that the routers never served (lab e2e, Latency never passed)."""
    gate = GateSpec(
        key="simple/Latency",
        tier="simple",
        signal=Signal.LATENCY,
        absolute=False,
        allowed=0.05,
        latency_objective=1.5,
    )
    le = "1.5"
    buckets = [
        row(gate.tier, "canary", 100, le="+Inf"),
        row(gate.tier, "canary", 97, le=le),
        row(gate.tier, "control", 50, le="+Inf"),
        row(gate.tier, "control", 50, le=le),
    ]
    later_count = [row(gate.tier, "canary", 130), row(gate.tier, "control", 80)]

    def builtin(signal: Signal, which: int) -> list[dict[str, Any]]:
        if signal == Signal.LATENCY:
            return buckets if which == 0 else later_count
        return [row(gate.tier, "canary", 1)]

    reading = o._read_gate(lambda q: [], builtin, gate)
    assert reading.arms["canary"] == ArmReading(bad={"r1": 3.0}, total={"r1": 100.0})
    assert reading.arms["control"] == ArmReading(bad={"r1": 0.0}, total={"r1": 50.0})


def test_missing_latency_bucket_is_a_query_error() -> None:
    import pytest

    with pytest.raises(promreader.QueryError, match="latency objective"):
        promseries.latency_bad([row("simple", "canary", 1, le="5.0")], {}, 2.0, "q")


def test_vanished_series_are_carried_forward_not_recounted() -> None:
    """A router's series missing from one scrape must not be counted twice on return."""
    spec = make_spec()
    gates = [x for x in gate_specs(spec) if x.tier == "simple"]

    def obs(canary: dict[str, float], control: dict[str, float]) -> Observations:
        return Observations(
            at=T0,
            gates={
                "simple/ThumbsDown": GateReading(
                    arms={
                        "canary": ArmReading(bad={}, total=canary),
                        "control": ArmReading(bad={}, total=control),
                    }
                )
            },
        )

    state = fresh_gate_state("r")
    state = update_gates(state, gates, obs({"a": 10, "b": 10}, {"a": 100}), Arm.CONTROL)
    state = update_gates(state, gates, obs({"a": 20}, {"a": 150}), Arm.CONTROL)  # b missing
    state = update_gates(state, gates, obs({"a": 30, "b": 15}, {"a": 200}), Arm.CONTROL)
    counts = state["gates"]["simple/ThumbsDown"]["stats"]["counts"]
    assert counts[3] == (30 - 10) + (15 - 10)  # canary total since the baseline
    assert counts[1] == 100


def test_shadow_disagreement_is_judged_on_the_canary_alone() -> None:
    spec = make_spec()
    spec.analysis.slos[0].signal = Signal.SHADOW_DISAGREEMENT
    gs = {x.key: x for x in gate_specs(spec)}
    assert gs["simple/ShadowDisagreement"].absolute


def test_first_reading_is_a_baseline_not_missing_data() -> None:
    spec = make_spec()
    gates = gate_specs(spec)
    reading = GateReading(arms={"control": ArmReading.of(5, 50), "canary": ArmReading.of(1, 5)})
    o1 = Observations(at=T0, gates={x.key: reading for x in gates})
    state = update_gates(fresh_gate_state("r"), gates, o1, Arm.CONTROL)
    out = evaluate_gates(state, gates, o1, 0.95, 10)
    assert all(x.verdict == Verdict.INCONCLUSIVE for x in out)
    o2 = Observations(at=T0 + timedelta(minutes=1), gates={x.key: GateReading() for x in gates})
    state = update_gates(state, gates, o2, Arm.CONTROL)
    out = evaluate_gates(state, gates, o2, 0.95, 10)
    assert all(x.verdict == Verdict.NO_DATA for x in out)


def test_quiet_signal_while_requests_flow_is_inconclusive_not_no_data() -> None:
    """Issue 13.5: a tier whose requests are counted but nobody rated yet has no evidence
    either way (Inconclusive); NoData needs the request counters themselves missing."""
    spec = make_spec()
    gates = gate_specs(spec)
    _, requests_q = promql.signal_queries(Signal.ERROR_RATE, "shop")
    reader = FakeReader({requests_q: [row("simple", "control", 40), row("simple", "canary", 3)]})
    obs = o.observe(reader, "shop", gates, T0)
    assert obs.gates["simple/ThumbsDown"].requests_flowing
    assert obs.gates["simple/ThumbsDown"].empty
    assert not obs.gates["tricky/ThumbsDown"].requests_flowing
    state = fresh_gate_state("r")
    for minute in range(3):
        at = T0 + timedelta(minutes=minute)
        obs = o.observe(reader, "shop", gates, at)
        state = update_gates(state, gates, obs, Arm.CONTROL)
    out = {x.key: x for x in evaluate_gates(state, gates, obs, 0.95, 10)}
    assert out["simple/ThumbsDown"].verdict == Verdict.INCONCLUSIVE
    assert "quiet" in out["simple/ThumbsDown"].message
    assert out["tricky/ThumbsDown"].verdict == Verdict.NO_DATA


def test_docs_show_the_queries_the_operator_runs() -> None:
    """Issue 13.6: docs/metrics.md shows the raw-counter queries of promql.py (no
    increase())."""
    from tierguard.api.docgen import render_metrics_md

    doc = render_metrics_md().replace("\\|", "|")  # pipes are escaped in table cells
    assert "increase(" not in doc.replace("PromQL `increase()`", "")
    for signal in (Signal.THUMBS_DOWN, Signal.ERROR_RATE, Signal.SHADOW_DISAGREEMENT):
        for query in promql.signal_queries(signal, "P"):
            assert query in doc, query


def test_slo_fail_margin_reaches_the_gate_and_defaults_to_half_the_drop() -> None:
    spec = make_spec()
    spec.analysis.slos[0].fail_margin = 0.004
    state = update_gates(fresh_gate_state("r"), gate_specs(spec), Observations(at=T0), Arm.CONTROL)
    stats = {k: v["stats"] for k, v in state["gates"].items()}
    first = f"{spec.analysis.slos[0].tier}/{spec.analysis.slos[0].signal.value}"
    assert stats[first]["failMargin"] == 0.004
    others = [v for k, v in stats.items() if k != first and v["kind"] == "relative"]
    assert others and all(v["failMargin"] == v["allowedDrop"] / 2 for v in others)


def test_clustered_series_feed_the_design_effect() -> None:
    """Issue 13.2: counters per user cluster become ``instance#cluster`` series; the gate
    sums them for the test and estimates the design effect from their spread."""
    spec = make_spec()
    gates = gate_specs(spec)
    bad_q, total_q = promql.signal_queries(Signal.THUMBS_DOWN, "shop")
    state = fresh_gate_state("r")
    for minute in range(2):
        scale = minute + 1
        totals, bads = [], []
        for c in range(16):
            for arm in ("control", "canary"):
                totals.append(row("simple", arm, 100 * scale, cluster=str(c)))
                # clusters differ far more than binomial noise: half all bad, half all good
                bads.append(row("simple", arm, (100 * scale) * (c % 2), cluster=str(c)))
        reader = FakeReader({total_q: totals, bad_q: bads})
        obs = o.observe(reader, "shop", gates, T0 + timedelta(minutes=minute))
        assert set(obs.gates["simple/ThumbsDown"].arms["canary"].total) == {
            f"r1#{c}" for c in range(16)
        }
        state = update_gates(state, gates, obs, Arm.CONTROL)
    stats = state["gates"]["simple/ThumbsDown"]["stats"]
    assert stats["counts"] == [800.0, 1600.0, 800.0, 1600.0]
    assert stats["designEffect"] > 50  # 100 outcomes per cluster, all alike


def test_custom_readings_are_kept_per_router_and_bad_ones_refused_naming_the_query() -> None:
    ok = [
        {"metric": {"instance": "r1:8080"}, "value": [0, "12"]},
        {"metric": {"instance": "r2:8080"}, "value": [0, "3"]},
    ]
    assert promseries.custom_series("q", ok, "total") == {
        '{instance="r1:8080"}': 12.0,
        '{instance="r2:8080"}': 3.0,
    }
    cases = [
        ([{"metric": {}, "value": [0, "15"]}], "without an instance label"),
        ([{"metric": {"instance": "r1"}, "value": [0, "2.5"]}], "not a cumulative count"),
        ([{"metric": {"instance": "r1"}, "value": [0, "-1"]}], "not a cumulative count"),
        ([{"metric": {"instance": "r1"}, "value": [0, "NaN"]}], "finite"),
        ([{"metric": {}, "value": [0, "+Inf"]}], "finite"),
    ]
    for result, needle in cases:
        try:
            promseries.custom_series("sum(x) / sum(y)", result, "bad")
        except promreader.QueryError as exc:
            assert needle in str(exc) and "sum(x) / sum(y)" in str(exc), str(exc)
        else:
            raise AssertionError(f"accepted {result}")


def test_nan_in_a_built_in_query_is_a_gate_error_naming_the_query() -> None:
    spec = make_spec()
    gates = gate_specs(spec)
    _, total_q = promql.signal_queries(Signal.THUMBS_DOWN, "shop")
    reader = FakeReader({total_q: [row("simple", "control", float("nan"))]})
    obs = o.observe(reader, "shop", gates, T0)
    err = obs.gates["simple/ThumbsDown"].error
    assert err is not None and "ThumbsDown" in err and "nan" in err, err
