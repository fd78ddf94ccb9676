"""The gate of a ShadowDisagreement SLO whose judge is Pairwise: glue between the
routers' ``shadow_pairwise_total`` counters and the paired sequential test of
:mod:`tierguard.operator.paired` (pure; the readings come from observe.py, the state
lives in ``status.gateState`` next to the two-arm gates').

Per interval the increase of each verdict counter (per router instance and user cluster,
resets handled per series as for every gate) is one block: ``worse`` and ``better`` as
they are (``unanswered``, pre-flight's candidate failing a request the baseline answered,
counts as ``worse``), ``tie`` plus ``inconsistent`` as ties (a verdict that changed with
the order of the answers says nothing about either model), ``error`` not at all
(missing data).
Pairs of one user are not independent draws either: the verdict counters carry the user
``cluster`` label, and the paired evidence is tempered by their design effect
(:func:`paired_design_effect`) exactly as the two-arm gates' is.

Judge health (:mod:`tierguard.operator.judgehealth`) is a decision, not a point
estimate: the order-inconsistency rate
``inconsistent / judged`` and the error rate ``error / (judged + error)`` each get an
anytime-valid confidence sequence (the beta-binomial mixture of the absolute gates,
:func:`statistics.absolute_bounds`, at :data:`HEALTH_ALPHA`). The judge is **unhealthy**
once a lower bound is beyond the judge spec's ``maxOrderInconsistency`` or
``maxErrorRate`` (confidently broken): the gate is Inconclusive with a message starting
``JudgeUnhealthy``, never Pass. A Pass further needs the judge's health **established**:
both upper bounds within the limits; until then a would-be Pass is Inconclusive with a
message starting ``JudgeHealthUndecided``. A Fail stays a Fail (confident evidence of a
loss even through a noisy judge, whose inconsistencies only dilute it towards a tie).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tierguard.api import metrics as m
from tierguard.api.enums import Verdict
from tierguard.operator import paired
from tierguard.operator import statistics as st
from tierguard.operator.design_effect import (
    MAX_DESIGN_EFFECT,
    MIN_DESIGN_EVENTS,
    MIN_DF,
    cluster_of,
)
from tierguard.operator.gatetypes import (
    GateOutcome,
    GateSpec,
    Observations,
    family_alpha,
    watch_alpha,
)
from tierguard.operator.judgehealth import (
    HEALTH_ALPHA,
    JUDGE_HEALTH_UNDECIDED,
    JUDGE_UNHEALTHY,
    JudgeHealth,
    assess,
)
from tierguard.operator.statistics import counter_delta, series_delta

#: Verdict counters a pairwise gate reads, in this order.
VERDICTS = m.PAIRWISE_VERDICTS
#: Series per verdict kept for carrying vanished series forward (as gatetypes.MAX_SERIES).
MAX_SERIES = 256


@dataclass
class PairedGateState:
    """A pairwise gate's evidence, verdict totals and last raw readings (JSON)."""

    paired: paired.PairedState
    counts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0.0))
    last: dict[str, dict[str, float]] | None = None  # verdict -> series -> cumulative
    blocks: int = 0
    #: per user cluster: cumulative [worse, better, judged], and their design effect
    clusters: dict[str, list[float]] = field(default_factory=dict)
    design_effect: float = 1.0

    @property
    def judged(self) -> float:
        return self.paired.worse + self.paired.better + self.paired.ties

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "paired",
            "paired": self.paired.to_json(),
            "counts": dict(self.counts),
            "last": None if self.last is None else {k: dict(v) for k, v in self.last.items()},
            "blocks": self.blocks,
            "clusters": {k: list(v) for k, v in self.clusters.items()},
            "designEffect": self.design_effect,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairedGateState:
        last = data.get("last")
        return cls(
            paired=paired.PairedState.from_json(data["paired"]),
            counts={k: float(data.get("counts", {}).get(k, 0.0)) for k in VERDICTS},
            last=None
            if last is None
            else {k: {s: float(x) for s, x in v.items()} for k, v in last.items()},
            blocks=int(data.get("blocks", 0)),
            clusters={k: [float(x) for x in v] for k, v in data.get("clusters", {}).items()},
            design_effect=float(data.get("designEffect", 1.0)),
        )


