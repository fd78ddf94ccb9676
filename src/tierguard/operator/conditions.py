"""Pure helpers for ``status.conditions`` (the metav1.Condition shape).

As in Argo Rollouts: ``lastTransitionTime`` moves only when ``status`` flips, so tools
that alert on "Degraded for 10 minutes" measure the real duration, while reason and
message always show the latest detail.
"""

from __future__ import annotations

from datetime import datetime

from tierguard.api.enums import ConditionType
from tierguard.api.status import Condition


def set_condition(
    conditions: list[Condition],
    type_: ConditionType,
    status: bool | None,
    reason: str,
    message: str,
    now: datetime,
    generation: int,
) -> list[Condition]:
    """A new list with the condition of ``type_`` set (order kept, new types appended)."""
    text = "Unknown" if status is None else ("True" if status else "False")
    out: list[Condition] = []
    found = False
    for c in conditions:
        if c.type != type_:
            out.append(c)
            continue
        found = True
        moved = c.status != text
        out.append(
            Condition(
                type=type_,
                status=text,
                reason=reason,
                message=message[:32768],
                last_transition_time=now if moved else c.last_transition_time,
                observed_generation=generation,
            )
        )
    if not found:
        out.append(
            Condition(
                type=type_,
                status=text,
                reason=reason,
                message=message[:32768],
                last_transition_time=now,
                observed_generation=generation,
            )
        )
    return out


def get_condition(conditions: list[Condition], type_: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: ConditionType) -> bool:
    c = get_condition(conditions, type_)
    return c is not None and c.status == "True"
