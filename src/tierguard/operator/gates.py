"""Gates: from a policy's SLOs and Prometheus readings to one verdict per (tier, signal).

This module is the glue between the rollout state machine and the statistics in
:mod:`tierguard.operator.statistics` (the anytime-valid e-processes). It is pure: the
readings come from :mod:`tierguard.operator.observe`, the state goes to and comes from
``status.gateState``.

One gate per SLO of a tier that has a candidate. A gate's e-process runs through every
step of a rollout on one alpha budget (the statistics stay valid when the canary share
changes): the evidence is *cumulative* across steps, not restarted per step. What each
step adds is a minimum of samples counted from the step's start (``stepBase``), so a step
cannot pass before ``minSamplesPerArm`` outcomes per arm have been seen at its own weight;
the confidence bound that lets it pass uses everything counted since the rollout began.

After promotion (the control arm is the holdback) the rollout's e-process is frozen and a
separate **post-promotion watch** takes over per gate: its own e-process, restarted every
:data:`WATCH_WINDOW_S`, with the fail margin raised to the SLO's allowed drop (it rolls
back only a canary confidently worse than the SLO allows) and an explicit alpha-spending
schedule, window ``k`` spending ``alpha / (k (k + 1))`` (:func:`watch_alpha`; the windows
sum to alpha, so the chance that the watch *ever* rolls back a canary within its SLO
stays within the rollout's budget, however long it runs).

A ShadowDisagreement SLO whose judge is Pairwise is a *paired* gate instead
(:mod:`tierguard.operator.pairedgate`): the paired sequential test on the canary's
worse/better/tie verdicts, on the same alpha share, step minimum and watch scheme, held to
Inconclusive while the judge is confidently beyond its health limits (JudgeUnhealthy) or
not yet shown within them (JudgeHealthUndecided; only a would-be Pass is held). Its types and
status rendering live in :mod:`~tierguard.operator.gatetypes` and
:mod:`~tierguard.operator.gatestatus` (re-exported here).

Verdicts: Fail/Pass/Inconclusive as :func:`statistics.evaluate` says; NoData only when
Prometheus or a query failed, or the routers' request counters for the tier are missing.
A signal with no events while the tier's requests flow (nobody rated yet) is a quiet
signal: Inconclusive.

``status.gateState`` layout (JSON, internal)::

    {"revision": "<rev>",
     "gates": {"simple/ThumbsDown": {"fingerprint": "…", "controlArm": "control",
                                    "stepBase": [control_total, canary_total],
                                    "stats": <statistics.GateState.to_json()>,
                                    "watch": {"window": k, "startedAt": "<ISO time>",
                                              "stats": <GateState>}}}}  # after promotion
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tierguard.api.durations import parse_duration
from tierguard.api.enums import Arm, Signal, Verdict
from tierguard.api.policy import RoutingPolicySpec, SLOSpec
from tierguard.operator import pairedgate as pg
from tierguard.operator import statistics as st
from tierguard.operator.gatestatus import tier_statuses as tier_statuses
from tierguard.operator.gatestatus import verdict_summary as verdict_summary
from tierguard.operator.gatetypes import MAX_SERIES as MAX_SERIES
from tierguard.operator.gatetypes import WATCH_WINDOW_S as WATCH_WINDOW_S
from tierguard.operator.gatetypes import GateOutcome as GateOutcome
from tierguard.operator.gatetypes import GateReading as GateReading
from tierguard.operator.gatetypes import GateSpec as GateSpec
from tierguard.operator.gatetypes import Observations as Observations
from tierguard.operator.gatetypes import family_alpha as family_alpha
from tierguard.operator.gatetypes import watch_alpha as watch_alpha
from tierguard.operator.slicegates import family_split, slice_gate_specs, tier_gate_count


def _fingerprint(slo: SLOSpec) -> str:
    doc = json.dumps(slo.to_k8s(), sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


def canary_tiers(spec: RoutingPolicySpec) -> list[str]:
    """Tiers with a candidate, in classifier order."""
    with_candidate = {r.tier for r in spec.routes if r.candidate is not None}
    return [t.name for t in spec.classifier.tiers if t.name in with_candidate]


def gate_specs(spec: RoutingPolicySpec) -> list[GateSpec]:
    """The gates of a policy: every SLO of a tier under canary.

    Keys are ``tier/Signal``; a second SLO with the same tier and signal (say a relative
    and an absolute objective) gets its fingerprint appended so both are kept apart.
    """
    tiers = set(canary_tiers(spec))
    judge = spec.router.shadow.judge
    pairwise_judge = judge.type == "LLM" and judge.mode == "Pairwise"
    out: list[GateSpec] = []
    seen: set[str] = set()
    for slo in spec.analysis.slos:
        if slo.tier not in tiers:
            continue
        fp = _fingerprint(slo)
        key = f"{slo.tier}/{slo.signal.value}"
        if key in seen:
            key = f"{key}/{fp[:6]}"
        seen.add(key)
        absolute = slo.objective == "Absolute"
        allowed = float(
            slo.threshold if absolute and slo.threshold is not None else slo.allowed_drop
        )
        if slo.signal == Signal.SHADOW_DISAGREEMENT and pairwise_judge:
            # The paired test: non-inferiority on the net share of worse answers, held to
            # allowedDrop (or an Absolute objective's threshold), FAIL beyond failMargin.
            out.append(
                GateSpec(
                    key=key,
                    tier=slo.tier,
                    signal=slo.signal,
                    absolute=False,
                    allowed=allowed,
                    fail_margin=(
                        slo.fail_margin
                        if slo.fail_margin is not None and not absolute
                        else st.default_fail_margin(allowed)
                    ),
                    fingerprint=f"{fp[:9]}pw{judge.model or ''}"[:24],
                    pairwise=True,
                    max_inconsistency=judge.max_order_inconsistency,
                    max_error_rate=judge.max_error_rate,
                )
            )
            continue
        if slo.signal == Signal.SHADOW_DISAGREEMENT and not absolute:
            # The router shadows canary answers only: the disagreement rate is already a
            # canary-vs-baseline measure and has no control arm of its own, so "relative to
            # control" means the share of disagreements must stay within the allowed drop.
            absolute = True
        out.append(
            GateSpec(
                key=key,
                tier=slo.tier,
                signal=slo.signal,
                absolute=absolute,
                allowed=allowed,
                fail_margin=None if absolute else slo.fail_margin,
                latency_objective=(
                    parse_duration(slo.latency_objective) if slo.latency_objective else None
                ),
                query=slo.query,
                fingerprint=fp,
            )
        )
    return out + slice_gate_specs(spec, out)


def _new_stats(g: GateSpec) -> st.GateState:
    if g.absolute:
        return st.new_gate_state(g.allowed, kind="absolute")
    return st.new_gate_state(g.allowed, fail_margin=g.fail_margin)


def _new_watch_stats(g: GateSpec) -> st.GateState:
    """A watch window's e-process: FAIL only beyond the allowed drop itself."""
    if g.absolute:
        return st.new_gate_state(g.allowed, kind="absolute")
    return st.new_gate_state(g.allowed, fail_margin=g.allowed)


