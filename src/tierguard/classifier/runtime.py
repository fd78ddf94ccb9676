"""The classifier runtime: load a tier classifier (ONNX) and turn queries into tiers.

This is the only classifier code the router imports, so it depends on numpy and
onnxruntime alone; training (scikit-learn, skl2onnx) lives in ``tierguard.classifier.train``
behind the optional ``train`` extra.

The model contract (version ``1``)
----------------------------------
A tier classifier is any ONNX model that satisfies all of:

* one input named ``text``: a string tensor with a dynamic batch dimension, shaped
  ``[N]`` or ``[N, 1]``. Raw query strings go in; tokenisation is inside the model, so
  the router never re-implements feature extraction (the classic train/serve skew).
* an output named ``probabilities``: float tensor ``[N, T]`` where column ``i`` is the
  probability of ``tiers[i]``. Other outputs (e.g. skl2onnx's ``label``) are ignored.
* ``metadata_props`` entries (keys below, all namespaced ``tierguard.*``):
  ``tierguard.contract`` = ``"1"``; ``tierguard.tiers`` = JSON list of at least two
  distinct tier names, cheapest first; ``tierguard.thresholds`` = JSON object tier ->
  float in [0, 1] for every tier but the last (the last may be present, it is ignored);
  ``tierguard.version`` = free text; ``tierguard.training_data_sha256`` = hex digest of
  the training file; ``tierguard.metrics`` = JSON object (holdout metrics, may be empty);
  optionally ``tierguard.calibration`` = JSON object written by ``tierguard calibrate``.
* optionally a **category head**: ``tierguard.categories`` = JSON list of 2 to 32 labels
  (lower case, like slice values, ``other`` reserved) and an output named ``categories``,
  float ``[N, C]``, column ``i`` the probability of ``categories[i]``. It is a second
  output of the same graph, on the same features, so ``session.run`` computes the tier
  and the category in one call; a request's category is the argmax label. It feeds slice
  gates (``analysis.slices`` with ``source: Classifier``); the tier rule never reads it.

The tier rule
-------------
Tiers are ordered cheapest first. A query gets the FIRST tier whose probability is
>= that tier's threshold; the last tier is the catch-all and its threshold is ignored.
With tiers ``["simple", "complex"]`` and ``thresholds = {"simple": 0.7}``, a query goes to
the cheap model only when the classifier is at least 70 % sure it is simple: raising a
threshold trades cost savings for fewer complex queries misrouted to the cheap model,
which is the failure seed 003's team could not see.

The rule is a pure function (:func:`assign_tiers`) shared by the router and by
calibration, so the thresholds chosen offline mean exactly the same thing online.

Text normalisation
------------------
Before a query reaches the model the runtime applies :func:`normalize_text`: whitespace
runs (including newlines) become one space, the ends are stripped, and the text is cut
to :data:`MAX_QUERY_CHARS` characters. Training applies the same function, so the two
sides see identical strings. Why here and not in the graph: ONNX has no regex-replace
operator, and without it scikit-learn's character n-grams (which collapse whitespace)
and the ONNX graph (which does not) disagree on multi-line queries; the length cap
bounds the classifier's cost on a pasted log file (routing stays on the first part).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

__all__ = [
    "CATEGORY_OUTPUT_NAME",
    "CONTRACT_VERSION",
    "INPUT_NAME",
    "MAX_QUERY_CHARS",
    "META_CALIBRATION",
    "META_CATEGORIES",
    "META_CONTRACT",
    "META_METRICS",
    "META_THRESHOLDS",
    "META_TIERS",
    "META_TRAINING_DATA_SHA256",
    "META_VERSION",
    "OUTPUT_NAME",
    "Classification",
    "Classifier",
    "ClassifierContractError",
    "ClassifierError",
    "ClassifierLoadError",
    "ClassifierRuntimeError",
    "ModelMetadata",
    "assign_tiers",
    "choose_tier",
    "default_model_path",
    "load_classifier",
    "normalize_text",
    "parse_metadata",
    "resolve_thresholds",
]
from tierguard.classifier.contract import (
    CATEGORY_OUTPUT_NAME,
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
    ClassifierContractError,
    ClassifierError,
    ClassifierLoadError,
    ClassifierRuntimeError,
    ModelMetadata,
    parse_metadata,
    resolve_thresholds,
)

# A probe query run once at load time so a model whose output has the wrong shape at run
# time (static shapes are often unknown) is refused before it serves a single request.
MAX_QUERY_CHARS = 2000
_PROBE_TEXTS: tuple[str, ...] = ("where is my order", "")
_PROBABILITY_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Classification:
    """The outcome for one query: the chosen tier and the probability of every tier."""

    tier: str
    probabilities: dict[str, float]
    #: the category head's label (None: the model has no category head)
    category: str | None = None


# --- pure parts ---------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Collapse whitespace runs to one space, strip, and cap at :data:`MAX_QUERY_CHARS`."""
    return " ".join(text[: MAX_QUERY_CHARS * 2].split())[:MAX_QUERY_CHARS]


