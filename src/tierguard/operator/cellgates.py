"""The classifier canary's gates, one per transition cell. Pure.

During a classifier canary every classified request has a cell (the stable classifier's
tier *from*, the new classifier's tier *to*) and a decider (the classifier whose tier it
was served by: sticky per session, ``weight`` % of sessions to the new one). Within one
cell the two deciders see the same kind of request (both classifiers scored it the same
way), so comparing them isolates what the new decision does to those requests:

* **Down** cells (*to* cheaper than *from*): the requests whose quality is at risk. The
  gate is the rollout's relative bad-rate gate (:mod:`tierguard.operator.statistics`: the
  fail and pass e-processes, anytime-valid under peeking) on thumbs-down among rated
  answers, canary = the new classifier's sessions, control = the stable classifier's
  sessions of the same cell, allowed drop ``rollout.classifierCanary.allowedDrop``. The
  alpha is ``1 - analysis.confidence`` split (Bonferroni) over every down cell the tiers
  allow, ``k (k - 1) / 2`` for ``k`` tiers, fixed in advance so that a cell appearing late
  does not spend budget another already used.
* **Up** cells: the requests that cost more. Their cost per request under each decider is
  reported; with ``maxCostRatio`` set, a ratio above it once both deciders have
  ``minSamplesPerArm`` requests fails (a point estimate, not a sequential test: cost is
  not a rate, and an up move is a spending decision more than a statistical one).
* Diagonal cells (the same tier) are neither: the two classifiers agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tierguard.api import metrics as m
from tierguard.api.classifierchange import CellGateStatus
from tierguard.api.enums import Verdict
from tierguard.operator import statistics as st

DOWN = "Down"
UP = "Up"

Key = tuple[str, str, str]  # (from, to, decider)


@dataclass(frozen=True)
class CellCounts:
    """Cumulative ``tierguard_classifier_cell_*`` counters summed over routers, by
    (from, to, decider). ``error``: a query failed."""

    requests: Mapping[Key, float] = field(default_factory=dict)
    rated: Mapping[Key, float] = field(default_factory=dict)
    bad: Mapping[Key, float] = field(default_factory=dict)
    cost: Mapping[Key, float] = field(default_factory=dict)
    error: str | None = None


def direction(frm: str, to: str, tiers: Sequence[str]) -> str | None:
    rank = {t: i for i, t in enumerate(tiers)}
    if frm not in rank or to not in rank or frm == to:
        return None
    return DOWN if rank[to] < rank[frm] else UP


def alpha_per_cell(confidence: float, tiers: Sequence[str]) -> float:
    k = len(tiers)
    return st.alpha_per_test(1.0 - confidence, max(1, k * (k - 1) // 2))


def cells_seen(counts: CellCounts, tiers: Sequence[str]) -> list[tuple[str, str]]:
    """Off-diagonal cells with any request, in tier order."""
    rank = {t: i for i, t in enumerate(tiers)}
    seen = {
        (f, t)
        for (f, t, _), n in counts.requests.items()
        if n > 0 and direction(f, t, tiers) is not None
    }
    return sorted(seen, key=lambda c: (rank[c[0]], rank[c[1]]))


def update(
    gate_state: Mapping[str, Any],
    counts: CellCounts,
    tiers: Sequence[str],
    allowed_drop: float,
) -> dict[str, Any]:
    """Add this look's readings to every down cell's e-processes (a new cell starts from
    its first reading, as a gate does)."""
    out = dict(gate_state)
    for f, t in cells_seen(counts, tiers):
        if direction(f, t, tiers) != DOWN:
            continue
        key = f"{f}>{t}"
        state = st.GateState.from_json(out[key]) if key in out else st.new_gate_state(allowed_drop)
        readings = {
            "control": st.ArmReading.of(
                counts.bad.get((f, t, m.DECIDER_STABLE), 0.0),
                counts.rated.get((f, t, m.DECIDER_STABLE), 0.0),
            ),
            "canary": st.ArmReading.of(
                counts.bad.get((f, t, m.DECIDER_CANDIDATE), 0.0),
                counts.rated.get((f, t, m.DECIDER_CANDIDATE), 0.0),
            ),
        }
        out[key] = st.update(state, readings).to_json()
    return out


def _per_request(cost: float, n: float) -> float | None:
    return cost / n if n > 0 else None


def evaluate(
    gate_state: Mapping[str, Any],
    counts: CellCounts,
    tiers: Sequence[str],
    *,
    allowed_drop: float,
    confidence: float,
    min_samples: float,
    max_cost_ratio: float | None,
) -> list[CellGateStatus]:
    """Every off-diagonal cell with traffic, with its verdict."""
    alpha = alpha_per_cell(confidence, tiers)
    out = []
    for f, t in cells_seen(counts, tiers):
        way = direction(f, t, tiers)
        s_key, c_key = (f, t, m.DECIDER_STABLE), (f, t, m.DECIDER_CANDIDATE)
        n_s, n_c = counts.requests.get(s_key, 0.0), counts.requests.get(c_key, 0.0)
        cost_s = _per_request(counts.cost.get(s_key, 0.0), n_s)
        cost_c = _per_request(counts.cost.get(c_key, 0.0), n_c)
        base: dict[str, Any] = {
            "from": f,
            "to": t,
            "direction": way,
            "stableRequests": round(n_s),
            "candidateRequests": round(n_c),
            "stableCostPerRequest": cost_s,
            "candidateCostPerRequest": cost_c,
        }
        if way == DOWN:
            raw = gate_state.get(f"{f}>{t}")
            if raw is None:
                out.append(
                    CellGateStatus.model_validate(
                        {**base, "verdict": Verdict.NO_DATA.value, "message": "first look"}
                    )
                )
                continue
            state = st.GateState.from_json(raw)
            r = st.evaluate(state, allowed_drop, alpha, min_samples)
            out.append(
                CellGateStatus.model_validate(
                    {
                        **base,
                        "verdict": r.verdict.value,
                        "stableBadRate": r.control_rate,
                        "candidateBadRate": r.canary_rate,
                        "upperBound": r.upper_bound,
                        "message": f"thumbs-down: {r.reason}"[:1024],
                    }
                )
            )
            continue
        verdict, why = Verdict.PASS, "cost reported (no maxCostRatio)"
        if min(n_s, n_c) < min_samples:
            verdict = Verdict.INCONCLUSIVE
            why = f"{min(n_s, n_c):.0f} of {min_samples:.0f} requests in the smaller side"
        elif max_cost_ratio is not None and cost_s and cost_c is not None:
            ratio = cost_c / cost_s
            ok = ratio <= max_cost_ratio
            verdict = Verdict.PASS if ok else Verdict.FAIL
            where = "within" if ok else "above"
            why = f"cost per request x{ratio:.2f} ({where} maxCostRatio {max_cost_ratio:g})"
        out.append(
            CellGateStatus.model_validate({**base, "verdict": verdict.value, "message": why})
        )
    return out
