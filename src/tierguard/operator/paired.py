"""Paired sequential test: per request, is the canary's answer worse, better or as good?

For a pairwise judge (the same request answered by the canary and the baseline, the
judge says which answer is better, order randomised, ties allowed) every judged request
is one outcome ``X`` in {+1 canary worse, -1 canary better, 0 tie}. Its mean is exactly
the quality difference the SLO talks about::

    E[X] = P(worse) - P(better) = (canary bad rate - baseline bad rate)

when "worse" means "the canary's answer is bad where the baseline's is good" -- and in
general the net share of requests the canary answers worse. No control arm is needed,
and because both answers belong to the same request, a user's idiosyncrasies (hard
questions, a grumpy rater) cancel inside the pair.

The test is a *betting* e-process for a bounded mean (Waudby-Smith & Ramdas, JRSS-B
2024): for H0 "E[X] <= m" the wealth ``prod (1 + lam (X_i - m))`` with
``0 <= lam <= 1 / (1 + m)`` is a non-negative supermartingale under H0, whatever the
distribution of ``X`` on [-1, 1] -- exact at every n, no normal approximation, ties and
margins included. A block of ``(worse, better, ties)`` counts multiplies the wealth by
``(1 + lam (1 - m))^w (1 + lam (-1 - m))^b (1 - lam m)^t``. The fixed bets ``lam`` on a
small grid are averaged (a mixture of e-processes is an e-process). The pass side is the
mirror image for H0 "E[X] >= m'" on a grid of margins, read as an anytime-valid upper
confidence bound exactly like the two-arm gate's.

Pure functions on plain counts; :class:`PairedState` is JSON-serialisable for the
operator's status. Issue 16 (pre-flight) builds on :func:`paired_update` and
:func:`evaluate_paired`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tierguard.api.enums import Verdict

#: Fractions of the largest allowed bet averaged by the mixture (small bets win on small
#: effects, large ones detect gross losses quickly).
BET_FRACTIONS: tuple[float, ...] = (0.1, 0.15, 0.2, 0.3, 0.8)
#: Margins (canary minus baseline quality, as a share of requests) on which the upper
#: confidence bound is read; the SLO's allowed drop is always added.
PAIRED_MARGINS: tuple[float, ...] = (-0.02, 0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2)


class PairedInputError(ValueError):
    """Counts or parameters a paired gate cannot use."""


def _log_wealth(worse: float, better: float, ties: float, lam: float, m: float) -> float:
    """log of one block's wealth factor for H0 E[X] <= m with bet ``lam`` (>= 0)."""
    return (
        worse * math.log1p(lam * (1.0 - m))
        + better * math.log1p(lam * (-1.0 - m))
        + ties * math.log1p(-lam * m)
    )


def fail_log_e(worse: float, better: float, ties: float, margin: float) -> list[float]:
    """Per-bet log e-values of one block for H0 "canary worse by at most ``margin``"."""
    cap = 1.0 / (1.0 + margin)
    return [_log_wealth(worse, better, ties, f * cap, margin) for f in BET_FRACTIONS]


def pass_log_e(worse: float, better: float, ties: float, margin: float) -> list[float]:
    """Per-bet log e-values of one block for H0 "canary worse by at least ``margin``"
    (the mirror bet: X -> -X, m -> -m)."""
    cap = 1.0 / (1.0 - margin) if margin < 1 else 0.0
    return [_log_wealth(better, worse, ties, f * cap, -margin) for f in BET_FRACTIONS]


def _log_mean_exp(xs: Sequence[float]) -> float:
    top = max(xs)
    return top + math.log(sum(math.exp(x - top) for x in xs) / len(xs))


@dataclass
class PairedState:
    """Running evidence of one paired gate (JSON round-trips exactly)."""

    allowed_drop: float
    fail_margin: float
    margins: tuple[float, ...]
    log_e_fail: list[float] = field(default_factory=list)  # per bet
    max_log_e_fail: float = 0.0
    log_e_pass: list[list[float]] = field(default_factory=list)  # per margin, per bet
    max_log_e_pass: list[float] = field(default_factory=list)  # per margin (mixture)
    worse: float = 0.0
    better: float = 0.0
    ties: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "allowedDrop": self.allowed_drop,
            "failMargin": self.fail_margin,
            "margins": list(self.margins),
            "logEFail": list(self.log_e_fail),
            "maxLogEFail": self.max_log_e_fail,
            "logEPass": [list(x) for x in self.log_e_pass],
            "maxLogEPass": list(self.max_log_e_pass),
            "counts": [self.worse, self.better, self.ties],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairedState:
        w, b, t = (float(x) for x in data["counts"])
        return cls(
            allowed_drop=float(data["allowedDrop"]),
            fail_margin=float(data["failMargin"]),
            margins=tuple(float(x) for x in data["margins"]),
            log_e_fail=[float(x) for x in data["logEFail"]],
            max_log_e_fail=float(data["maxLogEFail"]),
            log_e_pass=[[float(x) for x in row] for row in data["logEPass"]],
            max_log_e_pass=[float(x) for x in data["maxLogEPass"]],
            worse=w,
            better=b,
            ties=t,
        )


