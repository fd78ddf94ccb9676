"""Counter readings to gate blocks: Prometheus counter deltas (resets handled per
series), per-arm readings and per-user-cluster blocks (part of
:mod:`tierguard.operator.statistics`, which re-exports every name)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tierguard.operator import design_effect as de


class GateInputError(ValueError):
    """A reading or parameter a gate cannot use (negative count, alpha outside (0, 1))."""


def counter_delta(prev: float | None, cur: float) -> float:
    """Increase of a Prometheus counter between two raw readings.

    A counter that went down was restarted (the process restarted and counts from 0
    again), so everything it shows now was counted since the previous look: the delta is
    the new value. Raw differences are used instead of PromQL ``increase()``, which
    extrapolates to the window edges and returns fractional counts.
    """
    if cur < 0 or (prev is not None and prev < 0):
        raise GateInputError(f"a counter cannot be negative (previous {prev}, current {cur})")
    if prev is None:
        return cur
    return cur - prev if cur >= prev else cur


def series_delta(prev: Mapping[str, float] | None, cur: Mapping[str, float]) -> float:
    """Summed increase over several series (one per router replica) of one counter.

    Resets are detected per series: summing first would hide one replica's restart
    behind the others' growth. A series seen for the first time started from zero since
    the previous look; a series that vanished (pod gone) contributes nothing.
    """
    prev = prev or {}
    return float(sum(counter_delta(prev.get(key), value) for key, value in cur.items()))


@dataclass(frozen=True)
class ArmReading:
    """Raw cumulative counter readings of one arm: bad outcomes and all outcomes, each
    as ``{series key: value}`` (the key is usually the pod; a single series may use "").
    """

    bad: Mapping[str, float]
    total: Mapping[str, float]

    @classmethod
    def of(cls, bad: float, total: float) -> ArmReading:
        """A reading with one series per counter (already summed by the caller)."""
        return cls(bad={"": float(bad)}, total={"": float(total)})


@dataclass(frozen=True)
class Block:
    """Outcomes counted in one interval (deltas), per arm."""

    control_bad: float
    control_total: float
    canary_bad: float = 0.0
    canary_total: float = 0.0

    @property
    def empty(self) -> bool:
        return self.control_total + self.canary_total <= 0


def block_from_readings(
    prev: Mapping[str, ArmReading] | None, cur: Mapping[str, ArmReading]
) -> Block:
    """Block deltas from two successive readings keyed by arm ("control", "canary").

    ``bad`` is clipped into ``[0, total]``: the two counters are separate series scraped
    at slightly different instants, so a block can momentarily show more bad outcomes
    than outcomes.
    """
    out: dict[str, tuple[float, float]] = {}
    for arm in ("control", "canary"):
        reading = cur.get(arm)
        if reading is None:
            out[arm] = (0.0, 0.0)
            continue
        before = prev.get(arm) if prev else None
        total = series_delta(before.total if before else None, reading.total)
        bad = series_delta(before.bad if before else None, reading.bad)
        out[arm] = (min(max(bad, 0.0), total), total)
    return Block(out["control"][0], out["control"][1], out["canary"][0], out["canary"][1])


def cluster_block_from_readings(
    prev: Mapping[str, ArmReading] | None, cur: Mapping[str, ArmReading]
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per side and user cluster, the block's (bad, total): series keys of clustered
    readings are ``instance#cluster`` (:mod:`tierguard.operator.design_effect`)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for arm in ("control", "canary"):
        reading = cur.get(arm)
        if reading is None:
            continue
        before = prev.get(arm) if prev else None
        bad_by = de.split_by_cluster(reading.bad)
        per: dict[str, tuple[float, float]] = {}
        for cluster, totals in de.split_by_cluster(reading.total).items():
            total = series_delta(before.total if before else None, totals)
            bad = series_delta(before.bad if before else None, bad_by.get(cluster, {}))
            per[cluster] = (min(max(bad, 0.0), total), total)
        out[arm] = per
    return out
