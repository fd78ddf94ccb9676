"""Rollout steps: the weight served at a step, and where a rollout stands after
``rollout.steps`` is edited mid-rollout. Pure functions; :mod:`rollout` uses them.

Editing ``rollout.steps`` does not start a new revision (the revision hashes what users
get, not how it is rolled out), so a rollout in flight has to be placed on the new steps.
The rule (documented in docs/concepts.md): the rollout continues at the **last new step
whose served weight does not exceed the weight served now**, so an edit never raises the
canary's exposure without a gate having passed; if every new step is above the current
weight, it continues at the first new step (the smallest exposure the user now asks for).
A step whose weight is unchanged keeps its clock and its evidence; a different weight
starts that step afresh (bake time and per-step samples count from the edit).
"""

from __future__ import annotations

from collections.abc import Sequence

from tierguard.api.enums import Arm

_EPS = 1e-9


def served_weight(steps: Sequence[float], holdback_percent: float, step: int) -> float:
    """The canary weight actually served at ``step``: 100 % keeps the holdback share back.
    An index past the end is read as the last step."""
    w = steps[min(max(step, 0), len(steps) - 1)]
    return 100.0 - holdback_percent if w >= 100.0 else w


def control_arm(steps: Sequence[float], step: int) -> Arm:
    """The arm the baseline's share is labelled with at ``step`` (holdback at 100 %)."""
    return Arm.HOLDBACK if steps[min(max(step, 0), len(steps) - 1)] >= 100.0 else Arm.CONTROL


def remap_step(weight: float, steps: Sequence[float], holdback_percent: float) -> int:
    """The index on ``steps`` for a rollout that serves ``weight`` % now (see module doc)."""
    best = 0
    for i in range(len(steps)):
        if served_weight(steps, holdback_percent, i) <= weight + _EPS:
            best = i
    return best


def on_steps(step: int, weight: float, steps: Sequence[float], holdback_percent: float) -> bool:
    """Whether a rollout at (``step``, ``weight``) is consistent with ``steps``."""
    return 0 <= step < len(steps) and (
        abs(served_weight(steps, holdback_percent, step) - weight) <= _EPS
    )