def assign_tiers(
    probabilities: npt.NDArray[np.floating[Any]], thresholds: Sequence[float]
) -> npt.NDArray[np.intp]:
    """Index of the chosen tier for each row of ``probabilities`` ([N, T]).

    ``thresholds`` holds one value per tier but the last (length T-1). Row ``n`` gets
    the first tier ``i`` with ``probabilities[n, i] >= thresholds[i]``, else the last
    tier. Vectorised because calibration evaluates it over thousands of rows for
    every candidate threshold.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be [N, T], got shape {probs.shape}")
    n_tiers = probs.shape[1]
    thr = np.asarray(thresholds, dtype=np.float64)
    if thr.shape != (n_tiers - 1,):
        raise ValueError(f"need {n_tiers - 1} thresholds for {n_tiers} tiers, got {thr.shape}")
    passes = np.concatenate(
        [probs[:, :-1] >= thr[None, :], np.ones((probs.shape[0], 1), dtype=bool)], axis=1
    )
    chosen: npt.NDArray[np.intp] = np.argmax(passes, axis=1).astype(np.intp)
    return chosen


def choose_tier(
    probabilities: Mapping[str, float], tiers: Sequence[str], thresholds: Mapping[str, float]
) -> str:
    """Scalar form of :func:`assign_tiers` for one query (documentation and tests)."""
    for tier in tiers[:-1]:
        if probabilities[tier] >= thresholds[tier]:
            return tier
    return tiers[-1]


# --- the ONNX session -----------------------------------------------------------------------


def default_model_path() -> Path:
    """Path of the model shipped in the package (``tierguard/classifier/default/model.onnx``)."""
    return Path(str(resources.files("tierguard.classifier").joinpath("default", "model.onnx")))


def _describe(arg: Any) -> str:
    return f"{arg.name!r} ({arg.type}, shape {arg.shape})"


class Classifier:
    """A loaded, contract-checked classifier bound to its effective thresholds.

    One onnxruntime session (single intra-op thread: the router serves many small
    requests concurrently, and per-query parallelism only adds scheduling overhead).
    ``InferenceSession.run`` is thread-safe, so one instance serves all requests.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        metadata: ModelMetadata,
        thresholds: dict[str, float],
        input_rank: int,
        model_sha256: str = "",
    ) -> None:
        self._session = session
        #: SHA-256 of the model bytes: identifies the exact model in logs and decisions
        self.model_sha256 = model_sha256
        self.metadata = metadata
        self.tiers: tuple[str, ...] = metadata.tiers
        self.thresholds: dict[str, float] = dict(thresholds)
        self._threshold_vector = [thresholds[t] for t in self.tiers[:-1]]
        self._input_rank = input_rank
        #: labels of the category head, column order (empty: no category head)
        self.categories: tuple[str, ...] = metadata.categories

    def _run(self, texts: Sequence[str], outputs: list[str]) -> list[npt.NDArray[np.float32]]:
        """One ``session.run`` for the named outputs (both heads share the features)."""
        if isinstance(texts, str):
            raise TypeError("probabilities() takes a sequence of strings; use classify() for one")
        shape = (len(texts),) if self._input_rank == 1 else (len(texts), 1)
        feed = np.array([normalize_text(t) for t in texts], dtype=object).reshape(shape)
        try:
            out = self._session.run(outputs, {INPUT_NAME: feed})
        except Exception as exc:  # onnxruntime's exception classes are not public API
            raise ClassifierRuntimeError(
                f"classifier failed on {len(texts)} queries: {exc}"
            ) from exc
        return [np.asarray(o, dtype=np.float32) for o in out]

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Raw tier probabilities, shape ``[len(texts), len(tiers)]``, columns in tier order."""
        if not isinstance(texts, str) and len(texts) == 0:
            return np.zeros((0, len(self.tiers)), dtype=np.float32)
        return self._run(texts, [OUTPUT_NAME])[0]

    def category_probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The category head's probabilities ``[len(texts), len(categories)]`` (raises
        :class:`ClassifierContractError` when the model has no category head)."""
        if not self.categories:
            raise ClassifierContractError("this classifier has no category head")
        if not isinstance(texts, str) and len(texts) == 0:
            return np.zeros((0, len(self.categories)), dtype=np.float32)
        return self._run(texts, [CATEGORY_OUTPUT_NAME])[0]

    def _to_classifications(
        self, probs: npt.NDArray[np.float32], cats: npt.NDArray[np.float32] | None = None
    ) -> list[Classification]:
        if len(probs) == 1:  # the router's case: plain floats beat numpy's per-call setup
            row = probs[0].tolist()
            first = next(
                (i for i, thr in enumerate(self._threshold_vector) if row[i] >= thr),
                len(self.tiers) - 1,
            )
            return [
                Classification(
                    tier=self.tiers[first],
                    probabilities=dict(zip(self.tiers, row, strict=True)),
                    category=(
                        self.categories[int(np.argmax(cats[0]))] if cats is not None else None
                    ),
                )
            ]
        chosen = assign_tiers(probs, self._threshold_vector)
        labels: list[str | None] = (
            [self.categories[int(i)] for i in np.argmax(cats, axis=1)]
            if cats is not None
            else [None] * len(probs)
        )
        return [
            Classification(
                tier=self.tiers[int(idx)],
                probabilities={t: float(p) for t, p in zip(self.tiers, row, strict=True)},
                category=label,
            )
            for idx, row, label in zip(chosen, probs, labels, strict=True)
        ]

    def classify(self, text: str) -> Classification:
        """Tier (and category) for one query (the router's hot path)."""
        return self.classify_batch([text])[0]

    def classify_batch(self, texts: Sequence[str]) -> list[Classification]:
        """Tiers (and categories, when the model has a category head) for many queries in
        one session run: both heads come out of the same ``session.run``."""
        if isinstance(texts, str):
            raise TypeError("classify_batch() takes a sequence of strings; use classify()")
        if len(texts) == 0:
            return []
        if not self.categories:
            return self._to_classifications(self._run(texts, [OUTPUT_NAME])[0])
        probs, cats = self._run(texts, [OUTPUT_NAME, CATEGORY_OUTPUT_NAME])
        return self._to_classifications(probs, cats)

    def assign(self, texts: Sequence[str]) -> list[str]:
        """Just the tier names for ``texts``."""
        return [
            self.tiers[int(i)]
            for i in assign_tiers(self.probabilities(texts), self._threshold_vector)
        ]


