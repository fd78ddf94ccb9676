"""Where a classifier misroutes: confusion matrix, per-category and hard-case rates.

Pure numpy on purpose: training, ``tierguard calibrate``, the model-card test and the lab
all compute the same figures with the same code, and none of them needs scikit-learn
for it. Aggregate accuracy is reported, but the figures that matter are the ones
seed 003's dashboards lacked: per category, and on the hard (simple-looking) slice.

Vocabulary used throughout (tiers ordered cheapest first):

* ``cheap share``: share of queries routed to the cheapest tier (what the bill follows).
* ``under-route`` ("complex routed as simple" for two tiers): a query whose label is a
  more expensive tier routed to a cheaper one. This is the quality risk.
* ``over-route``: a query routed to a more expensive tier than its label: the cost leak.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tierguard.classifier.runtime import assign_tiers

__all__ = ["evaluate", "format_report", "wilson_upper"]


def wilson_upper(failures: int, n: int, z: float = 1.959964) -> float:
    """Upper end of the Wilson score interval (95 % two-sided by default) for a rate.

    Reported beside every misroute rate so a reader sees how little a rate measured on
    40 hard examples actually says.
    """
    if n <= 0:
        return 1.0
    p = failures / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + margin) / denom)


def _rate(k: int, n: int) -> float | None:
    return round(k / n, 6) if n else None


def evaluate(
    probabilities: npt.NDArray[np.floating[Any]],
    labels: Sequence[str],
    tiers: Sequence[str],
    thresholds: Sequence[float] | dict[str, float],
    categories: Sequence[str | None] | None = None,
    hard: Sequence[bool] | None = None,
    quality: Sequence[float | None] | None = None,
) -> dict[str, Any]:
    """Apply the tier rule at ``thresholds`` and describe the result as plain JSON data.

    ``labels`` are tier names; ``categories``, ``hard`` and ``quality`` are optional
    per-example annotations. ``quality`` (e.g. 1 when the cheap model's answer was judged
    equivalent, 0 when not; None when unlabelled) yields the mean quality of the queries
    each tier would receive: seed 003's "94 % equivalent" figure, measured per tier.
    The result is what goes into the model metadata and the model card.
    """
    tiers = list(tiers)
    if isinstance(thresholds, dict):
        thr = [float(thresholds[t]) for t in tiers[:-1]]
    else:
        thr = [float(t) for t in thresholds]
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.shape != (len(labels), len(tiers)):
        raise ValueError(f"probabilities shape {probs.shape} != ({len(labels)}, {len(tiers)})")
    index = {t: i for i, t in enumerate(tiers)}
    y = np.array([index[label] for label in labels], dtype=np.intp)
    pred = assign_tiers(probs, thr)
    n = len(y)
    k = len(tiers)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    under = int(np.sum(pred < y))
    over = int(np.sum(pred > y))
    expensive = int(np.sum(y > 0))
    cheap_labelled = int(np.sum(y == 0))
    under_n = int(np.sum(pred < y))
    report: dict[str, Any] = {
        "n": n,
        "tiers": tiers,
        "thresholds": {t: round(v, 6) for t, v in zip(tiers[:-1], thr, strict=True)},
        "accuracy": _rate(int(np.sum(pred == y)), n),
        "cheap_share": _rate(int(np.sum(pred == 0)), n),
        "label_cheap_share": _rate(cheap_labelled, n),
        # among queries labelled with a more expensive tier, share routed cheaper
        "under_route_rate": _rate(under_n, expensive),
        "under_route_upper95": round(wilson_upper(under_n, expensive), 6),
        # among queries labelled cheapest, share routed to a more expensive tier
        "over_route_rate": _rate(int(np.sum((y == 0) & (pred > 0))), cheap_labelled),
        "under_routed": under,
        "over_routed": over,
        # rows: label tier, columns: routed tier
        "confusion": {"labels": tiers, "matrix": confusion.tolist()},
    }
    if len(tiers) == 2:
        report["auc"] = _auc(probs[:, 1], y == 1)
    if categories is not None:
        cats = np.array([c if c is not None else "(none)" for c in categories], dtype=object)
        report["per_category"] = {
            cat: _slice(cats == cat, y, pred, tiers) for cat in _category_order(cats, y)
        }
    if quality is not None and any(q is not None for q in quality):
        qual = np.array([np.nan if q is None else float(q) for q in quality], dtype=np.float64)
        labelled = ~np.isnan(qual)
        per_tier: dict[str, Any] = {}
        for i, t in enumerate(tiers):
            m = labelled & (pred == i)
            per_tier[t] = {
                "n_labelled": int(m.sum()),
                "mean_quality": round(float(qual[m].mean()), 6) if m.any() else None,
            }
        report["quality_by_routed_tier"] = per_tier
    if hard is not None:
        hmask = np.asarray(hard, dtype=bool)
        if hmask.any():
            report["hard"] = _slice(hmask, y, pred, tiers)
            if categories is not None:
                report["hard_per_category"] = {
                    cat: _slice(hmask & (cats == cat), y, pred, tiers)
                    for cat in _category_order(cats[hmask], y[hmask])
                }
    return report


def _category_order(cats: npt.NDArray[Any], y: npt.NDArray[np.intp]) -> list[str]:
    """Categories sorted by their usual (most common) label tier, then by name: the card
    lists the cheap-tier categories first, as seed 003 does."""
    order = []
    for cat in set(cats.tolist()):
        labels = y[cats == cat]
        order.append((int(np.bincount(labels).argmax()), str(cat)))
    return [cat for _, cat in sorted(order)]


def _slice(
    mask: npt.NDArray[np.bool_],
    y: npt.NDArray[np.intp],
    pred: npt.NDArray[np.intp],
    tiers: Sequence[str],
) -> dict[str, Any]:
    n = int(mask.sum())
    wrong = int(np.sum(mask & (pred != y)))
    under = int(np.sum(mask & (pred < y)))
    routed = {t: int(np.sum(mask & (pred == i))) for i, t in enumerate(tiers)}
    labelled = {t: int(np.sum(mask & (y == i))) for i, t in enumerate(tiers)}
    return {
        "n": n,
        "labels": {t: c for t, c in labelled.items() if c},
        "routed": routed,
        "misroute_rate": _rate(wrong, n),
        "misroute_upper95": round(wilson_upper(wrong, n), 6),
        "under_route_rate": _rate(under, n),
    }


def _auc(score: npt.NDArray[np.float64], positive: npt.NDArray[np.bool_]) -> float | None:
    """ROC AUC by the rank-sum formula (ties get average ranks); None if one class only."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    auc = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return round(float(auc), 6)


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:5.1f}%"


