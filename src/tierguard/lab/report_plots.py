"""The lab report's PNG plots (matplotlib; the caller passes ``pyplot`` in, Agg backend).

* ``weight.png``: canary weight over time, with the scenario's events marked;
* ``quality.png``: per tier and signal, canary against control bad rates over time with
  95 % Wilson intervals per arm and the operator's anytime-valid bound, plus the users'
  satisfaction (simulator truth) per arm beside the product-wide aggregate -- the
  aggregate line is the one seed 003's dashboards watched;
* ``cost.png``: cumulative cost against the all-capable baseline, and cost per
  satisfied request against the baseline's.

:func:`tierguard.lab.report.write_report` imports matplotlib and calls these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tierguard.lab.report_figures import signal_series, weight_timeline, wilson
from tierguard.lab.runrecord import RunRecord

__all__ = ["plot_cost", "plot_quality", "plot_weight"]


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
