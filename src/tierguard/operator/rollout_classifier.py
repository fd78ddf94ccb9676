"""The rollout machine's classifier rules (part of :mod:`tierguard.operator.rollout`,
kept apart to keep that module readable). Pure, like the machine.

* :func:`on_classifier`: the classifier's content as read this reconcile. A ConfigMap
  classifier's content digest is part of the revision, so a new digest is a new revision
  (from the first step) and the same bytes under another name are not; content that could
  not be read is *unknown*: no new revision, no restart, ``ClassifierResolved`` False
  with the reason, one Warning Event, and the stage holds (the machine never advances it).
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
from tierguard.operator.classifiercontent import ClassifierLookup
from tierguard.operator.conditions import set_condition
from tierguard.operator.revision import compute_revision

if TYPE_CHECKING:
    from tierguard.operator.rollout import _Run


def on_classifier(run: _Run, lookup: ClassifierLookup) -> None:
    """Adopt the content read (a new revision when it changed), or hold on unknown."""
    s = run.s
    if run.spec.classifier.source.config_map_ref is None:
        s.classifier_digest = ""
        _read(run, "")
        run.on_revision(compute_revision(run.spec))
        _no_rollout(run)
        return
    if lookup.unknown:
        where = (
            f"step {s.step + 1} (revision {s.revision}, classifier {s.classifier_digest})"
            if s.revision
            else "before the first step"
        )
        msg = (
            f"cannot read the classifier ({lookup.source}): {lookup.error}; its content "
            f"is unknown, so the rollout holds at {where} and the routers keep the "
            "frozen copy they run"
        )[:4096]
        run.classifier_unknown = msg
        if s.phase in (Phase.PENDING, Phase.PROGRESSING):
            s.message = msg
        if _condition(run, False, Reason.CLASSIFIER_UNKNOWN, msg):
            run.event("Warning", Reason.CLASSIFIER_UNKNOWN, msg)
        return
    s.classifier_digest = lookup.digest
    _condition(
        run, True, Reason.CLASSIFIER_READ, f"classifier {lookup.digest} from {lookup.source}"
    )
    _read(run, lookup.digest)
    run.on_revision(compute_revision(run.spec, lookup.digest))
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


def _condition(run: _Run, ok: bool, reason: Reason, message: str) -> bool:
    """Set ``ClassifierResolved``; True if its status flipped (or it is new)."""
    ctype = ConditionType.CLASSIFIER_RESOLVED
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
