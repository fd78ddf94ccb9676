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
not yet shown within them (JudgeHealthUndecided; only a would-be Pass is held).

Where the parts live: this module evaluates (:func:`evaluate_gates`, :func:`worst`); a
policy's gates come from :mod:`~tierguard.operator.gatespecs`, the per-look bookkeeping
in ``status.gateState`` (cumulative evidence, step bases, the watch windows) is
:mod:`~tierguard.operator.gateupdates`, the plain types are
:mod:`~tierguard.operator.gatetypes` and the ``status.tiers`` rendering is
:mod:`~tierguard.operator.gatestatus`.

Verdicts: Fail/Pass/Inconclusive as :func:`statistics.evaluate` says; NoData only when
Prometheus or a query failed, or the routers' request counters for the tier are missing.
A signal with no events while the tier's requests flow (nobody rated yet) is a quiet
signal: Inconclusive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tierguard.api.enums import Verdict
from tierguard.operator import pairedgate as pg
from tierguard.operator import statistics as st
from tierguard.operator.gatetypes import GateOutcome, GateSpec, Observations, watch_alpha
from tierguard.operator.gateupdates import new_stats
from tierguard.operator.slicegates import family_split, tier_gate_count


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
        state = st.GateState.from_json(entry["stats"]) if entry is not None else new_stats(g)
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
