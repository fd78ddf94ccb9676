"""The rollout machine's revisions and spec edits (part of :mod:`tierguard.operator.rollout`,
kept apart to keep that module readable; pure, like the machine).

A new revision resets the rollout (:func:`start`: the decision shadow, the classifier
canary, or its first stage, :func:`begin_stage`: pre-flight or step 1); a revision rolled
back before is retried only by a retry action; no candidate returns to Pending. An edit of
``rollout.steps`` places the rollout on the new steps (:func:`on_steps`), and a spec valid
again after InvalidSpec resumes the phase it had (:func:`on_spec_valid`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tierguard.api.enums import Phase, Reason
from tierguard.operator import preflight as pf
from tierguard.operator import rollout_clfcanary as ccn
from tierguard.operator import rollout_shadow as rs
from tierguard.operator import specerror
from tierguard.operator import steps as stp
from tierguard.operator.gateupdates import fresh_gate_state
from tierguard.operator.rollout_serving import step_weight
from tierguard.operator.rollout_types import fmt_weight

if TYPE_CHECKING:
    from tierguard.operator.rollout import _Run


def on_spec_valid(run: _Run) -> None:
    """The spec is usable again after an InvalidSpec failure: resume the phase it had."""
    previous = specerror.phase_before_invalid(run.s)
    if previous is None:
        return
    run.transition(
        previous,
        Reason.SPEC_VALID,
        f"the spec is valid again; the rollout continues ({previous.value})",
    )


def on_steps(run: _Run) -> None:
    """Keep the rollout on ``rollout.steps`` after an edit (see :mod:`steps`)."""
    s = run.s
    spec = run.spec
    steps = spec.rollout.steps
    hold = spec.rollout.holdback_percent
    last = len(steps) - 1
    if not s.revision:
        return
    if pf.running(s) or rs.running(s) or ccn.running(s):
        # pre-flight or decision shadow: nothing served yet; step 1 of the new steps follows
        s.step = 0
        return
    if s.phase == Phase.PROMOTED:
        s.step = last
        return
    if s.phase not in (Phase.PROGRESSING, Phase.PAUSED):
        s.step = min(s.step, last)  # RolledBack/Failed: nothing served, index only
        return
    if stp.on_steps(s.step, s.canary_weight, steps, hold):
        return
    before = f"step {s.step + 1}/{s.steps or '?'} at {fmt_weight(s.canary_weight)}"
    new = stp.remap_step(s.canary_weight, steps, hold)
    if abs(stp.served_weight(steps, hold, new) - s.canary_weight) <= 1e-9:
        s.step = new  # same weight: the same stage goes on, clock and evidence kept
    else:
        run.enter_step(new)
        s.no_data_since = None
    msg = (
        f"rollout.steps changed to {[float(x) for x in steps]}: {before} continues as "
        f"step {s.step + 1}/{last + 1} at {fmt_weight(s.canary_weight)}"
    )
    if s.phase == Phase.PAUSED:
        # A pause keeps its own message and reason (why it paused); the edit is an Event.
        run.event("Normal", Reason.STEPS_CHANGED, msg)
    else:
        run.transition(Phase.PROGRESSING, Reason.STEPS_CHANGED, msg)


def on_revision(run: _Run, revision: str) -> None:
    s = run.s
    if not revision:
        if s.revision or s.phase != Phase.PENDING:
            s.revision = ""
            s.step = 0
            s.canary_weight = 0.0
            s.step_started_at = s.earliest_advance_at = s.no_data_since = None
            s.gate_state = {}
            s.tiers = []
            s.verdict_summary = ""
            s.preflight = None
            run.transition(
                Phase.PENDING,
                Reason.NO_CANDIDATE,
                "no route has a candidate: nothing to roll out",
            )
        return
    if revision == s.revision:
        return
    if revision == s.rolled_back_revision:
        s.revision = revision
        s.canary_weight = 0.0
        s.step = 0
        run.transition(
            Phase.ROLLED_BACK,
            Reason.ROLLED_BACK,
            f"revision {revision} was rolled back before; it is retried only by a retry action",
            event_type="Warning",
        )
        return
    why = "new revision" if s.revision else "candidate set"
    run.start(revision, Reason.ROLLOUT_STARTED, why)


def start(run: _Run, revision: str, reason: Reason, why: str) -> None:
    s = run.s
    # A retry of the same revision is a new attempt with a new split salt (new users).
    s.attempt = s.attempt + 1 if reason == Reason.MANUAL_RETRY else 0
    s.revision = revision
    s.rolled_back_revision = ""
    s.gate_state = fresh_gate_state(revision)
    s.tiers = []
    s.verdict_summary = ""
    s.no_data_since = None
    s.last_evaluated_at = None
    s.classifier_shadow = None
    s.classifier_canary = None
    if rs.wanted(run):
        run.enter_step(0)
        rs.begin(run, revision, why)
        return
    if rs.classifier_change(run) and ccn.wanted(run):
        run.enter_step(0)
        ccn.begin(run, f"{why}: revision {revision} changes the classifier")
        return
    rs.adopt(run)
    run.begin_stage(revision, reason, why)


def begin_stage(run: _Run, revision: str, reason: Reason, why: str) -> None:
    """The revision's first stage: pre-flight, or step 1 when it is skipped."""
    s = run.s
    run.enter_step(0)
    s.no_data_since = None
    routes = ", ".join(
        f"{r.tier}: {r.baseline} → {r.candidate}" for r in run.spec.routes if r.candidate
    )
    plan = pf.plan(run.spec, run.gates)
    s.preflight = pf.fresh(run.spec, plan, run.now)
    if plan.skipped is None:
        s.canary_weight = 0.0
        s.earliest_advance_at = None
        rates = pf.describe_rates(plan, run.spec.rollout.preflight.target_pairs_per_hour)
        later = (
            f"; tier(s) {', '.join(plan.unjudged)} without a pairwise gate are judged "
            "from the first weighted step"
            if plan.unjudged
            else ""
        )
        run.transition(
            Phase.PROGRESSING,
            reason,
            f"{why}: pre-flight of revision {revision} ({routes}): 0 users exposed; "
            f"the candidate answers mirrored requests ({rates}) judged pairwise, then "
            f"step 1/{len(run.spec.rollout.steps)} at "
            f"{fmt_weight(step_weight(run.spec, 0))}{later}",
        )
        conf = run.spec.rollout.preflight
        run.event(
            "Normal",
            Reason.PREFLIGHT_STARTED,
            f"pre-flight started with 0 users exposed: mirroring {rates}; a verdict "
            f"needs at least {conf.min_pairs} judged pairs per tier; without one it "
            f"holds at maxSpendUSD {pf.fmt_usd(conf.max_spend_usd)} or maxDuration "
            f"{conf.max_duration}",
        )
        return
    run.transition(
        Phase.PROGRESSING,
        reason,
        f"{why}: rolling out revision {revision} ({routes}) at "
        f"{fmt_weight(s.canary_weight)}, step 1/{len(run.spec.rollout.steps)}",
    )
