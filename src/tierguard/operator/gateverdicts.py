"""Verdicts of a two-arm or absolute gate from its state (part of
:mod:`tierguard.operator.statistics`, which re-exports every name)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from tierguard.api.enums import Verdict
from tierguard.operator.absolutebounds import _log_mixture, absolute_bounds
from tierguard.operator.evalues import upper_bound_from_rejections
from tierguard.operator.gatecounters import GateInputError
from tierguard.operator.gatestate import GateState

# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class GateResult:
    """A gate's verdict and the figures an SRE reads in status."""

    verdict: Verdict
    reason: str
    control_samples: float
    canary_samples: float
    control_rate: float | None
    canary_rate: float | None
    upper_bound: float  # anytime-valid upper bound on canary - control (or canary rate)
    e_value: float  # fail-side evidence against "canary no worse"
    threshold: float  # the e-value at which the gate fails (1 / alpha_per_test)


def combine_verdicts(verdicts: Iterable[Verdict]) -> Verdict:
    """One verdict for a stage from its gates' verdicts.

    Any FAIL fails the stage (that tier is confidently worse); otherwise any NO_DATA
    makes the stage NO_DATA (never promote on missing data); PASS needs every gate to
    pass; everything else is INCONCLUSIVE. No gates at all is NO_DATA, not a pass.
    """
    seen = set(verdicts)
    if Verdict.FAIL in seen:
        return Verdict.FAIL
    if not seen or Verdict.NO_DATA in seen:
        return Verdict.NO_DATA
    if seen == {Verdict.PASS}:
        return Verdict.PASS
    return Verdict.INCONCLUSIVE


def _rate(bad: float, total: float) -> float | None:
    return bad / total if total > 0 else None


def relative_upper_bound(state: GateState, alpha_per_test: float) -> float:
    """The pass side's anytime-valid upper bound on canary - control at this alpha."""
    level = math.log(1.0 / alpha_per_test)
    rejected = np.asarray(state.max_log_e_pass, dtype=float) >= level
    return float(upper_bound_from_rejections(rejected, state.margins))


def evaluate(
    state: GateState,
    allowed_drop: float,
    alpha_per_test: float,
    min_samples_per_arm: float,
    provider_error: str | None = None,
) -> GateResult:
    """The verdict of one gate now.

    FAIL as soon as the fail-side e-value has ever reached ``1/alpha_per_test`` (a crossing
    is final, even if the data source fails afterwards); NO_DATA when the caller reports
    that the query failed (``provider_error``) or nothing was counted yet; PASS only with
    ``min_samples_per_arm`` in both arms *and* the upper confidence bound within
    ``allowed_drop``; INCONCLUSIVE otherwise. Absolute gates are delegated to
    :func:`evaluate_absolute` (``allowed_drop`` is then the threshold rate).

    ``allowed_drop`` should be the one the state was created with (it is on the margin
    grid); any other value is judged against the bound on the grid, which is valid but
    coarser.
    """
    if not 0 < alpha_per_test < 1:
        raise GateInputError(f"alpha must be in (0, 1), got {alpha_per_test}")
    if state.kind == "absolute":
        return evaluate_absolute(
            state, allowed_drop, alpha_per_test, min_samples_per_arm, provider_error
        )
    threshold = 1.0 / alpha_per_test
    bound = relative_upper_bound(state, alpha_per_test)
    e_value = math.exp(min(state.max_log_e_fail, 700.0))

    def result(verdict: Verdict, reason: str) -> GateResult:
        return GateResult(
            verdict,
            reason,
            state.control_total,
            state.canary_total,
            _rate(state.control_bad, state.control_total),
            _rate(state.canary_bad, state.canary_total),
            bound,
            e_value,
            threshold,
        )

    if state.max_log_e_fail >= math.log(threshold):
        return result(
            Verdict.FAIL,
            f"canary worse than control by more than {state.fail_margin:.3f}: "
            f"e-value {e_value:.3g} >= {threshold:.3g}",
        )
    if provider_error is not None:
        return result(Verdict.NO_DATA, f"query failed: {provider_error}")
    if state.control_total + state.canary_total <= 0:
        return result(Verdict.NO_DATA, "no samples counted yet")
    low = min(state.control_total, state.canary_total)
    if low < min_samples_per_arm:
        return result(
            Verdict.INCONCLUSIVE,
            f"{low:.0f} of {min_samples_per_arm:.0f} samples in the smaller arm",
        )
    if bound <= allowed_drop:
        return result(
            Verdict.PASS, f"upper bound {bound:+.3f} within allowed drop {allowed_drop:.3f}"
        )
    return result(
        Verdict.INCONCLUSIVE,
        f"upper bound {bound:+.3f} not yet within allowed drop {allowed_drop:.3f}",
    )


# ----------------------------------------------------------------- absolute objective
# One arm, no nuisance parameter: Robbins' beta-binomial mixture martingale gives an
# exact confidence sequence for the canary's bad rate from the cumulative counts alone.
# One arm, no nuisance parameter: the beta-binomial mixture bounds of
# :mod:`tierguard.operator.absolutebounds`.


def evaluate_absolute(
    state: GateState,
    threshold_rate: float,
    alpha_per_test: float,
    min_samples: float,
    provider_error: str | None = None,
) -> GateResult:
    """Verdict for "the canary's bad rate must stay <= threshold_rate".

    FAIL when the lower bound exceeds the threshold (equivalently the e-value against
    every rate at or below it, ``mixture(threshold)``, reached ``1/alpha``); PASS when the
    upper bound is within it and ``min_samples`` canary outcomes were counted.
    """
    bad, n = state.canary_bad, state.canary_total
    # Per-user correlation: the bounds use the effective counts (Rao & Scott: counts
    # divided by the design effect), which keeps the rate and shrinks the evidence.
    deff = max(1.0, state.design_effect)
    lower, upper = absolute_bounds(bad / deff, n / deff, alpha_per_test)
    threshold = 1.0 / alpha_per_test
    e_value = (
        math.exp(min(_log_mixture(bad / deff, n / deff, threshold_rate), 700.0))
        if n > 0 and bad / n > threshold_rate
        else 1.0
    )

    def result(verdict: Verdict, reason: str) -> GateResult:
        return GateResult(
            verdict,
            reason,
            state.control_total,
            n,
            _rate(state.control_bad, state.control_total),
            _rate(bad, n),
            upper,
            e_value,
            threshold,
        )

    if n > 0 and lower > threshold_rate:
        return result(
            Verdict.FAIL, f"canary bad rate above {threshold_rate:.3f} (lower bound {lower:.3f})"
        )
    if provider_error is not None:
        return result(Verdict.NO_DATA, f"query failed: {provider_error}")
    if n <= 0:
        return result(Verdict.NO_DATA, "no samples counted yet")
    if n < min_samples:
        return result(Verdict.INCONCLUSIVE, f"{n:.0f} of {min_samples:.0f} samples")
    if upper <= threshold_rate:
        return result(Verdict.PASS, f"upper bound {upper:.3f} within {threshold_rate:.3f}")
    return result(
        Verdict.INCONCLUSIVE, f"upper bound {upper:.3f} not yet within {threshold_rate:.3f}"
    )
