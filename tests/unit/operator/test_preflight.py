"""Pre-flight (issue 16): the stage at 0 % exposure before the first weighted step,
judged by the pairwise gate on mirrored requests (pure state machine; the real router
and Prometheus paths are in tests/integration)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from pydantic import ValidationError

from tierguard.api.enums import ConditionType, Phase, PreFlightState, Reason
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import preflight as pf
from tierguard.operator import rollout as r
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gatetypes import GateReading, Observations
from tierguard.operator.render_routerconfig import router_config
from tierguard.operator.rendermeta import PolicyRef

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VERDICTS = ("worse", "better", "tie", "inconsistent", "error")
KEY = "simple/ShadowDisagreement"
REF = PolicyRef("shop", "default", "uid-1")


def spec(mode: str = "Pairwise", **preflight: Any) -> RoutingPolicySpec:
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
            "rollout": {
                "interval": "1m",
                "preflight": {
                    "minPairs": 100,
                    "maxDuration": "2h",
                    "sampleRate": 0.2,
                    **preflight,
                },
            },
            "analysis": {
                "slos": [
                    {"tier": "simple", "signal": "ShadowDisagreement", "allowedDrop": 0.05},
                    {"tier": "simple", "signal": "ErrorRate", "allowedDrop": 0.02},
                ]
            },
            "router": {"shadow": {"judge": {"type": "LLM", "model": "judge", "mode": mode}}},
        }
    )


def obs(at: datetime, spend: float | None = None, **c: float) -> Observations:
    verdicts = {v: {"r1#0": c.get(v, 0.0)} for v in VERDICTS}
    return Observations(
        at=at,
        gates={KEY: GateReading(verdicts=verdicts, requests_flowing=True)},
        preflight_spend=None if spend is None else {"simple": {"r1": spend}},
    )


def run(
    sp: RoutingPolicySpec, per_minute: dict[str, float], minutes: int, spend_per_minute: float = 0.0
) -> tuple[RoutingPolicyStatus, list[r.Decision]]:
    """Reconcile once a minute with cumulative verdict counts growing by ``per_minute``
    (only while mirroring is on: the routers mirror only while pre-flight runs)."""
    d = r.reconcile(sp, None, T0)
    st = d.status
    decisions = [d]
    total = dict.fromkeys(VERDICTS, 0.0)
    spent = 0.0
    for i in range(1, minutes + 1):
        if pf.mirror_rates(sp, st, gate_specs(sp)):
            for k, v in per_minute.items():
                total[k] += v
            spent += spend_per_minute
        now = T0 + timedelta(minutes=i)
        d = r.reconcile(sp, st, now, observations=obs(now, spent, **total))
        st = d.status
        decisions.append(d)
        if st.phase in (Phase.ROLLED_BACK, Phase.PAUSED) or st.canary_weight > 0:
            break
    return st, decisions


def events(decisions: list[r.Decision]) -> list[r.EmitEvent]:
    return [e for d in decisions for e in d.events]


def test_a_new_revision_starts_in_pre_flight_at_zero_exposure_with_mirroring_on() -> None:
    sp = spec()
    d = r.reconcile(sp, None, T0)
    st = d.status
    assert (st.phase, st.canary_weight, st.step_display) == (Phase.PROGRESSING, 0.0, "PreFlight/5")
    assert st.preflight is not None and st.preflight.state == PreFlightState.RUNNING
    assert "0 users exposed" in st.message and "simple 20%" in st.message
    started = [e for e in d.events if e.reason == Reason.PREFLIGHT_STARTED.value]
    assert len(started) == 1 and "maxSpendUSD" in started[0].message
    # one Event per message: the transition's own Event already carries the status message
    assert len({e.message for e in d.events}) == len(d.events)
    # mirroring starts at the first look with the routers on target, which issues the
    # routers' budget epoch (a router started later does not use it)
    cfg = router_config(REF, sp, st)
    assert (cfg.split[0].weight, cfg.split[0].mirror_rate, cfg.mirror_budget) == (0.0, 0.0, None)
    st = r.reconcile(sp, st, T0, observations=obs(T0, 0.0)).status
    cfg = router_config(REF, sp, st)
    (split,) = cfg.split
    assert (split.weight, split.mirror_rate) == (0.0, 0.2)
    assert cfg.mirror_budget is not None and cfg.mirror_budget.epoch.endswith("/1")
    progressing = next(c for c in st.conditions if c.type == ConditionType.PROGRESSING)
    assert (progressing.status, progressing.reason) == ("True", "PreFlight")


def test_a_healthy_candidate_passes_pre_flight_then_serves_the_first_step() -> None:
    sp = spec()
    st, _ = run(sp, {"worse": 1, "better": 1, "tie": 20, "inconsistent": 1}, 120)
    assert st.phase == Phase.PROGRESSING and st.canary_weight == 5.0, st.message
    assert st.preflight is not None and st.preflight.state == PreFlightState.PASSED
    assert st.history[-1].reason == Reason.PREFLIGHT_PASSED.value
    assert "pre-flight passed with 0 users exposed" in st.history[-1].message
    (tier,) = st.preflight.tiers
    assert tier.judge.judged >= 100 and tier.judge.better == tier.judge.worse
    # every look before the pass was at 0 %: nobody was served by the candidate
    assert all(h.weight == 0.0 for h in st.history[:-1])
    # the mirror stops and the same e-process continues into step 1, counted afresh
    assert router_config(REF, sp, st).split[0].mirror_rate == 0.0
    entry = st.gate_state["gates"][KEY]
    assert entry["stepBase"][1] == tier.judge.judged


def test_a_worse_candidate_is_rolled_back_at_pre_flight_with_zero_users_exposed() -> None:
    st, decisions = run(spec(), {"worse": 8, "better": 1, "tie": 10}, 120)
    assert st.phase == Phase.ROLLED_BACK and st.canary_weight == 0.0
    assert st.history[-1].reason == Reason.PREFLIGHT_FAILED.value
    assert "0 users exposed" in st.message and "tier simple" in st.message
    assert st.preflight is not None and st.preflight.state == PreFlightState.FAILED
    warning = [e for e in events(decisions) if e.reason == Reason.PREFLIGHT_FAILED.value]
    assert warning and warning[0].type == "Warning" and "0 users exposed" in warning[0].message
    assert all(h.weight == 0.0 for h in st.history)
    assert r.RolledBack(Reason.PREFLIGHT_FAILED.value) in decisions[-1].actions


def test_a_stalled_judge_holds_then_pauses_at_max_duration_and_never_promotes() -> None:
    sp = spec()
    st, _ = run(sp, {"error": 5}, 200)
    assert st.phase == Phase.PAUSED and st.canary_weight == 0.0
    assert st.history[-1].reason == Reason.PREFLIGHT_CAP_REACHED.value
    assert "maxDuration 2h" in st.message and "never promoted" in st.message
    assert st.preflight is not None and st.preflight.state == PreFlightState.HELD
    assert st.preflight.tiers[0].judge.healthy is False
    assert pf.mirror_rates(sp, st, gate_specs(sp)) == {}  # a pause stops mirrored spend
    degraded = next(c for c in st.conditions if c.type == ConditionType.DEGRADED)
    assert degraded.status == "True"
    # more looks while paused never promote; resume runs pre-flight again
    later = T0 + timedelta(hours=3)
    d = r.reconcile(sp, st, later, observations=obs(later, 0.0, error=2000))
    assert d.status.phase == Phase.PAUSED and d.status.canary_weight == 0.0
    d = r.reconcile(sp, d.status, later, request=r.ManualRequest("resume", "n1"))
    assert d.status.phase == Phase.PROGRESSING and d.status.preflight is not None
    assert d.status.preflight.state == PreFlightState.RUNNING and d.status.canary_weight == 0.0


def test_the_spend_cap_holds_and_spend_is_in_status() -> None:
    st, _ = run(spec(maxSpendUSD=1.0), {"tie": 1}, 60, spend_per_minute=0.25)
    assert st.phase == Phase.PAUSED, st.message
    # held before the next interval would cross the cap: $0.75 spent, $0.25 an interval
    assert st.preflight is not None and st.preflight.spend_usd == pytest.approx(0.75)
    assert st.preflight.to_k8s()["maxSpendUSD"] == 1.0
    assert "maxSpendUSD $1.00" in st.message and "0 users exposed" in st.message
    assert "the next interval would cross it" in st.message


def test_spend_counts_from_the_first_reading_per_series_with_resets() -> None:
    state, total = pf.update_spend({}, {"simple": {"r1": 5.0}})
    assert total == 0.0  # the first reading is the baseline
    state, total = pf.update_spend(state, {"simple": {"r1": 5.5, "r2": 0.25}})
    assert total == pytest.approx(0.75)
    state, total = pf.update_spend(state, None)
    assert total == pytest.approx(0.75)
    state, total = pf.update_spend(state, {"simple": {"r1": 0.1, "r2": 0.25}})  # r1 restarted
    assert total == pytest.approx(0.85)


def test_manual_promote_ends_pre_flight_at_the_first_step() -> None:
    sp = spec()
    st = r.reconcile(sp, None, T0).status
    d = r.reconcile(sp, st, T0, request=r.ManualRequest("promote", "p1"))
    assert d.status.canary_weight == 5.0 and d.status.step == 0
    assert d.status.preflight is not None and d.status.preflight.state == PreFlightState.SKIPPED


def test_manual_promotion_mode_waits_after_a_passed_pre_flight() -> None:
    sp = spec()
    sp.rollout.promotion = r.PromotionMode.MANUAL
    st, _ = run(sp, {"worse": 1, "better": 1, "tie": 20}, 120)
    assert st.phase == Phase.PAUSED and st.canary_weight == 0.0
    assert st.history[-1].reason == Reason.AWAITING_PROMOTION.value
    d = r.reconcile(sp, st, T0 + timedelta(hours=3), request=r.ManualRequest("promote", "x"))
    assert d.status.canary_weight == 5.0
    assert d.status.preflight is not None and d.status.preflight.state == PreFlightState.PASSED


def test_without_a_pairwise_judge_pre_flight_is_skipped_and_status_says_why() -> None:
    st = r.reconcile(spec(mode="Agreement"), None, T0).status
    assert st.canary_weight == 5.0
    assert st.preflight is not None and st.preflight.state == PreFlightState.SKIPPED
    assert "needs a pairwise LLM judge" in st.preflight.message
    off = r.reconcile(spec(enabled=False), None, T0).status
    assert off.canary_weight == 5.0 and off.preflight is not None
    assert off.preflight.message == "pre-flight skipped: rollout.preflight.enabled is false"


def test_enabled_without_a_pairwise_judge_and_unknown_tiers_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"pre-flight needs router\.shadow\.judge\.mode"):
        spec(mode="Agreement", enabled=True)
    with pytest.raises(ValidationError, match=r"preflight.tiers\[0\].tier: 'nope'"):
        spec(tiers=[{"tier": "nope", "sampleRate": 0.5}])
    with pytest.raises(ValidationError, match="more than one sample rate"):
        spec(tiers=[{"tier": "simple", "sampleRate": 0.5}, {"tier": "simple", "sampleRate": 1}])
    st = r.reconcile(spec(tiers=[{"tier": "simple", "sampleRate": 0.75}]), None, T0).status
    assert st.preflight is not None and st.preflight.tiers[0].sample_rate == 0.75


def test_editing_the_steps_during_pre_flight_keeps_zero_exposure() -> None:
    sp = spec()
    st = r.reconcile(sp, None, T0).status
    sp.rollout.steps = [10.0, 100.0]
    d = r.reconcile(sp, st, T0 + timedelta(minutes=1))
    assert d.status.canary_weight == 0.0 and d.status.step_display == "PreFlight/2"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hs.lists(
        hs.tuples(*(hs.integers(0, 6) for _ in VERDICTS)),
        min_size=1,
        max_size=40,
    )
)
def test_pre_flight_never_exposes_users_unless_its_gate_passed(
    increments: list[tuple[int, ...]],
) -> None:
    """Whatever the judge reports: the candidate serves nobody until pre-flight passed
    with at least minPairs judged pairs; a rollback then says 0 users exposed."""
    sp = spec()
    st = r.reconcile(sp, None, T0).status
    total = dict.fromkeys(VERDICTS, 0.0)
    for i, inc in enumerate(increments, start=1):
        for k, v in zip(VERDICTS, inc, strict=True):
            total[k] += v
        now = T0 + timedelta(minutes=i)
        st = r.reconcile(sp, st, now, observations=obs(now, 0.0, **total)).status
        assert st.phase != Phase.PROMOTED
        if st.canary_weight > 0:
            assert st.preflight is not None and st.preflight.state == PreFlightState.PASSED
            assert st.preflight.tiers[0].judge.judged >= 100
            break
        if st.phase == Phase.ROLLED_BACK:
            assert "0 users exposed" in st.message
            break


def test_the_budget_is_shared_by_every_router_process_and_never_reissued_twice() -> None:
    """Each router process (replicas + the rolling update's surge) gets an equal share;
    raising the cap issues a new epoch with what no earlier epoch may still commit."""
    sp = spec(maxSpendUSD=10.0)
    st = r.reconcile(sp, None, T0).status
    st = r.reconcile(sp, st, T0, observations=obs(T0, 0.0)).status
    first = pf.budget_of(st.gate_state)
    assert first is not None and pf.router_processes(sp) == 3  # 2 replicas + 1 surge
    assert first.usd_per_router == pytest.approx(10.0 / 3) and 3 * first.usd_per_router <= 10.0
    now = T0 + timedelta(minutes=1)
    st = r.reconcile(sp, st, now, observations=obs(now, 4.0)).status
    assert pf.budget_of(st.gate_state) == first  # one epoch per cap
    raised = spec(maxSpendUSD=16.0)
    now = T0 + timedelta(minutes=2)
    st = r.reconcile(raised, st, now, observations=obs(now, 5.0)).status
    second = pf.budget_of(st.gate_state)
    assert second is not None and second.epoch != first.epoch and second.epoch.endswith("/2")
    # $1 spent since the baseline, but the first epoch may have committed its $10: the
    # new one shares the other $6
    assert second.usd_per_router == pytest.approx(6.0 / 3)
    assert second.committed <= 16.0
    assert router_config(REF, raised, st).mirror_budget is not None


def test_every_worker_process_of_every_pod_is_counted_in_the_shares() -> None:
    """`router.workers: 4` runs 4 router processes per pod, each with its own ledger:
    the shares are for (replicas + surge) x workers processes, so all of them together
    stay within the cap."""
    sp = spec(maxSpendUSD=12.0)
    sp = sp.model_copy(update={"router": sp.router.model_copy(update={"workers": 4})})
    assert pf.router_processes(sp) == 12  # (2 replicas + 1 surge) x 4 workers
    st = r.reconcile(sp, None, T0).status
    st = r.reconcile(sp, st, T0, observations=obs(T0, 0.0)).status
    budget = pf.budget_of(st.gate_state)
    assert budget is not None and 12 * budget.usd_per_router <= 12.0
    assert budget.usd_per_router == pytest.approx(1.0)


def test_an_unhealthy_judge_never_rolls_back_at_pre_flight() -> None:
    """Losses through a judge that flips with the order in 90 % of pairs: the paired test
    alone would fail, but once the judge is confidently beyond its limit (here long before
    the paired test's evidence is enough) it decides nothing at pre-flight; it holds until
    maxDuration pauses it for a person. (A Fail reached while the judge's health is still
    undecided stands: order flips count as ties, so they cannot make a false Fail likelier
    than alpha.)"""
    st, decisions = run(spec(), {"worse": 2, "better": 0, "tie": 0, "inconsistent": 18}, 200)
    assert st.phase == Phase.PAUSED, st.message
    assert st.history[-1].reason == Reason.PREFLIGHT_CAP_REACHED.value
    assert not any(e.reason == Reason.PREFLIGHT_FAILED.value for e in events(decisions))
    assert st.preflight is not None and st.preflight.tiers[0].judge.healthy is False
    assert "JudgeUnhealthy" in st.preflight.tiers[0].message


def test_without_a_sample_rate_each_tier_is_sized_from_its_traffic() -> None:
    """sampleRate unset: a tier's rate yields about targetPairsPerHour from the request
    rate the routers report (all of a rare tier, a share of a large one); no mirroring
    before the first reading; a small change of traffic does not rewrite the rate."""
    sp = spec(sampleRate=None)
    gates = gate_specs(sp)
    d = r.reconcile(sp, None, T0)
    assert "simple sized from traffic (~1000 pairs/h)" in d.status.message
    st = r.reconcile(sp, d.status, T0, observations=obs(T0, 0.0)).status
    assert pf.mirror_rates(sp, st, gates) == {}  # no traffic reading yet

    def look(at: datetime, per_minute: float) -> RoutingPolicyStatus:
        o = dataclasses.replace(obs(at, 0.0), preflight_traffic={"simple": per_minute})
        return r.reconcile(sp, st, at, observations=o).status

    st = look(T0 + timedelta(minutes=1), 60.0)  # 3 600 requests an hour: 1000 of them
    assert pf.mirror_rates(sp, st, gates) == {"simple": 0.2778}
    assert st.preflight is not None and st.preflight.tiers[0].sample_rate == 0.2778
    assert router_config(REF, sp, st).split[0].mirror_rate == 0.2778
    st = look(T0 + timedelta(minutes=2), 66.0)  # within the tolerance: unchanged
    assert pf.mirror_rates(sp, st, gates) == {"simple": 0.2778}
    st = look(T0 + timedelta(minutes=3), 6.0)  # a rare tier: all of it
    assert pf.mirror_rates(sp, st, gates) == {"simple": 1.0}
    assert pf.rate_for(0.0, 450) == 1.0 and pf.rate_for(7.5, 450) == 1.0
    # an explicit per-tier rate wins
    fixed = spec(sampleRate=None, tiers=[{"tier": "simple", "sampleRate": 0.5}])
    assert pf.plan(fixed, gate_specs(fixed), {"simple": 0.1}).rates == {"simple": 0.5}
