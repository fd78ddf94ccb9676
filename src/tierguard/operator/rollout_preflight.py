"""The rollout machine's pre-flight stage (part of :mod:`tierguard.operator.rollout`,
kept apart to keep that module readable; pure, like the machine).

Pre-flight runs at 0 % exposure before the first weighted step: the routers mirror a
sample of stateless requests to the candidate and a pairwise judge compares its answers
with the baseline's (:mod:`tierguard.operator.preflight` plans it). Only the pairwise
gates are judged, on the same alpha share as in the weighted steps, where their
e-process continues. Pass starts step 1; Fail rolls back with 0 users exposed (never on an unhealthy
judge's verdict: that holds); a cap
(``maxSpendUSD``, ``maxDuration``) reached without a verdict pauses, never promotes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from tierguard.api.durations import parse_duration
from tierguard.api.enums import Arm, Phase, PreFlightState, PromotionMode, Reason, Verdict
from tierguard.operator import classifiercontent as cc
from tierguard.operator import pairedgate as pg
from tierguard.operator import preflight as pf
from tierguard.operator.gatestatus import tier_statuses, verdict_summary
from tierguard.operator.gatetypes import GateOutcome, Observations
from tierguard.operator.gateupdates import skip_look, update_gates
from tierguard.operator.judgehealth import JUDGE_UNHEALTHY
from tierguard.operator.rollout_types import GateEvaluated, fmt_weight

if TYPE_CHECKING:
    from tierguard.operator.rollout import _Run


def end_preflight(run: _Run, reason: Reason, why: str) -> None:
    """Pre-flight is over: the first weighted step starts (its gates count afresh)."""
    s = run.s
    assert s.preflight is not None
    if s.preflight.state != PreFlightState.PASSED:
        s.preflight.state = (
            PreFlightState.PASSED if reason != Reason.MANUAL_PROMOTE else (PreFlightState.SKIPPED)
        )
    s.preflight.finished_at = s.preflight.finished_at or run.now
    run.enter_step(0)
    s.no_data_since = None
    run.transition(
        Phase.PROGRESSING,
        reason,
        f"{why}; step 1/{len(run.spec.rollout.steps)} at {fmt_weight(s.canary_weight)}",
    )


def _held_if_unhealthy(o: GateOutcome) -> GateOutcome:
    """In pre-flight an unhealthy judge decides nothing, a Fail included: a judge
    confidently beyond its health limits (answering at random, failing) measures itself,
    and pre-flight has no other gate to tell a real loss from its noise. It holds
    (Inconclusive, JudgeUnhealthy) until a cap pauses it for a person. A Fail reached while
    the judge's health is still undecided stands (order flips count as ties, so they
    cannot make a false Fail likelier than alpha). In the weighted steps a Fail through
    such a judge stands (pairedgate.py); there the two-arm gates judge too."""
    if o.verdict != Verdict.FAIL or o.judge is None or o.judge.healthy:
        return o
    return replace(
        o,
        verdict=Verdict.INCONCLUSIVE,
        message=(
            f"{JUDGE_UNHEALTHY}: {o.judge.reason}; pre-flight does not roll back on an "
            f"unhealthy judge's verdict (paired test: {o.message})"
        )[:2048],
    )


def on_preflight(run: _Run, obs: Observations) -> None:
    """One look during pre-flight: only its pairwise gates, on the same alpha share
    as in the weighted steps (their e-process continues there); caps; spend."""
    s = run.s
    spec = run.spec
    state = s.preflight
    assert state is not None
    conf = spec.rollout.preflight
    if obs.error is None:
        s.gate_state = pf.size_rates(s.gate_state, spec, run.gates, obs.preflight_traffic)
    rates = pf.plan(spec, run.gates, pf.sized_rates(s.gate_state)).rates
    gates = pf.gates_of(run.gates, rates)
    hold = None
    if obs.routers is not None and obs.error is None:
        flowing = any(r.requests_flowing for r in obs.gates.values())
        hold = cc.routers_hold(obs.routers, s.classifier_digest, s.revision, flowing)
    keep = {k: v for k, v in s.gate_state.get("gates", {}).items()}
    if hold is None:
        s.gate_state = update_gates(s.gate_state, gates, obs, Arm.CONTROL)
    else:
        s.gate_state = skip_look(s.gate_state)
    s.gate_state = {**s.gate_state, "gates": {**keep, **s.gate_state.get("gates", {})}}
    s.gate_state, spent = pf.update_spend(
        s.gate_state, None if obs.error is not None else obs.preflight_spend
    )
    reporting = obs.routers is None or bool(obs.routers.reports)
    if hold is None and reporting and obs.error is None and state.state == PreFlightState.RUNNING:
        # the routers report the revision, so they run a configuration without this
        # epoch: they may use it once it reaches them; a process started after it was
        # issued waits for the next one (router/mirrorbudget.py)
        s.gate_state = pf.issue_budget(s.gate_state, spec, s, spent)
    entries = s.gate_state.get("gates", {})
    outcomes = [
        pg.paired_outcome(
            gate,
            entries.get(gate.key),
            obs,
            spec.analysis.confidence,
            len(run.gates),
            conf.min_pairs,
        )
        for gate in gates
    ]
    outcomes = [_held_if_unhealthy(o) for o in outcomes]
    s.last_evaluated_at = run.now
    #: what the last interval cost: the cap holds once the next one would cross it
    last_interval = max(0.0, spent - state.spend_usd)
    state.spend_usd = round(spent, 6)
    state.max_spend_usd = conf.max_spend_usd
    by_tier = {o.tier: o for o in outcomes}
    state.tiers = [pf.tier_status(t, r, by_tier.get(t)) for t, r in rates.items()]
    s.tiers = tier_statuses(outcomes, list(rates))
    s.verdict_summary = verdict_summary(s.tiers)
    for o in outcomes:
        run.actions.append(
            GateEvaluated(o.tier, o.signal.value, o.verdict, o.upper_bound, o.allowed)
        )
    table = pf.summary(state.tiers)
    spend = f"spent {pf.fmt_usd(spent)} of {pf.fmt_usd(conf.max_spend_usd)}"
    failed = [o for o in outcomes if o.verdict == Verdict.FAIL]
    if failed:
        f = failed[0]
        state.state = PreFlightState.FAILED
        state.finished_at = run.now
        state.message = f"pre-flight failed on tier {f.tier}; 0 users exposed"
        run.rollback(
            Reason.PREFLIGHT_FAILED,
            f"pre-flight: tier {f.tier} failed on mirrored requests judged pairwise: "
            f"{f.figures()}; rolled back with 0 users exposed (the candidate never "
            f"served a user; {spend})",
        )
        return
    if hold is not None or run.classifier_unknown is not None:
        if s.phase == Phase.PROGRESSING:
            s.message = f"pre-flight holds: {hold or run.classifier_unknown}"[:4096]
        return
    no_data = [o for o in outcomes if o.verdict == Verdict.NO_DATA]
    if no_data:
        if run.hold_without_data(obs, no_data):
            return
    elif s.no_data_since is not None:
        gap = (run.now - s.no_data_since).total_seconds()
        s.no_data_since = None
        run.event("Normal", Reason.DATA_RESUMED, f"metrics are back after {gap:.0f}s")
    if s.phase != Phase.PROGRESSING:
        return
    if outcomes and all(o.verdict == Verdict.PASS for o in outcomes):
        state.state = PreFlightState.PASSED
        state.finished_at = run.now
        state.message = f"pre-flight passed: {table}; {spend}"[:2048]
        why = f"pre-flight passed with 0 users exposed ({table}; {spend})"
        if spec.rollout.promotion == PromotionMode.MANUAL:
            run.pause(
                Reason.AWAITING_PROMOTION,
                f"{why}; waiting for a promote action to start step 1",
                warning=False,
            )
        else:
            run.end_preflight(Reason.PREFLIGHT_PASSED, why)
        return
    started = state.started_at or run.now
    elapsed = (run.now - started).total_seconds()
    cap = None
    if spent + last_interval >= conf.max_spend_usd:
        cap = f"maxSpendUSD {pf.fmt_usd(conf.max_spend_usd)} ({spend}"
        cap += ")" if spent >= conf.max_spend_usd else "; the next interval would cross it)"
    elif elapsed >= parse_duration(conf.max_duration):
        cap = f"maxDuration {conf.max_duration} ({spend})"
    if cap is not None:
        state.state = PreFlightState.HELD
        state.message = f"pre-flight held at {cap} without a verdict"
        run.pause(
            Reason.PREFLIGHT_CAP_REACHED,
            f"pre-flight reached {cap} without a verdict: paused at 0 % with 0 users "
            f"exposed, never promoted on its own ({table}); raise the cap and resume, "
            "promote to start step 1 without it, or abort",
        )
        return
    state.message = f"pre-flight running: {table}; {spend}"[:2048]
    waiting = "; ".join(f"{o.tier}: {o.message}" for o in outcomes[:3])
    s.message = (f"pre-flight: 0 users exposed, judging mirrored requests ({spend}): {waiting}")[
        :4096
    ]
