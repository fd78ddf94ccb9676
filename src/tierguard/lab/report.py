"""The end-of-run report: a Markdown file and PNG plots, from recorded samples.

Everything here is pure with respect to the system under test: it takes a
:class:`RunRecord` (what the supervisor recorded every couple of seconds: the
RoutingPolicy's status as read from the API server, Prometheus' cost counters, the
simulated users' tally) and writes files. That makes the report unit-testable from a
synthetic record, and it means the report can never show a verdict the operator did not
write: gate verdicts, samples and bounds are copied from status; figures that come from
the simulator (true satisfaction, per-category quality) are labelled as such.

Plots (matplotlib, Agg backend -- no display needed):

* ``weight.png``: canary weight over time, with the scenario's events marked;
* ``quality.png``: per tier and signal, canary against control bad rates over time with
  95 % Wilson intervals per arm and the operator's anytime-valid bound, plus the users'
  satisfaction (simulator truth) per arm beside the product-wide aggregate -- the
  aggregate line is the one seed 003's dashboards watched;
* ``cost.png``: cumulative cost against the all-capable baseline, and cost per
  satisfied request against the baseline's.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tierguard.lab import report_classifier as rcl
from tierguard.lab import report_preflight as rpf
from tierguard.lab import report_slices as rsl
from tierguard.lab.conversations import conversation_lines
from tierguard.lab.judge import verdict_table

PLOT_FILES = ("weight.png", "quality.png", "cost.png")
REPORT_FILE = "report.md"


@dataclass(frozen=True)
class Sample:
    """One observation of the running system (every ~2 s)."""

    t: float  # seconds since the rollout started
    status: Mapping[str, Any]  # RoutingPolicy .status as the API server returned it
    spent_usd: float = 0.0  # sum(tierguard_cost_usd_total), from Prometheus
    all_capable_usd: float = 0.0  # the same tokens priced at the baseline model
    requests: int = 0  # simulator: requests answered so far
    satisfied: int = 0  # simulator: satisfied users so far
    satisfied_if_baseline: int = 0  # simulator: satisfied had the baseline served all
    #: simulator: (tier, arm) -> (served, satisfied) so far
    arms: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: product-wide thumbs (down, rated) so far -- what an aggregate-only gate reads
    thumbs: tuple[int, int] = (0, 0)


@dataclass
class RunRecord:
    """A whole run, as the report needs it."""

    scenario: str
    title: str
    story: str
    expected_phase: str
    expected_tier: str | None
    #: how pre-flight must end ("Passed", "Failed"; None: not asserted)
    expected_preflight: str | None = None
    #: the slice gate that must fail ("topic=opening_hours"; None: not asserted)
    expected_slice: str | None = None
    #: the classifier canary's cell that must fail ("complex→simple"; None: not asserted)
    expected_cell: str | None = None
    samples: list[Sample] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    kubectl_line: str = ""
    final_status: Mapping[str, Any] = field(default_factory=dict)
    policy: Mapping[str, Any] = field(default_factory=dict)
    tally: Mapping[str, Any] = field(default_factory=dict)
    steps: Sequence[float] = (5, 10, 25, 50, 100)
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    naive: RunRecord | None = None


# --------------------------------------------------------------------------- pure figures


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


def record_to_json(record: RunRecord) -> dict[str, Any]:
    """The raw record (samples, events, status, tally) for re-plotting or auditing."""
    out = dataclasses.asdict(record)
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _k(x: float | None) -> float | None:
    return None if x is None else 1000 * x


def _usd(x: float | None) -> str:
    return "–" if x is None else f"${x:.4f}"


def _arm_table(sample: Sample) -> list[str]:
    rows = ["| tier / arm | served | satisfied (simulator truth) |", "|---|---:|---:|"]
    served = sum(n for n, _ in sample.arms.values())
    sat = sum(s for _, s in sample.arms.values())
    for key in sorted(sample.arms):
        n, s = sample.arms[key]
        rows.append(f"| {key} | {n} | {_pct(s / n if n else None)} |")
    rows.append(
        f"| **all traffic (aggregate)** | {served} | {_pct(sat / served if served else None)} |"
    )
    return rows


def _category_table(tally: Mapping[str, Any]) -> list[str]:
    cats: Mapping[str, Mapping[str, Mapping[str, Any]]] = tally.get("categories") or {}
    models = sorted({m for v in cats.values() for m in v})
    if not models:
        return []
    head = "| category | " + " | ".join(f"{m}: served / satisfied" for m in models) + " |"
    rows = [head, "|---|" + "---:|" * len(models)]
    for cat in sorted(cats):
        cells = []
        for m in models:
            c = cats[cat].get(m)
            cells.append(f"{c['served']} / {c['satisfaction']:.0%}" if c else "–")
        rows.append(f"| {cat} | " + " | ".join(cells) + " |")
    return rows


def _gate_table(status: Mapping[str, Any]) -> list[str]:
    rows = [
        "| tier | signal | control bad/samples | canary bad/samples | bound | allowed | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for tier in status.get("tiers") or []:
        for sig in tier.get("signals") or []:
            c, k = sig.get("control") or {}, sig.get("canary") or {}
            ub, allowed = sig.get("differenceUpperBound"), sig.get("allowed")
            ub_text = "–" if ub is None else f"{ub:+.3f}"
            allowed_text = "–" if allowed is None else f"{allowed:.3f}"
            label = f"{tier.get('tier')} · {sig['slice']}" if sig.get("slice") else tier.get("tier")
            rows.append(
                f"| {label} | {sig.get('signal')} "
                f"| {c.get('bad', 0)}/{c.get('samples', 0)} "
                f"| {k.get('bad', 0)}/{k.get('samples', 0)} "
                f"| {ub_text} | {allowed_text} | **{sig.get('verdict')}** |"
            )
    return rows


def _judge_section(status: Mapping[str, Any]) -> list[str]:
    rows = verdict_table(status)
    if not rows:
        return []
    intro = (
        "The pairwise judge's verdicts on the canary's answers (each pair judged in both "
        "orders; ties include the inconsistent pairs, errors are missing data):"
    )
    return [intro, "", *rows, ""]


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


def _timeline_table(samples: Sequence[Sample]) -> list[str]:
    out = ["| t (s) | phase | weight | verdicts | operator's message |", "|---:|---|---:|---|---|"]
    for t, phase, weight, verdicts, message in verdict_timeline(samples):
        msg = message.replace("|", "\\|")
        out.append(f"| {t:.0f} | {phase} | {weight} | {verdicts} | {msg} |")
    return out


def _history_table(status: Mapping[str, Any]) -> list[str]:
    rows = ["| time | phase | step | weight | reason | message |", "|---|---|---:|---:|---|---|"]
    for h in status.get("history") or []:
        msg = str(h.get("message", "")).replace("|", "\\|")
        rows.append(
            f"| {h.get('time')} | {h.get('phase')} | {h.get('step')} "
            f"| {float(h.get('weight') or 0):g} % | {h.get('reason')} | {msg} |"
        )
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


def render_markdown(record: RunRecord, plots: Sequence[str] = PLOT_FILES) -> str:
    """The report text (pure)."""
    st = record.final_status
    met = expectation_met(record)
    lines = [
        f"# tierguard lab — scenario `{record.scenario}`",
        "",
        f"*{record.title}.* {record.story}",
        "",
        f"Outcome (from the RoutingPolicy's status): {outcome_line(record)}",
        "",
        f"Expected: **{record.expected_phase}**"
        + (f" with tier `{record.expected_tier}` named" if record.expected_tier else "")
        + (f", slice `{record.expected_slice}` failing" if record.expected_slice else "")
        + (
            f", classifier canary cell `{record.expected_cell}` failing at its first step"
            if record.expected_cell
            else ""
        )
        + (f", pre-flight {record.expected_preflight}" if record.expected_preflight else "")
        + (" — ✅ as expected." if met else " — ❌ NOT as expected."),
        "",
        "```",
        "$ kubectl get routingpolicies -o wide",
        record.kubectl_line.rstrip() or "(not captured)",
        "```",
        "",
        f"Run time: {record.duration_s:.0f} s of rollout. "
        "The routers ran as local processes built from the operator's Deployment (no kubelet "
        "here: same command, arguments and environment, Secrets resolved from the API); "
        "everything else — kube-apiserver, etcd, controller manager, Prometheus, the operator — "
        "is the real thing.",
        "",
        *rpf.section(st, record.policy, record.tally),
        *rsl.section(st),
        *rcl.section(st),
        "## Gates at the end",
        "",
        *_gate_table(st),
        "",
        *_judge_section(st),
        "## Transitions (status.history)",
        "",
        *_history_table(st),
        "",
        "## What the operator said along the way (status, sampled every 2 s)",
        "",
        *_timeline_table(record.samples),
        "",
    ]
    if record.events:
        lines += ["## Scenario events", ""]
        lines += [f"- t = {t:.0f} s: {label}" for t, label in record.events]
        lines.append("")
    cost = cost_summary(record)
    lines += [
        "## Cost",
        "",
        "| | this rollout | all-capable baseline |",
        "|---|---:|---:|",
        f"| total cost | {_usd(cost['spent'])} | {_usd(cost['baseline'])} |",
        f"| cost per 1,000 satisfied requests | {_usd(_k(cost['per_sat']))} "
        f"| {_usd(_k(cost['base_per_sat']))} |",
        "",
        f"Saving: **{_pct(cost['saving'])}** of the all-capable bill over the whole run "
        f"(ramp-up included), **{_pct(cost['saving_end'])}** at the final split (the last "
        f"{FINAL_WINDOW_S:.0f} s). Cost comes from the routers' `tierguard_cost_usd_total` in "
        "Prometheus; the baseline prices the same tokens at the capable model's prices; "
        "satisfaction is the simulator's truth.",
        "",
    ]
    shift = aggregate_shift(record)
    if record.samples:
        lines += [
            "## What users experienced (simulator truth)",
            "",
            *_arm_table(record.samples[-1]),
            "",
        ]
        if shift.get("simple_drop") is not None:
            lines += [
                f"The simple tier's canary arm satisfied {_pct(shift['canary'])} of its users "
                f"against {_pct(shift['control'])} on the control arm "
                f"({-(shift['simple_drop'] or 0) * 100:+.1f} points), while the aggregate over "
                f"all traffic stood at {_pct(shift['aggregate'])}.",
                "",
            ]
        cat = _category_table(record.tally)
        if cat:
            lines += ["Per category and serving model:", "", *cat, ""]
        quantiles = [record.tally.get(f"latency_p{q}_s") for q in (50, 95, 99)]
        if all(isinstance(q, int | float) for q in quantiles):
            p50, p95, p99 = (1000 * float(q) for q in quantiles)  # type: ignore[arg-type]
            lines += [
                "Latency as users saw it (whole run, fallbacks included): "
                f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms.",
                "",
            ]
        switches = record.tally.get("arm_switches")
        if switches is not None:
            lines += [
                f"Stickiness: {switches} time(s) an assignment unit (a conversation; a user "
                "sending lone questions) served by the canary was sent back to "
                "the baseline while the weight had not gone down "
                f"({record.tally.get('requests', 0)} requests, "
                f"{record.tally.get('rated', 0)} rated).",
                "",
            ]
        conversations = record.tally.get("conversations")
        if isinstance(conversations, Mapping):
            lines += conversation_lines(dict(conversations), switches)
    if record.naive is not None:
        n = record.naive
        lines += [
            "## The same world, judged by an aggregate-only gate (`--compare-naive`)",
            "",
            "Configured the way Flagger or Argo Rollouts would be: one product-wide metric "
            "(thumbs-down share over all tiers and arms) against a fixed ceiling, no per-tier "
            "split. It runs through the same operator (a `Custom` SLO whose PromQL names "
            "neither tier nor arm).",
            "",
            f"Outcome: {outcome_line(n)}",
            "",
            "```",
            n.kubectl_line.rstrip() or "(not captured)",
            "```",
            "",
        ]
        nshift = aggregate_shift(n)
        if nshift.get("aggregate") is not None:
            lines += [
                f"Product-wide satisfaction at the end: {_pct(nshift['aggregate'])}; simple tier "
                f"canary {_pct(nshift.get('canary'))} vs control {_pct(nshift.get('control'))}.",
                "",
            ]
        if n.samples:
            down, rated = n.samples[-1].thumbs
            lines += [
                f"Aggregate thumbs-down share it gated on: {_pct(down / rated if rated else None)} "
                f"of {rated} ratings, under its ceiling of {_pct(naive_ceiling(n.policy))} — "
                "while the simple tier's canary lost the points shown above.",
                "",
            ]
    if plots:
        lines += ["## Figures", ""]
        lines += [f"![{p}]({p})" for p in plots]
        lines.append("")
    if record.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in record.notes], ""]
    if record.policy:
        lines += [
            "## The policy applied",
            "",
            "```yaml",
            yaml.safe_dump(dict(record.policy), sort_keys=False).rstrip(),
            "```",
            "",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots


def _events(ax: Any, record: RunRecord) -> None:
    for t, label in record.events:
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
        ax.annotate(label, (t, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                    fontsize=7, va="top", ha="right", color="grey")  # fmt: skip


def plot_weight(record: RunRecord, path: Path, *, plt: Any) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for rec, style, label in (
        (record, "-", "per-tier gates"),
        (record.naive, "--", "aggregate-only gate"),
    ):
        if rec is None or not rec.samples:
            continue
        t, w = weight_timeline(rec.samples)
        ax.step(
            t, w, where="post", linestyle=style, label=f"{label}: {rec.final_status.get('phase')}"
        )
    _events(ax, record)
    ax.set_xlabel("seconds since the rollout started")
    ax.set_ylabel("canary weight (%)")
    ax.set_ylim(-2, 105)
    ax.set_title(f"{record.scenario}: canary weight of the simple tier")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_quality(record: RunRecord, path: Path, *, plt: Any) -> None:
    series = signal_series(record.samples)
    keys = sorted(series)
    n = len(keys) + 1
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.6 * n), squeeze=False)
    for ax, key in zip(axes[:, 0], keys, strict=False):
        pts = series[key]
        ts = [t for t, _ in pts]
        for arm, colour in (("control", "tab:blue"), ("canary", "tab:orange")):
            rates, lo, hi = [], [], []
            for _, sig in pts:
                a = sig.get(arm) or {}
                iv = wilson(int(a.get("bad", 0)), int(a.get("samples", 0)))
                rates.append(a.get("bad", 0) / a["samples"] if a.get("samples") else float("nan"))
                lo.append(iv[0] if iv else float("nan"))
                hi.append(iv[1] if iv else float("nan"))
            ax.plot(ts, rates, color=colour, label=f"{arm} bad rate")
            ax.fill_between(ts, lo, hi, color=colour, alpha=0.2, label=f"{arm} 95 % Wilson")
        ubs = []
        for _, sig in pts:
            ub = sig.get("differenceUpperBound")
            c = sig.get("control") or {}
            base = c["bad"] / c["samples"] if c.get("samples") else 0.0
            absolute = not c.get("samples")
            ubs.append(float("nan") if ub is None else (ub if absolute else base + ub))
        ax.plot(ts, ubs, color="tab:red", linestyle="--", label="operator's anytime-valid bound")
        allowed = pts[-1][1].get("allowed")
        if isinstance(allowed, int | float):
            c = pts[-1][1].get("control") or {}
            ref = 0.0 if not c.get("samples") else c["bad"] / c["samples"]
            ax.axhline(ref + allowed, color="tab:red", linewidth=0.8, label="allowed")
        finite = [v for v in [*ubs, *hi] if v == v]
        top = max([0.1, *(4 * allowed for _ in [0] if isinstance(allowed, int | float))])
        ax.set_ylim(0, min(1.0, max(top, 1.2 * max(finite[len(finite) // 3 :] or [0.0]))))
        verdicts = f"final verdict {pts[-1][1].get('verdict')}"
        ax.set_title(f"tier {key[0]} · {key[1]} ({verdicts})", fontsize=9)
        ax.set_ylabel("bad rate")
        ax.legend(fontsize=6, loc="upper right")
        _events(ax, record)
    ax = axes[-1, 0]
    ts = [s.t for s in record.samples]
    for arm_key, colour in (("simple/control", "tab:blue"), ("simple/canary", "tab:orange")):
        vals = []
        for s in record.samples:
            served, sat = s.arms.get(arm_key, (0, 0))
            vals.append(sat / served if served else float("nan"))
        ax.plot(ts, vals, color=colour, label=f"{arm_key} satisfaction")
    agg = [s.satisfied / s.requests if s.requests else float("nan") for s in record.samples]
    ax.plot(ts, agg, color="black", linewidth=2, label="all traffic (aggregate)")
    ax.set_title("users' satisfaction, cumulative (simulator truth)", fontsize=9)
    ax.set_xlabel("seconds since the rollout started")
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cost(record: RunRecord, path: Path, *, plt: Any) -> None:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 5.5))
    ts = [s.t for s in record.samples]
    ax1.plot(ts, [s.spent_usd for s in record.samples], label="this rollout")
    ax1.plot(ts, [s.all_capable_usd for s in record.samples], label="all-capable baseline")
    ax1.set_ylabel("cumulative cost (USD)")
    ax1.legend(fontsize=8)
    ax1.set_title("cost")
    ax2.plot(
        ts,
        [s.spent_usd / s.satisfied if s.satisfied else float("nan") for s in record.samples],
        label="this rollout",
    )
    ax2.plot(
        ts,
        [
            s.all_capable_usd / s.satisfied_if_baseline if s.satisfied_if_baseline else float("nan")
            for s in record.samples
        ],
        label="all-capable baseline",
    )
    ax2.set_ylabel("USD per satisfied request")
    ax2.set_xlabel("seconds since the rollout started")
    ax2.legend(fontsize=8)
    _events(ax1, record)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(record: RunRecord, out_dir: Path) -> Path:
    """Write report.md and the PNG plots into ``out_dir``; return the report's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    plot_weight(record, out_dir / "weight.png", plt=plt)
    plot_quality(record, out_dir / "quality.png", plt=plt)
    plot_cost(record, out_dir / "cost.png", plt=plt)
    path = out_dir / REPORT_FILE
    path.write_text(render_markdown(record))
    (out_dir / "run.json").write_text(json.dumps(record_to_json(record), default=str, indent=1))
    return path
