"""The classifier's content digest: one short string for *what decides tiers*.

Shared by the operator (which computes it from the referenced ConfigMap and the policy)
and the router (which computes it from the bytes it loaded and its config, and exports it
as ``tierguard_classifier_info{digest}``), so the two agree exactly when the routers run
what the operator rolled out.

The digest covers the model bytes (the ONNX file holds the label map and the default
thresholds in its metadata) and every setting that changes a tier decision: the tiers
with their threshold overrides, the input mode, the input length cap, session tiering and
its window, the tier for requests without text. It leaves out the reference (ConfigMap
name and key: the same bytes under a new name are the same classifier) and ``cacheSize``
(it only saves work). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

#: Hex characters kept of the sha256 (64 bits: collisions are not a concern here).
DIGEST_LENGTH = 16


class _Tier(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def threshold(self) -> float | None: ...


class ClassifierSettings(Protocol):
    """The tier-deciding fields; both the policy's ``ClassifierSpec`` and the router's
    ``ClassifierConfig`` have them under these names."""

    @property
    def input(self) -> str: ...
    @property
    def max_input_chars(self) -> int: ...
    @property
    def tiering(self) -> Any: ...
    @property
    def session_messages(self) -> int: ...
    @property
    def tiers(self) -> Sequence[_Tier]: ...
    @property
    def no_text_tier(self) -> str | None: ...


def model_sha256(model: bytes) -> str:
    """Full sha256 hex of the model file's bytes."""
    return hashlib.sha256(model).hexdigest()


def digest_material(model_sha: str, settings: ClassifierSettings) -> dict[str, Any]:
    """The canonical document :func:`classifier_digest` hashes."""
    return {
        "model": model_sha,
        "input": settings.input,
        "maxInputChars": settings.max_input_chars,
        "tiering": str(getattr(settings.tiering, "value", settings.tiering)),
        "sessionMessages": settings.session_messages,
        "tiers": [[t.name, t.threshold] for t in settings.tiers],
        "noTextTier": settings.no_text_tier,
    }


def classifier_digest(model_sha: str, settings: ClassifierSettings) -> str:
    """Short, stable digest of the model (by its sha256) and the tier-deciding settings."""
    canonical = json.dumps(
        digest_material(model_sha, settings), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_LENGTH]


class ModelKeyError(ValueError):
    """The ConfigMap does not hold a usable model under the key (the message says why)."""


def configmap_model(configmap: Mapping[str, Any], key: str) -> tuple[str, str, bytes]:
    """``(field, raw value, bytes)`` of ``key`` in a ConfigMap as the API returns it
    (``binaryData`` values are base64; ``data`` values are text, mounted as UTF-8):
    exactly the bytes a pod mounting it reads. Raises :class:`ModelKeyError`."""
    binary = configmap.get("binaryData") or {}
    data = configmap.get("data") or {}
    if key in binary:
        raw = str(binary[key])
        try:
            return "binaryData", raw, base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ModelKeyError(f"binaryData[{key!r}] is not valid base64: {exc}") from exc
    if key in data:
        raw = str(data[key])
        return "data", raw, raw.encode()
    keys = sorted([*binary, *data])
    raise ModelKeyError(f"no key {key!r} in binaryData or data (keys: {keys})")
