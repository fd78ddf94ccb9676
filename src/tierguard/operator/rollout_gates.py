"""The rollout machine's gates (part of :mod:`tierguard.operator.rollout`, kept apart to
keep that module readable; pure, like the machine).

Each look at Prometheus (:class:`~tierguard.operator.gatetypes.Observations`) is routed to the
stage in flight: the decision shadow (:mod:`~tierguard.operator.rollout_shadow`), the
classifier canary (:mod:`~tierguard.operator.rollout_clfcanary`), pre-flight
(:mod:`~tierguard.operator.rollout_preflight`), or the weighted steps handled here: any gate
Fail rolls back, missing data holds (and after ``noData.after`` pauses or rolls back), and a
step advances only when baked and every gate passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from tierguard.api.durations import parse_duration
from tierguard.api.enums import NoDataAction, Phase, PromotionMode, Reason, Verdict
from tierguard.operator import classifiercontent as cc
from tierguard.operator import preflight as pf
from tierguard.operator import rollout_classifier as rc
from tierguard.operator import rollout_clfcanary as ccn
from tierguard.operator import rollout_shadow as rs
from tierguard.operator.gates import evaluate_gates
from tierguard.operator.gatestatus import tier_statuses, verdict_summary
from tierguard.operator.gatetypes import GateOutcome, Observations
from tierguard.operator.gateupdates import skip_look, update_gates
from tierguard.operator.rollout_serving import gated, step_control_arm
from tierguard.operator.rollout_types import GateEvaluated, fmt_time, fmt_weight

if TYPE_CHECKING:
    from tierguard.operator.rollout import _Run


def on_observations(run: _Run, obs: Observations) -> None:
    s = run.s
    spec = run.spec
    if not gated(spec, s):
        return
    if rs.running(s):
        rs.on_shadow(run, obs)
        return
    if ccn.running(s):
        ccn.on_canary(run, obs)
        return
    if pf.running(s):
        run.on_preflight(obs)
        return
    control_arm = step_control_arm(spec, s.step)
    hold = None
    if obs.routers is not None and obs.error is None:
        flowing = any(r.requests_flowing for r in obs.gates.values())
        hold = cc.routers_hold(obs.routers, s.classifier_digest, s.revision, flowing)
    if hold is None:
        rc.hold_ended(run)
        s.gate_state = update_gates(s.gate_state, run.gates, obs, control_arm)
    else:
        s.gate_state = skip_look(s.gate_state)
    outcomes = evaluate_gates(
        s.gate_state,
        run.gates,
        obs,
        spec.analysis.confidence,
        spec.rollout.min_samples_per_arm,
    )
    s.last_evaluated_at = run.now
    s.tiers = tier_statuses(outcomes, run.tiers)
    s.verdict_summary = verdict_summary(s.tiers)
    for o in outcomes:
        if o.slice is None:  # the operator's gate metric stays per (tier, signal)
            run.actions.append(
                GateEvaluated(o.tier, o.signal.value, o.verdict, o.upper_bound, o.allowed)
            )

    failed = [o for o in outcomes if o.verdict == Verdict.FAIL]
    if failed:
        f = failed[0]
        more = f" (and {len(failed) - 1} more gate(s))" if len(failed) > 1 else ""
        run.rollback(
            Reason.GATE_FAILED,
            f"{f.where} failed on {f.signal.value} at "
            f"{fmt_weight(s.canary_weight)}: {f.figures()}{more}",
        )
        return
    if not run.gates:
        s.message = "no SLO gates for the tiers under canary: cannot judge the rollout"
        return
    if hold is not None:
        rc.hold_for_routers(run, hold)
        return
    if run.classifier_unknown is not None:
        if s.phase == Phase.PROGRESSING:
            s.message = run.classifier_unknown
        return

    no_data = [o for o in outcomes if o.verdict == Verdict.NO_DATA]
    if no_data:
        if hold_without_data(run, obs, no_data):
            return
    elif s.no_data_since is not None:
        gap = (run.now - s.no_data_since).total_seconds()
        s.no_data_since = None
        run.event("Normal", Reason.DATA_RESUMED, f"metrics are back after {gap:.0f}s")

    if s.phase == Phase.PROMOTED:
        s.message = f"promoted; watching canary against holdback: {s.verdict_summary}"
        return
    if s.phase == Phase.PAUSED:
        return
    _progress(run, outcomes, bool(no_data))


def hold_without_data(run: _Run, obs: Observations, no_data: Sequence[GateOutcome]) -> bool:
    """Hold (and after ``noData.after`` act). True if a transition happened."""
    s = run.s
    spec = run.spec
    unreachable = obs.error is not None or any(o.provider_error for o in no_data)
    reason = Reason.PROMETHEUS_UNREACHABLE if unreachable else Reason.NO_DATA
    what = (
        f"Prometheus query failed ({obs.error or no_data[0].message})"
        if unreachable
        else f"no data for {', '.join(o.key for o in no_data)}"
    )
    if s.no_data_since is None:
        s.no_data_since = run.now
        run.event("Warning", reason, f"{what}: holding at {fmt_weight(s.canary_weight)}")
    held = (run.now - s.no_data_since).total_seconds()
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
        run.rollback(reason, f"{msg}: rolled back")
    else:
        run.pause(reason, f"{msg}: paused at {fmt_weight(s.canary_weight)}")
    return True


def _progress(run: _Run, outcomes: Sequence[GateOutcome], no_data: bool) -> None:
    s = run.s
    spec = run.spec
    now = run.now
    all_pass = bool(outcomes) and all(o.lets_advance for o in outcomes)
    baked = s.earliest_advance_at is None or now >= s.earliest_advance_at
    if all_pass and baked and not no_data:
        why = f"every tier passed at {fmt_weight(s.canary_weight)} ({s.verdict_summary})"
        if spec.rollout.promotion == PromotionMode.MANUAL:
            run.pause(
                Reason.AWAITING_PROMOTION,
                f"{why}; waiting for a promote action",
                warning=False,
            )
        else:
            run.advance(Reason.STEP_ADVANCED, why)
        return
    max_step = parse_duration(spec.rollout.max_step_duration)
    started = s.step_started_at or now
    if (now - started).total_seconds() >= max_step:
        pending = [o for o in outcomes if not o.lets_advance]
        detail = "; ".join(f"{o.key}: {o.message}" for o in pending[:3])
        run.pause(
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
