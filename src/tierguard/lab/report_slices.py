"""The lab report's slice part (issue 17): the tier's own gates beside its slice gates, so
the report of ``slice-trap`` shows the tier looking fine and the slice failing. Pure
(status in, Markdown lines out); :mod:`tierguard.lab.report` places it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TIER_OWN = "(the tier)"


def _rate(sample: Mapping[str, Any]) -> str:
    n, bad = int(sample.get("samples") or 0), int(sample.get("bad") or 0)
    return f"{bad}/{n} ({bad / n:.1%})" if n else "0/0"


def has_slices(status: Mapping[str, Any]) -> bool:
    """Whether any gate in ``status`` is a slice gate."""
    return any(
        sig.get("slice") for tier in status.get("tiers") or [] for sig in tier.get("signals") or []
    )


def failed_slices(status: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(tier, slice, signal) of every failing slice gate in ``status``."""
    return [
        (str(tier.get("tier")), str(sig["slice"]), str(sig.get("signal")))
        for tier in status.get("tiers") or []
        for sig in tier.get("signals") or []
        if sig.get("slice") and sig.get("verdict") == "Fail"
    ]


def slice_named(status: Mapping[str, Any], expected: str | None) -> bool:
    """The expected slice (``topic=opening_hours``) failed, or the rollback names it (a
    rollback keeps its message in status.message and in the history entry)."""
    if expected is None:
        return True
    if any(s == expected for _, s, _ in failed_slices(status)):
        return True
    texts = [str(status.get("message", ""))]
    texts += [str(h.get("message", "")) for h in status.get("history") or []]
    return any(f"slice {expected}" in t for t in texts)


def section(status: Mapping[str, Any]) -> list[str]:
    """``## The tier and its slices``: per tier with slice gates, its own gates first, then
    each slice value's; empty when the policy declares no slices."""
    if not has_slices(status):
        return []
    rows = [
        "## The tier and its slices",
        "",
        "Each tier's own gates judge the whole tier; its slice gates judge each declared "
        "value of `analysis.slices` (values outside the list count as `other`). A loss in a "
        "small slice barely moves the tier:",
        "",
        "| tier | slice | signal | canary bad/samples | allowed | verdict |",
        "|---|---|---|---:|---:|---|",
    ]
    summary: list[str] = []
    for tier in status.get("tiers") or []:
        name = str(tier.get("tier"))
        signals = tier.get("signals") or []
        if not any(sig.get("slice") for sig in signals):
            continue
        for sig in signals:
            allowed = sig.get("allowed")
            rows.append(
                f"| {name} | {sig.get('slice') or TIER_OWN} | {sig.get('signal')} "
                f"| {_rate(sig.get('canary') or {})} "
                f"| {'–' if allowed is None else f'{allowed:.3f}'} | **{sig.get('verdict')}** |"
            )
        own = {x.get("signal"): x for x in signals if not x.get("slice")}
        for sig in signals:
            if not sig.get("slice") or sig.get("verdict") != "Fail":
                continue
            tier_gate = own.get(sig.get("signal"))
            if tier_gate is None:
                continue
            summary.append(
                f"Tier `{name}` on {sig.get('signal')}: **{tier_gate.get('verdict')}** "
                f"(canary {_rate(tier_gate.get('canary') or {})}); slice `{sig['slice']}`: "
                f"**Fail** (canary {_rate(sig.get('canary') or {})})."
            )
    return [*rows, "", *summary, *([""] if summary else [])]
