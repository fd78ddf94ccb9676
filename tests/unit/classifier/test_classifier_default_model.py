"""The shipped default model: small, reproducible, and its model card tells the truth.

The one place where the full 8,000-query training runs (session fixture ``default_build``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tierguard.classifier import runtime as rt
from tierguard.classifier.default_model import DefaultBuild, card_reports, card_tables
from tierguard.classifier.train import predict_proba


def test_shipped_model_fits_in_a_configmap_and_loads() -> None:
    path = rt.default_model_path()
    assert path.stat().st_size < 1024 * 1024
    clf = rt.load_classifier(path)
    assert clf.tiers == ("simple", "complex")
    assert clf.metadata.calibration is not None
    assert clf.thresholds["simple"] == clf.metadata.calibration["threshold"]


def test_shipped_model_is_a_fresh_build(default_build: DefaultBuild) -> None:
    """`tierguard train --default` reproduces the committed bytes (else: rebuild and commit)."""
    assert rt.default_model_path().read_bytes() == default_build.model


def test_onnx_agrees_with_scikit_learn_on_the_5000_query_holdout(
    default_build: DefaultBuild,
) -> None:
    texts = default_build.test_set.texts
    assert len(texts) == 5000
    onnx_p = rt.load_classifier(default_build.model).probabilities(texts)
    sk_p = predict_proba(default_build.pipeline, texts)
    thr = default_build.calibration.threshold
    assert np.mean((onnx_p[:, 0] >= 0.5) == (sk_p[:, 0] >= 0.5)) >= 0.999
    assert np.mean((onnx_p[:, 0] >= thr) == (sk_p[:, 0] >= thr)) >= 0.999


def test_calibration_target_holds_on_the_calibration_set(default_build: DefaultBuild) -> None:
    choice = default_build.calibration
    assert choice.under_route_rate is not None and choice.under_route_rate <= 0.03


def test_model_card_figures_are_recomputed(repo_root: Path) -> None:
    """Every table in docs/classifier.md's metrics section comes from the shipped model."""
    clf = rt.load_classifier(rt.default_model_path())
    reports = card_reports()
    (_, _, holdout), (_, _, calibration), _ = reports
    assert holdout == clf.metadata.metrics["holdout"]
    assert clf.metadata.calibration is not None
    assert calibration == clf.metadata.calibration["report"]
    card = (repo_root / "docs" / "classifier.md").read_text(encoding="utf-8")
    for line in card_tables(reports).splitlines():
        assert line in card, (
            "model card is stale (python -m tierguard.classifier.default_model); "
            f"missing line: {line}"
        )
    assert f"simple >= {clf.thresholds['simple']}" in card