def _advance_watch(entry: Mapping[str, Any], g: GateSpec, at: datetime) -> dict[str, Any]:
    """The entry's watch, started at promotion and restarted every window. A new window
    keeps the previous one's last readings as its baseline: nothing is lost or counted
    twice between windows."""
    watch = entry.get("watch")
    if watch is None:
        return {"window": 1, "startedAt": at.isoformat(), "stats": _new_watch_stats(g).to_json()}
    started = datetime.fromisoformat(watch["startedAt"])
    if (at - started).total_seconds() < WATCH_WINDOW_S:
        return dict(watch)
    fresh = _new_watch_stats(g)
    fresh.last = st.GateState.from_json(watch["stats"]).last
    return {
        "window": int(watch["window"]) + 1,
        "startedAt": at.isoformat(),
        "stats": fresh.to_json(),
    }


def _new_entry(g: GateSpec, control_arm: Arm) -> dict[str, Any]:
    state = _new_stats(g)
    return {
        "fingerprint": g.fingerprint,
        "controlArm": control_arm.value,
        "stepBase": [0.0, 0.0],
        "stats": state.to_json(),
    }


def _carry_forward(prev: Mapping[str, float] | None, cur: Mapping[str, float]) -> dict[str, float]:
    merged = dict(cur)
    for key, value in (prev or {}).items():
        if key not in merged and len(merged) < MAX_SERIES:
            merged[key] = value
    return merged


def _readings_for_update(
    state: st.GateState, reading: GateReading, control_arm: Arm
) -> dict[str, st.ArmReading]:
    """Map the policy's arms onto the statistics' two sides, carrying vanished series."""
    sides = {"control": reading.arms.get(control_arm.value), "canary": reading.arms.get("canary")}
    last = state.last or {}
    out: dict[str, st.ArmReading] = {}
    for side, arm in sides.items():
        prev = last.get(side, {})
        bad = arm.bad if arm is not None else {}
        total = arm.total if arm is not None else {}
        out[side] = st.ArmReading(
            bad=_carry_forward(prev.get("bad"), bad),
            total=_carry_forward(prev.get("total"), total),
        )
    return out


