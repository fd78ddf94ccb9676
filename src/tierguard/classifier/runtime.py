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
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

__all__ = [
    "CONTRACT_VERSION",
    "INPUT_NAME",
    "MAX_QUERY_CHARS",
    "META_CALIBRATION",
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

# --- the contract: names defined once, used by the runtime and by training ----------------

CONTRACT_VERSION = "1"
INPUT_NAME = "text"
OUTPUT_NAME = "probabilities"

META_CONTRACT = "tierguard.contract"
META_TIERS = "tierguard.tiers"
META_THRESHOLDS = "tierguard.thresholds"
META_VERSION = "tierguard.version"
META_TRAINING_DATA_SHA256 = "tierguard.training_data_sha256"
META_METRICS = "tierguard.metrics"
META_CALIBRATION = "tierguard.calibration"

REQUIRED_METADATA: tuple[str, ...] = (
    META_CONTRACT,
    META_TIERS,
    META_THRESHOLDS,
    META_VERSION,
    META_TRAINING_DATA_SHA256,
    META_METRICS,
)

# A probe query run once at load time so a model whose output has the wrong shape at run
# time (static shapes are often unknown) is refused before it serves a single request.
MAX_QUERY_CHARS = 2000
_PROBE_TEXTS: tuple[str, ...] = ("where is my order", "")
_PROBABILITY_SUM_TOLERANCE = 1e-3


class ClassifierError(Exception):
    """Base class for every error raised while loading or running a classifier."""


class ClassifierLoadError(ClassifierError):
    """The model could not be read at all (missing file, not an ONNX model)."""


class ClassifierRuntimeError(ClassifierError):
    """onnxruntime failed while scoring queries (the router falls back on it, see its docs)."""


class ClassifierContractError(ClassifierError):
    """The model loads but breaks the tierguard model contract; the message says which part.

    A router refuses such a model at start-up instead of routing on garbage: a model
    whose columns mean something else than its metadata says would send complex
    queries to the cheap model with nobody noticing.
    """


@dataclass(frozen=True)
class ModelMetadata:
    """The ``tierguard.*`` metadata of a model, parsed and validated."""

    contract: str
    tiers: tuple[str, ...]
    thresholds: dict[str, float]
    version: str
    training_data_sha256: str
    metrics: dict[str, Any]
    calibration: dict[str, Any] | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Classification:
    """The outcome for one query: the chosen tier and the probability of every tier."""

    tier: str
    probabilities: dict[str, float]


# --- pure parts ---------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Collapse whitespace runs to one space, strip, and cap at :data:`MAX_QUERY_CHARS`."""
    return " ".join(text[: MAX_QUERY_CHARS * 2].split())[:MAX_QUERY_CHARS]


def _loads(key: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ClassifierContractError(
            f"model metadata {key!r} is not valid JSON ({exc.msg} at char {exc.pos}): {raw[:80]!r}"
        ) from None


def _check_threshold(where: str, tier: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClassifierContractError(
            f"{where}: threshold for tier {tier!r} must be a number, got {value!r}"
        )
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ClassifierContractError(
            f"{where}: threshold for tier {tier!r} must be within [0, 1], got {value!r}"
        )
    return v


def parse_metadata(props: Mapping[str, str]) -> ModelMetadata:
    """Validate a model's ``metadata_props`` against the contract.

    Pure (takes the plain key/value map) so that every refusal message is unit-tested
    without building broken ONNX files for each case.
    """
    missing = [k for k in REQUIRED_METADATA if k not in props]
    if missing:
        raise ClassifierContractError(
            "model metadata is missing "
            + ", ".join(repr(k) for k in missing)
            + " (is this a tierguard classifier? train one with `tierguard train`)"
        )
    contract = props[META_CONTRACT]
    if contract != CONTRACT_VERSION:
        raise ClassifierContractError(
            f"model metadata {META_CONTRACT!r} is {contract!r}; this tierguard understands "
            f"contract {CONTRACT_VERSION!r} only"
        )
    tiers_raw = _loads(META_TIERS, props[META_TIERS])
    if (
        not isinstance(tiers_raw, list)
        or len(tiers_raw) < 2
        or not all(isinstance(t, str) and t for t in tiers_raw)
    ):
        raise ClassifierContractError(
            f"model metadata {META_TIERS!r} must be a JSON list of at least two non-empty "
            f"tier names, cheapest first; got {props[META_TIERS]!r}"
        )
    if len(set(tiers_raw)) != len(tiers_raw):
        raise ClassifierContractError(
            f"model metadata {META_TIERS!r} names a tier twice: {props[META_TIERS]!r}"
        )
    tiers = tuple(tiers_raw)
    thresholds_raw = _loads(META_THRESHOLDS, props[META_THRESHOLDS])
    if not isinstance(thresholds_raw, dict):
        raise ClassifierContractError(
            f"model metadata {META_THRESHOLDS!r} must be a JSON object tier -> threshold; "
            f"got {props[META_THRESHOLDS]!r}"
        )
    unknown = sorted(set(thresholds_raw) - set(tiers))
    if unknown:
        raise ClassifierContractError(
            f"model metadata {META_THRESHOLDS!r} names tiers {unknown} that are not in "
            f"{META_TIERS!r} {list(tiers)}"
        )
    absent = [t for t in tiers[:-1] if t not in thresholds_raw]
    if absent:
        raise ClassifierContractError(
            f"model metadata {META_THRESHOLDS!r} has no threshold for tiers {absent} "
            "(every tier but the last, the catch-all, needs one)"
        )
    thresholds = {
        t: _check_threshold(f"model metadata {META_THRESHOLDS!r}", t, thresholds_raw[t])
        for t in tiers[:-1]
    }
    metrics = _loads(META_METRICS, props[META_METRICS])
    if not isinstance(metrics, dict):
        raise ClassifierContractError(
            f"model metadata {META_METRICS!r} must be a JSON object, got {props[META_METRICS]!r}"
        )
    calibration: dict[str, Any] | None = None
    if META_CALIBRATION in props:
        cal = _loads(META_CALIBRATION, props[META_CALIBRATION])
        if not isinstance(cal, dict):
            raise ClassifierContractError(
                f"model metadata {META_CALIBRATION!r} must be a JSON object"
            )
        calibration = cal
    digest = props[META_TRAINING_DATA_SHA256]
    if not digest:
        raise ClassifierContractError(f"model metadata {META_TRAINING_DATA_SHA256!r} is empty")
    known = {*REQUIRED_METADATA, META_CALIBRATION}
    return ModelMetadata(
        contract=contract,
        tiers=tiers,
        thresholds=thresholds,
        version=props[META_VERSION],
        training_data_sha256=digest,
        metrics=metrics,
        calibration=calibration,
        extra={k: v for k, v in props.items() if k not in known},
    )


def resolve_thresholds(
    tiers: Sequence[str],
    defaults: Mapping[str, float],
    override: Mapping[str, float] | None,
) -> dict[str, float]:
    """Merge configured thresholds over the model's defaults.

    A tier named in the override but unknown to the model is an error, not a silent
    no-op: a config written for another model (say ``{"cheap": 0.6}`` against a model
    whose tiers are ``simple``/``complex``) must not quietly route with the defaults.
    The last tier's threshold may be given (configs are often written for all tiers)
    but has no effect and is not returned.
    """
    merged = {t: float(defaults[t]) for t in tiers[:-1]}
    if override:
        unknown = sorted(set(override) - set(tiers))
        if unknown:
            raise ClassifierContractError(
                f"configured thresholds name tiers {unknown} but the model's tiers are "
                f"{list(tiers)}"
            )
        for tier, value in override.items():
            checked = _check_threshold("configured thresholds", tier, value)
            if tier != tiers[-1]:
                merged[tier] = checked
    return merged


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

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Raw tier probabilities, shape ``[len(texts), len(tiers)]``, columns in tier order."""
        if isinstance(texts, str):
            raise TypeError("probabilities() takes a sequence of strings; use classify() for one")
        if len(texts) == 0:
            return np.zeros((0, len(self.tiers)), dtype=np.float32)
        shape = (len(texts),) if self._input_rank == 1 else (len(texts), 1)
        feed = np.array([normalize_text(t) for t in texts], dtype=object).reshape(shape)
        try:
            (out,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: feed})
        except Exception as exc:  # onnxruntime's exception classes are not public API
            raise ClassifierRuntimeError(
                f"classifier failed on {len(texts)} queries: {exc}"
            ) from exc
        return np.asarray(out, dtype=np.float32)

    def _to_classifications(self, probs: npt.NDArray[np.float32]) -> list[Classification]:
        if len(probs) == 1:  # the router's case: plain floats beat numpy's per-call setup
            row = probs[0].tolist()
            first = next(
                (i for i, thr in enumerate(self._threshold_vector) if row[i] >= thr),
                len(self.tiers) - 1,
            )
            probabilities = dict(zip(self.tiers, row, strict=True))
            return [Classification(tier=self.tiers[first], probabilities=probabilities)]
        chosen = assign_tiers(probs, self._threshold_vector)
        return [
            Classification(
                tier=self.tiers[int(idx)],
                probabilities={t: float(p) for t, p in zip(self.tiers, row, strict=True)},
            )
            for idx, row in zip(chosen, probs, strict=True)
        ]

    def classify(self, text: str) -> Classification:
        """Tier and probabilities for one query (the router's hot path)."""
        return self._to_classifications(self.probabilities([text]))[0]

    def classify_batch(self, texts: Sequence[str]) -> list[Classification]:
        """Tiers for many queries in one session run (calibration, the lab, batch APIs)."""
        return self._to_classifications(self.probabilities(texts))

    def assign(self, texts: Sequence[str]) -> list[str]:
        """Just the tier names for ``texts``."""
        return [
            self.tiers[int(i)]
            for i in assign_tiers(self.probabilities(texts), self._threshold_vector)
        ]


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
    if probs.shape != (len(_PROBE_TEXTS), n_tiers):
        raise ClassifierContractError(
            f"model output {OUTPUT_NAME!r} has shape {list(probs.shape)} for a batch of "
            f"{len(_PROBE_TEXTS)}; the contract needs [N, {n_tiers}] (one column per tier "
            f"{list(classifier.tiers)})"
        )
    if (
        not np.all(np.isfinite(probs))
        or np.any(probs < -1e-6)
        or np.any(np.abs(probs.sum(axis=1) - 1.0) > _PROBABILITY_SUM_TOLERANCE)
    ):
        raise ClassifierContractError(
            f"model output {OUTPUT_NAME!r} is not a probability distribution per row "
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
    thresholds = resolve_thresholds(metadata.tiers, metadata.thresholds, thresholds_override)
    digest = hashlib.sha256(source).hexdigest()
    classifier = Classifier(session, metadata, thresholds, input_rank, digest)
    _probe(classifier)
    return classifier
