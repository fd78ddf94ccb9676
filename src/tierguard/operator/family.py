"""The family error budget of a rollout's gates, with slice gates (analysis.slices).

Every gate is an e-process that fails when its e-value reaches ``1 / alpha_gate``; by
Ville's inequality it does so under its null with probability at most ``alpha_gate``,
however often it is looked at. A union bound (Bonferroni) over all gates keeps the chance
that *any* gate ever rolls back a canary within its tolerated loss at or below the sum of
their alphas, whatever the dependence between the gates -- and slice gates are strongly
dependent on their tier's gate (a slice is a part of the tier's traffic).

How the budget is split (docs/statistics.md, "Slice gates"):

* no slices: every (tier, signal) gate gets ``alpha / n_tier`` (as before);
* with slices: the tier gates keep ``(1 - SLICE_SHARE) * alpha`` shared equally, and the
  slice gates share ``SLICE_SHARE * alpha`` equally. A weighted Bonferroni split: the
  tier gates' threshold rises only by ``log(1 / (1 - SLICE_SHARE))`` (0.69 nats at
  one half, however many slices are declared), while each slice gate's threshold grows
  with the log of the number of slice gates, which is the price of looking in more places.

Why not e-value merging (the mean of the gates' e-values is an e-value for the global
null): it says *that* something is wrong, not *which* tier or slice, and the rollback
message must name the slice. A closed testing procedure over e-values names it, but
needs the mean over every subset containing a slice: with 5 x 21 slice values per signal
that is neither cheap nor explainable in a status message. The weighted split is valid
under any dependence, local to each gate and explainable ("alpha 0.0012 for this gate").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tierguard.operator.statistics import GateInputError, alpha_per_test

#: Share of the family budget that goes to slice gates when any slice is declared.
SLICE_SHARE: Final = 0.5


@dataclass(frozen=True)
class FamilySplit:
    """Alpha per tier gate and per slice gate (0 when there are none)."""

    tier: float
    slice: float


def split_alpha(
    family_alpha: float, n_tier_gates: int, n_slice_gates: int, slice_share: float = SLICE_SHARE
) -> FamilySplit:
    """Share ``family_alpha`` over ``n_tier_gates`` tier gates and ``n_slice_gates`` slice
    gates; the alphas always sum to at most ``family_alpha``."""
    if not 0 < slice_share < 1:
        raise GateInputError(f"slice share must be in (0, 1), got {slice_share}")
    if n_slice_gates < 0:
        raise GateInputError(f"negative number of slice gates: {n_slice_gates}")
    if n_slice_gates == 0:
        return FamilySplit(alpha_per_test(family_alpha, n_tier_gates), 0.0)
    if n_tier_gates == 0:
        return FamilySplit(0.0, alpha_per_test(family_alpha, n_slice_gates))
    return FamilySplit(
        alpha_per_test((1 - slice_share) * family_alpha, n_tier_gates),
        alpha_per_test(slice_share * family_alpha, n_slice_gates),
    )