def fresh_gate_state(revision: str) -> dict[str, Any]:
    return {"revision": revision, "gates": {}}


def update_gates(
    gate_state: Mapping[str, Any],
    gates: Sequence[GateSpec],
    observations: Observations,
    control_arm: Arm,
) -> dict[str, Any]:
    """Fold one look at Prometheus into the gates (pure: returns a new gate state).

    A gate whose query failed, or that has no series yet, is left as it is: the next good
    reading then covers the whole gap as one block, and nothing is ever double counted.
    When the control arm changes (control → holdback at 100 %), the gate re-baselines its
    readings but keeps its evidence: the e-process does not care which baseline-served
    arm it is compared with.
    """
    old = dict(gate_state.get("gates", {}))
    new: dict[str, Any] = {}
    for g in gates:
        entry = old.get(g.key)
        if g.pairwise:
            reading = observations.gates.get(g.key)
            ok = observations.error is None and reading is not None and reading.error is None
            new[g.key] = pg.update_entry(
                entry if entry is not None and entry.get("fingerprint") == g.fingerprint else None,
                g.fingerprint,
                g.allowed,
                g.fail_margin or 0.0,
                reading.verdicts if ok and reading is not None and not reading.empty else None,
                observations.at,
                promoted=control_arm == Arm.HOLDBACK,
                window_s=WATCH_WINDOW_S,
            )
            continue
        if entry is None or entry.get("fingerprint") != g.fingerprint:
            entry = _new_entry(g, control_arm)
        entry = dict(entry)
        state = st.GateState.from_json(entry["stats"])
        if entry.get("controlArm") != control_arm.value:
            state.last = None
            entry["controlArm"] = control_arm.value
        reading = observations.gates.get(g.key)
        usable = observations.error is None and reading is not None and reading.error is None
        if control_arm == Arm.HOLDBACK:
            # Promoted: the rollout's evidence is frozen; the watch judges from here.
            watch = _advance_watch(entry, g, observations.at)
            wstate = st.GateState.from_json(watch["stats"])
            if usable and reading is not None and not reading.empty:
                wstate = st.update(wstate, _readings_for_update(wstate, reading, control_arm))
                entry["looks"] = min(int(entry.get("looks", 0)) + 1, 2)
            entry["watch"] = {**watch, "stats": wstate.to_json()}
        else:
            entry.pop("watch", None)
            if usable and reading is not None and not reading.empty:
                state = st.update(state, _readings_for_update(state, reading, control_arm))
                # Capped: only "first look or not" matters, and a count that grew on every
                # look would make an unchanged gate state differ (a status write per look).
                entry["looks"] = min(int(entry.get("looks", 0)) + 1, 2)
        entry["stats"] = state.to_json()
        new[g.key] = entry
    return {**gate_state, "gates": new}


def skip_look(gate_state: Mapping[str, Any]) -> dict[str, Any]:
    """Let this look count for nothing: every gate forgets its last readings, so the next
    look only sets a new baseline and what happened in between is never added (used
    while a router runs another classifier than the one rolled out)."""
    gates = {}
    for key, entry in gate_state.get("gates", {}).items():
        if "stats" not in entry:
            gates[key] = entry
            continue
        stats = dict(entry["stats"])
        stats["last"] = None
        new = {**entry, "stats": stats}
        if "watch" in entry:
            new["watch"] = {**entry["watch"], "stats": {**entry["watch"]["stats"], "last": None}}
        gates[key] = new
    return {**gate_state, "gates": gates}


def rebase_step(gate_state: Mapping[str, Any]) -> dict[str, Any]:
    """Start counting a new step's samples from the gates' current totals."""
    gates = {}
    for key, entry in gate_state.get("gates", {}).items():
        if pg.is_paired(entry["stats"]):
            judged = pg.PairedGateState.from_json(entry["stats"]).judged
            gates[key] = {**entry, "stepBase": [judged, judged]}
            continue
        state = st.GateState.from_json(entry["stats"])
        gates[key] = {**entry, "stepBase": [state.control_total, state.canary_total]}
    return {**gate_state, "gates": gates}


