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


def test_default_category_head_agrees_with_scikit_learn(default_build: DefaultBuild) -> None:
    from tierguard.classifier.categoryhead import predict_category_proba

    texts = default_build.test_set.texts
    clf = rt.load_classifier(default_build.model)
    onnx_c = clf.category_probabilities(texts).argmax(axis=1)
    sk_c = predict_category_proba(default_build.head, texts).argmax(axis=1)
    assert np.mean(onnx_c == sk_c) >= 0.999
    head = clf.metadata.metrics["category_head"]
    assert head["holdout_examples"] == 5000 and head["holdout_accuracy"] >= 0.75


def test_billing_trap_is_a_fresh_build() -> None:
    """`tierguard train --builtin billing-trap` reproduces the committed bytes."""
    import warnings

    from tierguard.classifier.default_model import (
        BILLING_TRAP_RECIPE,
        build_default,
        builtin_model_path,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build = build_default(BILLING_TRAP_RECIPE)
    assert builtin_model_path("billing-trap").read_bytes() == build.model


def test_billing_trap_moves_hard_billing_queries_and_little_else() -> None:
    """On the lab's traffic mix the variant puts most hard billing_anomaly queries on the
    cheap tier (the default: none), every other category within 5 points of the default."""
    from tierguard.classifier.dataset import generate
    from tierguard.classifier.default_model import builtin_model_path

    examples = generate(3000, 4, "all")
    texts = [e.text for e in examples]
    default = rt.load_classifier(builtin_model_path("default")).assign(texts)
    trap = rt.load_classifier(builtin_model_path("billing-trap")).assign(texts)

    def simple_share(tiers: list[str], category: str, hard: bool) -> float:
        idx = [i for i, e in enumerate(examples) if e.category == category and e.hard == hard]
        return sum(tiers[i] == "simple" for i in idx) / len(idx)

    assert simple_share(default, "billing_anomaly", True) < 0.05
    assert simple_share(trap, "billing_anomaly", True) > 0.5
    for e in {(e.category, e.hard) for e in examples} - {("billing_anomaly", True)}:
        assert abs(simple_share(trap, *e) - simple_share(default, *e)) < 0.05, e