def _check_category_output(session: ort.InferenceSession, n_categories: int) -> None:
    """A model that declares category labels must have the matching output."""
    outputs = {o.name: o for o in session.get_outputs()}
    out = outputs.get(CATEGORY_OUTPUT_NAME)
    if out is None:
        raise ClassifierContractError(
            f"model metadata {META_CATEGORIES!r} declares {n_categories} category labels but "
            f"the model has no output named {CATEGORY_OUTPUT_NAME!r} (outputs: "
            + ", ".join(_describe(o) for o in outputs.values())
            + ")"
        )
    oshape = list(out.shape)
    if out.type not in ("tensor(float)", "tensor(double)") or len(oshape) != 2:
        raise ClassifierContractError(
            f"model output {_describe(out)} must be a float tensor [N, {n_categories}]"
        )
    if isinstance(oshape[1], int) and oshape[1] != n_categories:
        raise ClassifierContractError(
            f"model output {_describe(out)} must be shaped [N, {n_categories}]: one column per "
            f"label in the metadata's {META_CATEGORIES!r}"
        )


def _check_io(session: ort.InferenceSession, n_tiers: int) -> int:
    """Check the declared inputs/outputs; return the rank of the ``text`` input."""
    inputs = session.get_inputs()
    by_name = {i.name: i for i in inputs}
    if INPUT_NAME not in by_name:
        raise ClassifierContractError(
            f"model has no input named {INPUT_NAME!r} (inputs: "
            + ", ".join(_describe(i) for i in inputs)
            + "); a tierguard classifier takes raw query strings in an input called 'text'"
        )
    if len(inputs) != 1:
        raise ClassifierContractError(
            "model must have exactly one input, 'text'; it has "
            + ", ".join(_describe(i) for i in inputs)
        )
    text_in = by_name[INPUT_NAME]
    if text_in.type != "tensor(string)":
        raise ClassifierContractError(
            f"model input {_describe(text_in)} must be a string tensor (tensor(string))"
        )
    shape = list(text_in.shape)
    batch_dynamic = bool(shape) and not isinstance(shape[0], int)
    column_ok = len(shape) == 1 or (
        len(shape) == 2 and not (isinstance(shape[1], int) and shape[1] != 1)
    )
    if not (batch_dynamic and column_ok):
        raise ClassifierContractError(
            f"model input {_describe(text_in)} must be shaped [N] or [N, 1] with a dynamic "
            "batch dimension N"
        )
    outputs = {o.name: o for o in session.get_outputs()}
    if OUTPUT_NAME not in outputs:
        raise ClassifierContractError(
            f"model has no output named {OUTPUT_NAME!r} (outputs: "
            + ", ".join(_describe(o) for o in outputs.values())
            + "); export it with a plain probability tensor, e.g. skl2onnx option "
            "zipmap=False"
        )
    out = outputs[OUTPUT_NAME]
    if out.type not in ("tensor(float)", "tensor(double)"):
        raise ClassifierContractError(
            f"model output {_describe(out)} must be a float tensor [N, {n_tiers}] "
            "(a sequence of maps means skl2onnx's ZipMap is still on: use zipmap=False)"
        )
    oshape = list(out.shape)
    if len(oshape) != 2 or (isinstance(oshape[1], int) and oshape[1] != n_tiers):
        raise ClassifierContractError(
            f"model output {_describe(out)} must be shaped [N, {n_tiers}]: one column per "
            f"tier in the metadata's {META_TIERS!r}"
        )
    return len(shape)


