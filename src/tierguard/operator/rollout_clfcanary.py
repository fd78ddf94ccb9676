"""The rollout machine's classifier canary (part of :mod:`tierguard.operator.rollout`,
kept apart to keep that module readable; pure, like the machine).

After the decision shadow (:mod:`~tierguard.operator.rollout_shadow`) of a classifier
change, the new classifier decides for a share of sessions, stage by stage: the weights of
``rollout.steps`` below 100 %, each baked for ``bakeTime``. The model split stays what the
routers served before the change (a promoted cheap candidate keeps serving its tier, a
rollout that had not exposed anyone stays at 0 %) and the model gates wait: one change is
judged at a time, and the classifier is judged with each tier served as it is, which is
what decides whether a request moved down a tier gets a worse answer. Each look reads the
per-cell counters into the cell gates (:mod:`~tierguard.operator.cellgates`): requests
moved *down* a tier are judged on quality against the same cell's sessions under the
stable classifier, requests moved *up* on cost. Any cell Fail rolls the revision back: the
stable classifier keeps deciding for everyone (the previous digest). A step advances when
the bake time is over, the new classifier decided at least ``minSamplesPerArm`` requests
at this step's weight, and every down cell (and, with ``maxCostRatio``, every up cell)
passes. After the last step the new classifier decides for all (``ClassifierPromoted``)
and the revision's rollout begins as any other (pre-flight or step 1). ``promote``
advances a step by hand, ``abort`` rolls back, ``pause``/``resume`` work as for the model
canary; after ``maxStepDuration`` without a pass it pauses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from tierguard.api import metrics as m
from tierguard.api.classifierchange import CellGateStatus, ClassifierCanaryStatus
from tierguard.api.durations import parse_duration
from tierguard.api.enums import Phase, Reason, Verdict
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import cellgates as cg
from tierguard.operator.rollout_types import fmt_time, fmt_weight

if TYPE_CHECKING:
    from tierguard.operator.gatetypes import Observations
    from tierguard.operator.rollout import _Run


def adopt(run: _Run) -> None:
    """The classifier read now decides from now on (``status.stableClassifier``)."""
    if run.classifier_now is not None:
        run.s.stable_classifier = run.classifier_now


def running(status: RoutingPolicyStatus) -> bool:
    """Whether the new classifier decides for a share of sessions now."""
    cc = status.classifier_canary
    return (
        bool(status.revision)
        and cc is not None
        and cc.running
        and status.phase in (Phase.PROGRESSING, Phase.PAUSED)
    )


def weights(run: _Run) -> list[float]:
    """The classifier canary's steps: ``rollout.steps`` below 100 %."""
    return [float(w) for w in run.spec.rollout.steps if w < 100.0]


def wanted(run: _Run) -> bool:
    return run.spec.rollout.classifier_canary.enabled and bool(weights(run))


def begin(run: _Run, found: str) -> None:
    """The shadow is over: the new classifier decides for the first step's sessions."""
    s = run.s
    s.canary_weight = run.initial_split[0]  # the model split as it was (module docstring)
    s.earliest_advance_at = None
    s.classifier_canary = ClassifierCanaryStatus(running=True)
    _enter(run, 0)
    ws = weights(run)
    run.transition(
        Phase.PROGRESSING,
        Reason.CLASSIFIER_CANARY,
        f"{found}; classifier canary: the new classifier decides for {fmt_weight(ws[0])} "
        f"of sessions (step 1/{len(ws)}); requests it moves down a tier are judged on "
        "quality, up on cost",
    )


def _enter(run: _Run, step: int) -> None:
    cc = run.s.classifier_canary
    assert cc is not None
    cc.step = step
    cc.weight = weights(run)[step]
    cc.step_started_at = run.now
    cc.earliest_advance_at = run.now + timedelta(seconds=parse_duration(run.spec.rollout.bake_time))
    cc.gate_state = {k: v for k, v in cc.gate_state.items()}


def _fail_message(c: CellGateStatus) -> str:
    what = "moved down, quality" if c.direction == cg.DOWN else "moved up, cost"
    return f"cell {c.from_tier}→{c.to_tier} ({what}): {c.message}"


