"""The operator's own metrics use the contract names and count what the machine did."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from rolloutsim import T0, make_spec

from tierguard.api import metrics as m
from tierguard.api.enums import Phase, Reason
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import rollout
from tierguard.operator.rollout import ROLLBACK_REASONS
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
