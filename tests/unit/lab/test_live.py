"""The live view renders status into a compact frame, and prints plain lines off a TTY."""

from __future__ import annotations

import io
from typing import Any

from tierguard.lab.live import CostFigures, LiveView, Snapshot, change_key, plain_line, render

STATUS: dict[str, Any] = {
    "phase": "Progressing",
    "step": 1,
    "stepDisplay": "2/5",
    "canaryWeight": 10.0,
    "message": "baking",
    "tiers": [
        {
            "tier": "simple",
            "verdict": "Inconclusive",
            "signals": [
                {
                    "signal": "ShadowDisagreement",
                    "verdict": "Inconclusive",
                    "control": {"samples": 0, "bad": 0},
                    "canary": {"samples": 40, "bad": 3},
                    "differenceUpperBound": 0.21,
                    "allowed": 0.04,
                }
            ],
        }
    ],
}


def _snap(**kw: object) -> Snapshot:
    base: dict[str, object] = {
        "scenario": "healthy",
        "elapsed_s": 75,
        "policy": "support-lab",
        "status": STATUS,
        "steps": (5, 10, 25, 50, 100),
        "requests": 1200,
        "rate": 60,
        "cost": CostFigures(0.5, 1.0),
        "routers": 2,
    }
    base.update(kw)
    return Snapshot(**base)  # type: ignore[arg-type]


def test_render_shows_stage_weight_samples_verdicts_and_cost() -> None:
    text = "\n".join(render(_snap(), width=200))
    assert "01:15" in text
    assert "[10%]" in text and "5%✓" in text and "weight now 10%" in text
    assert "ShadowDisagreement" in text and "3/40" in text and "Inconclusive" in text
    assert "$0.5000" in text and "+50.0% saved" in text
    assert "local processes" in text


def test_render_truncates_to_width() -> None:
    assert all(len(line) <= 40 for line in render(_snap(), width=40))


def test_render_without_tiers() -> None:
    text = "\n".join(render(_snap(status={"phase": "Pending"}), width=200))
    assert "no gate evaluated yet" in text


def test_plain_view_prints_only_on_change() -> None:
    out = io.StringIO()
    view = LiveView(out, tty=False)
    view.show(_snap())
    view.show(_snap(elapsed_s=80))
    assert out.getvalue().count("\n") == 1
    view.show(_snap(status={**STATUS, "canaryWeight": 25.0, "step": 2}))
    assert out.getvalue().count("\n") == 2
    assert "simple=Inconclusive" in plain_line(_snap())
    assert change_key(_snap()) != change_key(_snap(events=("x",)))


def test_tty_view_redraws_in_place() -> None:
    out = io.StringIO()
    view = LiveView(out, tty=True)
    view.show(_snap())
    view.show(_snap(elapsed_s=76))
    assert "\x1b[" in out.getvalue() and "F" in out.getvalue()


def test_render_shows_pre_flight_and_its_judge_table() -> None:
    status: dict[str, Any] = {
        **STATUS,
        "step": 0,
        "stepDisplay": "PreFlight/5",
        "canaryWeight": 0.0,
        "tiers": [],
        "preflight": {
            "state": "Running",
            "spendUSD": 0.0123,
            "maxSpendUSD": 5.0,
            "tiers": [
                {
                    "tier": "simple",
                    "verdict": "Inconclusive",
                    "judge": {"judged": 80, "worse": 9, "better": 1, "ties": 70},
                }
            ],
        },
    }
    text = "\n".join(render(_snap(status=status)))
    assert "[pre-flight 0%] → 5% → 10%" in text and "[5%]" not in text
    assert "pre-flight Running: spent $0.0123 of $5.00" in text
    assert "tier simple: 80 judged, loss 9 / win 1 / tie 70" in text
    done = {
        **status,
        "phase": "RolledBack",
        "preflight": {**status["preflight"], "state": "Failed"},
    }
    assert "pre-flight Failed → 5%" in "\n".join(render(_snap(status=done)))
    assert change_key(_snap(status=status)) != change_key(_snap(status=done))
