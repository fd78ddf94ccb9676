"""The gates' state across looks (pure: every function returns a new gate state).

Each look at Prometheus is folded into ``status.gateState``: a gate's e-process runs
through every step of a rollout, cumulative across steps, with ``stepBase`` counting each
step's own samples from its start; after promotion a post-promotion watch with its own
e-process per window takes over (see :mod:`tierguard.operator.gates` for why).

``status.gateState`` layout (JSON, internal)::

    {"revision": "<rev>",
     "gates": {"simple/ThumbsDown": {"fingerprint": "…", "controlArm": "control",
                                    "stepBase": [control_total, canary_total],
                                    "stats": <statistics.GateState.to_json()>,
                                    "watch": {"window": k, "startedAt": "<ISO time>",
                                              "stats": <GateState>}}}}  # after promotion
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tierguard.api.enums import Arm
from tierguard.operator import pairedgate as pg
from tierguard.operator import statistics as st
from tierguard.operator.gatetypes import (
    MAX_SERIES,
    WATCH_WINDOW_S,
    GateReading,
    GateSpec,
    Observations,
)


def new_stats(g: GateSpec) -> st.GateState:
    """A gate's fresh e-process state (the rollout's, not the watch's)."""
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
    state = new_stats(g)
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
