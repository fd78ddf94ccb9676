"""The chart's Grafana dashboard passes Grafana's own dashboard schema:
tools/dashboard-validate (built by scripts/build-go-tool.sh from the Grafana Foundation
SDK) decodes it strictly (unknown fields, wrong types and missing required fields fail),
checks the schema's constraints (on every panel too), the panel options against the
timeseries and stat panel schemas and each query against the Prometheus query schema.
(Grafana's dashboard-linter itself cannot be installed here: docs/testbed.md.)"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

from toolbox import go_tool

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "tierguard" / "dashboards" / "tierguard.json"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [go_tool("dashboard-validate"), str(path)], capture_output=True, text=True, check=False
    )


def test_the_dashboard_passes_grafanas_schema() -> None:
    proc = validate(DASHBOARD)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"{DASHBOARD}: valid"


def test_the_validator_catches_what_grafanas_schema_refuses(tmp_path: Path) -> None:
    good: dict[str, Any] = json.loads(DASHBOARD.read_text())
    first = next(i for i, p in enumerate(good["panels"]) if p["type"] == "timeseries")
    stat = next(i for i, p in enumerate(good["panels"]) if p["type"] == "stat")

    def findings(change: Any) -> str:
        bad = copy.deepcopy(good)
        change(bad)
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        proc = validate(path)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        return proc.stdout

    def unknown_option(d: dict[str, Any]) -> None:
        d["panels"][first]["options"]["legend"]["bogus"] = True

    def missing_required(d: dict[str, Any]) -> None:
        del d["panels"][stat]["options"]["reduceOptions"]

    def wrong_type(d: dict[str, Any]) -> None:
        d["panels"][first]["targets"][0]["expr"] = 42

    def too_wide(d: dict[str, Any]) -> None:
        d["panels"][first]["gridPos"]["w"] = 30  # a constraint of the schema (<= 24)

    def unvalidated_panel_type(d: dict[str, Any]) -> None:
        d["panels"][first]["type"] = "piechart"
        d["panels"][first]["options"] = {}

    assert "unexpected field 'bogus'" in findings(unknown_option)
    assert f"panels[{stat}].options.reduceOptions: required field is missing" in findings(
        missing_required
    )
    assert f"panels[{first}].targets[0].expr" in findings(wrong_type)
    assert f"panels[{first}]: gridPos.w: must be <= 24" in findings(too_wide)
    assert 'panel type "piechart": no schema registered' in findings(unvalidated_panel_type)
