"""A two-arm gate's running state: cumulative counts, e-processes and their running
maxima, the per-user-cluster counts and design effect, folded block by block (part of
:mod:`tierguard.operator.statistics`, which re-exports every name; the maths is in its
docstring)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tierguard.operator import design_effect as de
from tierguard.operator.evalues import (
    DEFAULT_MARGINS,
    default_fail_margin,
    fail_block_log_e,
    fail_grid,
    log_mean_exp,
    pass_block_log_e,
)
from tierguard.operator.gatecounters import (
    ArmReading,
    Block,
    GateInputError,
    block_from_readings,
    cluster_block_from_readings,
)

Kind = Literal["relative", "absolute"]

# --------------------------------------------------------------------------- state


@dataclass
class GateState:
    """Everything one (tier, signal) gate needs to resume exactly after a restart.

    Stored by the operator in the RoutingPolicy status as :meth:`to_json` output (plain
    lists and floats; Python's JSON round-trips float64 exactly, so a resumed gate takes
    bit-for-bit the same decisions as one that never stopped).
    """

    kind: Kind
    allowed_drop: float
    fail_margin: float = 0.0
    grid: tuple[float, ...] = ()
    margins: tuple[float, ...] = ()
    log_e_fail: list[float] = field(default_factory=list)  # per grid point, running sum
    max_log_e_fail: float = 0.0  # running max of the mixture: a crossing is final
    log_e_pass: list[float] = field(default_factory=list)  # per margin, running sum
    max_log_e_pass: list[float] = field(default_factory=list)  # per margin, running max
    control_bad: float = 0.0  # cumulative since the gate started (all stages)
    control_total: float = 0.0
    canary_bad: float = 0.0
    canary_total: float = 0.0
    blocks: int = 0  # non-empty blocks added
    last: dict[str, dict[str, dict[str, float]]] | None = None  # raw readings per arm
    #: cumulative (bad, total) per side ("control"/"canary") and user cluster
    clusters: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    design_effect: float = 1.0  # variance inflation from per-user clustering (>= 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "allowedDrop": self.allowed_drop,
            "failMargin": self.fail_margin,
            "grid": list(self.grid),
            "margins": list(self.margins),
            "logEFail": list(self.log_e_fail),
            "maxLogEFail": self.max_log_e_fail,
            "logEPass": list(self.log_e_pass),
            "maxLogEPass": list(self.max_log_e_pass),
            "counts": [self.control_bad, self.control_total, self.canary_bad, self.canary_total],
            "blocks": self.blocks,
            "last": self.last,
            "clusters": {side: dict(v) for side, v in self.clusters.items()},
            "designEffect": self.design_effect,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateState:
        cb, ct, tb, tt = (float(x) for x in data["counts"])
        return cls(
            kind=data["kind"],
            allowed_drop=float(data["allowedDrop"]),
            fail_margin=float(data["failMargin"]),
            grid=tuple(float(x) for x in data["grid"]),
            margins=tuple(float(x) for x in data["margins"]),
            log_e_fail=[float(x) for x in data["logEFail"]],
            max_log_e_fail=float(data["maxLogEFail"]),
            log_e_pass=[float(x) for x in data["logEPass"]],
            max_log_e_pass=[float(x) for x in data["maxLogEPass"]],
            control_bad=cb,
            control_total=ct,
            canary_bad=tb,
            canary_total=tt,
            blocks=int(data["blocks"]),
            last=data.get("last"),
            clusters={
                str(side): {str(c): [float(x) for x in v] for c, v in per.items()}
                for side, per in (data.get("clusters") or {}).items()
            },
            design_effect=float(data.get("designEffect", 1.0)),
        )


def new_gate_state(
    allowed_drop: float,
    kind: Kind = "relative",
    fail_margin: float | None = None,
    margins: Iterable[float] = DEFAULT_MARGINS,
) -> GateState:
    """A fresh gate. For ``kind="absolute"`` ``allowed_drop`` is the threshold on the
    canary's bad rate and only the canary arm is used.

    ``fail_margin`` (relative gates): the loss the fail side tolerates before it may roll
    back; None takes :func:`default_fail_margin` (half the allowed drop). It must stay
    within the allowed drop, so that FAIL never fires for a canary the pass side could
    promote.
    """
    if kind == "absolute":
        if not 0 < allowed_drop < 1:
            raise GateInputError(f"an absolute threshold must be in (0, 1), got {allowed_drop}")
        return GateState(kind=kind, allowed_drop=allowed_drop)
    grid = fail_grid(allowed_drop)
    margin = default_fail_margin(allowed_drop) if fail_margin is None else float(fail_margin)
    if not 0 <= margin <= allowed_drop:
        raise GateInputError(
            f"failMargin must be in [0, allowedDrop={allowed_drop}], got {fail_margin}"
        )
    fail_margin = margin
    ms = tuple(sorted(set(margins) | {allowed_drop}))
    return GateState(
        kind=kind,
        allowed_drop=allowed_drop,
        fail_margin=fail_margin,
        grid=grid,
        margins=ms,
        log_e_fail=[0.0] * len(grid),
        log_e_pass=[0.0] * len(ms),
        max_log_e_pass=[0.0] * len(ms),
    )


ClusterBlock = Mapping[str, Mapping[str, tuple[float, float]]]  # side -> cluster -> counts


def add_clusters(
    state: GateState, clusters: ClusterBlock
) -> tuple[dict[str, dict[str, list[float]]], float]:
    """Cumulative per-cluster counts with ``clusters`` added, and their design effect."""
    out: dict[str, dict[str, list[float]]] = {
        side: {c: list(v) for c, v in per.items()} for side, per in state.clusters.items()
    }
    for side, per in clusters.items():
        mine = out.setdefault(side, {})
        for cluster, (bad, total) in per.items():
            if cluster in ("", "none") or total <= 0:
                continue  # unclustered series mix users of every cluster: not independent
            prev = mine.get(cluster, [0.0, 0.0])
            mine[cluster] = [prev[0] + float(bad), prev[1] + float(total)]
    keys = sorted({c for per in out.values() for c in per})
    if not keys:
        return out, 1.0
    sides = sorted(out)
    bad_ = np.array([[out[s].get(c, [0.0, 0.0])[0] for c in keys] for s in sides])
    total_ = np.array([[out[s].get(c, [0.0, 0.0])[1] for c in keys] for s in sides])
    return out, float(de.design_effect(bad_, total_))


def add_block(state: GateState, block: Block, clusters: ClusterBlock | None = None) -> GateState:
    """A new state with one block of outcomes added (pure; ``state`` is not changed).

    Running maxima of the e-processes are kept as well: a crossing of ``1/alpha`` is
    final (Ville's inequality covers the supremum over time), so a fail stays a fail and
    the confidence bound never widens again. Empty blocks are skipped.

    ``clusters`` (optional): the same block per side and user cluster. The maxima are
    then taken over the log e-values divided by the running design effect
    (:mod:`tierguard.operator.design_effect`), so per-user correlation does not pass
    for evidence.
    """
    if min(block.control_bad, block.control_total, block.canary_bad, block.canary_total) < 0:
        raise GateInputError(f"block counts cannot be negative: {block}")
    if block.empty:
        return state
    new = GateState.from_json(state.to_json())
    new.last = state.last
    if clusters:
        new.clusters, new.design_effect = add_clusters(state, clusters)
    deff = max(1.0, new.design_effect)
    if state.kind == "relative":
        args = (block.control_bad, block.control_total, block.canary_bad, block.canary_total)
        lf = fail_block_log_e(
            *args, state.control_bad, state.control_total, state.grid, state.fail_margin
        )
        lp = pass_block_log_e(
            *args,
            state.control_bad,
            state.control_total,
            state.canary_bad,
            state.canary_total,
            state.margins,
        )
        new.log_e_fail = [a + float(b) for a, b in zip(state.log_e_fail, lf, strict=True)]
        mix = float(log_mean_exp(np.asarray(new.log_e_fail) / deff))
        new.max_log_e_fail = max(state.max_log_e_fail, mix)
        new.log_e_pass = [a + float(b) for a, b in zip(state.log_e_pass, lp, strict=True)]
        new.max_log_e_pass = [
            max(a, b / deff) for a, b in zip(state.max_log_e_pass, new.log_e_pass, strict=True)
        ]
    new.control_bad += block.control_bad
    new.control_total += block.control_total
    new.canary_bad += block.canary_bad
    new.canary_total += block.canary_total
    new.blocks += 1
    return new


def rebase(state: GateState, readings: Mapping[str, ArmReading]) -> GateState:
    """Take ``readings`` as the new baseline without adding a block.

    Use it when the series behind an arm change identity, e.g. after promotion, when the
    ``holdback`` arm's counters start being passed as "control": otherwise their whole
    history would be counted as one interval.
    """
    new = GateState.from_json(state.to_json())
    new.last = {arm: {"bad": dict(r.bad), "total": dict(r.total)} for arm, r in readings.items()}
    return new


def update(state: GateState, readings: Mapping[str, ArmReading]) -> GateState:
    """Add the interval since the previous readings (raw cumulative counters per arm,
    keyed "control" and "canary"; after promotion pass the holdback arm as "control").

    The very first readings only set the baseline: what happened before the gate started
    is not attributable to this rollout. A long gap between readings (operator restart)
    is simply one larger block, which is as valid as many small ones.
    """
    cur = {arm: {"bad": dict(r.bad), "total": dict(r.total)} for arm, r in readings.items()}
    if state.last is None:
        new = GateState.from_json(state.to_json())
        new.last = cur
        return new
    prev = {arm: ArmReading(bad=v["bad"], total=v["total"]) for arm, v in state.last.items()}
    new = add_block(
        state, block_from_readings(prev, readings), cluster_block_from_readings(prev, readings)
    )
    if new is state:
        new = GateState.from_json(state.to_json())
    new.last = cur
    return new
