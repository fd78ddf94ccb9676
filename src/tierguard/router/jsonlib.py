"""The router's JSON on the hot path: orjson when it gives the same answer as the
standard library, the standard library otherwise.

``loads`` tries orjson (UTF-8 only, 64-bit integers) and falls back to :func:`json.loads`
whenever orjson refuses the text (a lone surrogate escape, ``NaN``, UTF-16, nesting past
orjson's limit), so what the router accepts and the errors it reports do not change; a
body holding an integer of 19 digits or more goes to :func:`json.loads` directly, because
orjson would silently read it as a float. ``dumps`` returns compact UTF-8 bytes (no
``\\uXXXX`` escapes for non-ASCII text: the same JSON value, fewer bytes) and falls back
to ``json.dumps(..., separators=(",", ":"))`` for what orjson refuses (integers past 64
bits, lone surrogates; ASCII with ``\\uXXXX`` escapes, as before). One difference
remains: a ``NaN`` or ``Infinity`` that an upstream sent (not JSON, read by the
fallback) is written back as ``null``.

Without orjson installed (it is a dependency of the router extra) both are the standard
library's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_LONG_INT = re.compile(r"\d{19}")
#: every ASCII digit to "0", every other byte to " ": a run of 19 digits becomes a run of
#: 19 "0"s, found by a plain substring search (an order of magnitude cheaper than a regex)
_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_RUN = b"0" * 19

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a router dependency
    orjson = None  # type: ignore[assignment]


def _std_dumps(obj: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=default).encode()


def loads(raw: bytes | str) -> Any:
    """Parse JSON like :func:`json.loads` (same values, same errors)."""
    if orjson is None:
        return json.loads(raw)
    if isinstance(raw, bytes | bytearray | memoryview):
        if isinstance(raw, memoryview):
            raw = raw.tobytes()
        if _LONG_RUN in raw.translate(_DIGITS):
            return json.loads(raw)
    elif isinstance(raw, str) and _LONG_INT.search(raw):
        return json.loads(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dumps(obj: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    if orjson is None:
        return _std_dumps(obj, default)
    try:
        return orjson.dumps(obj, default=default)
    except TypeError:  # orjson.JSONEncodeError: big integers, surrogates, odd key types
        return _std_dumps(obj, default)


def dumps_str(obj: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Compact JSON as text (for line-oriented writers)."""
    return dumps(obj, default).decode()
