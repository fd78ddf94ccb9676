"""Conditions: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from datetime import timedelta

from sim import T0

from tierguard.api.enums import ConditionType
from tierguard.operator.conditions import get_condition, is_true, set_condition


def test_transition_time_moves_only_on_flips() -> None:
    conds = set_condition([], ConditionType.READY, True, "Reconciled", "ok", T0, 1)
    later = T0 + timedelta(minutes=5)
    same = set_condition(conds, ConditionType.READY, True, "Reconciled", "still ok", later, 2)
    c = get_condition(same, ConditionType.READY)
    assert c is not None and c.last_transition_time == T0
    assert c.message == "still ok" and c.observed_generation == 2
    flipped = set_condition(same, ConditionType.READY, False, "ReconcileFailed", "403", later, 2)
    c = get_condition(flipped, ConditionType.READY)
    assert c is not None and c.last_transition_time == later and c.status == "False"
    assert not is_true(flipped, ConditionType.READY)


def test_types_are_kept_apart_and_order_is_stable() -> None:
    conds = set_condition([], ConditionType.READY, True, "A", "", T0, 0)
    conds = set_condition(conds, ConditionType.DEGRADED, None, "B", "", T0, 0)
    conds = set_condition(conds, ConditionType.READY, False, "C", "", T0, 0)
    assert [c.type for c in conds] == [ConditionType.READY, ConditionType.DEGRADED]
    assert conds[1].status == "Unknown"
