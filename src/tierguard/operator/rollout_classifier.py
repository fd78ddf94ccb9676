"""The rollout machine's classifier rules (part of :mod:`tierguard.operator.rollout`,
kept apart to keep that module readable). Pure, like the machine.

* :func:`on_classifier`: the classifier's content as read this reconcile. A ConfigMap
  classifier's content digest is part of the revision, so a new digest is a new revision
  (from the first step) and the same bytes under another name are not; content that could
  not be read is *unknown*: no new revision, no restart, ``ClassifierResolved`` False
  with the reason, one Warning Event, and the stage holds (the machine never advances it).
  The judge prompt template in a ConfigMap (:mod:`tierguard.operator.judgepromptcontent`)
  follows the same rules, with ``JudgePromptResolved``; a template that is not usable
  (unknown or missing placeholders) is unknown too, with the template's error.
* :func:`hold_for_routers`: a look at which some router does not report the target
  classifier digest (or the current revision) counts for nothing; after
  ``maxStepDuration`` the rollout pauses. :func:`hold_ended`: the first look with every
  router on target starts the bake time again. Held looks change nothing in status (the
  hold's message stays, no timestamp moves), so a held policy makes no API writes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from tierguard.api.durations import parse_duration
from tierguard.api.enums import ConditionType, Phase, Reason
from tierguard.operator import decisionshadow as ds
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator.classifiercontent import ClassifierLookup
from tierguard.operator.conditions import set_condition
from tierguard.operator.judgepromptcontent import JudgePromptLookup
from tierguard.operator.revision import compute_revision

if TYPE_CHECKING:
    from tierguard.operator.rollout import _Run


def on_classifier(
    run: _Run, lookup: ClassifierLookup, judge_prompt: JudgePromptLookup = jpc.BUILTIN
) -> None:
    """Adopt the content read (a new revision when it changed), or hold on unknown.
    The judge prompt's content (``judge.promptConfigMapRef``) is part of the revision
    too and follows the same rules: both must be known for the revision to move."""
    s = run.s
    known = True
    classifier_digest = judge_prompt_digest = ""
    if run.spec.classifier.source.config_map_ref is None:
        pass
    elif lookup.unknown:
        _unknown(
            run,
            f"cannot read the classifier ({lookup.source}): {lookup.error}",
            ConditionType.CLASSIFIER_RESOLVED,
            Reason.CLASSIFIER_UNKNOWN,
        )
        known = False
    else:
        classifier_digest = lookup.digest
        _condition(
            run,
            ConditionType.CLASSIFIER_RESOLVED,
            True,
            Reason.CLASSIFIER_READ,
            f"classifier {lookup.digest} from {lookup.source}",
        )
    if jpc.reference(run.spec) is None:
        pass
    elif judge_prompt.unknown:
        _unknown(
            run,
            f"cannot use the judge prompt ({judge_prompt.source}): {judge_prompt.error}",
            ConditionType.JUDGE_PROMPT_RESOLVED,
            Reason.JUDGE_PROMPT_UNKNOWN,
        )
        known = False
    else:
        judge_prompt_digest = judge_prompt.digest
        _condition(
            run,
            ConditionType.JUDGE_PROMPT_RESOLVED,
            True,
            Reason.JUDGE_PROMPT_READ,
            f"judge prompt {judge_prompt.digest} from {judge_prompt.source}",
        )
    if not known:
        # neither digest moves while one content is unknown: status keeps naming (and the
        # routers keep mounting) the frozen copies of the revision that runs
        return
    s.classifier_digest, s.judge_prompt_digest = classifier_digest, judge_prompt_digest
    _read(run, classifier_digest)
    run.on_revision(compute_revision(run.spec, classifier_digest, judge_prompt_digest))
    _no_rollout(run)


def _read(run: _Run, digest: str) -> None:
    """The classifier read this reconcile; the first one a policy has decides at once."""
    run.classifier_now = ds.snapshot(run.spec, digest)
    if run.s.stable_classifier is None:
        run.s.stable_classifier = run.classifier_now


def _no_rollout(run: _Run) -> None:
    """Without a revision (no candidate) nothing is rolled out: the classifier decides."""
    if not run.s.revision:
        run.s.stable_classifier = run.classifier_now


def _unknown(run: _Run, what: str, ctype: ConditionType, reason: Reason) -> None:
    """Content that could not be read (or used): hold where the rollout is."""
    s = run.s
    where = (
        f"step {s.step + 1} (revision {s.revision}, classifier {s.classifier_digest or '-'}"
        f"{', judge prompt ' + s.judge_prompt_digest if s.judge_prompt_digest else ''})"
        if s.revision
        else "before the first step"
    )
    msg = (
        f"{what}; its content is unknown, so the rollout holds at {where} and the routers "
        "keep the frozen copy they run"
    )[:4096]
    if run.classifier_unknown is None:
        run.classifier_unknown = msg
    if s.phase in (Phase.PENDING, Phase.PROGRESSING):
        s.message = run.classifier_unknown
    if _condition(run, ctype, False, reason, msg):
        run.event("Warning", reason, msg)


def _condition(run: _Run, ctype: ConditionType, ok: bool, reason: Reason, message: str) -> bool:
    """Set ``ctype``; True if its status flipped (or it is new)."""
    before = next((c for c in run.s.conditions if c.type == ctype), None)
    run.s.conditions = set_condition(
        run.s.conditions, ctype, ok, reason.value, message, run.now, run.generation
    )
    return before is None or before.status != ("True" if ok else "False")


#: The end of a hold's status message: the persisted sign that the last look was held.
HOLD_SUFFIX = ": the stage counts only while every router runs the target"


def hold_ended(run: _Run) -> None:
    """The first look with every router on target after a hold: the bake time starts
    again from now (the evidence already restarted: held looks were skipped)."""
    s = run.s
    if s.phase != Phase.PROGRESSING or not s.message.endswith(HOLD_SUFFIX):
        return
    bake = run.now + timedelta(seconds=parse_duration(run.spec.rollout.bake_time))
    s.earliest_advance_at = max(s.earliest_advance_at or bake, bake)


def hold_for_routers(run: _Run, why: str) -> None:
    """A router runs another classifier (or config) than the one rolled out: this look
    counted for nothing, and the bake time starts again once all are on target."""
    s = run.s
    spec = run.spec
    msg = f"{why}{HOLD_SUFFIX}"
    if s.phase != Phase.PROGRESSING:
        if s.phase == Phase.PROMOTED:
            s.message = f"promoted; watch holds: {msg}"
        return
    started = s.step_started_at or run.now
    if (run.now - started).total_seconds() >= parse_duration(spec.rollout.max_step_duration):
        run.pause(
            Reason.ROUTERS_NOT_ON_TARGET,
            f"{msg}; not converged after maxStepDuration {spec.rollout.max_step_duration}: "
            f"paused at {s.canary_weight:g}%",
        )
        return
    if not s.message.startswith(why):
        run.event("Warning", Reason.ROUTERS_NOT_ON_TARGET, msg[:1024])
    s.message = msg[:4096]