def is_paired(stats: Mapping[str, Any]) -> bool:
    """Whether a stored gate state is a pairwise gate's."""
    return stats.get("kind") == "paired"


def new_paired_gate(allowed: float, fail_margin: float) -> PairedGateState:
    """``allowed``: the largest tolerated net share of worse answers (the SLO's
    allowedDrop); clamped into the open interval the test needs."""
    a = min(max(allowed, 1e-6), 0.999)
    return PairedGateState(paired=paired.new_paired_state(a, min(max(fail_margin, 0.0), a)))


def update_paired_gate(
    state: PairedGateState, readings: Mapping[str, Mapping[str, float]]
) -> PairedGateState:
    """Add the interval since the previous readings (``verdict -> {series: cumulative}``,
    canary arm). The first readings only set the baseline; a series that vanished is
    carried forward so that when it returns only its real increase counts."""
    prev = state.last or {}
    cur: dict[str, dict[str, float]] = {}
    for v in VERDICTS:
        merged = dict(readings.get(v, {}))
        for key, value in prev.get(v, {}).items():
            if key not in merged and len(merged) < MAX_SERIES:
                merged[key] = value
        cur[v] = merged
    new = PairedGateState.from_json(state.to_json())
    new.last = cur
    if state.last is None:
        return new
    d = {v: series_delta(prev.get(v), cur[v]) for v in VERDICTS}
    ties = d[m.VERDICT_TIE] + d[m.VERDICT_INCONSISTENT]
    worse = d[m.VERDICT_WORSE] + d[m.VERDICT_UNANSWERED]  # a request it did not answer
    new.clusters = _add_clusters(state.clusters, prev, cur)
    new.design_effect = paired_design_effect(new.clusters)
    new.paired = paired.paired_update(
        state.paired, worse, d[m.VERDICT_BETTER], ties, new.design_effect
    )
    for v in VERDICTS:
        new.counts[v] += d[v]
    if sum(d.values()) > 0:
        new.blocks += 1
    return new


def _add_clusters(
    clusters: Mapping[str, list[float]],
    prev: Mapping[str, Mapping[str, float]],
    cur: Mapping[str, Mapping[str, float]],
) -> dict[str, list[float]]:
    """Cumulative per-cluster [worse, better, judged] with this interval's increases
    (per series, resets handled; unclustered series are left out: they mix users)."""
    out = {k: list(v) for k, v in clusters.items()}
    judged = (
        m.VERDICT_WORSE,
        m.VERDICT_BETTER,
        m.VERDICT_TIE,
        m.VERDICT_INCONSISTENT,
        m.VERDICT_UNANSWERED,
    )
    for v in judged:
        for key, value in cur.get(v, {}).items():
            cluster = cluster_of(key)
            if cluster in ("", m.CLUSTER_NONE):
                continue
            inc = counter_delta(prev.get(v, {}).get(key), value)
            if inc <= 0:
                continue
            row = out.setdefault(cluster, [0.0, 0.0, 0.0])
            if v in (m.VERDICT_WORSE, m.VERDICT_UNANSWERED):
                row[0] += inc
            elif v == m.VERDICT_BETTER:
                row[1] += inc
            row[2] += inc
    return out


def paired_design_effect(clusters: Mapping[str, Sequence[float]]) -> float:
    """Pearson dispersion of the per-cluster sums of X (+1 worse, -1 better, 0 tie)
    around the pooled mean, as design_effect.design_effect does for bad rates: ~1 when
    pairs are independent, ``1 + (m - 1) rho`` with ``m`` pairs per user and intra-user
    correlation ``rho``. 1 below MIN_DF degrees of freedom or below
    :data:`~tierguard.operator.design_effect.MIN_DESIGN_EVENTS` non-tie pairs (with rarer
    events the dispersion says where the few events fell, not how users correlate: one
    judge slip among ~470 ties, in a user with half the average pairs, read as a design
    effect of 2); clipped to [1, MAX]."""
    rows = [(w, b, n) for w, b, n in clusters.values() if n > 0]
    total = sum(n for _, _, n in rows)
    events = sum(w + b for w, b, _ in rows)
    if len(rows) - 1 < MIN_DF or total <= 0 or events < MIN_DESIGN_EVENTS:
        return 1.0
    mean = sum(w - b for w, b, _ in rows) / total
    var = sum(w + b for w, b, _ in rows) / total - mean * mean
    if var <= 0:
        return 1.0
    x2 = sum((w - b - n * mean) ** 2 / (n * var) for w, b, n in rows)
    return float(min(max(x2 / (len(rows) - 1), 1.0), MAX_DESIGN_EFFECT))


