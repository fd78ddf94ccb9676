"""What the routers serve and when gates are read (part of :mod:`tierguard.operator.rollout`,
kept apart to keep that module readable; pure, like the machine).

Everything here is derived from the spec and the persisted status only, so the operator
re-renders exactly what was last decided after a restart. Re-exported by
:mod:`tierguard.operator.rollout`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tierguard.api.durations import parse_duration
from tierguard.api.enums import Arm, Phase
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import steps as stp


def step_weight(spec: RoutingPolicySpec, step: int) -> float:
    """The canary weight actually served at a step: 100 % keeps the holdback share back."""
    return stp.served_weight(spec.rollout.steps, spec.rollout.holdback_percent, step)


def step_control_arm(spec: RoutingPolicySpec, step: int) -> Arm:
    return stp.control_arm(spec.rollout.steps, step)


def serving_split(spec: RoutingPolicySpec, status: RoutingPolicyStatus) -> tuple[float, Arm]:
    """(weight, control arm) the routers should apply now, derived from status only, so a
    re-render after a restart reproduces exactly what was last decided."""
    if status.phase in (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTED) and status.revision:
        return status.canary_weight, step_control_arm(spec, status.step)
    return 0.0, Arm.CONTROL


def gated(spec: RoutingPolicySpec, status: RoutingPolicyStatus) -> bool:
    """Whether the candidate serves traffic that gates must watch."""
    if status.phase in (Phase.PROGRESSING, Phase.PAUSED):
        return True
    return status.phase == Phase.PROMOTED and spec.rollout.holdback_percent > 0


def evaluation_due(spec: RoutingPolicySpec, status: RoutingPolicyStatus, now: datetime) -> bool:
    """Whether Prometheus should be read now (every ``rollout.interval`` while gated)."""
    if not status.revision or not gated(spec, status):
        return False
    if status.last_evaluated_at is None:
        return True
    return now >= status.last_evaluated_at + timedelta(
        seconds=parse_duration(spec.rollout.interval)
    )


def seconds_until_due(spec: RoutingPolicySpec, status: RoutingPolicyStatus, now: datetime) -> float:
    """How long the operator may sleep before the next evaluation (for its loop)."""
    if not status.revision or not gated(spec, status):
        return float("inf")
    if status.last_evaluated_at is None:
        return 0.0
    due = status.last_evaluated_at + timedelta(seconds=parse_duration(spec.rollout.interval))
    return max(0.0, (due - now).total_seconds())
