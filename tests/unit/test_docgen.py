"""Generated reference docs are fresh and complete."""

from __future__ import annotations

from pathlib import Path

from tierguard.api import metrics as m
from tierguard.api.docgen import DOCUMENTS, render_metrics_md

ROOT = Path(__file__).resolve().parents[2]


def test_committed_docs_are_fresh() -> None:
    for rel, render in DOCUMENTS.items():
        assert (ROOT / rel).read_text() == render(), f"{rel} is stale: run `tierguard gen-docs`"


def test_every_metric_and_label_is_documented() -> None:
    text = render_metrics_md()
    for d in m.ALL_METRICS:
        assert f"`{d.name}`" in text
        for label in d.labels:
            assert f"`{label}`" in text
