"""Training: reproducible bytes, ONNX agreeing with scikit-learn, metadata per contract."""

from __future__ import annotations

import json
import warnings

import numpy as np

from tierguard.classifier import runtime as rt
from tierguard.classifier.data import LabelledSet
from tierguard.classifier.dataset import DEFAULT_TIERS, generate
from tierguard.classifier.train import (
    TrainResult,
    predict_proba,
    read_metadata,
    split_holdout,
    train,
)


def test_training_is_reproducible(
    tiny_model: TrainResult, tiny_train_set: LabelledSet, tiny_holdout_set: LabelledSet
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = train(tiny_train_set, DEFAULT_TIERS, holdout=tiny_holdout_set, version="test")
    assert again.model == tiny_model.model
    assert again.metrics == tiny_model.metrics


def test_onnx_agrees_with_scikit_learn(
    tiny_model: TrainResult, tiny_holdout_set: LabelledSet
) -> None:
    clf = rt.load_classifier(tiny_model.model)
    onnx_p = clf.probabilities(tiny_holdout_set.texts)
    sk_p = predict_proba(tiny_model.pipeline, tiny_holdout_set.texts)
    agree = np.mean((onnx_p[:, 0] >= 0.5) == (sk_p[:, 0] >= 0.5))
    assert agree >= 0.999
    assert np.abs(onnx_p - sk_p).max() < 1e-3


def test_metadata_follows_the_contract(
    tiny_model: TrainResult, tiny_train_set: LabelledSet
) -> None:
    meta = read_metadata(tiny_model.model)
    assert meta[rt.META_CONTRACT] == rt.CONTRACT_VERSION
    assert meta[rt.META_TRAINING_DATA_SHA256] == tiny_train_set.sha256
    parsed = rt.parse_metadata(meta)
    assert parsed.tiers == DEFAULT_TIERS
    holdout = parsed.metrics["holdout"]
    assert holdout["n"] == 600
    assert set(holdout["per_category"]) >= {"order_tracking", "refund_dispute"}
    assert holdout["accuracy"] > 0.75  # better than the 65 % of always answering "simple"


def test_split_holdout_is_stratified_and_deterministic() -> None:
    labels = ["simple"] * 80 + ["complex"] * 20
    train_idx, hold_idx = split_holdout(labels, 0.25, seed=1)
    assert (train_idx, hold_idx) == split_holdout(labels, 0.25, seed=1)
    assert not set(train_idx) & set(hold_idx)
    assert sorted(train_idx + hold_idx) == list(range(100))
    assert sum(labels[i] == "complex" for i in hold_idx) == 5


def test_three_tiers_keep_their_column_order() -> None:
    """Columns follow --tiers order (cheapest first), not scikit-learn's sorted class order."""
    from tierguard.classifier.data import parse_jsonl

    lines = []
    for e in generate(240, seed=41):
        tier = "zfaq" if e.category == "opening_hours" else e.tier
        lines.append(json.dumps({"text": e.text, "tier": tier, "category": e.category}))
    tiers = ("zfaq", "simple", "complex")  # deliberately not alphabetical
    data = parse_jsonl(("\n".join(lines) + "\n").encode(), tiers, "three")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(data, tiers, holdout=data, thresholds={"zfaq": 0.4, "simple": 0.5})
    clf = rt.load_classifier(result.model)
    assert clf.tiers == tiers
    assert clf.thresholds == {"zfaq": 0.4, "simple": 0.5}
    assert clf.classify("What are your opening hours?").tier == "zfaq"
    assert clf.classify("I was charged twice this month, 49 on the 3rd and again").tier == "complex"
