"""The rollout state machine, driven by simulated traffic with a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from rolloutsim import T0, Traffic, drive, make_spec

from tierguard.api.enums import Arm, Phase, Reason, Verdict
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import rollout as r
from tierguard.operator.gates import evaluate_gates
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gateupdates import fresh_gate_state, update_gates

SAME = {"simple": {"control": 0.1, "canary": 0.1}, "tricky": {"control": 0.1, "canary": 0.1}}


def reasons(decisions: list[r.Decision]) -> list[str]:
    return [e.reason for d in decisions for e in d.events]


def test_good_candidate_walks_every_step_then_promotes() -> None:
    spec = make_spec()
    st, ds = drive(spec, Traffic(SAME, seed=1), 240)
    assert st.phase == Phase.PROMOTED
    assert st.canary_weight == 95.0
    assert r.serving_split(spec, st) == (95.0, Arm.HOLDBACK)
    assert reasons(ds).count(Reason.STEP_ADVANCED.value) == 2
    assert Reason.PROMOTED.value in reasons(ds)
    weights = [h.weight for h in st.history]
    assert weights == [5.0, 25.0, 50.0, 95.0]


def test_degraded_tier_is_rolled_back_at_the_first_step_and_named() -> None:
    spec = make_spec()
    bad = {**SAME, "tricky": {"control": 0.10, "canary": 0.20}}
    st, ds = drive(spec, Traffic(bad, seed=2), 120)
    assert st.phase == Phase.ROLLED_BACK
    assert st.canary_weight == 0.0
    assert st.rolled_back_revision == st.revision
    assert r.serving_split(spec, st) == (0.0, Arm.CONTROL)
    assert st.history[-1].step == 0, "caught at the 5 % stage"
    warn = [e for d in ds for e in d.events if e.reason == Reason.GATE_FAILED.value]
    assert len(warn) == 1 and "tier tricky" in warn[0].message and "ThumbsDown" in warn[0].message
    tricky = next(t for t in st.tiers if t.tier == "tricky")
    assert tricky.verdict == Verdict.FAIL
    assert any(isinstance(a, r.RolledBack) for d in ds for a in d.actions)
    assert any(isinstance(a, r.SetWeight) and a.weight == 0 for d in ds for a in d.actions)


def test_five_point_drop_in_one_tier_is_caught() -> None:
    """The Pareto trap: 10 % → 15 % thumbs-down in one tier, the other tier fine."""
    spec = make_spec()
    caught = 0
    for seed in range(6):
        drop = {**SAME, "tricky": {"control": 0.10, "canary": 0.15}}
        st, _ = drive(spec, Traffic(drop, per_minute=600, seed=seed), 300)
        if st.phase == Phase.ROLLED_BACK and "tier tricky" in st.message:
            caught += 1
        assert st.phase != Phase.PROMOTED
    assert caught >= 5


def test_rolled_back_revision_is_not_retried_until_retry_or_new_revision() -> None:
    spec = make_spec()
    bad = {**SAME, "tricky": {"control": 0.10, "canary": 0.30}}
    st, _ = drive(spec, Traffic(bad, seed=3), 60)
    assert st.phase == Phase.ROLLED_BACK
    later = T0 + timedelta(hours=2)
    d = r.reconcile(spec, st, later, generation=2)
    assert d.status.phase == Phase.ROLLED_BACK and d.status.canary_weight == 0
    d = r.reconcile(spec, st, later, generation=2, request=r.ManualRequest("retry", "n1"))
    assert d.status.phase == Phase.PROGRESSING and d.status.step == 0
    assert d.status.canary_weight == 5.0 and d.status.gate_state["gates"] == {}
    assert d.status.last_handled_action is not None
    assert d.status.last_handled_action.nonce == "n1"
    # A new candidate is a new revision: it starts without a retry.
    spec2 = make_spec()
    spec2.models[1].upstream_model = "s-v2"
    d2 = r.reconcile(spec2, st, later, generation=3)
    assert d2.status.phase == Phase.PROGRESSING and d2.status.revision != st.revision


def test_same_nonce_acts_once() -> None:
    spec = make_spec()
    st = r.reconcile(spec, None, T0).status
    req = r.ManualRequest("promote", "abc")
    d1 = r.reconcile(spec, st, T0 + timedelta(seconds=5), request=req)
    assert d1.status.step == 1
    d2 = r.reconcile(spec, d1.status, T0 + timedelta(seconds=10), request=req)
    assert d2.status.step == 1 and not d2.events
    d3 = r.reconcile(
        spec, d2.status, T0 + timedelta(seconds=15), request=r.ManualRequest("abort", "abc")
    )
    assert d3.status.phase == Phase.ROLLED_BACK
    assert d3.events[0].reason == Reason.MANUAL_ABORT.value


def test_invalid_and_out_of_phase_actions_are_reported_not_acted_on() -> None:
    spec = make_spec()
    st = r.reconcile(spec, None, T0).status
    d = r.reconcile(spec, st, T0, request=r.ManualRequest("explode", "1"))
    assert d.status.phase == Phase.PROGRESSING
    assert d.events[0].reason == Reason.INVALID_ACTION.value
    d = r.reconcile(spec, d.status, T0, request=r.ManualRequest("retry", "2"))
    assert d.status.phase == Phase.PROGRESSING and d.status.step == 0
    assert d.status.last_handled_action is not None
    assert "ignored" in d.status.last_handled_action.result


def test_pause_and_resume() -> None:
    spec = make_spec()
    st = r.reconcile(spec, None, T0).status
    d = r.reconcile(spec, st, T0, request=r.ManualRequest("pause", "p"))
    assert d.status.phase == Phase.PAUSED and d.status.canary_weight == 5.0
    d = r.reconcile(
        spec, d.status, T0 + timedelta(minutes=1), request=r.ManualRequest("resume", "q")
    )
    assert d.status.phase == Phase.PROGRESSING and d.status.step == 0


def test_prometheus_down_holds_then_pauses() -> None:
    spec = make_spec(noData={"after": "10m", "action": "Pause"})
    st, ds = drive(spec, Traffic(SAME, seed=4), 40, dead_prometheus=range(3, 100))
    assert st.phase == Phase.PAUSED
    assert st.step == 0, "never advanced on missing data"
    assert st.history[-1].reason == Reason.PROMETHEUS_UNREACHABLE.value
    assert "paused" in st.message, "later looks keep the pause's reason in the message"
    assert Reason.PROMETHEUS_UNREACHABLE.value in reasons(ds)
    degraded = next(c for c in st.conditions if c.type == "Degraded")
    assert degraded.status == "True"


def test_prometheus_down_then_back_resumes_the_stage() -> None:
    spec = make_spec(noData={"after": "30m", "action": "Rollback"})
    st, ds = drive(spec, Traffic(SAME, seed=5), 240, dead_prometheus=range(3, 13))
    assert Reason.DATA_RESUMED.value in reasons(ds)
    assert st.phase == Phase.PROMOTED


def test_no_data_with_rollback_policy_rolls_back() -> None:
    spec = make_spec(noData={"after": "5m", "action": "Rollback"})
    st, _ = drive(spec, Traffic(SAME, seed=6), 30, dead_prometheus=range(2, 100))
    assert st.phase == Phase.ROLLED_BACK and st.canary_weight == 0


def test_low_traffic_pauses_at_max_step_duration() -> None:
    spec = make_spec(maxStepDuration="30m")
    st, _ = drive(spec, Traffic(SAME, per_minute=20, seed=7), 60)
    assert st.phase == Phase.PAUSED
    assert st.history[-1].reason == Reason.MAX_STEP_DURATION_EXCEEDED.value
    assert st.step == 0


def test_manual_promotion_mode_waits_for_a_person() -> None:
    spec = make_spec(promotion="Manual")
    st, _ = drive(spec, Traffic(SAME, seed=8), 60)
    assert st.phase == Phase.PAUSED and st.step == 0
    assert st.history[-1].reason == Reason.AWAITING_PROMOTION.value
    d = r.reconcile(spec, st, T0 + timedelta(hours=1), request=r.ManualRequest("promote", "x"))
    assert d.status.phase == Phase.PROGRESSING and d.status.step == 1


def test_removing_the_candidate_returns_to_pending() -> None:
    spec = make_spec()
    st = r.reconcile(spec, None, T0).status
    for route in spec.routes:
        route.candidate = None
    d = r.reconcile(spec, st, T0)
    assert d.status.phase == Phase.PENDING and d.status.canary_weight == 0
    assert d.events[0].reason == Reason.NO_CANDIDATE.value


def test_history_is_bounded() -> None:
    spec = make_spec()
    st = r.reconcile(spec, None, T0).status
    for i in range(60):
        st = r.reconcile(
            spec, st, T0, request=r.ManualRequest("pause" if i % 2 == 0 else "resume", str(i))
        ).status
    assert len(st.history) == 20


# ------------------------------------------------------------------ properties


rates = hs.floats(min_value=0.01, max_value=0.4)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    control=rates,
    canary=rates,
    per_minute=hs.integers(min_value=0, max_value=800),
    seed=hs.integers(min_value=0, max_value=10_000),
)
def test_properties_of_any_run(control: float, canary: float, per_minute: int, seed: int) -> None:
    """Whatever the traffic: steps only move forward, no step advances on fewer samples
    than the minimum or before the bake time, nothing advances without data."""
    spec = make_spec(maxStepDuration="40m")
    traffic = Traffic(
        {
            "simple": {"control": control, "canary": canary},
            "tricky": {"control": control, "canary": canary},
        },
        per_minute=per_minute,
        seed=seed,
    )
    st, ds = drive(spec, traffic, 90)
    prev: RoutingPolicyStatus | None = None
    for d in ds:
        cur = d.status
        if prev is not None and prev.revision == cur.revision:
            assert cur.step >= prev.step, "steps only move forward"
            if cur.step > prev.step:
                assert prev.earliest_advance_at is not None
                assert cur.step_started_at is not None
                assert cur.step_started_at >= prev.earliest_advance_at, "bake time honoured"
                for key, entry in cur.gate_state["gates"].items():
                    before = prev.gate_state["gates"][key]["stepBase"]
                    after = entry["stepBase"]
                    assert after[0] - before[0] >= spec.rollout.min_samples_per_arm
                    assert after[1] - before[1] >= spec.rollout.min_samples_per_arm
        if cur.phase == Phase.PROMOTED:
            assert all(t.verdict != Verdict.NO_DATA for t in cur.tiers)
        prev = cur
    if per_minute == 0:
        assert st.step == 0 and st.phase != Phase.PROMOTED


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=hs.integers(min_value=0, max_value=10_000), dead_from=hs.integers(0, 50))
def test_never_advances_without_data(seed: int, dead_from: int) -> None:
    spec = make_spec(noData={"after": "1h", "action": "Pause"})
    traffic = Traffic(SAME, seed=seed)
    _, ds = drive(spec, traffic, dead_from)
    st = ds[-1].status if ds else None
    start_step = st.step if st else 0
    start_phase = st.phase if st else None
    _, more = drive(
        spec,
        traffic,
        40,
        status=st,
        start=T0 + timedelta(minutes=dead_from),
        dead_prometheus=range(0, 1000),
    )
    for d in more:
        assert d.status.step == start_step
        if start_phase != Phase.PROMOTED:
            assert d.status.phase != Phase.PROMOTED


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=hs.integers(min_value=0, max_value=10_000),
    canary=rates,
    cut=hs.integers(min_value=1, max_value=150),
)
def test_resuming_from_a_status_snapshot_decides_the_same(
    seed: int, canary: float, cut: int
) -> None:
    """Kill the operator at any minute, reload status from the API server's JSON: every
    later decision is identical to a run that never stopped."""
    spec = make_spec()
    rates_ = {
        "simple": {"control": 0.1, "canary": 0.1},
        "tricky": {"control": 0.1, "canary": canary},
    }
    straight, ds1 = drive(spec, Traffic(rates_, seed=seed), 160)
    t = Traffic(rates_, seed=seed)
    mid, _ = drive(spec, t, cut, roundtrip=True)
    snapshot = RoutingPolicyStatus.model_validate(mid.to_k8s())
    resumed, ds2 = drive(
        spec, t, 160 - cut, status=snapshot, start=T0 + timedelta(minutes=cut), roundtrip=True
    )
    assert resumed.to_k8s() == straight.to_k8s()
    assert [e for d in ds1[cut:] for e in d.events] == [e for d in ds2 for e in d.events]


def test_identical_arms_rarely_roll_back() -> None:
    """A/A: the false-rollback rate over a whole rollout stays at most alpha (0.05), with
    gates looked at every minute. 100 runs (the gates branch's detection study in bench/
    measures the rate precisely); the bound allows for simulation noise."""
    spec = make_spec(steps=[5, 10, 25, 50, 100], bakeTime="1m", minSamplesPerArm=10_000)
    gates = gate_specs(spec)
    runs = 100
    rollbacks = 0
    for seed in range(runs):
        traffic = Traffic(SAME, per_minute=600, seed=seed)
        state = fresh_gate_state("x")
        for minute in range(40):
            weight = [5, 10, 25, 50][min(minute // 10, 3)]
            traffic.tick(weight, Arm.CONTROL)
            obs = traffic.observe(spec, T0 + timedelta(minutes=minute))
            state = update_gates(state, gates, obs, Arm.CONTROL)
            outcomes = evaluate_gates(state, gates, obs, 0.95, 10_000)
            if any(o.verdict == Verdict.FAIL for o in outcomes):
                rollbacks += 1
                break
    # 0.05 * runs expected at worst; 3 sigma of binomial noise above that.
    assert rollbacks <= runs * 0.05 + 3 * (runs * 0.05 * 0.95) ** 0.5


@pytest.mark.parametrize("phase", [Phase.PROGRESSING, Phase.PROMOTED])
def test_breach_rolls_back_in_every_serving_phase(phase: Phase) -> None:
    spec = make_spec(bakeTime="1m", minSamplesPerArm=50)
    ok, ds = drive(spec, Traffic(SAME, per_minute=2000, seed=9), 200)
    if phase == Phase.PROMOTED:
        assert ok.phase == Phase.PROMOTED
        start = ok
    else:
        start = ds[2].status
        assert start.phase == Phase.PROGRESSING
    bad = Traffic(
        {**SAME, "simple": {"control": 0.1, "holdback": 0.1, "canary": 0.4}},
        per_minute=2000,
        seed=10,
    )
    st, _ = drive(spec, bad, 30, status=start, start=T0 + timedelta(days=1))
    assert st.phase == Phase.ROLLED_BACK and "tier simple" in st.message


def test_single_full_step_needs_evidence_against_the_holdback() -> None:
    """steps [100]: the first step already serves 95 % against the 5 % holdback, and
    Promoted needs the gates to pass there first."""
    spec = make_spec(steps=[100])
    st = r.reconcile(spec, None, T0).status
    assert st.phase == Phase.PROGRESSING and st.canary_weight == 95.0
    assert r.serving_split(spec, st) == (95.0, Arm.HOLDBACK)
    traffic = Traffic(
        {t: {"control": 0.1, "holdback": 0.1, "canary": 0.1} for t in SAME},
        per_minute=4000,
        seed=11,
    )
    st, _ = drive(spec, traffic, 60, status=st)
    assert st.phase == Phase.PROMOTED and st.canary_weight == 95.0


def test_no_holdback_promotes_to_100_and_stops_gating() -> None:
    spec = make_spec(holdbackPercent=0)
    st, _ = drive(spec, Traffic(SAME, seed=12), 240)
    assert st.phase == Phase.PROMOTED and st.canary_weight == 100.0
    assert not r.evaluation_due(spec, st, T0 + timedelta(days=1))
