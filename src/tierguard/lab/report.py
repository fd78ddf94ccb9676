"""The end-of-run report: a Markdown file and PNG plots, from recorded samples.

Everything here is pure with respect to the system under test: it takes a
:class:`~tierguard.lab.runrecord.RunRecord` (what the supervisor recorded every couple of
seconds: the RoutingPolicy's status as read from the API server, Prometheus' cost
counters, the simulated users' tally) and writes files. That makes the report
unit-testable from a synthetic record, and it means the report can never show a verdict
the operator did not write: gate verdicts, samples and bounds are copied from status;
figures that come from the simulator (true satisfaction, per-category quality) are
labelled as such.

This module lays out ``report.md`` (:func:`render_markdown`, its tables) and writes the
report directory (:func:`write_report`: ``report.md``, the plots, ``run.json``). The
figures it states are computed in :mod:`tierguard.lab.report_figures`, the plots drawn in
:mod:`tierguard.lab.report_plots`; the pre-flight, slice and classifier sections come
from :mod:`~tierguard.lab.report_preflight`, :mod:`~tierguard.lab.report_slices` and
:mod:`~tierguard.lab.report_classifier`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tierguard.lab import report_classifier as rcl
from tierguard.lab import report_preflight as rpf
from tierguard.lab import report_slices as rsl
from tierguard.lab.conversations import conversation_lines
from tierguard.lab.judge import verdict_table
from tierguard.lab.report_figures import (
    FINAL_WINDOW_S,
    aggregate_shift,
    cost_summary,
    expectation_met,
    naive_ceiling,
    outcome_line,
    verdict_timeline,
)
from tierguard.lab.report_plots import plot_cost, plot_quality, plot_weight
from tierguard.lab.runrecord import RunRecord, Sample, record_to_json

__all__ = ["PLOT_FILES", "REPORT_FILE", "render_markdown", "write_report"]

PLOT_FILES = ("weight.png", "quality.png", "cost.png")
REPORT_FILE = "report.md"


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
