"""The pairwise judge's gate: verdict counters -> paired test, judge health, gate glue
(pure parts; the real Prometheus path is tests/integration/test_operator_observe.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tierguard.api.enums import Arm, Signal, Verdict
from tierguard.api.policy import RoutingPolicySpec
from tierguard.lab.fakejudge import JudgeKnobs, pairwise_reply
from tierguard.operator import observe as o
from tierguard.operator import pairedgate as pg
from tierguard.operator import promql
from tierguard.operator.design_effect import MIN_DESIGN_EVENTS
from tierguard.operator.gates import evaluate_gates
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gatestatus import tier_statuses
from tierguard.operator.gatetypes import GateReading, Observations
from tierguard.operator.gateupdates import fresh_gate_state, rebase_step, update_gates
from tierguard.operator.judgehealth import JUDGE_HEALTH_UNDECIDED
from tierguard.operator.paired import evaluate_paired
from tierguard.operator.promreader import PrometheusReader
from tierguard.router.pairwise import combine, parse_pairwise

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VERDICTS = ("worse", "better", "tie", "inconsistent", "error")


def spec(mode: str = "Pairwise", **slo: Any) -> RoutingPolicySpec:
    return RoutingPolicySpec.model_validate(
        {
            "models": [
                {"name": "big", "baseURL": "http://big/v1", "upstreamModel": "b"},
                {"name": "small", "baseURL": "http://small/v1", "upstreamModel": "s"},
                {"name": "judge", "baseURL": "http://judge/v1", "upstreamModel": "j"},
            ],
            "routes": [
                {"tier": "simple", "baseline": "big", "candidate": "small"},
                {"tier": "complex", "baseline": "big"},
            ],
            "analysis": {
                "slos": [
                    {"tier": "simple", "signal": "ShadowDisagreement", "allowedDrop": 0.05, **slo}
                ]
            },
            "router": {"shadow": {"judge": {"type": "LLM", "model": "judge", "mode": mode}}},
        }
    )


def counts(**c: float) -> dict[str, dict[str, float]]:
    return {v: {"r1#0": c.get(v, 0.0)} for v in VERDICTS}


def test_pairwise_slo_becomes_a_paired_gate_with_the_default_fail_margin() -> None:
    (gate,) = gate_specs(spec())
    assert gate.pairwise and gate.signal is Signal.SHADOW_DISAGREEMENT
    assert (gate.allowed, gate.fail_margin) == (0.05, 0.025)
    assert (gate.max_inconsistency, gate.max_error_rate) == (0.5, 0.2)
    (gate,) = gate_specs(spec(failMargin=0.04))
    assert gate.fail_margin == 0.04
    (agree,) = gate_specs(spec(mode="Agreement"))
    assert not agree.pairwise and agree.fingerprint != gate.fingerprint


def test_first_reading_is_the_baseline_then_deltas_with_resets() -> None:
    s = pg.new_paired_gate(0.05, 0.025)
    s = pg.update_paired_gate(s, counts(worse=100, better=50, tie=30))
    assert s.judged == 0 and s.blocks == 0  # history before the gate started: not counted
    s = pg.update_paired_gate(s, counts(worse=110, better=70, tie=40, inconsistent=5, error=3))
    assert (s.paired.worse, s.paired.better, s.paired.ties) == (10, 20, 15)  # 10 ties + 5
    assert s.counts["error"] == 3 and s.counts["inconsistent"] == 5
    s = pg.update_paired_gate(s, counts(worse=2, better=110, tie=40, inconsistent=5, error=3))
    assert s.paired.worse == 12  # a router restart: its counter counts from zero
    assert pg.PairedGateState.from_json(s.to_json()) == s


def _judged(state: pg.PairedGateState, w: float, b: float, t: float, i: float, e: float) -> Any:
    s = pg.update_paired_gate(state, counts())
    return pg.update_paired_gate(s, counts(worse=w, better=b, tie=t, inconsistent=i, error=e))


def test_a_healthy_judge_passes_an_equal_canary() -> None:
    s = _judged(pg.new_paired_gate(0.05, 0.025), 100, 100, 1500, 300, 20)
    r = pg.evaluate_paired_gate(s, 0.05, 200, 0.5, 0.2)
    assert r.verdict is Verdict.PASS and r.health.healthy
    assert r.health.inconsistency_rate == pytest.approx(300 / 2000)


def test_an_order_inconsistent_judge_never_passes() -> None:
    # the same counts the paired test alone would pass, but 2/3 of verdicts flip
    s = _judged(pg.new_paired_gate(0.05, 0.025), 100, 100, 500, 1300, 20)
    assert evaluate_paired(s.paired, 0.05, 200).verdict is Verdict.PASS
    r = pg.evaluate_paired_gate(s, 0.05, 200, 0.5, 0.2)
    assert r.verdict is Verdict.INCONCLUSIVE and not r.health.healthy
    assert r.message.startswith("JudgeUnhealthy") and "order" in r.message


def test_a_failing_judge_never_passes_and_errors_are_not_losses() -> None:
    s = _judged(pg.new_paired_gate(0.05, 0.025), 100, 100, 1800, 0, 800)
    r = pg.evaluate_paired_gate(s, 0.05, 200, 0.5, 0.2)
    assert r.verdict is Verdict.INCONCLUSIVE and "no verdict" in r.message
    assert r.result.difference == 0.0  # 800 errors did not count against the canary


def test_a_judge_that_never_answers_is_unhealthy_not_missing_data() -> None:
    s = _judged(pg.new_paired_gate(0.05, 0.025), 0, 0, 0, 0, 60)
    r = pg.evaluate_paired_gate(s, 0.05, 200, 0.5, 0.2)
    assert r.verdict is Verdict.INCONCLUSIVE and r.message.startswith("JudgeUnhealthy")
    assert r.health.error_rate == 1.0 and r.health.inconsistency_rate is None
    # a failed Prometheus query stays NoData (the noData clock), whatever the judge
    r = pg.evaluate_paired_gate(s, 0.05, 200, 0.5, 0.2, provider_error="boom")
    assert r.verdict is Verdict.NO_DATA


def test_a_clear_loss_fails_even_through_an_unhealthy_judge() -> None:
    s = _judged(pg.new_paired_gate(0.05, 0.025), 400, 50, 300, 1200, 0)
    r = pg.evaluate_paired_gate(s, 0.05, 200, 0.5, 0.2)
    assert not r.health.healthy and r.verdict is Verdict.FAIL


def _simulate(knobs: JudgeKnobs, p_canary_bad: float, p_base_bad: float, seed: int, n: int) -> Any:
    """n shadowed requests judged by the fake judge in both orders (the router's combine)."""
    rng = random.Random(seed)
    tally = dict.fromkeys(VERDICTS, 0.0)
    good, bad = "fine answer", "banana filler"
    for _ in range(n):
        c = bad if rng.random() < p_canary_bad else good
        b = bad if rng.random() < p_base_bad else good
        first = parse_pairwise(pairwise_reply(c, b, lambda t: "banana" in t, knobs, rng))
        second = parse_pairwise(pairwise_reply(b, c, lambda t: "banana" in t, knobs, rng))
        tally[combine(first, second)] += 1
    s = pg.update_paired_gate(pg.new_paired_gate(0.05, 0.025), counts())
    return pg.update_paired_gate(s, {v: {"r1": x} for v, x in tally.items()})


def test_a_random_judge_is_unhealthy_and_never_passes() -> None:
    for seed in range(20):
        s = _simulate(JudgeKnobs(noise=1.0), 0.1, 0.1, seed, 2000)
        r = pg.evaluate_paired_gate(s, 0.05, 200, 0.5, 0.2)
        assert r.verdict is Verdict.INCONCLUSIVE and not r.health.healthy, seed


def test_a_position_biased_judge_stays_healthy_and_does_not_fail_an_equal_canary() -> None:
    # 25 % position bias: ~41 % order-inconsistent verdicts, shown within the 50 % limit
    verdicts = []
    for seed in range(20):
        s = _simulate(JudgeKnobs(position_bias=0.25), 0.1, 0.1, seed, 2000)
        r = pg.evaluate_paired_gate(s, 0.05, 200, 0.5, 0.2)
        assert r.health.healthy and r.health.established, (seed, r.health)
        verdicts.append(r.verdict)
    assert Verdict.FAIL not in verdicts and verdicts.count(Verdict.PASS) >= 18


def test_judge_health_is_a_confidence_decision_not_a_point_estimate() -> None:
    """Issue 13 (gate semantics): a judge just inside a limit (30 % position bias, ~47 %
    inconsistent against 50 %) is not confidently broken, but not shown healthy either:
    it holds a Pass (JudgeHealthUndecided) and never fails an equal canary; a point
    estimate just beyond the limit on few pairs is not called unhealthy."""
    for seed in range(10):
        s = _simulate(JudgeKnobs(position_bias=0.3), 0.1, 0.1, seed, 2000)
        r = pg.evaluate_paired_gate(s, 0.05, 200, 0.5, 0.2)
        assert r.health.healthy and not r.health.established, (seed, r.health)
        assert r.verdict is Verdict.INCONCLUSIVE, r.message
        assert r.message.startswith(JUDGE_HEALTH_UNDECIDED) or "not yet" in r.message
        lo, hi = r.health.inconsistency_bounds
        assert lo < 0.5 < hi
    # 60 of 100 inconsistent: 60 % > 50 % as a point estimate, not beyond doubt
    s = _judged(pg.new_paired_gate(0.05, 0.025), 5, 5, 30, 60, 0)
    h = pg.judge_health(s, 0.5, 0.2)
    assert h.inconsistency_rate == pytest.approx(0.6) and h.healthy and not h.established
    # the same rate on 2,000 pairs is
    s = _judged(pg.new_paired_gate(0.05, 0.025), 100, 100, 600, 1200, 0)
    h = pg.judge_health(s, 0.5, 0.2)
    assert not h.healthy and h.inconsistency_bounds[0] > 0.5
    # errors: 30 of 100 is undecided, 300 of 1,000 unhealthy, 0 of 200 established
    s = _judged(pg.new_paired_gate(0.05, 0.025), 0, 0, 70, 0, 30)
    h = pg.judge_health(s, 0.5, 0.2)
    assert h.healthy and not h.established
    s = _judged(pg.new_paired_gate(0.05, 0.025), 0, 0, 700, 0, 300)
    assert not pg.judge_health(s, 0.5, 0.2).healthy
    s = _judged(pg.new_paired_gate(0.05, 0.025), 0, 0, 200, 0, 0)
    assert pg.judge_health(s, 0.5, 0.2).established


def test_a_truthful_judge_catches_a_five_point_loss() -> None:
    s = _simulate(JudgeKnobs(), 0.15, 0.10, 1, 10000)
    assert pg.evaluate_paired_gate(s, 0.05, 200, 0.5, 0.2).verdict is Verdict.FAIL


def _obs(at: datetime, **c: float) -> Observations:
    return Observations(
        at=at,
        gates={"simple/ShadowDisagreement": GateReading(verdicts=counts(**c))},
    )


def test_gate_glue_steps_status_and_watch() -> None:
    gates = gate_specs(spec())
    state = fresh_gate_state("r1")
    state = update_gates(state, gates, _obs(T0), Arm.CONTROL)
    (first,) = evaluate_gates(state, gates, _obs(T0), 0.95, 200)
    assert first.verdict is Verdict.INCONCLUSIVE  # the baseline reading
    at = T0 + timedelta(minutes=5)
    obs = _obs(at, worse=20, better=25, tie=400, inconsistent=30, error=5)
    state = update_gates(state, gates, obs, Arm.CONTROL)
    (out,) = evaluate_gates(state, gates, obs, 0.95, 200)
    assert out.verdict is Verdict.PASS, out.message
    assert (out.canary_bad, out.control_bad, out.canary_samples) == (20, 25, 475)
    (tier,) = tier_statuses([out], ["simple"])
    judge = tier.signals[0].judge
    assert judge is not None and judge.to_k8s() == {
        "judged": 475,
        "worse": 20,
        "better": 25,
        "ties": 430,
        "inconsistent": 30,
        "errors": 5,
        "unanswered": 0,
        "orderInconsistencyRate": pytest.approx(30 / 475),
        "errorRate": pytest.approx(5 / 480),
        "healthy": True,
    }
    # a new step counts its own judged pairs before it may pass
    state = rebase_step(state)
    (out,) = evaluate_gates(state, gates, obs, 0.95, 200)
    assert out.verdict is Verdict.INCONCLUSIVE and "0 of 200 judged pairs" in out.message
    # promoted: a watch window of its own, its first reading counted from the last one
    later = at + timedelta(minutes=5)
    obs2 = _obs(later, worse=21, better=25, tie=401, inconsistent=30, error=5)
    state = update_gates(state, gates, obs2, Arm.HOLDBACK)
    entry = state["gates"]["simple/ShadowDisagreement"]
    assert entry["watch"]["window"] == 1
    watch = pg.PairedGateState.from_json(entry["watch"]["stats"])
    assert (watch.judged, watch.paired.fail_margin) == (2, 0.05)
    (out,) = evaluate_gates(state, gates, obs2, 0.95, 200)
    assert out.message.startswith("post-promotion watch, window 1")


def test_observe_reads_the_pairwise_counters_per_series() -> None:
    (gate,) = gate_specs(spec())
    q = promql.pairwise_query("shop")
    assert q == (
        "sum by (tier, instance, cluster, verdict) "
        '(tierguard_shadow_pairwise_total{policy="shop", arm=~"canary|mirror"})'
    )

    def row(tier: str, verdict: str, value: float, cluster: str) -> dict[str, Any]:
        labels = {"tier": tier, "instance": "r1", "cluster": cluster, "verdict": verdict}
        return {"metric": labels, "value": [0, str(value)]}

    class Reader(PrometheusReader):
        def __init__(self) -> None:  # answers from the table below, asks no server
            pass

        def query(self, promql: str) -> list[dict[str, Any]]:
            if promql == q:
                return [row("simple", "worse", 3, "0"), row("simple", "tie", 5, "1"),
                        row("complex", "worse", 9, "0")]  # fmt: skip
            return [{"metric": {"tier": "simple", "arm": "canary", "instance": "r1"},
                     "value": [0, "10"]}]  # fmt: skip

    obs = o.observe(Reader(), "shop", [gate], T0)
    reading = obs.gates[gate.key]
    assert reading.verdicts == {"worse": {"r1#0": 3.0}, "tie": {"r1#1": 5.0}}
    assert reading.requests_flowing and not reading.empty


def _clustered(rows: dict[str, tuple[float, float, float]]) -> dict[str, dict[str, float]]:
    """Per-cluster cumulative (worse, better, tie) as verdict readings of one router."""
    out: dict[str, dict[str, float]] = {v: {} for v in VERDICTS}
    for cluster, (w, b, t) in rows.items():
        out["worse"][f"r1#{cluster}"] = w
        out["better"][f"r1#{cluster}"] = b
        out["tie"][f"r1#{cluster}"] = t
    return out


def test_design_effect_is_one_for_independent_pairs_and_tempers_clustered_ones() -> None:
    rng = random.Random(5)
    iid: dict[str, tuple[float, float, float]] = {}
    for k in range(16):
        draws = [rng.random() for _ in range(300)]
        iid[str(k)] = (
            sum(x < 0.1 for x in draws),
            sum(0.1 <= x < 0.2 for x in draws),
            sum(x >= 0.2 for x in draws),
        )
    zero = _clustered({k: (0, 0, 0) for k in iid})
    s = pg.update_paired_gate(pg.new_paired_gate(0.05, 0.025), zero)
    s = pg.update_paired_gate(s, _clustered(iid))
    assert 1.0 <= s.design_effect < 2.0, s.design_effect
    # the same totals, but whole clusters of users always worse or always better
    lumpy = {str(k): (60.0, 0.0, 240.0) if k % 2 else (0.0, 60.0, 240.0) for k in range(16)}
    c = pg.update_paired_gate(
        pg.update_paired_gate(pg.new_paired_gate(0.05, 0.025), zero), _clustered(lumpy)
    )
    assert c.design_effect > 10
    assert c.paired.max_log_e_pass[-1] < s.paired.max_log_e_pass[-1]
    assert pg.PairedGateState.from_json(c.to_json()) == c


def test_pre_flight_unanswered_requests_are_losses_not_judge_errors() -> None:
    """The candidate failed to answer mirrored requests the baseline answered: each is a
    worse pair for the test (and the cluster sums), never a judge error."""
    s = pg.update_paired_gate(pg.new_paired_gate(0.05, 0.025), counts())
    rows = {v: {"r1#3": 0.0} for v in VERDICTS}
    rows["unanswered"] = {"r1#3": 40.0}
    rows["tie"] = {"r1#3": 60.0}
    s = pg.update_paired_gate(s, rows)
    assert (s.paired.worse, s.paired.ties, s.counts["unanswered"]) == (40, 60, 40)
    assert s.clusters["3"] == [40.0, 0.0, 100.0]
    h = pg.judge_health(s, 0.5, 0.2)
    assert (h.errors, h.unanswered, h.error_rate) == (0, 40, 0.0)


def test_a_single_slip_among_ties_does_not_read_as_correlation() -> None:
    """One judge slip among ~470 ties, in a user with half the average pairs, used to read
    as a design effect of 2 (halving a healthy canary's evidence); below
    MIN_DESIGN_EVENTS non-tie pairs the pairs count as independent, and ten losses
    packed into one user still show as clustering."""
    rows = {f"u{i}": [0.0, 0.0, 30.0] for i in range(15)}
    rows["u15"] = [1.0, 0.0, 15.0]
    assert pg.paired_design_effect(rows) == 1.0
    packed = {**rows, "u15": [float(MIN_DESIGN_EVENTS), 0.0, 15.0]}
    assert pg.paired_design_effect(packed) > 5.0
