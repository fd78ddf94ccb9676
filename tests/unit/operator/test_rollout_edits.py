"""Spec edits and re-applied annotations mid-rollout: rollout.steps changed under a running
rollout, old manual-action annotations that GitOps re-applies, a spec the operator cannot
use and its recovery."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from rolloutsim import T0, make_spec

from tierguard.api.enums import ConditionType, Phase, Reason
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import MAX_HANDLED_ACTIONS, RoutingPolicyStatus
from tierguard.operator import rollout as r
from tierguard.operator import specerror
from tierguard.operator import steps as stp
from tierguard.operator.conditions import get_condition

# ------------------------------------------------------------------ rollout.steps edits


def promote(
    spec: RoutingPolicySpec, st: RoutingPolicyStatus, n: int, at: datetime
) -> RoutingPolicyStatus:
    for i in range(n):
        st = r.reconcile(spec, st, at, request=r.ManualRequest("promote", f"p{i}")).status
    return st


def test_shortened_steps_never_leave_an_index_past_the_end() -> None:
    """The reported case: at step 3 of 5 (25 %), steps become [50, 100]."""
    spec = make_spec(steps=[5, 10, 25, 50, 100])
    st = r.reconcile(spec, None, T0).status
    st = promote(spec, st, 2, T0)
    assert (st.step, st.canary_weight, st.step_display) == (2, 25.0, "3/5")
    edited = make_spec(steps=[50, 100])
    d = r.reconcile(edited, st, T0 + timedelta(minutes=1))
    s = d.status
    assert s.phase == Phase.PROGRESSING
    assert (s.step, s.canary_weight, s.step_display) == (0, 50.0, "1/2")
    assert s.history[-1].reason == Reason.STEPS_CHANGED.value
    assert any(e.reason == Reason.STEPS_CHANGED.value for e in d.events)
    assert r.serving_split(edited, s) == (50.0, r.Arm.CONTROL)
    # The next promote goes to 100 % (minus holdback), not "Promoted at 25 %".
    p = r.reconcile(edited, s, T0 + timedelta(minutes=2), request=r.ManualRequest("promote", "x"))
    assert p.status.phase == Phase.PROMOTED and p.status.canary_weight == 95.0


def test_edit_that_keeps_the_weight_keeps_the_stage_clock() -> None:
    spec = make_spec(steps=[5, 10, 25, 50, 100])
    st = promote(spec, r.reconcile(spec, None, T0).status, 2, T0)
    started = st.step_started_at
    s = r.reconcile(make_spec(steps=[25, 50, 100]), st, T0 + timedelta(minutes=1)).status
    assert (s.step, s.canary_weight, s.step_started_at) == (0, 25.0, started)


def test_edit_never_raises_exposure_if_a_lower_step_exists() -> None:
    spec = make_spec(steps=[5, 10, 25, 50, 100])
    st = promote(spec, r.reconcile(spec, None, T0).status, 2, T0)  # 25 %
    s = r.reconcile(make_spec(steps=[10, 40, 100]), st, T0 + timedelta(minutes=1)).status
    assert (s.step, s.canary_weight) == (0, 10.0)


def test_paused_rollout_keeps_its_pause_reason_on_a_steps_edit() -> None:
    spec = make_spec(steps=[5, 10, 25, 50, 100])
    st = promote(spec, r.reconcile(spec, None, T0).status, 3, T0)  # 50 %
    st = r.reconcile(spec, st, T0, request=r.ManualRequest("pause", "z")).status
    d = r.reconcile(make_spec(steps=[20, 100]), st, T0 + timedelta(minutes=1))
    assert d.status.phase == Phase.PAUSED and d.status.history[-1].reason == "ManualPause"
    assert (d.status.step, d.status.canary_weight) == (0, 20.0)
    assert [e.reason for e in d.events] == [Reason.STEPS_CHANGED.value]


def _steps() -> hs.SearchStrategy[list[float]]:
    return hs.lists(
        hs.integers(min_value=1, max_value=99), min_size=0, max_size=8, unique=True
    ).map(lambda xs: [float(x) for x in sorted(xs)] + [100.0])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=_steps(),
    after=_steps(),
    promotes=hs.integers(min_value=0, max_value=8),
    paused=hs.booleans(),
    holdback=hs.sampled_from([0.0, 5.0, 20.0]),
)
def test_any_steps_edit_keeps_the_machine_on_its_steps(
    before: list[float], after: list[float], promotes: int, paused: bool, holdback: float
) -> None:
    spec = make_spec(steps=before, holdbackPercent=holdback)
    st = r.reconcile(spec, None, T0).status
    st = promote(spec, st, promotes, T0)
    if paused:
        st = r.reconcile(spec, st, T0, request=r.ManualRequest("pause", "pz")).status
    phase, weight = st.phase, st.canary_weight
    edited = make_spec(steps=after, holdbackPercent=holdback)
    at = T0 + timedelta(minutes=1)
    d = r.reconcile(edited, RoutingPolicyStatus.model_validate(st.to_k8s()), at)
    s = d.status
    n = len(after)
    assert 0 <= s.step < n
    assert s.steps == n and s.step_display == f"{s.step + 1}/{n}"
    assert s.phase == phase, "an edit of the steps alone never changes the phase"
    if s.phase in (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTED):
        if s.phase != Phase.PROMOTED:
            assert s.canary_weight == stp.served_weight(after, holdback, s.step)
            lower = [
                w for i, w in enumerate(after) if stp.served_weight(after, holdback, i) <= weight
            ]
            if lower:
                assert s.canary_weight <= weight, "no exposure raised without a gate passing"
            else:
                assert s.step == 0
        else:
            assert s.step == n - 1 and s.canary_weight == weight
    # Promoting from wherever the edit left it walks the new steps to the end and promotes
    # at 100 % minus holdback, never earlier.
    if s.phase in (Phase.PROGRESSING, Phase.PAUSED):
        for i in range(n + 1):
            s = r.reconcile(edited, s, at, request=r.ManualRequest("promote", f"q{i}")).status
            assert 0 <= s.step < n
            if s.phase == Phase.PROMOTED:
                break
        assert s.phase == Phase.PROMOTED and s.canary_weight == 100.0 - holdback


# ------------------------------------------------------------------ re-applied annotations


def test_a_handled_action_reapplied_by_gitops_never_runs_again() -> None:
    """promote(c1) → abort(c2) → GitOps re-applies promote(c1): nothing happens; a retry
    (c3) then an old abort(c2) re-applied: nothing happens either."""
    spec = make_spec(steps=[5, 10, 25, 50, 100])
    st = r.reconcile(spec, None, T0, generation=1).status

    def act(st: RoutingPolicyStatus, action: str, nonce: str, minute: int) -> r.Decision:
        return r.reconcile(
            spec,
            RoutingPolicyStatus.model_validate(st.to_k8s()),
            T0 + timedelta(minutes=minute),
            generation=1,
            request=r.ManualRequest(action, nonce),
        )

    st = act(st, "promote", "c1", 1).status
    assert st.step == 1
    st = act(st, "pause", "c2", 2).status
    assert st.phase == Phase.PAUSED
    again = act(st, "promote", "c1", 3)
    assert again.status.step == 1 and again.status.phase == Phase.PAUSED and not again.events
    st = act(again.status, "abort", "c3", 4).status
    assert st.phase == Phase.ROLLED_BACK
    st = act(st, "retry", "c4", 5).status
    assert st.phase == Phase.PROGRESSING and st.step == 0
    for i, (action, nonce) in enumerate([("abort", "c3"), ("promote", "c1"), ("pause", "c2")]):
        d = act(st, action, nonce, 6 + i)
        assert d.status.phase == Phase.PROGRESSING and d.status.step == 0, (action, nonce)
        assert not d.events
        st = d.status
    assert [h.nonce for h in st.handled_actions] == ["c1", "c2", "c3", "c4"]
    assert all(h.generation == 1 for h in st.handled_actions)


def test_an_action_without_nonce_runs_once_per_generation() -> None:
    spec = make_spec(steps=[5, 10, 25, 50, 100])
    st = r.reconcile(spec, None, T0, generation=1).status
    st = r.reconcile(spec, st, T0, generation=1, request=r.ManualRequest("promote")).status
    st = r.reconcile(spec, st, T0, generation=1, request=r.ManualRequest("pause", "n")).status
    st = r.reconcile(spec, st, T0, generation=1, request=r.ManualRequest("promote")).status
    assert st.step == 1, "the same nonce-less promote at the same generation ran again"
    st = r.reconcile(spec, st, T0, generation=2, request=r.ManualRequest("promote")).status
    assert st.step == 2


def test_handled_actions_are_bounded() -> None:
    spec = make_spec()
    st = r.reconcile(spec, None, T0).status
    for i in range(MAX_HANDLED_ACTIONS + 5):
        st = r.reconcile(spec, st, T0, request=r.ManualRequest("explode", str(i))).status
    assert len(st.handled_actions) == MAX_HANDLED_ACTIONS
    assert st.handled_actions[-1].nonce == str(MAX_HANDLED_ACTIONS + 4)
    RoutingPolicyStatus.model_validate(st.to_k8s())


# ------------------------------------------------------------------ unusable spec


def test_invalid_spec_fails_with_observed_generation_then_resumes() -> None:
    spec = make_spec(steps=[5, 10, 25, 50, 100])
    st = promote(spec, r.reconcile(spec, None, T0, generation=1).status, 1, T0)
    assert st.phase == Phase.PROGRESSING and st.canary_weight == 10.0
    failed, fresh = specerror.invalid_spec_status(st, 2, T0, "spec.routes.0: candidate ...")
    assert fresh
    assert failed.phase == Phase.FAILED and failed.observed_generation == 2
    for ctype, value in (
        (ConditionType.READY, "False"),
        (ConditionType.PROGRESSING, "False"),
        (ConditionType.DEGRADED, "True"),
    ):
        cond = get_condition(failed.conditions, ctype)
        assert cond is not None and cond.status == value and cond.reason == "InvalidSpec"
        assert cond.observed_generation == 2
    assert (failed.step, failed.canary_weight, failed.revision) == (1, 10.0, st.revision)
    same, fresh = specerror.invalid_spec_status(
        failed, 2, T0 + timedelta(seconds=9), "spec.routes.0: candidate ..."
    )
    assert not fresh and same.to_k8s() == failed.to_k8s(), "idempotent: no status write loop"
    # Generation 3 is valid again: the rollout continues where it was.
    d = r.reconcile(spec, failed, T0 + timedelta(minutes=1), generation=3)
    assert d.status.phase == Phase.PROGRESSING and d.status.step == 1
    assert d.status.canary_weight == 10.0 and d.status.observed_generation == 3
    assert d.status.history[-1].reason == Reason.SPEC_VALID.value
