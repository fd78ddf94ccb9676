"""The category head: a second output of the same graph, its contract, its labels."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from tierguard.classifier import runtime as rt
from tierguard.classifier.categoryhead import category_labels, predict_category_proba
from tierguard.classifier.data import DataError, LabelledSet
from tierguard.classifier.dataset import CATEGORIES, DEFAULT_TIERS
from tierguard.classifier.train import TrainResult, train, write_metadata

GOOD_META = {
    rt.META_CONTRACT: "1",
    rt.META_TIERS: '["simple", "complex"]',
    rt.META_THRESHOLDS: '{"simple": 0.6}',
    rt.META_VERSION: "v",
    rt.META_TRAINING_DATA_SHA256: "ab12",
    rt.META_METRICS: "{}",
}


def test_tiny_model_has_a_head_with_the_generator_categories(tiny_model: TrainResult) -> None:
    clf = rt.load_classifier(tiny_model.model)
    assert clf.categories == tuple(sorted(CATEGORIES))
    outputs = [o.name for o in onnx.load_from_string(tiny_model.model).graph.output]
    assert outputs[-1] == rt.CATEGORY_OUTPUT_NAME
    assert tiny_model.metrics["category_head"]["labels"] == sorted(CATEGORIES)
    assert tiny_model.metrics["category_head"]["holdout_accuracy"] > 0.6


def test_one_run_gives_the_tier_and_the_category(
    tiny_model: TrainResult, tiny_holdout_set: LabelledSet
) -> None:
    clf = rt.load_classifier(tiny_model.model)
    texts = tiny_holdout_set.texts[:200]
    results = clf.classify_batch(texts)
    # the tier is exactly what the tier head alone says
    assert [r.tier for r in results] == clf.assign(texts)
    cats = clf.category_probabilities(texts)
    assert cats.shape == (200, len(clf.categories))
    assert np.allclose(cats.sum(axis=1), 1.0, atol=1e-4)
    assert [r.category for r in results] == [clf.categories[i] for i in cats.argmax(axis=1)]
    assert clf.classify(texts[0]).category == results[0].category
    assert clf.classify_batch([]) == []


def test_onnx_head_agrees_with_scikit_learn(
    tiny_model: TrainResult, tiny_holdout_set: LabelledSet
) -> None:
    head = tiny_model.category_head
    assert head is not None
    texts = tiny_holdout_set.texts
    onnx_p = rt.load_classifier(tiny_model.model).category_probabilities(texts)
    sk_p = predict_category_proba(head, texts)
    assert np.mean(onnx_p.argmax(axis=1) == sk_p.argmax(axis=1)) >= 0.999
    assert np.abs(onnx_p - sk_p).max() < 1e-3


@pytest.mark.filterwarnings("ignore:The conversion of CountVectorizer")
def test_data_without_categories_trains_no_head(tiny_train_set: LabelledSet) -> None:
    bare = LabelledSet(
        tuple(q.__class__(q.text, q.tier) for q in tiny_train_set.queries), "x", "bare"
    )
    result = train(bare, DEFAULT_TIERS, version="nohead")
    clf = rt.load_classifier(result.model)
    assert clf.categories == ()
    assert clf.classify("where is my order").category is None
    assert "category_head" not in result.metrics
    with pytest.raises(rt.ClassifierContractError, match="no category head"):
        clf.category_probabilities(["x"])


def test_category_labels_need_every_example_and_slice_shaped_names() -> None:
    assert category_labels(["b", "a", "b"]) == ("a", "b")
    assert category_labels(["a", None]) is None  # partly labelled: no head
    assert category_labels(["a", "a"]) is None  # one label says nothing
    assert category_labels(None) is None
    with pytest.raises(DataError, match="cannot be slice values"):
        category_labels(["Billing", "a"])
    with pytest.raises(DataError, match="'other' is reserved"):
        category_labels(["other", "a"])
    with pytest.raises(DataError, match="at most 32"):
        category_labels([f"c{i}" for i in range(33)])


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ('"billing"', "JSON list of 2 to 32"),
        ('["only"]', "JSON list of 2 to 32"),
        ('["Billing", "x"]', "lower case"),
        ('["a", "a"]', "names a label twice"),
        ('["a", "other"]', "'other' is reserved"),
    ],
)
def test_bad_category_metadata_is_refused(raw: str, match: str) -> None:
    with pytest.raises(rt.ClassifierContractError, match=match):
        rt.parse_metadata(GOOD_META | {rt.META_CATEGORIES: raw})


def test_parsed_categories_are_not_extra() -> None:
    meta = rt.parse_metadata(GOOD_META | {rt.META_CATEGORIES: '["a", "b"]'})
    assert meta.categories == ("a", "b")
    assert meta.extra == {}
    assert rt.parse_metadata(GOOD_META).categories == ()


def test_labels_without_the_output_are_refused(tiny_model: TrainResult) -> None:
    model = onnx.load_from_string(tiny_model.model)
    keep = [o for o in model.graph.output if o.name != rt.CATEGORY_OUTPUT_NAME]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    with pytest.raises(rt.ClassifierContractError, match="no output named 'categories'"):
        rt.load_classifier(model.SerializeToString())


def test_more_labels_than_columns_are_refused(tiny_model: TrainResult) -> None:
    labels = [*sorted(CATEGORIES), "extra"]
    bad = write_metadata(tiny_model.model, {rt.META_CATEGORIES: json.dumps(labels)})
    with pytest.raises(rt.ClassifierContractError, match=r"\[N, 10\]"):
        rt.load_classifier(bad)
