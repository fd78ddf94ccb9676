"""The tier classifier's model contract: names, metadata parsing, errors. Pure.

Split out of :mod:`tierguard.classifier.runtime` (which re-exports every name here), so
the contract -- what an ONNX model must declare to be a tierguard classifier -- reads in
one place and is unit-tested without onnxruntime. The contract itself is described in
the runtime's module docstring and in docs/classifier.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
#: Optional category head: a second output of the same graph (one ``session.run`` scores
#: both) and the JSON list of its labels, column ``i`` = ``categories[i]``.
CATEGORY_OUTPUT_NAME = "categories"
META_CATEGORIES = "tierguard.categories"
#: Labels a category head may declare: they become slice values (``analysis.slices`` with
#: ``source: Classifier``), so they follow the slice value pattern and stay few.
MAX_CATEGORIES = 32
CATEGORY_PATTERN = r"^[a-z0-9]([-_.a-z0-9]{0,61}[a-z0-9])?$"

REQUIRED_METADATA: tuple[str, ...] = (
    META_CONTRACT,
    META_TIERS,
    META_THRESHOLDS,
    META_VERSION,
    META_TRAINING_DATA_SHA256,
    META_METRICS,
)


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
    #: labels of the category head, in column order (empty: the model has no such head)
    categories: tuple[str, ...] = ()


# --- pure parts ---------------------------------------------------------------------------


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


def _parse_categories(raw: str | None) -> tuple[str, ...]:
    """The category head's labels (``()`` when the model declares none)."""
    if raw is None:
        return ()
    labels = _loads(META_CATEGORIES, raw)
    pattern = re.compile(CATEGORY_PATTERN)
    if (
        not isinstance(labels, list)
        or not 2 <= len(labels) <= MAX_CATEGORIES
        or not all(isinstance(c, str) and pattern.match(c) for c in labels)
    ):
        raise ClassifierContractError(
            f"model metadata {META_CATEGORIES!r} must be a JSON list of 2 to {MAX_CATEGORIES} "
            f"category labels (lower case, like slice values: {CATEGORY_PATTERN}); "
            f"got {raw[:120]!r}"
        )
    if len(set(labels)) != len(labels):
        raise ClassifierContractError(f"model metadata {META_CATEGORIES!r} names a label twice")
    if "other" in labels:
        raise ClassifierContractError(
            f"model metadata {META_CATEGORIES!r}: 'other' is reserved (slices count every "
            "undeclared value as other)"
        )
    return tuple(labels)


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
    categories = _parse_categories(props.get(META_CATEGORIES))
    known = {*REQUIRED_METADATA, META_CALIBRATION, META_CATEGORIES}
    return ModelMetadata(
        contract=contract,
        tiers=tiers,
        thresholds=thresholds,
        version=props[META_VERSION],
        training_data_sha256=digest,
        metrics=metrics,
        calibration=calibration,
        categories=categories,
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
