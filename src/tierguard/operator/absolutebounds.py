"""One-arm anytime-valid bounds on a bad rate (part of
:mod:`tierguard.operator.statistics`): Robbins' beta-binomial mixture martingale gives an
exact confidence sequence for a rate from its cumulative counts alone. Used by the
absolute gates and by the pairwise judge's health decision."""

from __future__ import annotations

import math

#: Bisection steps for the bounds; 60 halvings reach float64 resolution.
_BISECT_STEPS = 60
_PRIOR_A = _PRIOR_B = 0.5  # Jeffreys prior for the mixture


def _log_mixture(bad: float, n: float, p: float) -> float:
    """log of the Beta(1/2, 1/2)-mixture likelihood ratio against rate p (a martingale
    with mean 1 under p, for every n)."""
    a, b = _PRIOR_A, _PRIOR_B
    log_beta_post = math.lgamma(a + bad) + math.lgamma(b + n - bad) - math.lgamma(a + b + n)
    log_beta_prior = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return log_beta_post - log_beta_prior - bad * math.log(p) - (n - bad) * math.log1p(-p)


def absolute_bounds(bad: float, n: float, alpha: float) -> tuple[float, float]:
    """Anytime-valid (lower, upper) bounds on a bad rate: all p with mixture < 1/alpha."""
    if n <= 0:
        return 0.0, 1.0
    level = math.log(1.0 / alpha)
    phat = bad / n

    def boundary(inside: float, outside: float) -> float:
        # log mixture is convex in p with its minimum at phat: one crossing in between.
        for _ in range(_BISECT_STEPS):
            mid = 0.5 * (inside + outside)
            if _log_mixture(bad, n, mid) < level:
                inside = mid
            else:
                outside = mid
        return inside

    eps = 1e-12
    center = min(max(phat, eps), 1 - eps)
    lower = 0.0 if _log_mixture(bad, n, eps) < level else boundary(center, eps)
    upper = 1.0 if _log_mixture(bad, n, 1 - eps) < level else boundary(center, 1 - eps)
    return lower, upper
