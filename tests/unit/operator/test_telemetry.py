"""The operator's own metrics use the contract names and count what the machine did."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from rolloutsim import T0, Traffic, drive, make_spec

from tierguard.api import metrics as m
from tierguard.api.enums import Phase, Reason
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import rollout
from tierguard.operator.rollout import ROLLBACK_REASONS
from tierguard.operator.rollout_types import GateEvaluated
from tierguard.operator.telemetry import OperatorMetrics


def test_phase_is_one_hot_and_names_follow_the_contract() -> None:
    om = OperatorMetrics()
    om.set_phase("ns", "shop", Phase.PROGRESSING, 25.0)
    om.set_phase("ns", "shop", Phase.ROLLED_BACK, 0.0)
    om.gates.labels("ns", "shop", "simple", "ThumbsDown", "Fail").inc()
    om.rollbacks.labels("ns", "shop", "GateFailed").inc()
    text = generate_latest(om.registry).decode()
    assert f'{m.ROLLOUT_PHASE.name}{{namespace="ns",phase="RolledBack",policy="shop"}} 1.0' in text
    assert f'{m.ROLLOUT_PHASE.name}{{namespace="ns",phase="Progressing",policy="shop"}} 0.0' in text
    assert f'{m.ROLLOUT_WEIGHT.name}{{namespace="ns",policy="shop"}} 0.0' in text
    assert m.GATE_EVALUATIONS.name in text and m.ROLLBACKS.name in text


def test_counters_exist_at_zero_before_the_first_event() -> None:
    """A counter born at 1 is invisible to ``increase()``: the first rollback of every
    (policy, reason) would never alert. Seeing a policy creates them at 0."""
    om = OperatorMetrics()
    om.set_phase("ns", "shop", Phase.PROGRESSING, 5.0)
    text = generate_latest(om.registry).decode()
    for reason in ROLLBACK_REASONS:
        assert (
            f'{m.ROLLBACKS.name}{{namespace="ns",policy="shop",reason="{reason.value}"}} 0.0'
            in text
        )
    assert f'{m.PROMETHEUS_ERRORS.name}{{namespace="ns",policy="shop"}} 0.0' in text


def test_rollback_reason_outside_the_initialised_set_is_refused() -> None:
    """Every reason a rollback can carry must be pre-initialised; a new one fails here
    (and in every rollout test reaching it) instead of silently never alerting."""
    run = rollout._Run(make_spec(), RoutingPolicyStatus(phase=Phase.PROGRESSING), T0)
    with pytest.raises(ValueError, match="ROLLBACK_REASONS"):
        run.rollback(Reason.INVALID_ACTION, "no such rollback")
    run.rollback(Reason.GATE_FAILED, "a gate failed")
    assert run.s.phase == Phase.ROLLED_BACK


def test_gate_bound_is_exported_beside_what_it_allows_and_forgotten() -> None:
    """The dashboard plots each gate's upper bound against its allowed drop."""
    om = OperatorMetrics()
    om.set_gate_bound("ns", "shop", "simple", "ThumbsDown", 0.031, 0.02)
    om.set_gate_bound("ns", "shop", "simple", "ThumbsDown", 0.012, 0.02)
    text = generate_latest(om.registry).decode()
    labels = 'namespace="ns",policy="shop",signal="ThumbsDown",tier="simple"'
    assert f"{m.GATE_UPPER_BOUND.name}{{{labels}}} 0.012" in text
    assert f"{m.GATE_ALLOWED.name}{{{labels}}} 0.02" in text
    om.forget("ns", "shop")
    text = generate_latest(om.registry).decode()
    assert f"{m.GATE_UPPER_BOUND.name}{{" not in text
    assert f"{m.GATE_ALLOWED.name}{{" not in text


def test_gate_evaluations_carry_the_bound_the_gate_computed() -> None:
    """The state machine hands each gate's upper bound and allowance to the metrics."""
    same = {"simple": {"control": 0.1, "canary": 0.1}}
    spec = make_spec()
    _, ds = drive(spec, Traffic(same, seed=1), 60)
    evaluated = [a for d in ds for a in d.actions if isinstance(a, GateEvaluated)]
    bounded = [a for a in evaluated if a.upper_bound is not None]
    assert bounded, "no gate evaluation carried an upper bound"
    assert all(a.allowed > 0 for a in bounded)
    assert len({a.upper_bound for a in bounded}) > 1, "the bound should move with evidence"


def test_a_forgotten_policy_leaves_no_series_and_others_keep_theirs() -> None:
    """A deleted policy's phase, weight, lag, counters and gate series all go; another
    policy's stay (the phase gauge of a deleted policy would stay on the dashboards)."""
    om = OperatorMetrics()
    for policy in ("shop", "other"):
        om.set_phase("ns", policy, Phase.PROGRESSING, 5.0)
        om.evaluation_lag.labels("ns", policy).set(1.0)
        om.prom_errors.labels("ns", policy).inc()
        om.rollbacks.labels("ns", policy, ROLLBACK_REASONS[0].value).inc()
        om.count_gate_evaluation("ns", policy, "simple", "ThumbsDown", "Pass")
        om.set_gate_bound("ns", policy, "simple", "ThumbsDown", 0.01, 0.02)
    om.forget("ns", "shop")
    text = generate_latest(om.registry).decode()
    assert 'policy="shop"' not in text
    assert text.count('policy="other"') > 10
    assert (
        f'{m.GATE_EVALUATIONS.name}{{namespace="ns",policy="other",signal="ThumbsDown",'
        'tier="simple",verdict="Pass"} 1.0' in text
    )
    om.forget("ns", "never-seen")  # nothing kept for it: no error