def _probe(classifier: Classifier) -> None:
    """Run the model once: static shapes are often unknown, so check the real output."""
    try:
        probs = classifier.probabilities(list(_PROBE_TEXTS))
    except ClassifierRuntimeError as exc:
        raise ClassifierContractError(
            f"model failed on a probe batch {list(_PROBE_TEXTS)!r}: {exc}"
        ) from exc
    n_tiers = len(classifier.tiers)
    _check_distribution(
        OUTPUT_NAME, probs, n_tiers, f"one column per tier {list(classifier.tiers)}"
    )
    if classifier.categories:
        try:
            cats = classifier.category_probabilities(list(_PROBE_TEXTS))
        except ClassifierRuntimeError as exc:
            raise ClassifierContractError(
                f"model failed on a probe batch {list(_PROBE_TEXTS)!r}: {exc}"
            ) from exc
        n = len(classifier.categories)
        _check_distribution(CATEGORY_OUTPUT_NAME, cats, n, "one column per category label")


def _check_distribution(
    name: str, probs: npt.NDArray[np.float32], n_columns: int, what: str
) -> None:
    if probs.shape != (len(_PROBE_TEXTS), n_columns):
        raise ClassifierContractError(
            f"model output {name!r} has shape {list(probs.shape)} for a batch of "
            f"{len(_PROBE_TEXTS)}; the contract needs [N, {n_columns}] ({what})"
        )
    if (
        not np.all(np.isfinite(probs))
        or np.any(probs < -1e-6)
        or np.any(np.abs(probs.sum(axis=1) - 1.0) > _PROBABILITY_SUM_TOLERANCE)
    ):
        raise ClassifierContractError(
            f"model output {name!r} is not a probability distribution per row "
            f"(got {probs.tolist()} for the probe batch); export probabilities, not scores"
        )


def load_classifier(
    path_or_bytes: str | os.PathLike[str] | bytes,
    thresholds_override: Mapping[str, float] | None = None,
    *,
    expected_tiers: Sequence[str] | None = None,
) -> Classifier:
    """Load an ONNX tier classifier, check the contract, and bind its thresholds.

    ``thresholds_override`` (e.g. from the RoutingPolicy) wins over the model's
    calibrated defaults; ``expected_tiers`` (the tiers a config routes on) must equal
    the model's tiers, in order, because the order is what the tier rule walks.
    Raises :class:`ClassifierLoadError` when the file cannot be read and
    :class:`ClassifierContractError` when it breaks the contract.
    """
    if isinstance(path_or_bytes, bytes | bytearray):
        source = bytes(path_or_bytes)
        where = "<bytes>"
    else:
        p = Path(path_or_bytes)
        if not p.is_file():
            raise ClassifierLoadError(
                f"classifier model {str(p)!r} does not exist or is not a file"
            )
        try:
            source = p.read_bytes()
        except OSError as exc:
            raise ClassifierLoadError(f"cannot read classifier model {str(p)!r}: {exc}") from exc
        where = str(p)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's exception classes are not part of its public API
        raise ClassifierLoadError(f"cannot load ONNX model {where}: {exc}") from exc
    props = dict(session.get_modelmeta().custom_metadata_map)
    metadata = parse_metadata(props)
    if expected_tiers is not None and tuple(expected_tiers) != metadata.tiers:
        raise ClassifierContractError(
            f"configured tiers {list(expected_tiers)} do not match the model's tiers "
            f"{list(metadata.tiers)} (same names, same order: cheapest first)"
        )
    input_rank = _check_io(session, len(metadata.tiers))
    if metadata.categories:
        _check_category_output(session, len(metadata.categories))
    thresholds = resolve_thresholds(metadata.tiers, metadata.thresholds, thresholds_override)
    digest = hashlib.sha256(source).hexdigest()
    classifier = Classifier(session, metadata, thresholds, input_rank, digest)
    _probe(classifier)
    return classifier
