"""A pairwise judge's health (used by :mod:`tierguard.operator.pairedgate`): a decision,
not a point estimate.

The order-inconsistency rate ``inconsistent / judged`` and the error rate
``error / (judged + error)`` each get an anytime-valid confidence sequence (the
beta-binomial mixture of the absolute gates, :func:`absolutebounds.absolute_bounds`, at
:data:`HEALTH_ALPHA`). **Unhealthy** once a lower bound is beyond its limit (the judge
spec's ``maxOrderInconsistency`` / ``maxErrorRate``); **established** once both upper
bounds are within them (needed for a Pass); undecided in between.
"""

from __future__ import annotations

from dataclasses import dataclass

from tierguard.operator.absolutebounds import absolute_bounds

#: Error level of the judge-health confidence sequences (each rate, anytime-valid). Not a
#: share of the rollback budget: health never rolls back, it only holds a Pass. It bounds
#: the chance that a judge beyond a limit is ever taken as within it (5 %), and that a
#: judge within a limit is ever reported unhealthy (5 %).
HEALTH_ALPHA = 0.05
JUDGE_UNHEALTHY = "JudgeUnhealthy"
JUDGE_HEALTH_UNDECIDED = "JudgeHealthUndecided"


@dataclass(frozen=True)
class JudgeHealth:
    judged: float
    inconsistent: float
    errors: float
    unanswered: float
    inconsistency_rate: float | None
    error_rate: float | None
    healthy: bool  # False once a rate is confidently beyond its limit
    reason: str
    #: both rates' upper confidence bounds within their limits (needed for a Pass)
    established: bool = False
    inconsistency_bounds: tuple[float, float] = (0.0, 1.0)
    error_bounds: tuple[float, float] = (0.0, 1.0)


def assess(
    judged: float,
    inconsistent: float,
    errors: float,
    unanswered: float,
    max_inconsistency: float,
    max_error_rate: float,
    alpha: float = HEALTH_ALPHA,
) -> JudgeHealth:
    """The judge's order-inconsistency and error rates with anytime-valid confidence
    bounds: unhealthy once a lower bound exceeds its limit, established once both upper
    bounds are within them, undecided in between (healthy, but no Pass yet)."""
    inc_rate = inconsistent / judged if judged > 0 else None
    err_rate = errors / (judged + errors) if judged + errors > 0 else None
    inc_b = absolute_bounds(min(inconsistent, judged), judged, alpha)
    err_b = absolute_bounds(errors, judged + errors, alpha)
    problems = []
    if inc_rate is not None and inc_b[0] > max_inconsistency:
        problems.append(
            f"the verdict changed with the order of the answers in {inc_rate:.1%} of "
            f"judged pairs (at least {inc_b[0]:.1%} at {1 - alpha:.0%} confidence; "
            f"limit {max_inconsistency:.0%})"
        )
    if err_rate is not None and err_b[0] > max_error_rate:
        problems.append(
            f"{err_rate:.1%} of shadowed requests got no verdict (at least {err_b[0]:.1%} at "
            f"{1 - alpha:.0%} confidence; limit {max_error_rate:.0%})"
        )
    return JudgeHealth(
        judged=judged,
        inconsistent=inconsistent,
        errors=errors,
        unanswered=unanswered,
        inconsistency_rate=inc_rate,
        error_rate=err_rate,
        healthy=not problems,
        reason="; ".join(problems),
        established=inc_b[1] <= max_inconsistency and err_b[1] <= max_error_rate,
        inconsistency_bounds=inc_b,
        error_bounds=err_b,
    )