def judge_health(
    state: PairedGateState,
    max_inconsistency: float,
    max_error_rate: float,
    alpha: float = HEALTH_ALPHA,
) -> JudgeHealth:
    """The judge's health from a pairwise gate's verdict totals
    (:func:`tierguard.operator.judgehealth.assess`)."""
    return assess(
        state.judged,
        state.counts[m.VERDICT_INCONSISTENT],
        state.counts[m.VERDICT_ERROR],
        state.counts[m.VERDICT_UNANSWERED],
        max_inconsistency,
        max_error_rate,
        alpha,
    )


@dataclass(frozen=True)
class PairedGateResult:
    verdict: Verdict
    message: str
    result: paired.PairedResult
    health: JudgeHealth


def evaluate_paired_gate(
    state: PairedGateState,
    alpha: float,
    min_pairs: float,
    max_inconsistency: float,
    max_error_rate: float,
    provider_error: str | None = None,
) -> PairedGateResult:
    """The paired test's verdict, held to Inconclusive while the judge is confidently
    beyond its health limits (JudgeUnhealthy), and a Pass held until its health is
    established (JudgeHealthUndecided): only a judge shown healthy passes a canary."""
    res = paired.evaluate_paired(state.paired, alpha, min_pairs, provider_error)
    health = judge_health(state, max_inconsistency, max_error_rate)
    verdict, message = res.verdict, res.reason
    held = verdict in (Verdict.PASS, Verdict.INCONCLUSIVE) or (
        verdict is Verdict.NO_DATA and provider_error is None  # only failed judgements
    )
    if not health.healthy and held:
        verdict = Verdict.INCONCLUSIVE
        message = f"{JUDGE_UNHEALTHY}: {health.reason} (paired test: {res.reason})"
    elif verdict is Verdict.PASS and not health.established:
        verdict = Verdict.INCONCLUSIVE
        message = (
            f"{JUDGE_HEALTH_UNDECIDED}: the judge is not yet shown within its limits "
            f"(upper bounds: order inconsistency {health.inconsistency_bounds[1]:.1%} of "
            f"{max_inconsistency:.0%}, errors {health.error_bounds[1]:.1%} of "
            f"{max_error_rate:.0%}; paired test: {res.reason})"
        )
    return PairedGateResult(verdict, message, res, health)


# --------------------------------------------------------------------------- gate state
# A pairwise gate's entry in ``status.gateState.gates`` (gateupdates.py keeps the same outer
# layout as for the two-arm gates)::
#
#     {"fingerprint": "…", "stepBase": [judged, judged], "looks": 0..2,
#      "stats": <PairedGateState.to_json()>,
#      "watch": {"window": k, "startedAt": "<ISO time>", "stats": <PairedGateState>}}


def _fresh_entry(fingerprint: str, allowed: float, fail_margin: float) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "stepBase": [0.0, 0.0],
        "stats": new_paired_gate(allowed, fail_margin).to_json(),
    }


def update_entry(
    entry: Mapping[str, Any] | None,
    fingerprint: str,
    allowed: float,
    fail_margin: float,
    verdicts: Mapping[str, Mapping[str, float]] | None,
    at: datetime,
    *,
    promoted: bool,
    window_s: float,
) -> dict[str, Any]:
    """Fold one reading (None: failed or empty, left as it is) into a pairwise gate's
    entry (pure). After promotion the rollout's evidence is frozen and a watch window of
    its own runs, with the fail margin raised to ``allowed`` and restarted every
    ``window_s`` (keeping the last readings as its baseline), as for the two-arm gates."""
    out = dict(entry) if entry is not None else _fresh_entry(fingerprint, allowed, fail_margin)
    looked = False
    if promoted:
        watch = out.get("watch")
        if watch is None or (at - datetime.fromisoformat(watch["startedAt"])).total_seconds() >= (
            window_s
        ):
            fresh = new_paired_gate(allowed, allowed)
            prior = watch["stats"] if watch is not None else out["stats"]
            fresh.last = PairedGateState.from_json(prior).last
            watch = {
                "window": 1 if watch is None else int(watch["window"]) + 1,
                "startedAt": at.isoformat(),
                "stats": fresh.to_json(),
            }
        if verdicts is not None:
            w = update_paired_gate(PairedGateState.from_json(watch["stats"]), verdicts)
            watch = {**watch, "stats": w.to_json()}
            looked = True
        out["watch"] = watch
    else:
        out.pop("watch", None)
        if verdicts is not None:
            state = update_paired_gate(PairedGateState.from_json(out["stats"]), verdicts)
            out["stats"] = state.to_json()
            looked = True
    if looked:
        out["looks"] = min(int(out.get("looks", 0)) + 1, 2)
    return out


