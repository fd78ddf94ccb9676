"""Pure status rules of one reconcile (moved out of :mod:`tierguard.operator.controller`):
the ``EvaluationDelayed`` condition, whether a status was ever written, and how a spec
or status that does not validate is reported."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from tierguard.api.durations import parse_duration
from tierguard.api.enums import ConditionType, Reason
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import Condition, RoutingPolicyStatus
from tierguard.operator.conditions import get_condition, set_condition


def delayed_condition(
    conditions: list[Condition],
    lag: float,
    spec: RoutingPolicySpec,
    now: datetime,
    generation: int,
) -> list[Condition]:
    """``EvaluationDelayed``: True while evaluations start more than one interval late.
    Absent until the first delay; the message has no figures, so it is written only when
    the state flips (the lag itself is the ``evaluation_lag_seconds`` metric)."""
    interval = parse_duration(spec.rollout.interval)
    current = get_condition(conditions, ConditionType.EVALUATION_DELAYED)
    if lag > interval:
        return set_condition(
            conditions,
            ConditionType.EVALUATION_DELAYED,
            True,
            Reason.EVALUATION_LAGGING.value,
            "gate evaluations start more than one rollout.interval late: the operator is "
            "behind (see tierguard_operator_evaluation_lag_seconds)",
            now,
            generation,
        )
    if current is not None and current.status != "False":
        return set_condition(
            conditions,
            ConditionType.EVALUATION_DELAYED,
            False,
            Reason.ON_SCHEDULE.value,
            "gate evaluations are on schedule",
            now,
            generation,
        )
    return conditions


def is_fresh(status: RoutingPolicyStatus) -> bool:
    """No operator has written this policy's status yet (nothing was rolled out, no
    condition reported)."""
    return status.to_k8s() == _EMPTY_STATUS


_EMPTY_STATUS = RoutingPolicyStatus().to_k8s()


def validation_errors(exc: ValidationError, root: str, limit: int = 5) -> str:
    """Each problem as ``<root>.<field path>: <why>`` (at most ``limit`` of them)."""
    parts = []
    for err in exc.errors()[:limit]:
        path = ".".join([root, *(str(x) for x in err["loc"])])
        parts.append(f"{path}: {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
