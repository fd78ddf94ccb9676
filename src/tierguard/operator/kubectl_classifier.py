"""``kubectl tierguard status``: the classifier change's part (decision shadow and
classifier canary), below the model gates. Pure formatting of status."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tierguard.api.status import RoutingPolicyStatus


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _usd(x: float | None) -> str:
    return "-" if x is None else f"${x:.6f}"


def classifier_change_lines(
    st: RoutingPolicyStatus, table: Callable[[Sequence[Sequence[str]]], str]
) -> list[str]:
    """The transition matrix with the moved shares and projected cost, then the canary's
    per-cell verdicts (nothing when the revision did not change the classifier)."""
    lines: list[str] = []
    sh = st.classifier_shadow
    if sh is not None:
        state = "running" if sh.running else ("held" if sh.held else "done")
        cost = sh.projected_cost_change
        lines += [
            "",
            f"decision shadow ({state}): {sh.stable_digest or 'bundled'} → "
            f"{sh.candidate_digest or 'bundled'}   {sh.requests}/{sh.min_requests} requests   "
            f"moved {_pct(sh.moved_share)} (down {_pct(sh.down_share)}, up {_pct(sh.up_share)})"
            f"   projected cost {'-' if cost is None else f'{cost:+.1%}'}",
        ]
        if sh.cells:
            total = sum(c.requests for c in sh.cells) or 1
            rows = [["FROM (stable)", "TO (new)", "REQUESTS", "SHARE"]]
            rows += [
                [c.from_tier, c.to_tier, str(c.requests), _pct(c.requests / total)]
                for c in sh.cells
            ]
            lines.append(table(rows))
    cc = st.classifier_canary
    if cc is not None:
        state = "running" if cc.running else "ended"
        lines += [
            "",
            f"classifier canary ({state}): the new classifier decides for {cc.weight:g}% of "
            f"sessions   {cc.message}",
        ]
        if cc.cells:
            rows = [
                [
                    "CELL",
                    "MOVE",
                    "VERDICT",
                    "STABLE n",
                    "STABLE BAD",
                    "NEW n",
                    "NEW BAD",
                    "BOUND",
                    "STABLE $/REQ",
                    "NEW $/REQ",
                ]
            ]
            for c in cc.cells:
                rows.append(
                    [
                        f"{c.from_tier}→{c.to_tier}",
                        c.direction,
                        c.verdict,
                        str(c.stable_requests),
                        _pct(c.stable_bad_rate),
                        str(c.candidate_requests),
                        _pct(c.candidate_bad_rate),
                        "-" if c.upper_bound is None else f"{c.upper_bound * 100:+.1f}pp",
                        _usd(c.stable_cost_per_request),
                        _usd(c.candidate_cost_per_request),
                    ]
                )
            lines.append(table(rows))
    return lines
