"""The rollout state machine: ``(spec, status, inputs, now) -> (status, actions)``.

Pure: no clock, no I/O, no randomness. Everything a decision depends on is either in the
arguments or in ``status`` (which the operator persists through the API server after every
step), so an operator killed at any moment and started again takes exactly the decisions
it would have taken had it never stopped. The kopf handlers only gather inputs, call
:func:`reconcile` and carry out the returned actions.

Parts of the machine live in their own modules, each a set of functions of the run:
:mod:`~tierguard.operator.rollout_revision` (a new revision, its first stage, spec edits),
:mod:`~tierguard.operator.rollout_gates` (gate looks, no data, step advance),
:mod:`~tierguard.operator.rollout_preflight` (the stage at 0 %),
:mod:`~tierguard.operator.rollout_shadow` (the decision shadow),
:mod:`~tierguard.operator.rollout_clfcanary` (the classifier canary),
:mod:`~tierguard.operator.rollout_manual` (annotations),
:mod:`~tierguard.operator.rollout_classifier` (classifier content and router holds);
the inputs and actions are in :mod:`~tierguard.operator.rollout_types`, what is served and
when gates are read in :mod:`~tierguard.operator.rollout_serving`, the conditions in
:mod:`~tierguard.operator.rollout_conditions`; all re-exported here.

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

from tierguard.api import stickiness as stk
from tierguard.api.classifierchange import ClassifierSnapshot
from tierguard.api.durations import parse_duration
from tierguard.api.enums import Arm as Arm
from tierguard.api.enums import ConditionType as ConditionType
from tierguard.api.enums import NoDataAction as NoDataAction
from tierguard.api.enums import Phase, Reason
from tierguard.api.enums import PromotionMode as PromotionMode
from tierguard.api.enums import Verdict as Verdict
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import MAX_HISTORY, HistoryEntry, RoutingPolicyStatus
from tierguard.api.status import Condition as Condition
from tierguard.operator import classifiercontent as cc
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator import preflight as pf
from tierguard.operator import rollout_classifier as rc
from tierguard.operator import rollout_clfcanary as ccn
from tierguard.operator import rollout_gates as rgt
from tierguard.operator import rollout_manual as rm
from tierguard.operator import rollout_preflight as rp
from tierguard.operator import rollout_revision as rv
from tierguard.operator import rollout_shadow as rs
from tierguard.operator import specerror as specerror
from tierguard.operator import steps as stp  # noqa: F401 (importable from here, as before)
from tierguard.operator.conditions import set_condition as set_condition
from tierguard.operator.gatespecs import canary_tiers, gate_specs
from tierguard.operator.gatetypes import GateOutcome, Observations
from tierguard.operator.gateupdates import rebase_step
from tierguard.operator.rollout_conditions import _last_reason as _last_reason
from tierguard.operator.rollout_conditions import conditions_for
from tierguard.operator.rollout_serving import (
    evaluation_due,
    seconds_until_due,
    serving_split,
    step_control_arm,
    step_weight,
)
from tierguard.operator.rollout_serving import gated as _gated  # noqa: F401 (re-export)
from tierguard.operator.rollout_types import (
    ROLLBACK_REASONS,
    Decision,
    EmitEvent,
    GateEvaluated,
    ManualRequest,
    RolledBack,
    RolloutAction,
    SetWeight,
    fmt_weight,
)
from tierguard.operator.rollout_types import fmt_time as fmt_time

# The ``X as X`` imports keep names this module had before its split importable from here
# (tests use some); the functions named in ``__all__`` are its API.

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
        self.gates = gate_specs(spec)
        self.tiers = canary_tiers(spec)
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
        s.gate_state = rebase_step(s.gate_state)

    def start(self, revision: str, reason: Reason, why: str) -> None:
        rv.start(self, revision, reason, why)

    def begin_stage(self, revision: str, reason: Reason, why: str) -> None:
        """The revision's first stage: pre-flight, or step 1 when it is skipped."""
        rv.begin_stage(self, revision, reason, why)

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

    # -- spec edits and revisions (operator/rollout_revision.py) ---------------------

    def on_spec_valid(self) -> None:
        rv.on_spec_valid(self)

    def on_steps(self) -> None:
        rv.on_steps(self)

    # -- classifier content (operator/rollout_classifier.py) -------------------------

    def on_classifier(
        self, lookup: cc.ClassifierLookup, judge_prompt: jpc.JudgePromptLookup = jpc.BUILTIN
    ) -> None:
        rc.on_classifier(self, lookup, judge_prompt)

    def on_revision(self, revision: str) -> None:
        rv.on_revision(self, revision)

    # -- manual actions (operator/rollout_manual.py) --------------------------------

    def on_request(self, request: ManualRequest) -> None:
        rm.on_request(self, request)

    # -- gates (operator/rollout_gates.py) ------------------------------------------

    def on_observations(self, obs: Observations) -> None:
        rgt.on_observations(self, obs)

    def hold_without_data(self, obs: Observations, no_data: Sequence[GateOutcome]) -> bool:
        """Hold (and after ``noData.after`` act). True if a transition happened."""
        return rgt.hold_without_data(self, obs, no_data)

    # -- pre-flight (operator/rollout_preflight.py) ---------------------------------

    def end_preflight(self, reason: Reason, why: str) -> None:
        rp.end_preflight(self, reason, why)

    def on_preflight(self, obs: Observations) -> None:
        rp.on_preflight(self, obs)

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
        s.stickiness = stk.observed(self.spec.rollout.stickiness, s.stickiness, self.now)
        s.conditions = conditions_for(s, self.now, generation)
        split = serving_split(self.spec, s)
        if split != self.initial_split:
            self.actions.insert(0, SetWeight(*split))
        return s


def reconcile(
    spec: RoutingPolicySpec,
    status: RoutingPolicyStatus | None,
    now: datetime,
    *,
    generation: int = 0,
    request: ManualRequest | None = None,
    observations: Observations | None = None,
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
