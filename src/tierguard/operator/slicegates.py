"""Slice gates (``analysis.slices``): the tier's gates again, per slice value.

Every tier gate on a sliced signal (ErrorRate, ThumbsDown, ShadowDisagreement with the
Agreement judge) gets one gate per (slice, value), ``other`` included, keyed
``<tier gate key>@<slice>=<value>``. They run the same e-processes on the routers'
``slice_*_total`` counters (read by :mod:`tierguard.operator.observe`), on the slice
share of the family budget (:mod:`tierguard.operator.family`). A slice gate without
``minSamples`` is non-blocking: its Inconclusive never holds a stage; a Fail rolls back
like any gate's, and the rollback names the tier and the slice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from tierguard.api.policy import SLICE_OTHER, RoutingPolicySpec
from tierguard.operator.family import FamilySplit, split_alpha
from tierguard.operator.gatetypes import SLICED_SIGNALS, GateSpec, family_alpha


def slice_gate_specs(spec: RoutingPolicySpec, tier_gates: Sequence[GateSpec]) -> list[GateSpec]:
    """One gate per (tier gate on a sliced signal, slice, value)."""
    out: list[GateSpec] = []
    for g in tier_gates:
        if g.signal not in SLICED_SIGNALS or g.pairwise or g.slice_name is not None:
            continue
        for sl in spec.analysis.slices:
            for value in [*sl.values, SLICE_OTHER]:
                out.append(
                    replace(
                        g,
                        key=f"{g.key}@{sl.name}={value}",
                        slice_name=sl.name,
                        slice_value=value,
                        slice_min_samples=sl.min_samples,
                    )
                )
    return out


def family_split(gates: Sequence[GateSpec], confidence: float) -> FamilySplit:
    """Alpha per tier gate and per slice gate for this set of gates."""
    n_slice = sum(1 for g in gates if g.slice_name is not None)
    return split_alpha(family_alpha(confidence), len(gates) - n_slice, n_slice)


def tier_gate_count(split: FamilySplit, confidence: float) -> int:
    """A gate count ``n`` with ``family_alpha / n <= split.tier``: for code that takes
    its alpha as "family budget over n gates" (the paired gate)."""
    return max(1, math.ceil(round(family_alpha(confidence) / split.tier, 9)))
