"""The runtime: tier rule, threshold resolution, and refusal of contract breaches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from tierguard.classifier import runtime as rt
from tierguard.classifier.train import TrainResult, read_metadata, write_metadata

GOOD_META = {
    rt.META_CONTRACT: "1",
    rt.META_TIERS: '["simple", "complex"]',
    rt.META_THRESHOLDS: '{"simple": 0.6}',
    rt.META_VERSION: "v",
    rt.META_TRAINING_DATA_SHA256: "ab12",
    rt.META_METRICS: "{}",
}


# --- the tier rule -------------------------------------------------------------------------


def test_first_tier_over_its_threshold_wins_and_last_is_catch_all() -> None:
    probs = np.array(
        [
            [0.7, 0.2, 0.1],  # cheap tier passes 0.6
            [0.5, 0.45, 0.05],  # cheap fails, middle passes 0.4
            [0.5, 0.3, 0.2],  # both fail -> last tier regardless of its probability
            [0.6, 0.0, 0.4],  # exactly at threshold passes (>=)
        ]
    )
    assert rt.assign_tiers(probs, [0.6, 0.4]).tolist() == [0, 1, 2, 0]


def test_scalar_rule_matches_vectorised_rule() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=200)
    tiers = ("a", "b", "c")
    thr = {"a": 0.5, "b": 0.3}
    vec = rt.assign_tiers(probs, [0.5, 0.3])
    for row, idx in zip(probs, vec, strict=True):
        assert rt.choose_tier(dict(zip(tiers, row, strict=True)), tiers, thr) == tiers[idx]


def test_assign_tiers_rejects_wrong_threshold_count() -> None:
    with pytest.raises(ValueError, match="need 1 thresholds"):
        rt.assign_tiers(np.array([[0.5, 0.5]]), [0.5, 0.5])


def test_normalize_text_collapses_whitespace_and_caps_length() -> None:
    assert rt.normalize_text("  where\n\tis   my order ") == "where is my order"
    assert len(rt.normalize_text("x " * 10_000)) == rt.MAX_QUERY_CHARS


# --- metadata and thresholds (pure) ----------------------------------------------------------


def test_parse_metadata_accepts_a_good_map() -> None:
    meta = rt.parse_metadata(GOOD_META | {"other": "kept"})
    assert meta.tiers == ("simple", "complex")
    assert meta.thresholds == {"simple": 0.6}
    assert meta.calibration is None
    assert meta.extra == {"other": "kept"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({rt.META_TIERS: None}, "missing 'tierguard\\.tiers'"),
        ({rt.META_CONTRACT: "2"}, "contract '1' only"),
        ({rt.META_TIERS: '["simple"]'}, "at least two"),
        ({rt.META_TIERS: '["a", "a"]'}, "names a tier twice"),
        ({rt.META_TIERS: "simple,complex"}, "not valid JSON"),
        ({rt.META_THRESHOLDS: '{"cheap": 0.5}'}, "not in 'tierguard.tiers'"),
        ({rt.META_THRESHOLDS: "{}"}, r"no threshold for tiers \['simple'\]"),
        ({rt.META_THRESHOLDS: '{"simple": 1.5}'}, "within \\[0, 1\\]"),
        ({rt.META_THRESHOLDS: '{"simple": "high"}'}, "must be a number"),
        ({rt.META_METRICS: "[]"}, "must be a JSON object"),
        ({rt.META_TRAINING_DATA_SHA256: ""}, "is empty"),
    ],
)
def test_parse_metadata_names_what_is_wrong(change: dict[str, str | None], message: str) -> None:
    props = {k: v for k, v in (GOOD_META | change).items() if v is not None}
    with pytest.raises(rt.ClassifierContractError, match=message):
        rt.parse_metadata(props)


def test_resolve_thresholds_overrides_and_ignores_last_tier() -> None:
    got = rt.resolve_thresholds(("s", "m", "c"), {"s": 0.5, "m": 0.5}, {"m": 0.8, "c": 0.1})
    assert got == {"s": 0.5, "m": 0.8}


def test_resolve_thresholds_refuses_unknown_tier() -> None:
    with pytest.raises(rt.ClassifierContractError, match="name tiers \\['cheap'\\]"):
        rt.resolve_thresholds(("simple", "complex"), {"simple": 0.5}, {"cheap": 0.5})


# --- a real model ----------------------------------------------------------------------------


def test_loaded_model_classifies_and_exposes_metadata(tiny_model: TrainResult) -> None:
    clf = rt.load_classifier(tiny_model.model)
    assert clf.tiers == ("simple", "complex")
    assert clf.thresholds == {"simple": 0.5}
    assert clf.metadata.version == "test"
    assert "holdout" in clf.metadata.metrics
    one = clf.classify("Where is my order #123456?")
    assert one.tier == "simple"
    assert set(one.probabilities) == {"simple", "complex"}
    assert abs(sum(one.probabilities.values()) - 1.0) < 1e-5
    texts = ["where is my order", "I was charged twice this month and want it fixed", ""]
    batch = clf.classify_batch(texts)
    assert [b.tier for b in batch] == [clf.classify(t).tier for t in texts]
    assert clf.assign(texts) == [b.tier for b in batch]
    assert clf.classify_batch([]) == []


def test_one_row_path_matches_the_vectorised_rule(tiny_model: TrainResult) -> None:
    """``classify`` (one row, plain floats) decides and reports exactly what the batch
    path (``assign_tiers``, float64) does, on ties at a threshold and on NaN too."""
    clf = rt.load_classifier(tiny_model.model, {"simple": 0.25})
    thr = np.float32(0.25)
    rows = [[thr, 1 - thr], [np.nextafter(thr, np.float32(0)), 0.75], [0.9, 0.1],
            [0.1, 0.9], [np.nan, 0.5], [0.0, 0.0]]  # fmt: skip
    for row in rows:
        probs = np.array([row], dtype=np.float32)
        (one,) = clf._to_classifications(probs)
        (via_batch,) = clf._to_classifications(np.repeat(probs, 2, axis=0))[:1]
        assert one.tier == via_batch.tier == clf.tiers[int(rt.assign_tiers(probs, [0.25])[0])]
        assert one.probabilities == pytest.approx(via_batch.probabilities, nan_ok=True)
        assert all(type(v) is float for v in one.probabilities.values())
    (tie,) = clf._to_classifications(np.array([[thr, 1 - thr]], dtype=np.float32))
    assert tie.tier == "simple"  # >= the threshold passes


def test_threshold_override_changes_routing(tiny_model: TrainResult) -> None:
    text = "where is my order"
    p_simple = rt.load_classifier(tiny_model.model).classify(text).probabilities["simple"]
    strict = rt.load_classifier(tiny_model.model, {"simple": min(1.0, p_simple + 0.01)})
    lax = rt.load_classifier(tiny_model.model, {"simple": max(0.0, p_simple - 0.01)})
    assert strict.classify(text).tier == "complex"
    assert lax.classify(text).tier == "simple"


def test_expected_tiers_must_match_in_order(tiny_model: TrainResult) -> None:
    rt.load_classifier(tiny_model.model, expected_tiers=["simple", "complex"])
    with pytest.raises(rt.ClassifierContractError, match="do not match the model's tiers"):
        rt.load_classifier(tiny_model.model, expected_tiers=["complex", "simple"])


def test_load_from_path_and_missing_file(tiny_model: TrainResult, tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(tiny_model.model)
    from_path = rt.load_classifier(path)
    assert from_path.tiers == ("simple", "complex")
    assert from_path.model_sha256 == rt.load_classifier(tiny_model.model).model_sha256
    assert len(from_path.model_sha256) == 64
    with pytest.raises(rt.ClassifierLoadError, match="does not exist"):
        rt.load_classifier(tmp_path / "nope.onnx")
    with pytest.raises(rt.ClassifierLoadError, match="cannot load ONNX model"):
        rt.load_classifier(b"definitely not onnx")


def test_model_without_metadata_is_refused(tiny_model: TrainResult) -> None:
    model = onnx.load_from_string(tiny_model.model)
    del model.metadata_props[:]
    with pytest.raises(rt.ClassifierContractError, match="is this a tierguard classifier"):
        rt.load_classifier(model.SerializeToString())


def test_renamed_input_is_refused(tiny_model: TrainResult) -> None:
    model = onnx.load_from_string(tiny_model.model)
    model.graph.input[0].name = "query"
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name == "text":
                node.input[i] = "query"
    with pytest.raises(rt.ClassifierContractError, match="no input named 'text'"):
        rt.load_classifier(model.SerializeToString())


def test_metadata_with_more_tiers_than_columns_is_refused(tiny_model: TrainResult) -> None:
    bad = write_metadata(
        tiny_model.model,
        {
            rt.META_TIERS: json.dumps(["simple", "medium", "complex"]),
            rt.META_THRESHOLDS: json.dumps({"simple": 0.5, "medium": 0.5}),
        },
    )
    with pytest.raises(rt.ClassifierContractError, match=r"\[N, 3\]"):
        rt.load_classifier(bad)


@pytest.mark.filterwarnings("ignore:The conversion of CountVectorizer")
def test_zipmap_output_is_refused(tiny_model: TrainResult) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    pipeline = tiny_model.pipeline
    opts = {id(v): {"locale": "C"} for _, v in pipeline.named_steps["features"].transformer_list}
    model = convert_sklearn(
        pipeline,
        initial_types=[("text", StringTensorType([None]))],
        options=opts,  # zipmap left on: probabilities become a sequence of maps
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    for key, value in read_metadata(tiny_model.model).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    with pytest.raises(rt.ClassifierContractError, match="zipmap=False"):
        rt.load_classifier(model.SerializeToString())


def test_default_model_path_points_at_the_shipped_model() -> None:
    path = rt.default_model_path()
    assert path.is_file()
    assert path.name == "model.onnx"


def test_runtime_imports_neither_sklearn_nor_skl2onnx() -> None:
    """The router image ships without the train extra: the runtime must not need it."""
    import subprocess
    import sys

    code = (
        "import sys, tierguard.classifier.runtime as r, tierguard.classifier.dataset; "
        "r.load_classifier(r.default_model_path()).classify('where is my order'); "
        "bad = [m for m in ('sklearn', 'skl2onnx', 'onnx') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