def evaluate_gates(
    gate_state: Mapping[str, Any],
    gates: Sequence[GateSpec],
    observations: Observations | None,
    confidence: float,
    min_samples: int,
) -> list[GateOutcome]:
    """Every gate's verdict now. ``observations`` None: judge on the stored evidence only
    (used to show status without a new look at Prometheus)."""
    if not gates:
        return []
    split = family_split(gates, confidence)
    entries = gate_state.get("gates", {})
    out: list[GateOutcome] = []
    for g in gates:
        entry = entries.get(g.key)
        if g.pairwise:
            out.append(
                pg.paired_outcome(
                    g,
                    entry,
                    observations,
                    confidence,
                    tier_gate_count(split, confidence),
                    min_samples,
                )
            )
            continue
        state = st.GateState.from_json(entry["stats"]) if entry is not None else _new_stats(g)
        watch = entry.get("watch") if entry is not None else None
        alpha = split.slice if g.slice_name is not None else split.tier
        gate_alpha, prefix = alpha, ""
        if watch is not None:
            window = int(watch["window"])
            state = st.GateState.from_json(watch["stats"])
            gate_alpha = watch_alpha(alpha, window)  # the gate's own share, same schedule
            prefix = (
                f"post-promotion watch, window {window} (alpha {gate_alpha:.2g}, "
                f"fails beyond {g.allowed:.3f}): "
            )
        base = entry.get("stepBase", [0.0, 0.0]) if entry is not None else [0.0, 0.0]
        if watch is not None:
            base = [0.0, 0.0]  # the watch window's own counts
        error: str | None = None
        empty = False
        flowing = False
        if observations is not None:
            reading = observations.gates.get(g.key)
            if observations.error is not None:
                error = observations.error
            elif reading is None:
                error = "no query result for this gate"
            elif reading.error is not None:
                error = reading.error
            else:
                empty = reading.empty
                flowing = reading.requests_flowing
        res = st.evaluate(state, g.allowed, gate_alpha, float(min_samples), provider_error=error)
        verdict, message = res.verdict, res.reason
        step_c = max(0.0, state.control_total - float(base[0]))
        step_t = max(0.0, state.canary_total - float(base[1]))
        if verdict == Verdict.NO_DATA and error is None:
            if flowing:
                # A quiet signal: the tier's requests are counted, this signal has no
                # events yet (nobody rated, nothing judged). No evidence either way.
                verdict = Verdict.INCONCLUSIVE
                message = (
                    f"requests flow but no {g.signal.value} events counted yet "
                    f"(quiet signal; {res.reason})"
                )
            elif watch is not None and state.blocks == 0:
                verdict = Verdict.INCONCLUSIVE
                message = "watch window started: its first reading is the baseline"
            elif empty:
                message = "the routers have reported no samples for this gate yet (empty result)"
            elif entry is not None and int(entry.get("looks", 0)) <= 1:
                # The first reading of a gate is only its baseline; that is not missing data.
                verdict = Verdict.INCONCLUSIVE
                message = "first reading taken as the baseline; counting from here"
        blocking = g.slice_name is None or g.slice_min_samples is not None
        need = min_samples if g.slice_min_samples is None else g.slice_min_samples
        if not blocking and verdict == Verdict.NO_DATA and error is None:
            verdict = Verdict.INCONCLUSIVE
            message = f"too little traffic in this slice ({message}); does not hold the stage"
        if verdict == Verdict.PASS and watch is None:
            low = step_t if g.absolute else min(step_c, step_t)
            if low < need:
                verdict = Verdict.INCONCLUSIVE
                message = (
                    f"{low:.0f} of {need} samples in the smaller arm at this step "
                    f"(evidence so far: {res.reason})"
                )
        out.append(
            GateOutcome(
                key=g.key,
                tier=g.tier,
                signal=g.signal,
                verdict=verdict,
                message=prefix + message,
                control_samples=state.control_total,
                control_bad=state.control_bad,
                canary_samples=state.canary_total,
                canary_bad=state.canary_bad,
                control_rate=res.control_rate,
                canary_rate=res.canary_rate,
                upper_bound=res.upper_bound,
                allowed=g.allowed,
                e_value=res.e_value,
                threshold=res.threshold,
                step_control=step_c,
                step_canary=step_t,
                design_effect=state.design_effect,
                provider_error=verdict == Verdict.NO_DATA and error is not None,
                slice=g.slice,
                blocking=blocking,
                alpha=gate_alpha,
            )
        )
    return out


def worst(verdicts: Sequence[Verdict]) -> Verdict:
    """A tier's verdict from its gates' (Fail, else NoData, else Pass only if all pass,
    else Inconclusive; no gates: NoData) -- the statistics module's own rule."""
    return st.combine_verdicts(verdicts)
