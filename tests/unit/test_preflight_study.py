"""The pre-flight detection study (bench/detection/preflight.py): its recorded table is
the one in docs/benchmarks.md, and a few fresh runs behave as recorded (a 5-point loss
never passes and exposes nobody; a random judge never passes; the cap holds)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "detection"))

import preflight as study  # noqa: E402


def test_the_docs_table_is_the_recorded_one() -> None:
    rows = json.loads(study.RESULTS.read_text())["rows"]
    doc = study.DOC.read_text()
    assert f"{study.BEGIN}\n{study.table(rows)}\n{study.END}" in doc
    assert [r["case"] for r in rows] == [c.key for c in study.CASES]
    assert all(r["users_exposed_before_verdict"] == 0 for r in rows)


def test_fresh_runs_behave_as_recorded() -> None:
    cases = {c.key: c for c in study.CASES}
    for seed in range(4):
        drop = study.run_once(cases["drop"], seed)
        assert drop["outcome"] in ("Failed", "Held") and not drop["exposed_before_verdict"]
        assert study.run_once(cases["random"], seed)["outcome"] == "Held"
        capped = study.run_once(cases["spend-cap"], seed)
        assert capped["outcome"] == "Passed" or capped["spent"] <= 5.0 * 1.05