def on_canary(run: _Run, obs: Observations) -> None:
    """One look during the classifier canary."""
    s = run.s
    cc = s.classifier_canary
    assert cc is not None
    spec = run.spec
    conf = spec.rollout.classifier_canary
    tiers = [t.name for t in spec.classifier.tiers]
    counts = obs.cells
    s.last_evaluated_at = run.now
    error = obs.error or (counts.error if counts is not None else "cell counters not read")
    if counts is None or error is not None:
        if s.phase == Phase.PROGRESSING:
            s.message = (
                f"classifier canary at {fmt_weight(cc.weight)}: cannot read the cell counters "
                f"({error}); holding"
            )[:4096]
        return
    cc.gate_state = cg.update(cc.gate_state, counts, tiers, conf.allowed_drop)
    cells = cg.evaluate(
        cc.gate_state,
        counts,
        tiers,
        allowed_drop=conf.allowed_drop,
        confidence=spec.analysis.confidence,
        min_samples=spec.rollout.min_samples_per_arm,
        max_cost_ratio=conf.max_cost_ratio,
    )
    cc.cells = cells
    failed = [c for c in cells if c.verdict == Verdict.FAIL.value]
    if failed:
        cc.running = False
        cc.message = _fail_message(failed[0])[:2048]
        run.rollback(
            Reason.GATE_FAILED,
            f"classifier canary failed at {fmt_weight(cc.weight)} of sessions: "
            f"{_fail_message(failed[0])}; the stable classifier decides for everyone again",
        )
        return
    if s.phase != Phase.PROGRESSING:
        return
    blocking = [c for c in cells if c.direction == cg.DOWN or conf.max_cost_ratio is not None]
    waiting = [c for c in blocking if c.verdict != Verdict.PASS.value]
    decided = sum(c.candidate_requests for c in cells) + _diagonal(counts)
    baked = cc.earliest_advance_at is None or run.now >= cc.earliest_advance_at
    enough = decided >= spec.rollout.min_samples_per_arm
    summary = ", ".join(f"{c.from_tier}→{c.to_tier}={c.verdict}" for c in cells) or "no moved cell"
    cc.message = summary[:2048]
    if baked and enough and not waiting:
        advance(
            run,
            Reason.STEP_ADVANCED,
            f"classifier canary passed at {fmt_weight(cc.weight)} ({summary})",
        )
        return
    started = cc.step_started_at or run.now
    if (run.now - started).total_seconds() >= parse_duration(spec.rollout.max_step_duration):
        run.pause(
            Reason.MAX_STEP_DURATION_EXCEEDED,
            f"classifier canary: not enough evidence after {spec.rollout.max_step_duration} "
            f"at {fmt_weight(cc.weight)} of sessions ({summary})",
        )
        return
    if not baked and cc.earliest_advance_at is not None:
        why = f"baking until {fmt_time(cc.earliest_advance_at)}"
    elif not enough:
        why = f"{decided:.0f} of {spec.rollout.min_samples_per_arm} requests decided by it"
    else:
        why = "; ".join(f"{c.from_tier}→{c.to_tier}: {c.message}" for c in waiting[:3])
    s.message = (f"classifier canary at {fmt_weight(cc.weight)} of sessions: {why}; {summary}")[
        :4096
    ]


def _diagonal(counts: cg.CellCounts) -> float:
    return sum(n for (f, t, d), n in counts.requests.items() if f == t and d == m.DECIDER_CANDIDATE)


def advance(run: _Run, reason: Reason, why: str) -> None:
    """The next step, or after the last one the new classifier decides for all."""
    s = run.s
    cc = s.classifier_canary
    assert cc is not None
    ws = weights(run)
    if cc.step + 1 < len(ws):
        _enter(run, cc.step + 1)
        run.transition(
            Phase.PROGRESSING,
            reason,
            f"{why}; classifier canary step {cc.step + 1}/{len(ws)}: the new classifier "
            f"decides for {fmt_weight(cc.weight)} of sessions",
        )
        return
    cc.running = False
    cc.message = f"{why}; promoted"[:2048]
    run.event("Normal", Reason.CLASSIFIER_PROMOTED, f"{why}: the new classifier decides for all")
    adopt(run)
    run.begin_stage(s.revision, Reason.ROLLOUT_STARTED, f"{why}; the new classifier decides")
