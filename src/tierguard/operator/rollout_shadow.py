"""The rollout machine's decision shadow (part of :mod:`tierguard.operator.rollout`, kept
apart to keep that module readable; pure, like the machine).

A revision that changes the classifier (:func:`~tierguard.operator.decisionshadow.changed`
against ``status.stableClassifier``) starts with a decision shadow instead of its first
stage: the model split stays what it was, the routers load both classifiers and the stable one
decides (:func:`tierguard.operator.render_routerconfig.router_config`), and each look reads the
transition matrix (:class:`~tierguard.operator.decisionshadow.TransitionCounts`) into
``status.classifierShadow``. It ends when ``rollout.classifierShadow.minRequests`` were
counted and ``minDuration`` has passed, or at ``maxDuration`` with what it has (a Warning
says it fell short), or by a manual promote. With ``maxDownShare`` set, a shadow that
finds more requests moving to a cheaper tier pauses first (reason ``ClassifierShadowMoved``)
until a person resumes, promotes or aborts. Then the candidate becomes the stable
classifier (it decides from now on) and the revision's rollout begins as any other
(pre-flight or step 1). An abort or a rollback during the shadow leaves the stable
classifier deciding: the rollback returns to the previous digest.

Not shadowed (the new classifier decides at once, as before): the first classifier a
policy ever had (nothing to compare with), a change of the tier names (a matrix needs the
same tiers), ``rollout.classifierShadow.enabled: false``, a policy without a candidate
(no revision: nothing is rolled out), and content that cannot be read (unknown: the
rollout holds, see :mod:`~tierguard.operator.rollout_classifier`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from tierguard.api.classifierchange import ClassifierShadowStatus, ClassifierSnapshot
from tierguard.api.durations import parse_duration
from tierguard.api.enums import Phase, Reason
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import decisionshadow as ds
from tierguard.operator import rollout_clfcanary as ccn
from tierguard.operator.rollout_clfcanary import adopt as adopt
from tierguard.operator.rollout_types import fmt_time

if TYPE_CHECKING:
    from tierguard.operator.gatetypes import Observations
    from tierguard.operator.rollout import _Run


def running(status: RoutingPolicyStatus) -> bool:
    """Whether the revision is in its decision shadow (weight 0, the stable classifier
    decides, the candidate scores)."""
    sh = status.classifier_shadow
    return (
        bool(status.revision)
        and sh is not None
        and sh.running
        and status.phase in (Phase.PROGRESSING, Phase.PAUSED)
    )


def classifier_change(run: _Run) -> bool:
    """Whether the revision starting now changes the classifier in a way the stable and
    the new one can be compared (the same tiers)."""
    stable, now = run.s.stable_classifier, run.classifier_now
    if stable is None or now is None:
        return False
    return ds.changed(stable, now) and ds.tier_names(stable) == ds.tier_names(now)


def wanted(run: _Run) -> bool:
    """Whether the revision starting now must begin with a decision shadow."""
    return run.spec.rollout.classifier_shadow.enabled and classifier_change(run)


def begin(run: _Run, revision: str, why: str) -> None:
    """Start the decision shadow of ``revision`` (called by
    :func:`~tierguard.operator.rollout_revision.start`)."""
    s = run.s
    conf = run.spec.rollout.classifier_shadow
    stable: ClassifierSnapshot | None = s.stable_classifier
    now_snap = run.classifier_now
    assert stable is not None and now_snap is not None
    # the model split stays what the routers served before the change (see the module
    # docstring of rollout_clfcanary: the classifier is judged with the tiers' models as
    # they are)
    s.canary_weight = run.initial_split[0]
    s.earliest_advance_at = None
    s.preflight = None
    s.classifier_shadow = ClassifierShadowStatus(
        running=True,
        stable_digest=stable.digest,
        candidate_digest=now_snap.digest,
        started_at=run.now,
        min_requests=conf.min_requests,
        earliest_end_at=run.now + timedelta(seconds=parse_duration(conf.min_duration)),
        message="no classified request counted yet",
    )
    what = _what(stable, now_snap)
    run.transition(
        Phase.PROGRESSING,
        Reason.ROLLOUT_STARTED,
        f"{why}: revision {revision} changes the classifier ({what}): decision shadow, "
        "no user is served by the new classifier: both score every request, the stable one "
        "decides",
    )
    run.event(
        "Normal",
        Reason.CLASSIFIER_SHADOW_STARTED,
        f"decision shadow started ({what}): it ends after {conf.min_requests} classified "
        f"requests and {conf.min_duration} (at the latest after {conf.max_duration}); then "
        "the new classifier decides and the rollout continues",
    )


def _what(stable: ClassifierSnapshot, new: ClassifierSnapshot) -> str:
    if stable.digest != new.digest:
        return f"{stable.digest or 'bundled'} → {new.digest or 'bundled'}"
    return "bundled model, new settings"


def on_shadow(run: _Run, obs: Observations) -> None:
    """One look during the shadow: the matrix into status; the end when it is due."""
    s = run.s
    sh = s.classifier_shadow
    assert sh is not None
    spec = run.spec
    counts = obs.transitions
    error = obs.error or (counts.error if counts is not None else None)
    if counts is not None and error is None:
        tiers = [t.name for t in spec.classifier.tiers]
        fig = ds.summarize(counts.cells, tiers, ds.tier_prices(spec))
        sh.requests = fig.requests
        sh.moved_share = fig.moved_share
        sh.down_share = fig.down_share
        sh.up_share = fig.up_share
        sh.projected_cost_change = fig.projected_cost_change
        sh.cells = fig.cells
        sh.message = fig.describe()[:2048]
    s.last_evaluated_at = run.now
    if s.phase != Phase.PROGRESSING:
        return
    conf = spec.rollout.classifier_shadow
    limit = sh.started_at + timedelta(seconds=parse_duration(conf.max_duration))
    enough = sh.requests >= sh.min_requests
    if error is None and enough and sh.earliest_end_at is not None and run.now < sh.earliest_end_at:
        s.message = (
            f"decision shadow: {sh.message}; minDuration {conf.min_duration} ends at "
            f"{fmt_time(sh.earliest_end_at)}"
        )[:4096]
        return
    if error is None and enough:
        if _held_for_down_share(run):
            return
        finish(run, Reason.CLASSIFIER_SHADOW_FINISHED, "decision shadow done")
        return
    if run.now >= limit:
        if _held_for_down_share(run):
            return
        finish(
            run,
            Reason.CLASSIFIER_SHADOW_FINISHED,
            f"decision shadow ended at maxDuration {conf.max_duration} with "
            f"{sh.requests}/{sh.min_requests} requests counted",
            short=True,
        )
        return
    waiting = (
        f"cannot read the transitions ({error})"
        if error is not None
        else f"{sh.requests}/{sh.min_requests} requests counted"
    )
    s.message = (
        f"decision shadow: {sh.message}; waiting: {waiting}; maxDuration "
        f"{conf.max_duration} at {fmt_time(limit)}"
    )[:4096]


def _held_for_down_share(run: _Run) -> bool:
    """Pause once when the shadow found more moved down than ``maxDownShare`` (a resume
    comes back as Progressing with ``held`` set: the shadow then ends)."""
    s = run.s
    sh = s.classifier_shadow
    assert sh is not None
    limit = run.spec.rollout.classifier_shadow.max_down_share
    if sh.held or limit is None or sh.down_share is None or sh.down_share <= limit:
        return False
    sh.held = True
    run.pause(
        Reason.CLASSIFIER_SHADOW_MOVED,
        f"decision shadow: {sh.down_share:.1%} of requests would move to a cheaper tier, "
        f"more than maxDownShare {limit:.1%} ({sh.message}); paused before the new "
        "classifier decides for anyone: resume or promote to go on, abort to keep the "
        "stable classifier",
    )
    return True


def finish(run: _Run, reason: Reason, why: str, *, short: bool = False) -> None:
    """The shadow is over: report what it found, the candidate decides, and the revision's
    rollout begins (pre-flight or step 1)."""
    s = run.s
    sh = s.classifier_shadow
    assert sh is not None
    sh.running = False
    sh.finished_at = run.now
    run.event(
        "Warning" if short else "Normal",
        Reason.CLASSIFIER_SHADOW_FINISHED,
        f"{why}: {sh.message}"[:1024],
    )
    if ccn.wanted(run):
        ccn.begin(run, why)
        return
    adopt(run)
    then = Reason.ROLLOUT_STARTED if reason == Reason.CLASSIFIER_SHADOW_FINISHED else reason
    run.begin_stage(s.revision, then, f"{why}; the new classifier decides")


def end_by_hand(run: _Run, who: str) -> None:
    """A manual promote during the shadow ends it (the new classifier decides)."""
    finish(run, Reason.MANUAL_PROMOTE, f"{who}: decision shadow ended by a person")
