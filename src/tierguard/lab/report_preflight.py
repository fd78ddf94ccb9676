"""The lab report's pre-flight part (issue 16): the judge's table per tier (win / tie /
loss from the candidate's side, judged pairs, judge health), the spend against the cap,
and how many users the candidate served -- none, when pre-flight failed. Pure, like
:mod:`tierguard.lab.report`, which calls it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFLIGHT_FAILED = "PreFlightFailed"


def candidates(policy: Mapping[str, Any]) -> list[str]:
    """The candidate model names of the policy's routes."""
    routes = (policy.get("spec") or {}).get("routes") or []
    return sorted({str(r["candidate"]) for r in routes if r.get("candidate")})


def candidate_requests(policy: Mapping[str, Any], tally: Mapping[str, Any]) -> int:
    """Requests the simulated users got an answer to from a candidate model (the
    simulator's own count of the serving model of every answer)."""
    by_model: Mapping[str, int] = tally.get("by_model") or {}
    return sum(int(by_model.get(m, 0)) for m in candidates(policy))


def rolled_back_at_preflight(status: Mapping[str, Any]) -> bool:
    return any(
        isinstance(h, Mapping) and h.get("reason") == PREFLIGHT_FAILED
        for h in status.get("history") or []
    )


def expectation_met(
    status: Mapping[str, Any],
    policy: Mapping[str, Any],
    tally: Mapping[str, Any],
    expected: str | None,
) -> bool:
    """Pre-flight ended as expected ("Passed" or "Failed"; None: not asserted). A failed
    pre-flight must also have exposed no user: the candidate served no request."""
    if expected is None:
        return True
    state = (status.get("preflight") or {}).get("state")
    if state != expected:
        return False
    if expected == "Failed":
        return rolled_back_at_preflight(status) and candidate_requests(policy, tally) == 0
    return True


def _rate(x: Any) -> str:
    return "–" if x is None else f"{float(x):.1%}"


def judge_table(status: Mapping[str, Any]) -> list[str]:
    """Markdown rows of ``status.preflight.tiers`` (empty without pre-flight)."""
    pf = status.get("preflight") or {}
    tiers = pf.get("tiers") or []
    if not tiers:
        return []
    rows = [
        "| tier | verdict | sample rate | judged pairs | loss (worse) | win (better) | tie "
        "| of which order-inconsistent | unanswered (a loss) | judge errors "
        "| order inconsistency | error rate | judge |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in tiers:
        j = t.get("judge") or {}
        health = "healthy" if j.get("healthy", True) else "**unhealthy**"
        rows.append(
            f"| {t.get('tier')} | **{t.get('verdict')}** | {_rate(t.get('sampleRate'))} "
            f"| {int(j.get('judged') or 0)} | {int(j.get('worse') or 0)} "
            f"| {int(j.get('better') or 0)} | {int(j.get('ties') or 0)} "
            f"| {int(j.get('inconsistent') or 0)} | {int(j.get('unanswered') or 0)} "
            f"| {int(j.get('errors') or 0)} | {_rate(j.get('orderInconsistencyRate'))} "
            f"| {_rate(j.get('errorRate'))} | {health} |"
        )
    return rows


def section(
    status: Mapping[str, Any], policy: Mapping[str, Any], tally: Mapping[str, Any]
) -> list[str]:
    """The report's "Pre-flight" section (empty when the policy ran none)."""
    pf = status.get("preflight") or {}
    if not pf or pf.get("state") == "Skipped":
        return []
    served = candidate_requests(policy, tally)
    names = ", ".join(f"`{m}`" for m in candidates(policy)) or "the candidate"
    exposed = (
        f"**0 users** were served by the candidate ({names} answered 0 of "
        f"{int(tally.get('requests') or 0)} requests): every answer a user saw came from "
        "the baseline."
        if served == 0
        else f"The candidate ({names}) answered {served} user requests (after pre-flight)."
    )
    spend = float(pf.get("spendUSD") or 0.0)
    cap = float(pf.get("maxSpendUSD") or 0.0)
    return [
        "## Pre-flight (0 % exposure)",
        "",
        f"State **{pf.get('state')}**: {pf.get('message', '')}",
        "",
        exposed,
        "",
        "The pairwise judge's verdicts on mirrored requests (the candidate's answer against "
        "the baseline's to the same request, each pair judged in both orders; from the "
        "candidate's side; a verdict that changes with the order counts as a tie, judge "
        "errors are missing data):",
        "",
        *judge_table(status),
        "",
        f"Spend: **${spend:.4f}** of the ${cap:.2f} cap (mirrored candidate calls and judge "
        "calls, from the policy's prices).",
        "",
    ]
