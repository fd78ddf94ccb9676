"""``status.tiers`` from the gates' outcomes (see :mod:`tierguard.operator.gates`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tierguard.api.enums import Verdict
from tierguard.api.status import ArmSample, JudgeHealthStatus, SignalStatus, TierStatus
from tierguard.operator import statistics as st

if TYPE_CHECKING:
    from tierguard.operator.gatetypes import GateOutcome
    from tierguard.operator.judgehealth import JudgeHealth


def _finite(x: float | None) -> float | None:
    if x is None or x != x or x in (float("inf"), float("-inf")):
        return None
    return x


def judge_status(h: JudgeHealth, worse: float, better: float) -> JudgeHealthStatus:
    return JudgeHealthStatus(
        judged=int(h.judged),
        worse=int(worse),
        better=int(better),
        ties=int(h.judged - worse - better),
        inconsistent=int(h.inconsistent),
        errors=int(h.errors),
        unanswered=int(h.unanswered),
        order_inconsistency_rate=_finite(h.inconsistency_rate),
        error_rate=_finite(h.error_rate),
        healthy=h.healthy,
    )


def tier_statuses(outcomes: Sequence[GateOutcome], tiers: Sequence[str]) -> list[TierStatus]:
    """``status.tiers``: per tier the worst verdict, per signal the figures (the tier's
    own gates first, then the slice gates by slice). A non-blocking slice gate that is
    only Inconclusive does not make its tier Inconclusive."""
    out: list[TierStatus] = []
    for tier in tiers:
        mine = [o for o in outcomes if o.tier == tier]
        mine.sort(key=lambda o: (o.slice is not None, o.slice or ""))
        signals = [
            SignalStatus(
                signal=o.key.split("/", 1)[1].split("@", 1)[0],
                slice=o.slice,
                verdict=o.verdict,
                control=ArmSample(
                    samples=int(o.control_samples),
                    bad=int(o.control_bad),
                    rate=_finite(o.control_rate),
                ),
                canary=ArmSample(
                    samples=int(o.canary_samples),
                    bad=int(o.canary_bad),
                    rate=_finite(o.canary_rate),
                ),
                difference_upper_bound=_finite(o.upper_bound),
                allowed=o.allowed,
                e_value=_finite(min(o.e_value, 1e300)) if o.e_value is not None else None,
                e_value_threshold=_finite(o.threshold),
                design_effect=_finite(o.design_effect),
                message=o.message[:2048],
                judge=(
                    judge_status(o.judge, o.canary_bad, o.control_bad)
                    if o.judge is not None
                    else None
                ),
            )
            for o in mine
        ]
        out.append(
            TierStatus(
                tier=tier,
                verdict=st.combine_verdicts(
                    [o.verdict for o in mine if o.blocking or o.verdict != Verdict.INCONCLUSIVE]
                ),
                signals=signals,
            )
        )
    return out


def verdict_summary(tiers: Sequence[TierStatus]) -> str:
    return ",".join(f"{t.tier}={t.verdict.value}" for t in tiers)