def entry_stats(
    entry: Mapping[str, Any] | None, allowed: float, fail_margin: float
) -> tuple[PairedGateState, int | None, float]:
    """(the evidence to judge, the watch window or None, the step's base in judged
    pairs) of a pairwise gate's entry."""
    if entry is None:
        return new_paired_gate(allowed, fail_margin), None, 0.0
    watch = entry.get("watch")
    if watch is not None:
        return PairedGateState.from_json(watch["stats"]), int(watch["window"]), 0.0
    base = entry.get("stepBase", [0.0, 0.0])
    return PairedGateState.from_json(entry["stats"]), None, float(base[1])


# --------------------------------------------------------------------------- outcome


def paired_outcome(
    g: GateSpec,
    entry: Mapping[str, Any] | None,
    observations: Observations | None,
    confidence: float,
    n_gates: int,
    min_samples: int,
) -> GateOutcome:
    """A pairwise gate's verdict: the paired test (pairedgate.py) on the same alpha share
    as every gate, a post-promotion watch window like the two-arm gates', the step's
    minimum counted in judged pairs. Canary "bad" is the pairs the canary lost, control
    "bad" the pairs the baseline lost; the bound is on their difference."""
    error = None
    flowing = False
    if observations is not None:
        reading = observations.gates.get(g.key)
        error = observations.error or (
            "no query result for this gate" if reading is None else reading.error
        )
        flowing = reading is not None and reading.requests_flowing
    alpha = st.alpha_per_test(family_alpha(confidence), n_gates)
    stats, window, base = entry_stats(entry, g.allowed, g.fail_margin or 0.0)
    prefix = ""
    if window is not None:
        alpha = st.alpha_per_test(watch_alpha(family_alpha(confidence), window), n_gates)
        prefix = f"post-promotion watch, window {window} (alpha {alpha:.2g}): "
    r = evaluate_paired_gate(
        stats, alpha, float(min_samples), g.max_inconsistency, g.max_error_rate, error
    )
    verdict, message = r.verdict, r.message
    step = max(0.0, stats.judged - base)
    if verdict == Verdict.NO_DATA and error is None:
        if flowing:
            verdict = Verdict.INCONCLUSIVE
            message = f"requests flow but no pairs judged yet (quiet signal; {r.message})"
        elif entry is not None and int(entry.get("looks", 0)) <= 1:
            verdict = Verdict.INCONCLUSIVE
            message = "first reading taken as the baseline; counting from here"
    if verdict == Verdict.PASS and window is None and step < min_samples:
        verdict = Verdict.INCONCLUSIVE
        message = f"{step:.0f} of {min_samples} judged pairs at this step ({r.message})"
    p, res = stats.paired, r.result
    n = stats.judged
    return GateOutcome(
        key=g.key,
        tier=g.tier,
        signal=g.signal,
        verdict=verdict,
        message=prefix + message,
        control_samples=n,
        control_bad=p.better,
        canary_samples=n,
        canary_bad=p.worse,
        control_rate=p.better / n if n > 0 else None,
        canary_rate=p.worse / n if n > 0 else None,
        upper_bound=res.upper_bound,
        allowed=g.allowed,
        e_value=res.e_value,
        threshold=res.threshold,
        step_control=step,
        step_canary=step,
        design_effect=stats.design_effect,
        provider_error=verdict == Verdict.NO_DATA and error is not None,
        judge=r.health,
    )
