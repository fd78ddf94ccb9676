"""The report: Markdown and plots from a synthetic record (no cluster needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tierguard.lab.report import PLOT_FILES, REPORT_FILE, render_markdown, write_report
from tierguard.lab.report_figures import (
    aggregate_shift,
    cost_summary,
    expectation_met,
    failed_gates,
    wilson,
)
from tierguard.lab.runrecord import RunRecord, Sample


def _sig(verdict: str, cb: int, cn: int, kb: int, kn: int) -> dict[str, object]:
    return {
        "signal": "ShadowDisagreement",
        "verdict": verdict,
        "control": {"samples": cn, "bad": cb},
        "canary": {"samples": kn, "bad": kb},
        "differenceUpperBound": 0.12,
        "allowed": 0.04,
        "message": "canary disagrees",
    }


def _record() -> RunRecord:
    samples = []
    for i in range(10):
        weight = 5.0 if i < 7 else 0.0
        phase = "Progressing" if i < 7 else "RolledBack"
        verdict = "Inconclusive" if i < 7 else "Fail"
        status = {
            "phase": phase,
            "step": 0,
            "stepDisplay": "1/5",
            "canaryWeight": weight,
            "tiers": [
                {
                    "tier": "simple",
                    "verdict": verdict,
                    "signals": [_sig(verdict, 0, 0, 3 * i, 20 * i)],
                }
            ],
        }
        samples.append(
            Sample(
                t=5.0 * i,
                status=status,
                spent_usd=0.01 * i,
                all_capable_usd=0.012 * i,
                requests=100 * i,
                satisfied=90 * i,
                satisfied_if_baseline=92 * i,
                arms={
                    "simple/control": (50 * i, 48 * i),
                    "simple/canary": (10 * i, 8 * i),
                    "complex/stable": (40 * i, 34 * i),
                },
                thumbs=(i, 15 * i),
            )
        )
    final = dict(samples[-1].status)
    final["history"] = [
        {"time": "t0", "phase": "Progressing", "step": 0, "weight": 5, "reason": "RolloutStarted"},
        {"time": "t1", "phase": "RolledBack", "step": 0, "weight": 5, "reason": "GateFailed",
         "message": "tier simple: ShadowDisagreement failed"},
    ]  # fmt: skip
    final["message"] = "rolled back: tier simple"
    return RunRecord(
        scenario="pareto-trap",
        title="trap",
        story="story",
        expected_phase="RolledBack",
        expected_tier="simple",
        samples=samples,
        events=[(12.0, "something")],
        kubectl_line="NAME PHASE\nsupport-lab RolledBack",
        final_status=final,
        policy={"kind": "RoutingPolicy"},
        tally={
            "categories": {"billing_status": {"cheap": {"served": 10, "satisfaction": 0.6}}},
            "arm_switches": 0,
        },
        duration_s=50,
    )


def test_wilson_interval() -> None:
    assert wilson(0, 0) is None
    lo, hi = wilson(5, 100) or (0, 0)
    assert lo < 0.05 < hi and lo >= 0 and hi <= 1


def test_failed_gates_and_expectation() -> None:
    rec = _record()
    assert failed_gates(rec.final_status) == [("simple", "ShadowDisagreement", "canary disagrees")]
    assert expectation_met(rec)
    rec.expected_phase = "Promoted"
    assert not expectation_met(rec)


def test_cost_and_shift_figures() -> None:
    rec = _record()
    cost = cost_summary(rec)
    assert cost["saving"] == pytest.approx(1 - 0.09 / 0.108)
    assert cost["per_sat"] == pytest.approx(0.09 / 810)
    shift = aggregate_shift(rec)
    assert shift["control"] == pytest.approx(48 / 50)
    assert shift["canary"] == pytest.approx(0.8)
    assert shift["simple_drop"] == pytest.approx(0.16)


def test_markdown_carries_outcome_kubectl_line_tables_and_figures() -> None:
    rec = _record()
    rec.naive = _record()
    rec.naive.final_status = {**rec.naive.final_status, "phase": "Promoted", "canaryWeight": 100.0}
    text = render_markdown(rec)
    assert "**RolledBack**" in text and "tier `simple` / ShadowDisagreement" in text
    assert "rolled back at the 5 % step (step 1/5)" in text
    assert "support-lab RolledBack" in text
    assert "as expected" in text
    assert "| simple | ShadowDisagreement |" in text
    assert "GateFailed" in text
    assert "aggregate-only gate" in text and "**Promoted**" in text
    for plot in PLOT_FILES:
        assert f"]({plot})" in text
    assert "billing_status" in text
    # no pairwise gate in this status: no judge table
    assert "pairwise judge's verdicts" not in text


def test_markdown_shows_the_pairwise_judges_verdict_counts() -> None:
    rec = _record()
    sig = rec.final_status["tiers"][0]["signals"][0]
    sig["judge"] = {"judged": 120, "worse": 14, "better": 1, "ties": 105, "inconsistent": 4}
    text = render_markdown(rec)
    assert "pairwise judge's verdicts" in text
    assert "| simple | ShadowDisagreement | 120 | 14 | 1 | 105 | 4 | 0 | healthy |" in text


def test_write_report_creates_files(tmp_path: Path) -> None:
    rec = _record()
    path = write_report(rec, tmp_path)
    assert path.name == REPORT_FILE and path.read_text().startswith("# tierguard lab")
    for plot in PLOT_FILES:
        data = (tmp_path / plot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    raw = json.loads((tmp_path / "run.json").read_text())
    assert raw["scenario"] == "pareto-trap" and len(raw["samples"]) == len(rec.samples)


def test_final_saving_uses_the_last_window_only() -> None:
    from tierguard.lab.report_figures import final_saving

    samples = [
        Sample(t=0, status={}, spent_usd=0.0, all_capable_usd=0.0),
        Sample(t=50, status={}, spent_usd=10.0, all_capable_usd=10.0),  # no saving early
        Sample(t=60, status={}, spent_usd=11.0, all_capable_usd=12.0),  # 50 % at the end
    ]
    assert final_saving(samples, window=10) == pytest.approx(0.5)
    assert final_saving(samples[:1]) is None


def test_verdict_timeline_keeps_changes_only() -> None:
    from tierguard.lab.report_figures import verdict_timeline

    def s(t: float, verdicts: str, message: str) -> Sample:
        st = {"phase": "Progressing", "canaryWeight": 10, "verdictSummary": verdicts}
        return Sample(t=t, status={**st, "message": message})

    rows = verdict_timeline(
        [
            s(0, "simple=Inconclusive", "baking: 3 s left"),
            s(2, "simple=Inconclusive", "baking: 1 s left"),  # same message kind
            s(4, "simple=NoData", "Prometheus unreachable: connection refused"),
            s(6, "simple=Pass", "every tier passed"),
        ]
    )
    assert [r[0] for r in rows] == [0, 4, 6]
    assert rows[1][3] == "simple=NoData" and "unreachable" in rows[1][4]
