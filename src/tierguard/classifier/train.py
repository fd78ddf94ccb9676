"""Train a tier classifier and export it to ONNX (needs the ``train`` extra).

The model: TF-IDF over word 1-2-grams and character 2-4-grams, concatenated, into a
logistic regression (one probability per tier), exported with skl2onnx so the ONNX
graph takes the raw query string and does its own tokenisation. Why this model and not
a fine-tuned encoder like seed 003's: it trains in seconds on a laptop, exports to a few
hundred kB (a ConfigMap holds 1 MiB), runs well under a millisecond on one CPU thread,
and its errors are inspectable per n-gram. Character n-grams carry typos, inflections
and ids ("charged"/"charges", "#A1234"); word bigrams carry short phrases ("refund me").

Choices forced by ONNX agreement (checked by a test on >= 99.9 % of holdout predictions):

* ``binary=True`` term frequencies: skl2onnx's export of ``sublinear_tf`` disagrees with
  scikit-learn whenever a term repeats in a query, and on short queries presence is as
  informative as log-counts.
* token pattern ``[a-z0-9]+`` (after lowercasing): exactly reproducible by the ONNX
  Tokenizer's RE2 regex, unlike scikit-learn's default ``\\b\\w\\w+\\b``.
* lowercasing with the ``C`` locale: onnxruntime's StringNormalizer otherwise asks for
  ``en_US.UTF-8``, which slim container images lack (the model would fail to load).
  Consequence: non-ASCII capitals are not lowercased by the ONNX graph (documented in
  docs/classifier.md as a known weakness).
* texts pass through :func:`tierguard.classifier.runtime.normalize_text` on both sides.

scikit-learn and skl2onnx are imported inside functions, so importing this module's
neighbours (the runtime) never requires them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tierguard.classifier.categoryhead import (
    CategoryHead,
    add_category_head,
    category_labels,
    fit_category_head,
    predict_category_proba,
)
from tierguard.classifier.data import DataError, LabelledSet
from tierguard.classifier.evaluation import evaluate
from tierguard.classifier.runtime import (
    CONTRACT_VERSION,
    INPUT_NAME,
    META_CALIBRATION,
    META_CATEGORIES,
    META_CONTRACT,
    META_METRICS,
    META_THRESHOLDS,
    META_TIERS,
    META_TRAINING_DATA_SHA256,
    META_VERSION,
    OUTPUT_NAME,
    normalize_text,
)
from tierguard.classifier.vocabulary import select_vocabulary

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = [
    "MissingTrainingExtraError",
    "TrainConfig",
    "TrainResult",
    "build_metadata",
    "export_onnx",
    "fit_pipeline",
    "predict_proba",
    "read_metadata",
    "split_holdout",
    "train",
    "write_metadata",
]

TOKEN_PATTERN = r"[a-z0-9]+"
ONNX_LOCALE = "C"
TARGET_OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}
MODEL_FAMILY = "tfidf-word1-2-char2-4-logreg"


class MissingTrainingExtraError(RuntimeError):
    """scikit-learn / skl2onnx / onnx are not installed."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} needs the training extra: pip install 'tierguard[train]' "
            "(scikit-learn, skl2onnx, onnx); the router itself needs only onnxruntime"
        )


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters. Defaults were chosen on a validation draw of the generator's
    holdout split (template-disjoint from training), not on the card's test draw."""

    word_ngram_range: tuple[int, int] = (1, 2)
    char_ngram_range: tuple[int, int] = (2, 4)
    word_max_features: int = 4000
    char_max_features: int = 8000
    min_df: int = 2
    C: float = 4.0
    class_weight: str | None = "balanced"
    max_iter: int = 3000

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """A trained pipeline, its ONNX export and the holdout it was judged on."""

    pipeline: Pipeline
    model: bytes
    tiers: tuple[str, ...]
    thresholds: dict[str, float]
    metrics: dict[str, Any]
    holdout_texts: list[str] = field(default_factory=list)
    holdout_probabilities: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    category_head: CategoryHead | None = None


def _require_sklearn() -> None:
    try:
        import skl2onnx  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise MissingTrainingExtraError("training a classifier") from exc


