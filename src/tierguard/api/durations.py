"""Go-style durations ("90s", "5m", "1h30m"), the format Kubernetes users already write.

Kept as strings in the models so that ``kubectl get -o yaml`` shows what the user wrote;
the CRD validates the same pattern, and :func:`parse_duration` turns them into seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator, Field

DURATION_PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class InvalidDurationError(ValueError):
    """A duration string does not follow the Go format (e.g. ``30s``, ``5m``, ``1h30m``)."""


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration string."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise InvalidDurationError(
            f"invalid duration {text!r}: use a number and a unit (ms, s, m, h), e.g. '30s', "
            "'5m' or '1h30m'"
        )
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """The shortest Go-style string for a whole number of seconds (sub-second: ms)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"


def _check(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=32, json_schema_extra={"format": "duration"}),
    AfterValidator(_check),
]
