"""The Progressing and Degraded conditions of a policy (part of
:mod:`tierguard.operator.rollout`, kept apart to keep that module readable; pure, like the
machine). Re-exported by :mod:`tierguard.operator.rollout`.
"""

from __future__ import annotations

from datetime import datetime

from tierguard.api.enums import ConditionType, Phase, Reason
from tierguard.api.status import Condition, RoutingPolicyStatus
from tierguard.operator import preflight as pf
from tierguard.operator import rollout_clfcanary as ccn
from tierguard.operator import rollout_shadow as rs
from tierguard.operator.conditions import set_condition


def _last_reason(s: RoutingPolicyStatus) -> str:
    return s.history[-1].reason if s.history else Reason.RECONCILED.value


def conditions_for(s: RoutingPolicyStatus, now: datetime, generation: int) -> list[Condition]:
    """Progressing and Degraded from the phase (Ready is the handler's: objects applied)."""
    reason = _last_reason(s)
    msg = s.message
    conds = s.conditions
    progressing = s.phase == Phase.PROGRESSING
    if progressing and rs.running(s):
        p_reason = Reason.CLASSIFIER_SHADOW.value
    elif progressing and ccn.running(s):
        p_reason = Reason.CLASSIFIER_CANARY.value
    elif progressing and pf.running(s):
        p_reason = Reason.NO_DATA.value if s.no_data_since is not None else Reason.PREFLIGHT.value
    elif progressing:
        p_reason = (
            Reason.NO_DATA.value
            if s.no_data_since is not None
            else Reason.BAKING.value
            if s.earliest_advance_at is not None and now < s.earliest_advance_at
            else Reason.GATES_INCONCLUSIVE.value
            if s.tiers
            else reason
        )
    else:
        p_reason = reason
    conds = set_condition(
        conds, ConditionType.PROGRESSING, progressing, p_reason, msg, now, generation
    )
    degraded = (
        s.phase in (Phase.ROLLED_BACK, Phase.FAILED)
        or s.no_data_since is not None
        or (
            s.phase == Phase.PAUSED
            and reason
            in (
                Reason.NO_DATA.value,
                Reason.PROMETHEUS_UNREACHABLE.value,
                Reason.MAX_STEP_DURATION_EXCEEDED.value,
                Reason.PREFLIGHT_CAP_REACHED.value,
            )
        )
    )
    d_reason = reason if degraded else Reason.RECONCILED.value
    if s.no_data_since is not None and s.phase not in (Phase.ROLLED_BACK, Phase.PAUSED):
        d_reason = Reason.NO_DATA.value
    conds = set_condition(
        conds, ConditionType.DEGRADED, degraded, d_reason, msg if degraded else "", now, generation
    )
    return conds
