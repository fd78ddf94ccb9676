"""The lab report's classifier-change part (issue 17): the decision shadow's transition
matrix (``status.classifierShadow``) and the classifier canary's cells
(``status.classifierCanary``), so the report of ``threshold-trap`` shows which traffic the
edit moved and which cell failed. Pure (status in, Markdown lines out);
:mod:`tierguard.lab.report` places it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _cell_name(cell: Mapping[str, Any]) -> str:
    return f"{cell.get('from')}→{cell.get('to')}"


def failed_cells(status: Mapping[str, Any]) -> list[str]:
    """``from→to`` of every classifier-canary cell that failed."""
    cc = status.get("classifierCanary") or {}
    return [_cell_name(c) for c in cc.get("cells") or [] if c.get("verdict") == "Fail"]


def cell_failed(status: Mapping[str, Any], expected: str | None) -> bool:
    """The expected cell (``complex→simple``) failed, or the rollback names it."""
    if expected is None:
        return True
    if expected in failed_cells(status):
        return True
    texts = [str(status.get("message", ""))]
    texts += [str(h.get("message", "")) for h in status.get("history") or []]
    return any(f"cell {expected}" in t for t in texts)


def tiers_of(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """The tiers a matrix names, in first-seen order (cheapest first as the operator
    writes them)."""
    out: list[str] = []
    for c in cells:
        for t in (str(c.get("from")), str(c.get("to"))):
            if t not in out:
                out.append(t)
    return out


def matrix_table(shadow: Mapping[str, Any]) -> list[str]:
    """The transition matrix: rows the stable classifier's tier, columns the new one's."""
    cells = list(shadow.get("cells") or [])
    if not cells:
        return ["(no transition counted)"]
    tiers = tiers_of(cells)
    n = {(str(c.get("from")), str(c.get("to"))): int(c.get("requests") or 0) for c in cells}
    total = sum(n.values())
    rows = [
        "| stable ↓ / new → | " + " | ".join(tiers) + " |",
        "|---|" + "---:|" * len(tiers),
    ]
    for f in tiers:
        row_total = sum(n.get((f, t), 0) for t in tiers)
        vals = []
        for t in tiers:
            v = n.get((f, t), 0)
            share = f" ({v / row_total:.1%})" if row_total else ""
            vals.append(f"**{v}**{share}" if f != t and v else f"{v}{share}")
        rows.append(f"| {f} | " + " | ".join(vals) + " |")
    rows.append("")
    rows.append(f"{total} requests counted by both classifiers; row shares in brackets.")
    return rows


def _pct(x: Any) -> str:
    return "-" if x is None else f"{float(x):.1%}"


def _bound(x: Any) -> str:
    """The upper bound of a cell's rise; 100 % means not bounded yet (a dash)."""
    return "-" if x is None or float(x) >= 1.0 else f"{float(x):.1%}"


def outcome_suffix(status: Mapping[str, Any], steps: Sequence[float]) -> str:
    """For a rollback by the classifier canary: at which of its steps, on which cell
    ("" otherwise)."""
    canary = status.get("classifierCanary") or {}
    failed = failed_cells(status)
    if status.get("phase") != "RolledBack" or not canary or not failed:
        return ""
    n = len([w for w in steps if w < 100]) or 1
    step = int(canary.get("step") or 0)
    first = " (its first stage)" if step == 0 else ""
    return (
        f"; the classifier canary was rolled back at its step {step + 1}/{n}{first}, "
        f"{float(canary.get('weight') or 0):g} % of sessions decided by the new classifier, "
        f"cell {', '.join(f'`{c}`' for c in failed)} failing"
    )


def cells_table(canary: Mapping[str, Any]) -> list[str]:
    rows = [
        "| cell | direction | verdict | stable classifier: requests, bad | new classifier: "
        "requests, bad | upper bound of the rise |",
        "|---|---|---|---:|---:|---:|",
    ]
    for c in canary.get("cells") or []:
        verdict = str(c.get("verdict"))
        rows.append(
            f"| {_cell_name(c)} | {c.get('direction')} | "
            + (f"**{verdict}**" if verdict == "Fail" else verdict)
            + f" | {c.get('stableRequests', 0)}, {_pct(c.get('stableBadRate'))} | "
            f"{c.get('candidateRequests', 0)}, {_pct(c.get('candidateBadRate'))} | "
            f"{_bound(c.get('upperBound'))} |"
        )
    return rows


def section(status: Mapping[str, Any]) -> list[str]:
    """``## The classifier change``: the decision shadow's matrix and the classifier
    canary's cells; empty when the run changed no classifier."""
    shadow = status.get("classifierShadow")
    canary = status.get("classifierCanary")
    if not shadow and not canary:
        return []
    lines = ["## The classifier change", ""]
    if shadow:
        lines += [
            "Decision shadow (`status.classifierShadow`): both classifiers scored every "
            "classified request, the stable one decided. Share of requests that would move: "
            f"{_pct(shadow.get('movedShare'))} (down to a cheaper tier "
            f"{_pct(shadow.get('downShare'))}, up {_pct(shadow.get('upShare'))}); projected "
            f"cost change {_pct(shadow.get('projectedCostChange'))}.",
            "",
            *matrix_table(shadow),
            "",
        ]
    if canary:
        failed = failed_cells(status)
        steps = f"step {int(canary.get('step') or 0) + 1}"
        weight = float(canary.get("weight") or 0.0)
        head = (
            f"Classifier canary (`status.classifierCanary`): the new classifier decided for "
            f"{weight:g} % of sessions ({steps}). "
        )
        if failed:
            head += (
                f"Cell {', '.join(f'`{c}`' for c in failed)} **failed** at its {steps}: "
                "rolled back, the stable classifier decides for everyone again."
            )
        lines += [head, "", *cells_table(canary), ""]
        if canary.get("message"):
            lines += [f"Operator: {canary['message']}", ""]
    return lines
