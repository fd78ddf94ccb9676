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
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tierguard.api.durations import parse_duration
from tierguard.api.enums import Arm, Signal, Verdict
from tierguard.api.policy import SLICE_OTHER, CustomQuery, RoutingPolicySpec, SLOSpec
from tierguard.api.status import ArmSample, SignalStatus, TierStatus
from tierguard.operator import statistics as st
from tierguard.operator.family import split_alpha

#: Series per counter kept in a gate's last readings. Series that vanish from a query
#: (a scrape failed, a pod went away) are carried forward so that when they come back only
#: their real increase is counted; the oldest carried ones are dropped beyond this.
#: Series are per router instance and user cluster (16 clusters).
MAX_SERIES = 256
#: Length of one post-promotion watch window: each window is a fresh e-process.
WATCH_WINDOW_S = 24 * 3600.0
#: Signals judged per slice value too (analysis.slices): those whose counters the routers
#: export per slice (slice_requests/feedback/shadow_judgements_total). Latency, Custom and
#: pairwise judgements stay tier-level.
SLICED_SIGNALS = frozenset({Signal.ERROR_RATE, Signal.THUMBS_DOWN, Signal.SHADOW_DISAGREEMENT})


def watch_alpha(family_alpha: float, window: int) -> float:
    """Alpha spent by post-promotion watch window ``window`` (1, 2, ...):
    ``alpha / (window (window + 1))``, which sums to ``alpha`` over all windows."""
    if window < 1:
        raise ValueError(f"watch windows count from 1, got {window}")
    return family_alpha / (window * (window + 1))


@dataclass(frozen=True)
class GateSpec:
    """One gate as the policy defines it."""

    key: str
    tier: str
    signal: Signal
    absolute: bool
    allowed: float  # allowed increase of the bad rate, or the absolute ceiling
    fail_margin: float | None = None  # relative gates: tolerated loss before FAIL
    latency_objective: float | None = None  # seconds, for Signal.LATENCY
    query: CustomQuery | None = None
    fingerprint: str = ""
    #: slice gates: the slice's name and value (None: the tier's own gate)
    slice_name: str | None = None
    slice_value: str | None = None
    #: slice gates: samples per arm a value must reach before a stage may advance (None:
    #: the slice never holds a stage on its own; only a confident Fail counts)
    slice_min_samples: int | None = None

    @property
    def slice(self) -> str | None:
        """``name=value`` of a slice gate."""
        return None if self.slice_name is None else f"{self.slice_name}={self.slice_value}"


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


def slice_gate_specs(spec: RoutingPolicySpec, tier_gates: Sequence[GateSpec]) -> list[GateSpec]:
    """One gate per (tier gate on a sliced signal, slice, value), ``other`` included.
    Keys are ``<tier gate key>@<slice>=<value>``."""
    out: list[GateSpec] = []
    for g in tier_gates:
        if g.signal not in SLICED_SIGNALS:
            continue
        for sl in spec.analysis.slices:
            for value in [*sl.values, SLICE_OTHER]:
                out.append(
                    replace(
                        g,
                        key=f"{g.key}@{sl.name}={value}",
                        slice_name=sl.name,
                        slice_value=value,
                        slice_min_samples=sl.min_samples,
                    )
                )
    return out


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class GateReading:
    """Raw cumulative counters of one gate, per arm (``control``/``holdback``/``canary``),
    each ``{series key: value}``; or why there are none."""

    arms: Mapping[str, st.ArmReading] = field(default_factory=dict)
    error: str | None = None
    #: The routers' request counters for this gate's tier exist: traffic flows, so a
    #: signal without events yet (no ratings, nothing judged) is a quiet signal, not
    #: missing data.
    requests_flowing: bool = False

    @property
    def empty(self) -> bool:
        """No series at all for this gate: the routers have reported nothing yet."""
        return not any(r.total for r in self.arms.values())


