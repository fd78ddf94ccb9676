"""The operator's own metrics use the contract names and count what the machine did."""

from __future__ import annotations

from prometheus_client import generate_latest

from tierguard.api import metrics as m
from tierguard.api.enums import Phase
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
