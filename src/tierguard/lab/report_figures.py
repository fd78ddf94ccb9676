"""The figures and verdicts a lab report states, read off a :class:`RunRecord` (pure).

Interval and bound helpers (``wilson``), what the operator's status says (failing gates,
the rollback entry, the outcome line, whether the scenario's expectation was met), time
series for the plots (weight, per-signal status, the verdict timeline) and the run's
economics and simulator truth (cost, saving at the final split, the aggregate shift).
Everything here only reads the record: gate verdicts, samples and bounds are the
operator's own, as written to status. :mod:`tierguard.lab.report` renders them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tierguard.lab import report_classifier as rcl
from tierguard.lab import report_preflight as rpf
from tierguard.lab import report_slices as rsl
from tierguard.lab.runrecord import RunRecord, Sample

__all__ = [
    "FINAL_WINDOW_S",
    "MAX_TIMELINE_ROWS",
    "aggregate_shift",
    "cost_summary",
    "expectation_met",
    "failed_gates",
    "final_saving",
    "naive_ceiling",
    "outcome_line",
    "rollback_entry",
    "signal_series",
    "verdict_timeline",
    "weight_timeline",
    "wilson",
]


def wilson(bad: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95 % Wilson score interval of a rate (None without samples)."""
    if n <= 0:
        return None
    p = bad / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def failed_gates(status: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(tier, signal, message) of every failing gate in a status (pure)."""
    out = []
    for tier in status.get("tiers") or []:
        for sig in tier.get("signals") or []:
            if sig.get("verdict") == "Fail":
                out.append(
                    (str(tier.get("tier")), str(sig.get("signal")), str(sig.get("message", "")))
                )
    return out


def rollback_entry(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The history entry that rolled the rollout back, if any."""
    for entry in reversed(status.get("history") or []):
        if isinstance(entry, Mapping) and entry.get("phase") == "RolledBack":
            return entry
    return None


def weight_timeline(samples: Sequence[Sample]) -> tuple[list[float], list[float]]:
    return [s.t for s in samples], [float(s.status.get("canaryWeight") or 0.0) for s in samples]


def signal_series(
    samples: Sequence[Sample],
) -> dict[tuple[str, str], list[tuple[float, Mapping[str, Any]]]]:
    """(tier, signal) -> [(t, signal status)] across samples."""
    out: dict[tuple[str, str], list[tuple[float, Mapping[str, Any]]]] = {}
    for s in samples:
        for tier in s.status.get("tiers") or []:
            for sig in tier.get("signals") or []:
                key = (str(tier.get("tier")), str(sig.get("signal")))
                out.setdefault(key, []).append((s.t, sig))
    return out


def cost_summary(record: RunRecord) -> dict[str, float | None]:
    """Spent, baseline, saving and cost per satisfied request at the end of the run."""
    if not record.samples:
        return {
            "spent": None,
            "baseline": None,
            "saving": None,
            "per_sat": None,
            "base_per_sat": None,
        }
    last = record.samples[-1]
    saving = 1 - last.spent_usd / last.all_capable_usd if last.all_capable_usd > 0 else None
    per_sat = last.spent_usd / last.satisfied if last.satisfied else None
    base_per_sat = (
        last.all_capable_usd / last.satisfied_if_baseline if last.satisfied_if_baseline else None
    )
    return {
        "spent": last.spent_usd,
        "baseline": last.all_capable_usd,
        "saving": saving,
        "per_sat": per_sat,
        "base_per_sat": base_per_sat,
        "saving_end": final_saving(record.samples),
    }


#: the window over which "saving at the final split" is measured
FINAL_WINDOW_S = 10.0


def final_saving(samples: Sequence[Sample], window: float = FINAL_WINDOW_S) -> float | None:
    """Saving over the last ``window`` seconds: what the final split saves (pure)."""
    if len(samples) < 2:
        return None
    last = samples[-1]
    first = next((s for s in reversed(samples) if last.t - s.t >= window), samples[0])
    base = last.all_capable_usd - first.all_capable_usd
    if base <= 0:
        return None
    return 1.0 - (last.spent_usd - first.spent_usd) / base


def outcome_line(record: RunRecord) -> str:
    st = record.final_status
    phase = st.get("phase") or "unknown"
    weight = float(st.get("canaryWeight") or 0)
    line = f"**{phase}** at step {st.get('stepDisplay') or '-'} (canary weight {weight:g} %)"
    fails = failed_gates(st)
    entry = rollback_entry(st)
    if phase == "RolledBack":
        if fails:
            line += "; failing gate(s): " + ", ".join(f"tier `{t}` / {s}" for t, s, _ in fails)
        slices = rsl.failed_slices(st)
        if slices:
            line += " (slice " + ", ".join(f"`{s}` on {g}" for _, s, g in slices) + ")"
        if entry is not None and entry.get("reason") == rpf.PREFLIGHT_FAILED:
            line += (
                f"; rolled back at pre-flight (0 % exposure) → reason {entry.get('reason')}: "
                f"{entry.get('message', '')}"
            )
        elif entry is not None:
            step = int(entry.get("step") or 0)
            at = f"the {record.steps[step]:g} % step" if step < len(record.steps) else "a step"
            line += (
                f"; rolled back at {at} (step {step + 1}/{len(record.steps)}) "
                f"→ reason {entry.get('reason')}: {entry.get('message', '')}"
            )
        line += rcl.outcome_suffix(st, record.steps)
    return line


def expectation_met(record: RunRecord) -> bool:
    st = record.final_status
    if st.get("phase") != record.expected_phase:
        return False
    if not rpf.expectation_met(st, record.policy, record.tally, record.expected_preflight):
        return False
    if not rsl.slice_named(st, record.expected_slice):
        return False
    if not rcl.cell_failed(st, record.expected_cell):
        return False
    if record.expected_tier is not None:
        return any(t == record.expected_tier for t, _, _ in failed_gates(st)) or (
            record.expected_tier in str(st.get("message", ""))
        )
    return True


def naive_ceiling(policy: Mapping[str, Any]) -> float | None:
    """The Absolute threshold of the aggregate-only policy's Custom SLO, if any."""
    for slo in ((policy.get("spec") or {}).get("analysis") or {}).get("slos") or []:
        if slo.get("signal") == "Custom" and slo.get("objective") == "Absolute":
            return float(slo["threshold"])
    return None


MAX_TIMELINE_ROWS = 40


def verdict_timeline(samples: Sequence[Sample]) -> list[tuple[float, str, str, str, str]]:
    """(t, phase, weight, verdicts, operator message) whenever one of them changed (pure).

    status.history records only phase and step transitions; this also shows the holds
    in between (NoData while Prometheus was away, Inconclusive while evidence grew).
    """
    rows: list[tuple[float, str, str, str, str]] = []
    last: tuple[str, str, str, str] | None = None
    for s in samples:
        st = s.status
        key = (
            str(st.get("phase") or ""),
            f"{float(st.get('canaryWeight') or 0):g} %",
            str(st.get("verdictSummary") or ""),
            str(st.get("message") or "").split(":")[0],
        )
        if key != last:
            rows.append((s.t, key[0], key[1], key[2], str(st.get("message") or "")))
            last = key
    if len(rows) > MAX_TIMELINE_ROWS:
        rows = rows[: MAX_TIMELINE_ROWS // 2] + rows[-MAX_TIMELINE_ROWS // 2 :]
    return rows


def aggregate_shift(record: RunRecord) -> dict[str, float | None]:
    """Simulator truth at the end: satisfaction of the simple tier's arms and of all
    traffic, so the report can state the Pareto trap in numbers."""
    if not record.samples:
        return {}
    arms = record.samples[-1].arms

    def share(keys: Sequence[str]) -> float | None:
        n = sum(arms[k][0] for k in keys if k in arms)
        return None if n == 0 else sum(arms[k][1] for k in keys if k in arms) / n

    control = share(["simple/control"])
    canary = share(["simple/canary"])
    everything = share(list(arms))
    drop = None if control is None or canary is None else control - canary
    return {"control": control, "canary": canary, "aggregate": everything, "simple_drop": drop}
