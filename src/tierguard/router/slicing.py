"""Slice labels of a request (``analysis.slices``): pure.

Each declared slice reads one attribute of the request -- the OpenAI chat ``metadata``
field's ``<key>`` or the request header ``<key>`` -- and maps it onto the slice's
declared values; anything else (missing, not a string, not declared) is ``other``. So a
request always has exactly one value per slice and the slice counters' cardinality is
bounded by the policy (``MAX_SLICES`` slices of at most ``MAX_SLICE_VALUES`` + 1 values).

The classifier has no category head today (it emits the tier only), so a classifier
label is not a slice source yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tierguard.api.policy import SLICE_OTHER, SliceSpec

#: ((slice name, value), ...) in the policy's slice order.
SliceLabels = tuple[tuple[str, str], ...]


def _header(headers: Mapping[str, str], key: str) -> str | None:
    value = headers.get(key)
    if value is not None:
        return value
    lowered = key.lower()
    for name, v in headers.items():  # a plain dict is not case-insensitive
        if name.lower() == lowered:
            return v
    return None


def slice_labels(
    slices: Sequence[SliceSpec], body: Mapping[str, Any], headers: Mapping[str, str] | None
) -> SliceLabels:
    """The request's value for every declared slice (``other`` when outside the list)."""
    if not slices:
        return ()
    metadata = body.get("metadata")
    meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
    out: list[tuple[str, str]] = []
    for s in slices:
        raw = meta.get(s.key) if s.source == "Metadata" else _header(headers or {}, s.key)
        out.append((s.name, s.label(raw)))
    return tuple(out)


def known_labels(slices: Sequence[SliceSpec], carried: SliceLabels) -> SliceLabels:
    """Slice labels carried in a decision id, checked against the slices declared now: a
    slice no longer declared is dropped, a value no longer declared is ``other`` (so a
    signed id from an older config cannot add label values)."""
    by_name = {s.name: s for s in slices}
    out: list[tuple[str, str]] = []
    for name, value in carried:
        spec = by_name.get(name)
        if spec is not None:
            out.append((name, value if value in spec.values else SLICE_OTHER))
    return tuple(out)