@dataclass(frozen=True)
class Observations:
    """What one look at Prometheus returned. ``error`` set: Prometheus was unreachable or
    failed, and every gate has no data this interval."""

    at: datetime
    gates: Mapping[str, GateReading] = field(default_factory=dict)
    error: str | None = None


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class GateOutcome:
    """A gate's verdict now and the figures behind it."""

    key: str
    tier: str
    signal: Signal
    verdict: Verdict
    message: str
    control_samples: float = 0.0
    control_bad: float = 0.0
    canary_samples: float = 0.0
    canary_bad: float = 0.0
    control_rate: float | None = None
    canary_rate: float | None = None
    upper_bound: float | None = None
    allowed: float = 0.0
    e_value: float | None = None
    threshold: float | None = None
    step_control: float = 0.0
    step_canary: float = 0.0
    design_effect: float = 1.0
    provider_error: bool = False  # NoData because a query failed (not just no traffic)
    slice: str | None = None  # name=value of a slice gate
    #: False for a slice gate without minSamples: its Inconclusive never holds a stage
    blocking: bool = True
    alpha: float | None = None  # this gate's share of the family budget

    @property
    def where(self) -> str:
        """``tier simple`` or ``tier simple, slice category=billing_status``."""
        return f"tier {self.tier}" + (f", slice {self.slice}" if self.slice else "")

    @property
    def lets_advance(self) -> bool:
        """Pass, or a non-blocking slice gate that has not failed."""
        if self.verdict == Verdict.PASS:
            return True
        return not self.blocking and self.verdict == Verdict.INCONCLUSIVE

    def figures(self) -> str:
        """One line an SRE can act on: rates, samples, bound and evidence."""

        def rate(r: float | None) -> str:
            return "n/a" if r is None else f"{r:.3f}"

        parts = [
            f"canary {rate(self.canary_rate)} (n={self.canary_samples:.0f})",
            f"control {rate(self.control_rate)} (n={self.control_samples:.0f})",
        ]
        if self.upper_bound is not None:
            parts.append(f"upper bound {self.upper_bound:+.3f} vs allowed {self.allowed:.3f}")
        if self.e_value is not None and self.threshold is not None:
            parts.append(f"e-value {self.e_value:.3g} (threshold {self.threshold:.3g})")
        if self.design_effect > 1.0:
            parts.append(f"design effect {self.design_effect:.2f}")
        return ", ".join(parts)


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


def rebase_step(gate_state: Mapping[str, Any]) -> dict[str, Any]:
    """Start counting a new step's samples from the gates' current totals."""
    gates = {}
    for key, entry in gate_state.get("gates", {}).items():
        state = st.GateState.from_json(entry["stats"])
        gates[key] = {**entry, "stepBase": [state.control_total, state.canary_total]}
    return {**gate_state, "gates": gates}


def family_alpha(confidence: float) -> float:
    return 1.0 - confidence


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
    n_slice = sum(1 for g in gates if g.slice_name is not None)
    split = split_alpha(family_alpha(confidence), len(gates) - n_slice, n_slice)
    entries = gate_state.get("gates", {})
    out: list[GateOutcome] = []
    for g in gates:
        entry = entries.get(g.key)
        state = st.GateState.from_json(entry["stats"]) if entry is not None else _new_stats(g)
        watch = entry.get("watch") if entry is not None else None
        alpha = split.slice if g.slice_name is not None else split.tier
        gate_alpha, prefix = alpha, ""
        if watch is not None:
            window = int(watch["window"])
            state = st.GateState.from_json(watch["stats"])
            # the watch spends the gate's own share on the same schedule
            gate_alpha = watch_alpha(alpha, window)
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


def _finite(x: float | None) -> float | None:
    if x is None or x != x or x in (float("inf"), float("-inf")):
        return None
    return x


def tier_statuses(outcomes: Sequence[GateOutcome], tiers: Sequence[str]) -> list[TierStatus]:
    """``status.tiers``: per tier the worst verdict, per signal the figures (the tier's
    own gates first, then the slice gates by slice). A non-blocking slice gate that is
    only Inconclusive does not make its tier Inconclusive."""
    out: list[TierStatus] = []
    for tier in tiers:
        mine = [o for o in outcomes if o.tier == tier]
        mine.sort(key=lambda o: (o.slice is not None, o.slice or ""))
        signals = [
            SignalStatus(
                signal=o.key.split("/", 1)[1].split("@", 1)[0],
                slice=o.slice,
                verdict=o.verdict,
                control=ArmSample(
                    samples=int(o.control_samples),
                    bad=int(o.control_bad),
                    rate=_finite(o.control_rate),
                ),
                canary=ArmSample(
                    samples=int(o.canary_samples),
                    bad=int(o.canary_bad),
                    rate=_finite(o.canary_rate),
                ),
                difference_upper_bound=_finite(o.upper_bound),
                allowed=o.allowed,
                e_value=_finite(min(o.e_value, 1e300)) if o.e_value is not None else None,
                e_value_threshold=_finite(o.threshold),
                design_effect=_finite(o.design_effect),
                message=o.message[:2048],
            )
            for o in mine
        ]
        counted = [o.verdict for o in mine if o.blocking or o.verdict != Verdict.INCONCLUSIVE]
        out.append(TierStatus(tier=tier, verdict=worst(counted), signals=signals))
    return out


def verdict_summary(tiers: Sequence[TierStatus]) -> str:
    return ",".join(f"{t.tier}={t.verdict.value}" for t in tiers)
