"""A spec the operator cannot use: how status says so, and how it recovers. Pure.

The API server refuses almost every bad policy itself (schema + CEL, generated from the
same models), but a policy can still reach the operator unusable: it was stored under an
older CRD that lacked a rule, or the CRD was installed by hand. Then the operator must
not leave ``observedGeneration`` behind (Argo CD would show Progressing forever while no
gate runs). Instead, for that generation:

* ``phase`` Failed, ``message`` naming the field and why; a history entry and a Warning
  Event with reason ``InvalidSpec`` (once per distinct problem, not per reconcile);
* Ready=False, Degraded=True (reason ``InvalidSpec``), Progressing=False;
* ``observedGeneration`` = the generation judged, so the Argo CD health check reports
  Degraded instead of waiting.

The rollout's own state (revision, step, weight, gate evidence) is kept and the rendered
objects are left as they are: the routers go on serving what they served, since the
operator cannot render a spec it cannot read. When a later generation is valid again the
state machine resumes the phase recorded just before the failure
(:func:`phase_before_invalid`).
"""

from __future__ import annotations

from datetime import datetime

from tierguard.api.enums import ConditionType, Phase, Reason
from tierguard.api.status import MAX_HISTORY, HistoryEntry, RoutingPolicyStatus
from tierguard.operator.conditions import set_condition


def invalid_spec_status(
    status: RoutingPolicyStatus, generation: int, now: datetime, message: str
) -> tuple[RoutingPolicyStatus, bool]:
    """Status for an unusable spec at ``generation``; True if this is a new problem (an
    Event is due). Idempotent: the same problem at the same generation changes nothing."""
    s = status.model_copy(deep=True)
    message = message[:2048]
    last = s.history[-1] if s.history else None
    already = (
        s.phase == Phase.FAILED
        and last is not None
        and last.reason == Reason.INVALID_SPEC.value
        and last.message == message
    )
    if not already:
        s.phase = Phase.FAILED
        s.history = [
            *s.history,
            HistoryEntry(
                time=now,
                phase=Phase.FAILED,
                step=s.step,
                weight=s.canary_weight,
                reason=Reason.INVALID_SPEC.value,
                message=message,
            ),
        ][-MAX_HISTORY:]
    s.message = message
    s.observed_generation = generation
    conds = s.conditions
    for ctype, value in (
        (ConditionType.READY, False),
        (ConditionType.PROGRESSING, False),
        (ConditionType.DEGRADED, True),
    ):
        conds = set_condition(
            conds, ctype, value, Reason.INVALID_SPEC.value, message, now, generation
        )
    s.conditions = conds
    return s, not already


def phase_before_invalid(status: RoutingPolicyStatus) -> Phase | None:
    """The phase to resume once the spec is valid again (None: not failed on the spec)."""
    if status.phase != Phase.FAILED or not status.history:
        return None
    if status.history[-1].reason != Reason.INVALID_SPEC.value:
        return None
    for entry in reversed(status.history[:-1]):
        if entry.phase != Phase.FAILED:
            return entry.phase
    return Phase.PENDING