def fit_pipeline(
    texts: Sequence[str], labels: Sequence[str], tiers: Sequence[str], config: TrainConfig
) -> Pipeline:
    """Fit the TF-IDF + logistic-regression pipeline; class ``i`` is ``tiers[i]``.

    Labels are encoded as tier indexes so that the probability columns come out in
    tier order (scikit-learn sorts classes; sorting names would put "complex" first).
    Deterministic on every machine: lbfgs has no random state, and the vocabularies are
    chosen by :func:`~tierguard.classifier.vocabulary.select_vocabulary` (a total order,
    not scikit-learn's CPU-dependent tie-breaking at ``max_features``).
    """
    _require_sklearn()
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    index = {t: i for i, t in enumerate(tiers)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    normalized = [normalize_text(t) for t in texts]
    word_ngrams: dict[str, Any] = {
        "analyzer": "word",
        "token_pattern": TOKEN_PATTERN,
        "ngram_range": config.word_ngram_range,
    }
    char_ngrams: dict[str, Any] = {"analyzer": "char", "ngram_range": config.char_ngram_range}
    try:
        # min_df and max_features are applied here, with ties broken by the n-gram: the
        # vectorisers' own cut-off depends on numpy's CPU-specific sort (vocabulary.py)
        word_vocabulary = select_vocabulary(
            normalized, config.min_df, config.word_max_features, **word_ngrams
        )
        char_vocabulary = select_vocabulary(
            normalized, config.min_df, config.char_max_features, **char_ngrams
        )
    except ValueError as exc:  # e.g. "After pruning, no terms remain" on a handful of lines
        raise _too_little_data(len(texts), config, exc) from exc
    word = TfidfVectorizer(**word_ngrams, vocabulary=word_vocabulary, binary=True, dtype=np.float32)
    char = TfidfVectorizer(**char_ngrams, vocabulary=char_vocabulary, binary=True, dtype=np.float32)
    pipeline = Pipeline(
        [
            ("features", FeatureUnion([("word", word), ("char", char)])),
            (
                "logreg",
                LogisticRegression(
                    C=config.C, class_weight=config.class_weight, max_iter=config.max_iter
                ),
            ),
        ]
    )
    try:
        pipeline.fit(normalized, y)
    except ValueError as exc:  # whatever else scikit-learn refuses in this data
        raise _too_little_data(len(texts), config, exc) from exc
    return pipeline


def _too_little_data(n: int, config: TrainConfig, exc: ValueError) -> DataError:
    return DataError(
        f"cannot train on {n} examples: {exc} (n-grams must occur in at least "
        f"{config.min_df} examples; label more data, a few hundred per tier is a start)"
    )


def predict_proba(pipeline: Pipeline, texts: Sequence[str]) -> npt.NDArray[np.float64]:
    """scikit-learn's probabilities on normalised texts (the reference for ONNX agreement)."""
    out: npt.NDArray[np.float64] = pipeline.predict_proba([normalize_text(t) for t in texts])
    return out


def build_metadata(
    tiers: Sequence[str],
    thresholds: Mapping[str, float],
    version: str,
    training_data_sha256: str,
    metrics: Mapping[str, Any],
    calibration: Mapping[str, Any] | None = None,
    categories: Sequence[str] | None = None,
) -> dict[str, str]:
    """The ``tierguard.*`` metadata entries, serialised as the contract requires."""
    meta = {
        META_CONTRACT: CONTRACT_VERSION,
        META_TIERS: json.dumps(list(tiers)),
        META_THRESHOLDS: json.dumps({t: float(thresholds[t]) for t in tiers[:-1]}),
        META_VERSION: version,
        META_TRAINING_DATA_SHA256: training_data_sha256,
        META_METRICS: json.dumps(metrics, sort_keys=True, separators=(",", ":")),
    }
    if calibration is not None:
        meta[META_CALIBRATION] = json.dumps(calibration, sort_keys=True, separators=(",", ":"))
    if categories:
        meta[META_CATEGORIES] = json.dumps(list(categories))
    return meta


def export_onnx(
    pipeline: Pipeline, metadata: Mapping[str, str], category_head: CategoryHead | None = None
) -> bytes:
    """Convert to ONNX: input ``text`` [N] strings, output ``probabilities`` [N, T] (and
    ``categories`` [N, C] with a category head, see :mod:`~tierguard.classifier.categoryhead`)."""
    _require_sklearn()
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    features = pipeline.named_steps["features"]
    options: dict[int, dict[str, Any]] = {id(pipeline.named_steps["logreg"]): {"zipmap": False}}
    for _, vectorizer in features.transformer_list:
        options[id(vectorizer)] = {"locale": ONNX_LOCALE}
    model = convert_sklearn(
        pipeline,
        initial_types=[(INPUT_NAME, StringTensorType([None]))],
        options=options,
        target_opset=TARGET_OPSET,
    )
    outputs = [o.name for o in model.graph.output]
    if OUTPUT_NAME not in outputs:  # skl2onnx naming changed under us: fail loudly here
        raise RuntimeError(f"skl2onnx produced outputs {outputs}, expected {OUTPUT_NAME!r}")
    if category_head is not None:
        add_category_head(model, category_head, ONNX_LOCALE, TARGET_OPSET)
    model.doc_string = "tierguard tier classifier (see docs/classifier.md)"
    # Reproducible bytes: skl2onnx names the graph with a random uuid and lists opset
    # imports in set order (which follows Python's per-process string hash seed).
    model.graph.name = "tierguard_classifier"
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, version in opsets:
        entry = model.opset_import.add()
        entry.domain, entry.version = domain, version
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value
    return bytes(model.SerializeToString())


def read_metadata(model_bytes: bytes) -> dict[str, str]:
    """All ``metadata_props`` of a serialised ONNX model (needs ``onnx``)."""
    try:
        import onnx
    except ImportError as exc:
        raise MissingTrainingExtraError("reading model metadata") from exc
    model = onnx.load_from_string(model_bytes)
    return {p.key: p.value for p in model.metadata_props}


def write_metadata(model_bytes: bytes, updates: Mapping[str, str]) -> bytes:
    """Return the model with ``updates`` set in its metadata (other entries kept, in order)."""
    try:
        import onnx
    except ImportError as exc:
        raise MissingTrainingExtraError("writing model metadata (tierguard calibrate)") from exc
    model = onnx.load_from_string(model_bytes)
    current = {p.key: p.value for p in model.metadata_props}
    current.update(updates)
    del model.metadata_props[:]
    for key, value in current.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value
    return bytes(model.SerializeToString())


def split_holdout(labels: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified (per tier) deterministic split into (train, holdout) indexes."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    train_idx: list[int] = []
    hold_idx: list[int] = []
    for tier in dict.fromkeys(labels):
        idx = np.array([i for i, label in enumerate(labels) if label == tier])
        rng.shuffle(idx)
        k = round(len(idx) * fraction)
        # keep at least one example of each tier on both sides
        k = min(max(k, 1), len(idx) - 1) if len(idx) >= 2 else 0
        hold_idx.extend(int(i) for i in idx[:k])
        train_idx.extend(int(i) for i in idx[k:])
    return sorted(train_idx), sorted(hold_idx)


def _subset(data: LabelledSet, idx: Sequence[int]) -> LabelledSet:
    return LabelledSet(tuple(data.queries[i] for i in idx), data.sha256, data.source)


def train(
    data: LabelledSet,
    tiers: Sequence[str],
    *,
    config: TrainConfig | None = None,
    holdout: LabelledSet | None = None,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    version: str | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> TrainResult:
    """Train on ``data``, judge on ``holdout`` (or a stratified split of ``data``), export.

    The exported model is the one that was judged: it is trained on the training part
    only, so the metrics in its metadata describe exactly the bytes that ship.
    """
    config = config or TrainConfig()
    tiers = tuple(tiers)
    if holdout is None:
        train_idx, hold_idx = split_holdout(data.tiers, holdout_fraction, seed)
        train_set, holdout_set = _subset(data, train_idx), _subset(data, hold_idx)
        holdout_desc = f"stratified {holdout_fraction:.0%} split of the training file (seed {seed})"
    else:
        train_set, holdout_set = data, holdout
        holdout_desc = f"separate file, sha256 {holdout.sha256}"
    pipeline = fit_pipeline(train_set.texts, train_set.tiers, tiers, config)
    head = train_category_head(pipeline, train_set, config)
    thresholds = dict(thresholds or {t: 0.5 for t in tiers[:-1]})
    probs = predict_proba(pipeline, holdout_set.texts)
    report = evaluate(
        probs,
        holdout_set.tiers,
        tiers,
        thresholds,
        holdout_set.categories,
        holdout_set.hard,
        holdout_set.quality,
    )
    metrics = {
        "holdout": report,
        "holdout_source": holdout_desc,
        "train_examples": len(train_set.queries),
        "model": MODEL_FAMILY,
        "config": config.to_json(),
    }
    if head is not None:
        metrics["category_head"] = category_head_report(head, holdout_set)
    version = version or f"{MODEL_FAMILY}-{data.sha256[:12]}"
    meta = build_metadata(
        tiers, thresholds, version, data.sha256, metrics, categories=head.labels if head else None
    )
    model = export_onnx(pipeline, meta, head)
    return TrainResult(
        pipeline=pipeline,
        model=model,
        tiers=tiers,
        thresholds=thresholds,
        metrics=metrics,
        holdout_texts=holdout_set.texts,
        holdout_probabilities=probs,
        category_head=head,
    )


def train_category_head(
    pipeline: Pipeline, data: LabelledSet, config: TrainConfig
) -> CategoryHead | None:
    """A category head when every training example has a category (else None)."""
    categories = data.categories
    if category_labels(categories) is None or categories is None:
        return None
    return fit_category_head(
        pipeline,
        data.texts,
        [c or "" for c in categories],
        config.C,
        config.max_iter,
    )


def category_head_report(head: CategoryHead, holdout: LabelledSet) -> dict[str, Any]:
    """The head's labels and its accuracy on the holdout's labelled categories."""
    report: dict[str, Any] = {"labels": list(head.labels), "features": "word"}
    cats = holdout.categories
    if cats is not None:
        known = [i for i, c in enumerate(cats) if c in head.labels]
        if known:
            probs = predict_category_proba(head, [holdout.texts[i] for i in known])
            predicted = [head.labels[int(j)] for j in np.argmax(probs, axis=1)]
            hits = sum(p == cats[i] for p, i in zip(predicted, known, strict=True))
            report["holdout_accuracy"] = round(hits / len(known), 4)
            report["holdout_examples"] = len(known)
    return report
