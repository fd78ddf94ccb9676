"""The lab report's pre-flight part (issue 16): the judge's table, the spend and the
users served by the candidate, from a synthetic record (no cluster needed)."""

from __future__ import annotations

from typing import Any

from tierguard.lab import report_preflight as rpf
from tierguard.lab.report import render_markdown
from tierguard.lab.report_figures import expectation_met, outcome_line
from tierguard.lab.runrecord import RunRecord, Sample

POLICY: dict[str, Any] = {
    "spec": {
        "routes": [
            {"tier": "simple", "baseline": "capable", "candidate": "cheap"},
            {"tier": "complex", "baseline": "capable"},
        ]
    }
}


def _status() -> dict[str, Any]:
    return {
        "phase": "RolledBack",
        "stepDisplay": "PreFlight/5",
        "canaryWeight": 0.0,
        "message": "Pre-flight (0 users exposed): tier simple failed",
        "preflight": {
            "state": "Failed",
            "spendUSD": 0.4321,
            "maxSpendUSD": 5.0,
            "message": "tier simple failed: 0 users exposed",
            "tiers": [
                {
                    "tier": "simple",
                    "verdict": "Fail",
                    "sampleRate": 0.5,
                    "judge": {
                        "judged": 240,
                        "worse": 25,
                        "better": 2,
                        "ties": 213,
                        "inconsistent": 9,
                        "unanswered": 1,
                        "errors": 3,
                        "orderInconsistencyRate": 0.0375,
                        "errorRate": 0.0123,
                        "healthy": True,
                    },
                }
            ],
        },
        "history": [
            {"phase": "Progressing", "step": 0, "weight": 0, "reason": "PreFlightStarted"},
            {
                "phase": "RolledBack",
                "step": 0,
                "weight": 0,
                "reason": "PreFlightFailed",
                "message": "pre-flight failed on tier simple: 0 users exposed",
            },
        ],
    }


def _record(by_model: dict[str, int]) -> RunRecord:
    return RunRecord(
        scenario="preflight-trap",
        title="t",
        story="s",
        expected_phase="RolledBack",
        expected_tier="simple",
        expected_preflight="Failed",
        final_status=_status(),
        samples=[Sample(t=0.0, status=_status(), arms={"simple/control": (10, 9)})],
        policy=POLICY,
        tally={"requests": sum(by_model.values()), "by_model": by_model},
    )


def test_the_report_shows_zero_users_served_and_the_judges_table() -> None:
    rec = _record({"capable": 4000})
    text = render_markdown(rec, plots=())
    assert "## Pre-flight (0 % exposure)" in text
    assert "**0 users** were served by the candidate (`cheap` answered 0 of 4000 requests)" in text
    assert (
        "| simple | **Fail** | 50.0% | 240 | 25 | 2 | 213 | 9 | 1 | 3 | 3.8% | 1.2% | healthy |"
        in text
    )
    assert "Spend: **$0.4321** of the $5.00 cap" in text
    assert "rolled back at pre-flight (0 % exposure) → reason PreFlightFailed" in outcome_line(rec)
    assert expectation_met(rec)


def test_a_candidate_that_served_users_or_another_end_fails_the_expectation() -> None:
    served = _record({"capable": 4000, "cheap": 3})
    assert rpf.candidate_requests(POLICY, served.tally) == 3
    assert not expectation_met(served)
    assert "answered 3 user requests" in render_markdown(served, plots=())
    passed = _record({"capable": 10})
    passed.expected_preflight = "Passed"
    assert not expectation_met(passed)
    passed.expected_preflight = None  # not asserted: the phase and tier decide
    assert expectation_met(passed)


def test_no_pre_flight_no_section() -> None:
    rec = _record({"capable": 1})
    rec.final_status = {**rec.final_status, "preflight": {"state": "Skipped", "message": "off"}}
    assert "## Pre-flight" not in render_markdown(rec, plots=())
    assert rpf.judge_table({}) == []