def format_report(report: dict[str, Any]) -> str:
    """Human-readable rendering for the CLI: confusion matrix, then the slices."""
    tiers: list[str] = report["tiers"]
    width = max(12, *(len(t) + 2 for t in tiers))
    lines = [
        f"n={report['n']}  thresholds={report['thresholds']}  accuracy={_pct(report['accuracy'])}"
        f"  cheap share={_pct(report['cheap_share'])}"
        f" (labels: {_pct(report['label_cheap_share'])})",
        f"under-routed (more expensive label, routed cheaper): {_pct(report['under_route_rate'])}"
        f" (95% upper {_pct(report['under_route_upper95'])})"
        f"   over-routed (cheapest label, routed up): {_pct(report['over_route_rate'])}",
        "",
        "confusion (rows: label, columns: routed)",
        " " * width + "".join(f"{t:>{width}}" for t in tiers),
    ]
    for t, row in zip(tiers, report["confusion"]["matrix"], strict=True):
        lines.append(f"{t:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    for key, title in (("per_category", "per category"), ("hard_per_category", "hard cases")):
        if key not in report:
            continue
        lines += ["", f"{title}: {'n':>6} {'misrouted':>10} {'95% upper':>10}  routed"]
        for cat, s in report[key].items():
            routed = ", ".join(f"{t} {c}" for t, c in s["routed"].items())
            lines.append(
                f"  {cat:<30} {s['n']:>6} {_pct(s['misroute_rate']):>10} "
                f"{_pct(s['misroute_upper95']):>10}  {routed}"
            )
    if "hard" in report:
        h = report["hard"]
        lines.append(
            f"  {'ALL HARD (simple-looking)':<30} {h['n']:>6} {_pct(h['misroute_rate']):>10} "
            f"{_pct(h['misroute_upper95']):>10}"
        )
    if "quality_by_routed_tier" in report:
        lines += ["", "quality labels by routed tier:"]
        for t, q in report["quality_by_routed_tier"].items():
            lines.append(f"  {t:<30} mean {_pct(q['mean_quality'])} over {q['n_labelled']}")
    return "\n".join(lines)


def _md_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def markdown_tables(report: dict[str, Any]) -> str:
    """The report as Markdown tables (the model card embeds this verbatim; a test
    recomputes it from the shipped model and fails when the card is stale)."""
    tiers: list[str] = report["tiers"]
    lines = [
        "| measure | value |",
        "|---|---|",
        f"| queries | {report['n']} |",
        f"| thresholds | {', '.join(f'{t} >= {v}' for t, v in report['thresholds'].items())} |",
        f"| accuracy | {_md_pct(report['accuracy'])} |",
        f"| cheap-tier share (routed / labelled) | {_md_pct(report['cheap_share'])} / "
        f"{_md_pct(report['label_cheap_share'])} |",
        f"| complex routed as simple (under-route) | {_md_pct(report['under_route_rate'])} "
        f"(95 % upper {_md_pct(report['under_route_upper95'])}) |",
        f"| simple routed as complex (over-route) | {_md_pct(report['over_route_rate'])} |",
    ]
    if report.get("auc") is not None:
        lines.append(f"| ROC AUC | {report['auc']:.4f} |")
    lines += [
        "",
        "| label \\ routed | " + " | ".join(tiers) + " |",
        "|---" * (len(tiers) + 1) + "|",
    ]
    for t, row in zip(tiers, report["confusion"]["matrix"], strict=True):
        lines.append(f"| {t} | " + " | ".join(str(v) for v in row) + " |")
    for key, title in (("per_category", "category"), ("hard_per_category", "hard cases of")):
        if key not in report:
            continue
        lines += [
            "",
            f"| {title} | n | misrouted | 95 % upper | "
            + " | ".join(f"routed {t}" for t in tiers)
            + " |",
            "|---" * (4 + len(tiers)) + "|",
        ]
        for cat, s in report[key].items():
            lines.append(
                f"| {cat} | {s['n']} | {_md_pct(s['misroute_rate'])} | "
                f"{_md_pct(s['misroute_upper95'])} | "
                + " | ".join(str(s["routed"][t]) for t in tiers)
                + " |"
            )
        if key == "hard_per_category" and "hard" in report:
            h = report["hard"]
            lines.append(
                f"| **all hard** | {h['n']} | {_md_pct(h['misroute_rate'])} | "
                f"{_md_pct(h['misroute_upper95'])} | "
                + " | ".join(str(h["routed"][t]) for t in tiers)
                + " |"
            )
    return "\n".join(lines)
