"""The report's classifier-change part: the decision shadow's transition matrix and the
classifier canary's failing cell."""

from __future__ import annotations

from typing import Any

from tierguard.lab import report_classifier as rcl
from tierguard.lab.report import render_markdown
from tierguard.lab.report_figures import expectation_met
from tierguard.lab.runrecord import RunRecord, Sample


def _cell(f: str, t: str, verdict: str, **kw: Any) -> dict[str, Any]:
    return {"from": f, "to": t, "direction": "Down", "verdict": verdict, **kw}


def _status() -> dict[str, Any]:
    msg = (
        "classifier canary failed at 50% of sessions: cell complex→simple (moved down, "
        "quality): ...; the stable classifier decides for everyone again"
    )
    return {
        "phase": "RolledBack",
        "step": 0,
        "stepDisplay": "1/2",
        "canaryWeight": 0.0,
        "message": msg,
        "history": [{"phase": "RolledBack", "step": 0, "reason": "GateFailed", "message": msg}],
        "classifierShadow": {
            "running": False,
            "requests": 1000,
            "movedShare": 0.05,
            "downShare": 0.05,
            "upShare": 0.0,
            "projectedCostChange": -0.03,
            "cells": [
                {"from": "simple", "to": "simple", "requests": 640},
                {"from": "simple", "to": "complex", "requests": 0},
                {"from": "complex", "to": "simple", "requests": 50},
                {"from": "complex", "to": "complex", "requests": 310},
            ],
        },
        "classifierCanary": {
            "running": False,
            "step": 0,
            "weight": 50.0,
            "cells": [
                _cell(
                    "complex",
                    "simple",
                    "Fail",
                    stableRequests=400,
                    candidateRequests=390,
                    stableBadRate=0.1,
                    candidateBadRate=0.35,
                    upperBound=0.31,
                ),
            ],
            "message": "cell complex→simple (moved down, quality): bad rate up",
        },
    }


def _record(status: dict[str, Any], cell: str | None) -> RunRecord:
    return RunRecord(
        scenario="threshold-trap",
        title="t",
        story="s",
        expected_phase="RolledBack",
        expected_tier=None,
        expected_cell=cell,
        final_status=status,
        steps=(50, 100),
    )


def test_section_shows_the_matrix_and_the_failing_cell() -> None:
    text = "\n".join(rcl.section(_status()))
    assert "## The classifier change" in text
    assert "| stable ↓ / new → | simple | complex |" in text
    assert "| simple | 640 (100.0%) | 0 (0.0%) |" in text
    assert "| complex | **50** (13.9%) | 310 (86.1%) |" in text
    assert "down to a cheaper tier 5.0%" in text and "projected cost change -3.0%" in text
    assert "Cell `complex→simple` **failed** at its step 1" in text
    assert "| complex→simple | Down | **Fail** | 400, 10.0% | 390, 35.0% | 31.0% |" in text
    assert rcl.section({"phase": "Promoted"}) == []
    status = _status()
    status["classifierCanary"]["cells"][0]["upperBound"] = 1.0  # not bounded yet
    assert "| 390, 35.0% | - |" in "\n".join(rcl.section(status))
    assert rcl.outcome_suffix({"phase": "Promoted"}, (50, 100)) == ""


def test_expectation_needs_the_cell() -> None:
    status = _status()
    assert rcl.failed_cells(status) == ["complex→simple"]
    assert expectation_met(_record(status, "complex→simple"))
    assert not expectation_met(_record(status, "simple→complex"))
    status["classifierCanary"]["cells"][0]["verdict"] = "Inconclusive"
    assert expectation_met(_record(status, "complex→simple"))  # the rollback names it
    status["message"], status["history"] = "rolled back", []
    assert not expectation_met(_record(status, "complex→simple"))


def test_report_carries_the_section_and_the_expectation() -> None:
    rec = _record(_status(), "complex→simple")
    rec.samples = [
        Sample(t=0.0, status=rec.final_status, spent_usd=0.0, all_capable_usd=0.0),
        Sample(t=60.0, status=rec.final_status, spent_usd=0.5, all_capable_usd=1.0),
    ]
    text = render_markdown(rec, plots=())
    assert "## The classifier change" in text
    assert (
        "the classifier canary was rolled back at its step 1/1 (its first stage), 50 % of "
        "sessions decided by the new classifier, cell `complex→simple` failing" in text
    )
    assert "classifier canary cell `complex→simple` failing at its first step" in text
    assert "✅ as expected" in text