def new_paired_state(
    allowed_drop: float, fail_margin: float | None = None, margins: Sequence[float] = PAIRED_MARGINS
) -> PairedState:
    """A fresh paired gate. ``fail_margin`` defaults to half the allowed drop, as for the
    two-arm gates (statistics.default_fail_margin)."""
    if not 0 < allowed_drop < 1:
        raise PairedInputError(f"allowedDrop must be in (0, 1), got {allowed_drop}")
    fm = allowed_drop / 2.0 if fail_margin is None else float(fail_margin)
    if not 0 <= fm <= allowed_drop:
        raise PairedInputError(f"failMargin must be in [0, {allowed_drop}], got {fail_margin}")
    ms = tuple(sorted({*margins, allowed_drop}))
    n = len(BET_FRACTIONS)
    return PairedState(
        allowed_drop=allowed_drop,
        fail_margin=fm,
        margins=ms,
        log_e_fail=[0.0] * n,
        log_e_pass=[[0.0] * n for _ in ms],
        max_log_e_pass=[0.0] * len(ms),
    )


def paired_update(
    state: PairedState, worse: float, better: float, ties: float, design_effect: float = 1.0
) -> PairedState:
    """A new state with one block of judged pairs added (pure). Counts are the block's
    deltas: canary answer worse, better, or a tie. ``design_effect`` (>= 1; the running
    estimate of per-user clustering, operator/pairedgate.py) tempers the evidence as the
    two-arm gates do (statistics.add_block): the running maxima are taken over the log
    e-values divided by it."""
    if min(worse, better, ties) < 0:
        raise PairedInputError(f"counts cannot be negative: {worse}, {better}, {ties}")
    new = PairedState.from_json(state.to_json())
    if worse + better + ties <= 0:
        return new
    d = max(1.0, design_effect)
    lf = fail_log_e(worse, better, ties, state.fail_margin)
    new.log_e_fail = [a + b for a, b in zip(state.log_e_fail, lf, strict=True)]
    new.max_log_e_fail = max(state.max_log_e_fail, _log_mean_exp([x / d for x in new.log_e_fail]))
    for i, m in enumerate(state.margins):
        lp = pass_log_e(worse, better, ties, m)
        new.log_e_pass[i] = [a + b for a, b in zip(state.log_e_pass[i], lp, strict=True)]
        new.max_log_e_pass[i] = max(
            state.max_log_e_pass[i], _log_mean_exp([x / d for x in new.log_e_pass[i]])
        )
    new.worse += worse
    new.better += better
    new.ties += ties
    return new


@dataclass(frozen=True)
class PairedResult:
    """A paired gate's verdict and its figures."""

    verdict: Verdict
    reason: str
    pairs: float
    difference: float | None  # (worse - better) / pairs
    upper_bound: float  # anytime-valid upper bound on P(worse) - P(better)
    e_value: float
    threshold: float


def evaluate_paired(
    state: PairedState, alpha: float, min_pairs: float, provider_error: str | None = None
) -> PairedResult:
    """FAIL once the fail side's e-value has reached ``1/alpha`` (final); NO_DATA on a
    failed query or before any pair; PASS with ``min_pairs`` judged pairs and the upper
    bound within the allowed drop; INCONCLUSIVE otherwise."""
    if not 0 < alpha < 1:
        raise PairedInputError(f"alpha must be in (0, 1), got {alpha}")
    level = math.log(1.0 / alpha)
    n = state.worse + state.better + state.ties
    rejected = [x >= level for x in state.max_log_e_pass]
    bound = 1.0
    for i in range(len(state.margins) - 1, -1, -1):  # smallest margin of an all-rejected tail
        if not rejected[i]:
            break
        bound = state.margins[i]
    e_value = math.exp(min(state.max_log_e_fail, 700.0))
    diff = (state.worse - state.better) / n if n > 0 else None

    def result(verdict: Verdict, reason: str) -> PairedResult:
        return PairedResult(verdict, reason, n, diff, bound, e_value, 1.0 / alpha)

    if state.max_log_e_fail >= level:
        return result(
            Verdict.FAIL,
            f"canary answers worse by more than {state.fail_margin:.3f} of requests: "
            f"e-value {e_value:.3g} >= {1 / alpha:.3g}",
        )
    if provider_error is not None:
        return result(Verdict.NO_DATA, f"query failed: {provider_error}")
    if n <= 0:
        return result(Verdict.NO_DATA, "no judged pairs yet")
    if n < min_pairs:
        return result(Verdict.INCONCLUSIVE, f"{n:.0f} of {min_pairs:.0f} judged pairs")
    if bound <= state.allowed_drop:
        return result(
            Verdict.PASS, f"upper bound {bound:+.3f} within allowed drop {state.allowed_drop:.3f}"
        )
    return result(
        Verdict.INCONCLUSIVE,
        f"upper bound {bound:+.3f} not yet within allowed drop {state.allowed_drop:.3f}",
    )
