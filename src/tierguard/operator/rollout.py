"""The rollout state machine: ``(spec, status, inputs, now) -> (status, actions)``.

Pure: no clock, no I/O, no randomness. Everything a decision depends on is either in the
arguments or in ``status`` (which the operator persists through the API server after every
step), so an operator killed at any moment and started again takes exactly the decisions
it would have taken had it never stopped. The kopf handlers only gather inputs, call
:func:`reconcile` and carry out the returned actions.

Parts of the machine live in their own modules, each a set of functions of the run:
:mod:`~tierguard.operator.rollout_preflight` (the stage at 0 %),
:mod:`~tierguard.operator.rollout_manual` (annotations),
:mod:`~tierguard.operator.rollout_classifier` (classifier content and router holds);
the inputs and actions are in :mod:`~tierguard.operator.rollout_types`, re-exported here.

Phases (``tierguard.api.enums.Phase``)::

    Pending ──new revision──► Progressing ──all gates pass, bake & samples──► next step
        ▲                        │  │  └─ last step (100 %) reached ──► Promoted
        │                        │  └── any gate Fail ──► RolledBack (weight 0)
     no candidate                └── max step duration / no data / pause ──► Paused
                                                         Paused ──resume──► Progressing
    RolledBack ──retry or a new revision──► Progressing (step 1)

Rules worth knowing (each has a unit test):

* A step advances only when the bake time is over *and* every gate of every tier under
  canary is Pass, which needs the minimum samples per arm counted at this step and an
  anytime-valid upper bound on the drop within the allowed drop. Silence is not evidence.
* Any gate Fail rolls back at once, in every phase where the candidate serves traffic
  (Progressing, Paused, Promoted): the weight goes to 0 and the reason names the tier,
  the signal and the figures.
* Missing data (Prometheus unreachable, a query failed, nothing reported) never advances
  a step. After ``rollout.noData.after`` the policy's ``noData.action`` is applied
  (Pause or Rollback) while a stage is in flight; after promotion it is only reported.
* Steps only move forward. A rolled-back revision is retried only by a new revision or an
  explicit ``retry``.
* The last step (100 %) keeps ``holdbackPercent`` of the tier on the baseline as the
  ``holdback`` arm; after promotion a post-promotion watch compares canary with holdback
  (its own e-process per 24 h window, margin = the allowed drop, alpha spent as
  alpha / (k (k + 1)); see :mod:`tierguard.operator.gates`).
* Manual actions come from the ``tierguard.io/action`` annotation with a nonce; each
  (action, nonce) is handled once: the last :data:`MAX_HANDLED_ACTIONS` are kept in
  ``status.handledActions``, so an old annotation that GitOps re-applies (Argo CD
  self-heal) never acts again, in whatever order annotations come back. An action
  without a nonce is handled once per spec generation.
* ``rollout.steps`` edited mid-rollout: the rollout is placed on the new steps by
  :func:`tierguard.operator.steps.remap_step` (never an index past the end, never a
  higher exposure without a gate passing), with a ``StepsChanged`` Event.
* The classifier counts by content (:mod:`tierguard.operator.classifiercontent`): a
  ConfigMap that cannot be read is *unknown*: the revision stays, the stage holds (never
  advances) and ``ClassifierResolved`` is False. A look at which some router replica does
  not report the target classifier digest (or the current revision) adds no evidence and
  never advances; the bake time starts again once every router is on target; after
  ``maxStepDuration`` the rollout pauses.
* A spec the operator cannot use is reported by :mod:`tierguard.operator.specerror`
  (phase Failed, reason InvalidSpec); once the spec is valid again the phase it had
  before continues.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from tierguard.api.classifierchange import ClassifierSnapshot
from tierguard.api.durations import parse_duration
from tierguard.api.enums import (
    Arm,
    ConditionType,
    NoDataAction,
    Phase,
    PromotionMode,
    Reason,
    Verdict,
)
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import (
    MAX_HISTORY,
    Condition,
    HistoryEntry,
    RoutingPolicyStatus,
)
from tierguard.operator import classifiercontent as cc
from tierguard.operator import gates as g
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator import preflight as pf
from tierguard.operator import rollout_classifier as rc
from tierguard.operator import rollout_clfcanary as ccn
from tierguard.operator import rollout_manual as rm
from tierguard.operator import rollout_preflight as rp
from tierguard.operator import rollout_shadow as rs
from tierguard.operator import specerror
from tierguard.operator import steps as stp
from tierguard.operator.conditions import set_condition
from tierguard.operator.rollout_types import (
    ROLLBACK_REASONS,
    Decision,
    EmitEvent,
    GateEvaluated,
    ManualRequest,
    RolledBack,
    RolloutAction,
    SetWeight,
    fmt_time,
    fmt_weight,
)

# --------------------------------------------------------------------------- small helpers


def step_weight(spec: RoutingPolicySpec, step: int) -> float:
    """The canary weight actually served at a step: 100 % keeps the holdback share back."""
    return stp.served_weight(spec.rollout.steps, spec.rollout.holdback_percent, step)


def step_control_arm(spec: RoutingPolicySpec, step: int) -> Arm:
    return stp.control_arm(spec.rollout.steps, step)


def serving_split(spec: RoutingPolicySpec, status: RoutingPolicyStatus) -> tuple[float, Arm]:
    """(weight, control arm) the routers should apply now, derived from status only, so a
    re-render after a restart reproduces exactly what was last decided."""
    if status.phase in (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTED) and status.revision:
        return status.canary_weight, step_control_arm(spec, status.step)
    return 0.0, Arm.CONTROL


def _gated(spec: RoutingPolicySpec, status: RoutingPolicyStatus) -> bool:
    """Whether the candidate serves traffic that gates must watch."""
    if status.phase in (Phase.PROGRESSING, Phase.PAUSED):
        return True
    return status.phase == Phase.PROMOTED and spec.rollout.holdback_percent > 0


def evaluation_due(spec: RoutingPolicySpec, status: RoutingPolicyStatus, now: datetime) -> bool:
    """Whether Prometheus should be read now (every ``rollout.interval`` while gated)."""
    if not status.revision or not _gated(spec, status):
        return False
    if status.last_evaluated_at is None:
        return True
    return now >= status.last_evaluated_at + timedelta(
        seconds=parse_duration(spec.rollout.interval)
    )


def seconds_until_due(spec: RoutingPolicySpec, status: RoutingPolicyStatus, now: datetime) -> float:
    """How long the operator may sleep before the next evaluation (for its loop)."""
    if not status.revision or not _gated(spec, status):
        return float("inf")
    if status.last_evaluated_at is None:
        return 0.0
    due = status.last_evaluated_at + timedelta(seconds=parse_duration(spec.rollout.interval))
    return max(0.0, (due - now).total_seconds())


# --------------------------------------------------------------------------- the machine


class _Run:
    """One call of :func:`reconcile`: a mutable working copy plus the actions it emits."""

    def __init__(
        self,
        spec: RoutingPolicySpec,
        status: RoutingPolicyStatus,
        now: datetime,
        generation: int = 0,
    ) -> None:
        self.spec = spec
        self.generation = generation
        self.initial_split = serving_split(spec, status)
        self.s = status.model_copy(deep=True)
        self.now = now
        self.actions: list[RolloutAction] = []
        self.gates = g.gate_specs(spec)
        self.tiers = g.canary_tiers(spec)
        #: why the classifier's (or the judge prompt's) content is unknown this
        #: reconcile (None: known)
        self.classifier_unknown: str | None = None
        #: the classifier as read this reconcile (None: unknown)
        self.classifier_now: ClassifierSnapshot | None = None

    # -- transitions ------------------------------------------------------------------

    def event(self, type_: Literal["Normal", "Warning"], reason: Reason, message: str) -> None:
        self.actions.append(EmitEvent(type_, reason.value, message))

    def transition(
        self,
        phase: Phase,
        reason: Reason,
        message: str,
        *,
        event_type: Literal["Normal", "Warning"] = "Normal",
    ) -> None:
        """Record a phase/step change: status, a history entry and an Event."""
        s = self.s
        s.phase = phase
        s.message = message
        s.history = [
            *s.history,
            HistoryEntry(
                time=self.now,
                phase=phase,
                step=s.step,
                weight=s.canary_weight,
                reason=reason.value,
                message=message[:2048],
            ),
        ][-MAX_HISTORY:]
        self.event(event_type, reason, message)

    def enter_step(self, step: int) -> None:
        s = self.s
        s.step = step
        s.canary_weight = step_weight(self.spec, step)
        s.step_started_at = self.now
        s.earliest_advance_at = self.now + timedelta(
            seconds=parse_duration(self.spec.rollout.bake_time)
        )
        s.gate_state = g.rebase_step(s.gate_state)

    def start(self, revision: str, reason: Reason, why: str) -> None:
        s = self.s
        # A retry of the same revision is a new attempt with a new split salt (new users).
        s.attempt = s.attempt + 1 if reason == Reason.MANUAL_RETRY else 0
        s.revision = revision
        s.rolled_back_revision = ""
        s.gate_state = g.fresh_gate_state(revision)
        s.tiers = []
        s.verdict_summary = ""
        s.no_data_since = None
        s.last_evaluated_at = None
        s.classifier_shadow = None
        s.classifier_canary = None
        if rs.wanted(self):
            self.enter_step(0)
            rs.begin(self, revision, why)
            return
        if rs.classifier_change(self) and ccn.wanted(self):
            self.enter_step(0)
            ccn.begin(self, f"{why}: revision {revision} changes the classifier")
            return
        rs.adopt(self)
        self.begin_stage(revision, reason, why)

    def begin_stage(self, revision: str, reason: Reason, why: str) -> None:
        """The revision's first stage: pre-flight, or step 1 when it is skipped."""
        s = self.s
        self.enter_step(0)
        s.no_data_since = None
        routes = ", ".join(
            f"{r.tier}: {r.baseline} → {r.candidate}" for r in self.spec.routes if r.candidate
        )
        plan = pf.plan(self.spec, self.gates)
        s.preflight = pf.fresh(self.spec, plan, self.now)
        if plan.skipped is None:
            s.canary_weight = 0.0
            s.earliest_advance_at = None
            rates = pf.describe_rates(plan, self.spec.rollout.preflight.target_pairs_per_hour)
            later = (
                f"; tier(s) {', '.join(plan.unjudged)} without a pairwise gate are judged "
                "from the first weighted step"
                if plan.unjudged
                else ""
            )
            self.transition(
                Phase.PROGRESSING,
                reason,
                f"{why}: pre-flight of revision {revision} ({routes}): 0 users exposed; "
                f"the candidate answers mirrored requests ({rates}) judged pairwise, then "
                f"step 1/{len(self.spec.rollout.steps)} at "
                f"{fmt_weight(step_weight(self.spec, 0))}{later}",
            )
            conf = self.spec.rollout.preflight
            self.event(
                "Normal",
                Reason.PREFLIGHT_STARTED,
                f"pre-flight started with 0 users exposed: mirroring {rates}; a verdict "
                f"needs at least {conf.min_pairs} judged pairs per tier; without one it "
                f"holds at maxSpendUSD {pf.fmt_usd(conf.max_spend_usd)} or maxDuration "
                f"{conf.max_duration}",
            )
            return
        self.transition(
            Phase.PROGRESSING,
            reason,
            f"{why}: rolling out revision {revision} ({routes}) at "
            f"{fmt_weight(s.canary_weight)}, step 1/{len(self.spec.rollout.steps)}",
        )

    def advance(self, reason: Reason, why: str) -> None:
        s = self.s
        last = len(self.spec.rollout.steps) - 1
        if s.step >= last:
            # Only reachable when the first step already is 100 %: gates passed there.
            s.earliest_advance_at = None
            self.transition(
                Phase.PROMOTED, Reason.PROMOTED, f"{why}; promoted at step {s.step + 1}"
            )
            return
        self.enter_step(s.step + 1)
        s.no_data_since = None
        if s.step == last:
            s.earliest_advance_at = None
            hold = self.spec.rollout.holdback_percent
            tail = (
                f"; {hold:g}% holdback stays on the baseline and is watched"
                if hold > 0
                else "; no holdback: gates stop"
            )
            self.transition(
                Phase.PROMOTED,
                Reason.PROMOTED if reason == Reason.STEP_ADVANCED else reason,
                f"{why}; promoted: candidate serves {fmt_weight(s.canary_weight)}{tail}",
            )
        else:
            self.transition(
                Phase.PROGRESSING,
                reason,
                f"{why}; step {s.step + 1}/{last + 1} at {fmt_weight(s.canary_weight)}",
            )

    def rollback(self, reason: Reason, message: str) -> None:
        if reason not in ROLLBACK_REASONS:
            raise ValueError(
                f"{reason} is not in ROLLBACK_REASONS (its counter would be born at 1)"
            )
        s = self.s
        s.canary_weight = 0.0
        s.rolled_back_revision = s.revision
        s.earliest_advance_at = None
        s.no_data_since = None
        self.transition(Phase.ROLLED_BACK, reason, message, event_type="Warning")
        self.actions.append(RolledBack(reason.value))

    def pause(self, reason: Reason, message: str, *, warning: bool = True) -> None:
        self.transition(
            Phase.PAUSED, reason, message, event_type="Warning" if warning else "Normal"
        )

    # -- spec edits -------------------------------------------------------------------

    def on_spec_valid(self) -> None:
        """The spec is usable again after an InvalidSpec failure: resume the phase it had."""
        previous = specerror.phase_before_invalid(self.s)
        if previous is None:
            return
        self.transition(
            previous,
            Reason.SPEC_VALID,
            f"the spec is valid again; the rollout continues ({previous.value})",
        )

    def on_steps(self) -> None:
        """Keep the rollout on ``rollout.steps`` after an edit (see :mod:`steps`)."""
        s = self.s
        spec = self.spec
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
            self.enter_step(new)
            s.no_data_since = None
        msg = (
            f"rollout.steps changed to {[float(x) for x in steps]}: {before} continues as "
            f"step {s.step + 1}/{last + 1} at {fmt_weight(s.canary_weight)}"
        )
        if s.phase == Phase.PAUSED:
            # A pause keeps its own message and reason (why it paused); the edit is an Event.
            self.event("Normal", Reason.STEPS_CHANGED, msg)
        else:
            self.transition(Phase.PROGRESSING, Reason.STEPS_CHANGED, msg)

    # -- revision ----------------------------------------------------------------------

    def on_classifier(
        self, lookup: cc.ClassifierLookup, judge_prompt: jpc.JudgePromptLookup = jpc.BUILTIN
    ) -> None:
        rc.on_classifier(self, lookup, judge_prompt)

    def on_revision(self, revision: str) -> None:
        s = self.s
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
                self.transition(
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
            self.transition(
                Phase.ROLLED_BACK,
                Reason.ROLLED_BACK,
                f"revision {revision} was rolled back before; it is retried only by a retry action",
                event_type="Warning",
            )
            return
        why = "new revision" if s.revision else "candidate set"
        self.start(revision, Reason.ROLLOUT_STARTED, why)

    # -- manual actions (operator/rollout_manual.py) --------------------------------

    def on_request(self, request: ManualRequest) -> None:
        rm.on_request(self, request)

    # -- gates ----------------------------------------------------------------------

    def on_observations(self, obs: g.Observations) -> None:
        s = self.s
        spec = self.spec
        if not _gated(spec, s):
            return
        if rs.running(s):
            rs.on_shadow(self, obs)
            return
        if ccn.running(s):
            ccn.on_canary(self, obs)
            return
        if pf.running(s):
            self.on_preflight(obs)
            return
        control_arm = step_control_arm(spec, s.step)
        hold = None
        if obs.routers is not None and obs.error is None:
            flowing = any(r.requests_flowing for r in obs.gates.values())
            hold = cc.routers_hold(obs.routers, s.classifier_digest, s.revision, flowing)
        if hold is None:
            rc.hold_ended(self)
            s.gate_state = g.update_gates(s.gate_state, self.gates, obs, control_arm)
        else:
            s.gate_state = g.skip_look(s.gate_state)
        outcomes = g.evaluate_gates(
            s.gate_state,
            self.gates,
            obs,
            spec.analysis.confidence,
            spec.rollout.min_samples_per_arm,
        )
        s.last_evaluated_at = self.now
        s.tiers = g.tier_statuses(outcomes, self.tiers)
        s.verdict_summary = g.verdict_summary(s.tiers)
        for o in outcomes:
            if o.slice is None:  # the operator's gate metric stays per (tier, signal)
                self.actions.append(
                    GateEvaluated(o.tier, o.signal.value, o.verdict, o.upper_bound, o.allowed)
                )

        failed = [o for o in outcomes if o.verdict == Verdict.FAIL]
        if failed:
            f = failed[0]
            more = f" (and {len(failed) - 1} more gate(s))" if len(failed) > 1 else ""
            self.rollback(
                Reason.GATE_FAILED,
                f"{f.where} failed on {f.signal.value} at "
                f"{fmt_weight(s.canary_weight)}: {f.figures()}{more}",
            )
            return
        if not self.gates:
            s.message = "no SLO gates for the tiers under canary: cannot judge the rollout"
            return
        if hold is not None:
            rc.hold_for_routers(self, hold)
            return
        if self.classifier_unknown is not None:
            if s.phase == Phase.PROGRESSING:
                s.message = self.classifier_unknown
            return

        no_data = [o for o in outcomes if o.verdict == Verdict.NO_DATA]
        if no_data:
            if self.hold_without_data(obs, no_data):
                return
        elif s.no_data_since is not None:
            gap = (self.now - s.no_data_since).total_seconds()
            s.no_data_since = None
            self.event("Normal", Reason.DATA_RESUMED, f"metrics are back after {gap:.0f}s")

        if s.phase == Phase.PROMOTED:
            s.message = f"promoted; watching canary against holdback: {s.verdict_summary}"
            return
        if s.phase == Phase.PAUSED:
            return
        self._progress(outcomes, bool(no_data))

    # -- pre-flight (operator/rollout_preflight.py) ---------------------------------

    def end_preflight(self, reason: Reason, why: str) -> None:
        rp.end_preflight(self, reason, why)

    def on_preflight(self, obs: g.Observations) -> None:
        rp.on_preflight(self, obs)

    def hold_without_data(self, obs: g.Observations, no_data: Sequence[g.GateOutcome]) -> bool:
        """Hold (and after ``noData.after`` act). True if a transition happened."""
        s = self.s
        spec = self.spec
        unreachable = obs.error is not None or any(o.provider_error for o in no_data)
        reason = Reason.PROMETHEUS_UNREACHABLE if unreachable else Reason.NO_DATA
        what = (
            f"Prometheus query failed ({obs.error or no_data[0].message})"
            if unreachable
            else f"no data for {', '.join(o.key for o in no_data)}"
        )
        if s.no_data_since is None:
            s.no_data_since = self.now
            self.event("Warning", reason, f"{what}: holding at {fmt_weight(s.canary_weight)}")
        held = (self.now - s.no_data_since).total_seconds()
        limit = parse_duration(spec.rollout.no_data.after)
        if s.phase != Phase.PAUSED:  # a pause keeps the message that says why it paused
            # Times, not a countdown: the message (and so status) stays the same while
            # nothing changes, so an idle policy causes no writes.
            acts = s.no_data_since + timedelta(seconds=limit)
            s.message = (
                f"{what}: holding since {fmt_time(s.no_data_since)}; noData.after "
                f"{spec.rollout.no_data.after} ({spec.rollout.no_data.action.value}) "
                f"at {fmt_time(acts)}"
            )
        if s.phase != Phase.PROGRESSING or held < limit:
            return False
        msg = f"{what} for {held:.0f}s (noData.after {spec.rollout.no_data.after})"
        if spec.rollout.no_data.action == NoDataAction.ROLLBACK:
            self.rollback(reason, f"{msg}: rolled back")
        else:
            self.pause(reason, f"{msg}: paused at {fmt_weight(s.canary_weight)}")
        return True

    def _progress(self, outcomes: Sequence[g.GateOutcome], no_data: bool) -> None:
        s = self.s
        spec = self.spec
        now = self.now
        all_pass = bool(outcomes) and all(o.lets_advance for o in outcomes)
        baked = s.earliest_advance_at is None or now >= s.earliest_advance_at
        if all_pass and baked and not no_data:
            why = f"every tier passed at {fmt_weight(s.canary_weight)} ({s.verdict_summary})"
            if spec.rollout.promotion == PromotionMode.MANUAL:
                self.pause(
                    Reason.AWAITING_PROMOTION,
                    f"{why}; waiting for a promote action",
                    warning=False,
                )
            else:
                self.advance(Reason.STEP_ADVANCED, why)
            return
        max_step = parse_duration(spec.rollout.max_step_duration)
        started = s.step_started_at or now
        if (now - started).total_seconds() >= max_step:
            pending = [o for o in outcomes if not o.lets_advance]
            detail = "; ".join(f"{o.key}: {o.message}" for o in pending[:3])
            self.pause(
                Reason.MAX_STEP_DURATION_EXCEEDED,
                f"not enough evidence after {spec.rollout.max_step_duration} at "
                f"{fmt_weight(s.canary_weight)}: {detail}",
            )
            return
        if not baked and s.earliest_advance_at is not None:
            s.message = (
                f"baking at {fmt_weight(s.canary_weight)} until "
                f"{fmt_time(s.earliest_advance_at)}; {s.verdict_summary}"
            )
        elif not no_data:
            waiting = [o for o in outcomes if o.verdict == Verdict.INCONCLUSIVE and o.blocking]
            s.message = (
                "waiting for evidence: " + "; ".join(f"{o.key}: {o.message}" for o in waiting[:3])
            )[:4096]

    # -- conditions -------------------------------------------------------------------

    def finish(self, generation: int) -> RoutingPolicyStatus:
        s = self.s
        s.observed_generation = generation
        s.steps = len(self.spec.rollout.steps)
        s.step_display = f"{s.step + 1}/{s.steps}" if s.revision else ""
        if pf.running(s):
            s.step_display = f"PreFlight/{s.steps}"
        if rs.running(s):
            s.step_display = f"Shadow/{s.steps}"
        cc = s.classifier_canary
        if ccn.running(s) and cc is not None:
            s.step_display = f"Classifier {cc.step + 1}/{len(ccn.weights(self))}"
        s.conditions = conditions_for(s, self.now, generation)
        split = serving_split(self.spec, s)
        if split != self.initial_split:
            self.actions.insert(0, SetWeight(*split))
        return s


def _last_reason(s: RoutingPolicyStatus) -> str:
    return s.history[-1].reason if s.history else Reason.RECONCILED.value


def conditions_for(s: RoutingPolicyStatus, now: datetime, generation: int) -> list[Condition]:
    """Progressing and Degraded from the phase (Ready is the handler's: objects applied)."""
    reason = _last_reason(s)
    msg = s.message
    conds = s.conditions
    progressing = s.phase == Phase.PROGRESSING
    if progressing and rs.running(s):
        p_reason = Reason.CLASSIFIER_SHADOW.value
    elif progressing and ccn.running(s):
        p_reason = Reason.CLASSIFIER_CANARY.value
    elif progressing and pf.running(s):
        p_reason = Reason.NO_DATA.value if s.no_data_since is not None else Reason.PREFLIGHT.value
    elif progressing:
        p_reason = (
            Reason.NO_DATA.value
            if s.no_data_since is not None
            else Reason.BAKING.value
            if s.earliest_advance_at is not None and now < s.earliest_advance_at
            else Reason.GATES_INCONCLUSIVE.value
            if s.tiers
            else reason
        )
    else:
        p_reason = reason
    conds = set_condition(
        conds, ConditionType.PROGRESSING, progressing, p_reason, msg, now, generation
    )
    degraded = (
        s.phase in (Phase.ROLLED_BACK, Phase.FAILED)
        or s.no_data_since is not None
        or (
            s.phase == Phase.PAUSED
            and reason
            in (
                Reason.NO_DATA.value,
                Reason.PROMETHEUS_UNREACHABLE.value,
                Reason.MAX_STEP_DURATION_EXCEEDED.value,
                Reason.PREFLIGHT_CAP_REACHED.value,
            )
        )
    )
    d_reason = reason if degraded else Reason.RECONCILED.value
    if s.no_data_since is not None and s.phase not in (Phase.ROLLED_BACK, Phase.PAUSED):
        d_reason = Reason.NO_DATA.value
    conds = set_condition(
        conds, ConditionType.DEGRADED, degraded, d_reason, msg if degraded else "", now, generation
    )
    return conds


def reconcile(
    spec: RoutingPolicySpec,
    status: RoutingPolicyStatus | None,
    now: datetime,
    *,
    generation: int = 0,
    request: ManualRequest | None = None,
    observations: g.Observations | None = None,
    classifier: cc.ClassifierLookup | None = None,
    judge_prompt: jpc.JudgePromptLookup | None = None,
) -> Decision:
    """Decide the next status and the actions to carry out.

    Order: recovery from an invalid spec, a new revision (it resets the rollout), an edit
    of the steps, then a manual action, then the gates (only if ``observations`` were
    taken, i.e. :func:`evaluation_due` said so). ``classifier``: what the controller read
    of a ConfigMap classifier (None: not read, which for a ConfigMap classifier is unknown);
    ``judge_prompt`` likewise for a judge prompt ConfigMap.
    """
    run = _Run(spec, status or RoutingPolicyStatus(), now, generation)
    run.on_spec_valid()
    run.on_classifier(
        classifier
        if classifier is not None
        else cc.lookup(spec, None, "the operator did not read it"),
        judge_prompt
        if judge_prompt is not None
        else jpc.lookup(spec, None, "the operator did not read it"),
    )
    run.on_steps()
    if request is not None and request.action:
        run.on_request(request)
    if observations is not None and run.s.revision:
        run.on_observations(observations)
    return Decision(run.finish(generation), run.actions)


__all__ = [
    "ROLLBACK_REASONS",
    "Decision",
    "EmitEvent",
    "GateEvaluated",
    "ManualRequest",
    "RolledBack",
    "RolloutAction",
    "SetWeight",
    "conditions_for",
    "evaluation_due",
    "reconcile",
    "seconds_until_due",
    "serving_split",
    "step_control_arm",
    "step_weight",
]
