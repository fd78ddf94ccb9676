"""The report's slice part: the tier looking fine beside the slice failing."""

from __future__ import annotations

from typing import Any

from tierguard.lab import report_slices as rsl
from tierguard.lab.report import render_markdown
from tierguard.lab.report_figures import expectation_met, outcome_line
from tierguard.lab.runrecord import RunRecord, Sample


def _sig(verdict: str, bad: int, n: int, slice_: str | None = None) -> dict[str, Any]:
    return {
        "signal": "ShadowDisagreement",
        "slice": slice_,
        "verdict": verdict,
        "control": {"samples": 0, "bad": 0},
        "canary": {"samples": n, "bad": bad},
        "allowed": 0.1,
        "message": "",
    }


def _status() -> dict[str, Any]:
    return {
        "phase": "RolledBack",
        "step": 0,
        "stepDisplay": "1/3",
        "canaryWeight": 0.0,
        "message": "rolled back: tier simple, slice topic=opening_hours failed on "
        "ShadowDisagreement at 40%",
        "history": [
            {
                "phase": "RolledBack",
                "step": 0,
                "reason": "GateFailed",
                "message": "tier simple, slice topic=opening_hours failed on ShadowDisagreement",
            }
        ],
        "tiers": [
            {
                "tier": "simple",
                "verdict": "Fail",
                "signals": [
                    _sig("Pass", 98, 1500),
                    _sig("Inconclusive", 30, 400, "topic=order_tracking"),
                    _sig("Fail", 44, 210, "topic=opening_hours"),
                ],
            }
        ],
    }


def _record(status: dict[str, Any], expected_slice: str | None) -> RunRecord:
    return RunRecord(
        scenario="slice-trap",
        title="t",
        story="s",
        expected_phase="RolledBack",
        expected_tier="simple",
        expected_slice=expected_slice,
        final_status=status,
        steps=(40, 70, 100),
    )


def test_section_shows_the_tier_passing_and_the_slice_failing() -> None:
    lines = rsl.section(_status())
    text = "\n".join(lines)
    assert (
        "| simple | (the tier) | ShadowDisagreement | 98/1500 (6.5%) | 0.100 | **Pass** |" in text
    )
    assert "| simple | topic=opening_hours | ShadowDisagreement | 44/210 (21.0%)" in text
    assert (
        "Tier `simple` on ShadowDisagreement: **Pass** (canary 98/1500 (6.5%)); slice "
        "`topic=opening_hours`: **Fail** (canary 44/210 (21.0%))." in text
    )
    assert rsl.section({"tiers": [{"tier": "simple", "signals": [_sig("Pass", 1, 10)]}]}) == []


def test_expectation_needs_the_slice_named() -> None:
    status = _status()
    assert rsl.failed_slices(status) == [("simple", "topic=opening_hours", "ShadowDisagreement")]
    assert expectation_met(_record(status, "topic=opening_hours"))
    assert not expectation_met(_record(status, "topic=billing_status"))
    # the rollback message alone names it (the gate's verdict was not kept)
    status["tiers"][0]["signals"][2]["verdict"] = "Inconclusive"
    status["tiers"][0]["signals"][0]["verdict"] = "Fail"
    assert expectation_met(_record(status, "topic=opening_hours"))
    status["message"], status["history"] = "rolled back: tier simple", []
    assert not expectation_met(_record(status, "topic=opening_hours"))


def test_report_names_the_slice_in_the_outcome_and_the_gate_table() -> None:
    rec = _record(_status(), "topic=opening_hours")
    rec.samples = [
        Sample(t=0.0, status=rec.final_status, spent_usd=0.0, all_capable_usd=0.0),
        Sample(t=60.0, status=rec.final_status, spent_usd=0.5, all_capable_usd=1.0),
    ]
    assert "(slice `topic=opening_hours` on ShadowDisagreement)" in outcome_line(rec)
    text = render_markdown(rec, plots=())
    assert "## The tier and its slices" in text
    assert "| simple · topic=opening_hours | ShadowDisagreement |" in text
    assert "slice `topic=opening_hours` failing — ✅ as expected" in text
