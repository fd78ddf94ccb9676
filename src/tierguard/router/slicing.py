"""Slice labels of a request (``analysis.slices``): pure.

Each declared slice reads one attribute of the request -- the OpenAI chat ``metadata``
field's ``<key>``, the request header ``<key>``, or (``source: Classifier``) the category
label the classifier's category head gave the message that decided the tier -- and maps
it onto the slice's declared values; anything else (missing, not a string, not declared)
is ``other``. So a request always has exactly one value per slice and the slice counters'
cardinality is bounded by the policy (``MAX_SLICES`` slices of at most
``MAX_SLICE_VALUES`` + 1 values), whatever labels a model emits.

A classifier label is ``other`` when nothing was classified for the turn (a tool-call
continuation locked to its issuing route, no user text, a classifier error) or the model
has no category head: :func:`classifier_slice_problems` names those configurations so
the router can say so at load time.
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
    slices: Sequence[SliceSpec],
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None,
    category: str | None = None,
) -> SliceLabels:
    """The request's value for every declared slice (``other`` when outside the list).
    ``category`` is the classifier's category label for the turn (None: none)."""
    if not slices:
        return ()
    metadata = body.get("metadata")
    meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
    out: list[tuple[str, str]] = []
    for s in slices:
        raw: object
        if s.source == "Classifier":
            raw = category
        elif s.key is None:  # refused by the model's validation; kept total for mypy
            raw = None
        elif s.source == "Metadata":
            raw = meta.get(s.key)
        else:
            raw = _header(headers or {}, s.key)
        out.append((s.name, s.label(raw)))
    return tuple(out)


def classifier_slice_problems(slices: Sequence[SliceSpec], categories: Sequence[str]) -> list[str]:
    """Why a ``source: Classifier`` slice would count (some of) its values as ``other``
    with this model: no category head, or declared values the head never emits."""
    out: list[str] = []
    for s in slices:
        if s.source != "Classifier":
            continue
        if not categories:
            out.append(
                f"slice {s.name}: source Classifier but the classifier has no category head; "
                "every request counts as other"
            )
            continue
        unknown = [v for v in s.values if v not in categories]
        if unknown:
            out.append(
                f"slice {s.name}: values {unknown} are not labels of the classifier's "
                f"category head {list(categories)}; they will stay empty"
            )
    return out


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
