"""Choosing the cheap tier's threshold on held-out data (pure numpy).

Two ways to state what you want, matching the two questions an operator asks:

* ``target_cheap_share``: "send about 60 % of traffic to the cheap model" (a budget).
  The threshold is placed between the k-th and (k+1)-th highest cheap-tier probability,
  k = round(share x n), so on the calibration set the share is as close as ties allow.
* ``max_under_route``: "route at most 3 % of complex queries to the cheap model" (a
  quality guard, the seed 003 lesson). The threshold is the lowest one at which at most
  that share of queries labelled with a more expensive tier would be routed to the
  cheapest tier; it maximises savings under the cap. With ``conservative=True`` the cap
  applies to the 95 % Wilson upper bound instead of the observed rate, so a small
  calibration set cannot promise more than it measured.

Only the cheapest tier's threshold is chosen; for models with more than two tiers the
others keep their values (the cheap/non-cheap boundary is the one that carries the
quality risk). Thresholds are rounded to 4 decimals in the safe direction, so that they
are readable in a RoutingPolicy and still keep the stated guarantee on the calibration set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierguard.classifier.evaluation import wilson_upper

__all__ = ["CalibrationError", "ThresholdChoice", "choose_threshold"]

_DECIMALS = 4
_STEP = 10.0**-_DECIMALS


class CalibrationError(ValueError):
    """The calibration request cannot be met or is ill-posed."""


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold for the cheapest tier and what it achieves on the data."""

    threshold: float
    method: str
    target: float
    cheap_share: float
    under_route_rate: float | None
    under_route_upper95: float | None
    n: int
    n_expensive: int

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "method": self.method,
            "target": self.target,
            "cheap_share": round(self.cheap_share, 6),
            "under_route_rate": None
            if self.under_route_rate is None
            else round(self.under_route_rate, 6),
            "under_route_upper95": None
            if self.under_route_upper95 is None
            else round(self.under_route_upper95, 6),
            "n": self.n,
            "n_expensive": self.n_expensive,
        }


def _round_up(x: float) -> float:
    """Smallest 4-decimal number strictly greater than ``x`` (capped at 1)."""
    return min(1.0, math.floor(x / _STEP + 1e-9) * _STEP + _STEP)


def choose_threshold(
    cheap_probability: npt.NDArray[np.floating[Any]],
    label_index: npt.NDArray[np.integer[Any]],
    *,
    target_cheap_share: float | None = None,
    max_under_route: float | None = None,
    conservative: bool = False,
) -> ThresholdChoice:
    """Pick the cheapest tier's threshold; exactly one of the two targets must be given.

    ``cheap_probability``: the model's probability of tier 0 per example;
    ``label_index``: each example's labelled tier index (0 = cheapest).
    """
    p = np.asarray(cheap_probability, dtype=np.float64)
    y = np.asarray(label_index)
    if p.shape != y.shape or p.ndim != 1:
        raise CalibrationError(f"shapes differ: probabilities {p.shape}, labels {y.shape}")
    n = len(p)
    if n == 0:
        raise CalibrationError("no calibration examples")
    if (target_cheap_share is None) == (max_under_route is None):
        raise CalibrationError("give exactly one of target_cheap_share or max_under_route")
    expensive = p[y > 0]
    n_exp = len(expensive)

    if target_cheap_share is not None:
        if not 0.0 <= target_cheap_share <= 1.0:
            raise CalibrationError(
                f"target cheap share must be in [0, 1], got {target_cheap_share}"
            )
        method, target = "target_cheap_share", target_cheap_share
        desc = np.sort(p)[::-1]
        k = round(target_cheap_share * n)
        if k <= 0:
            threshold = _round_up(float(desc[0]))
        elif k >= n:
            threshold = math.floor(float(desc[-1]) / _STEP) * _STEP
        else:
            mid = (float(desc[k - 1]) + float(desc[k])) / 2.0
            threshold = round(mid, _DECIMALS)
            # rounding must not jump over either neighbour when they are far apart
            if not (desc[k] < threshold <= desc[k - 1]):
                threshold = mid
    else:
        assert max_under_route is not None
        if not 0.0 <= max_under_route <= 1.0:
            raise CalibrationError(f"max under-route rate must be in [0, 1], got {max_under_route}")
        method, target = "max_under_route", max_under_route
        if n_exp == 0:
            raise CalibrationError(
                "the calibration data has no queries labelled with a more expensive tier, so "
                "an under-route rate cannot be measured; add labelled complex queries"
            )
        allowed = math.floor(max_under_route * n_exp + 1e-9)
        if conservative:
            while allowed > 0 and wilson_upper(allowed, n_exp) > max_under_route:
                allowed -= 1
            if wilson_upper(0, n_exp) > max_under_route:
                raise CalibrationError(
                    f"{n_exp} expensive-tier examples cannot show an under-route rate <= "
                    f"{max_under_route:.2%} with 95 % confidence even with none misrouted "
                    f"(need about {math.ceil(3.84 / max_under_route)}); label more data or "
                    "drop --conservative"
                )
        exp_desc = np.sort(expensive)[::-1]
        # must exclude the (allowed+1)-th most cheap-looking expensive example
        threshold = 0.0 if allowed >= n_exp else _round_up(float(exp_desc[allowed]))
    threshold = float(min(1.0, max(0.0, threshold)))
    routed_cheap = p >= threshold
    under = int(np.sum(routed_cheap & (y > 0)))
    return ThresholdChoice(
        threshold=threshold,
        method=method,
        target=float(target),
        cheap_share=float(routed_cheap.mean()),
        under_route_rate=(under / n_exp) if n_exp else None,
        under_route_upper95=wilson_upper(under, n_exp) if n_exp else None,
        n=n,
        n_expensive=n_exp,
    )
