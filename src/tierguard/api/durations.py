"""Go-style durations ("90s", "5m", "1h30m"), the format Kubernetes users already write.

Kept as strings in the models so that ``kubectl get -o yaml`` shows what the user wrote;
the CRD validates the same pattern, and :func:`parse_duration` turns them into seconds.

A field that needs a floor (an evaluation interval of ``0s`` would make the operator spin)
is annotated ``Annotated[Duration, AtLeast("5s")]``: that one definition becomes both the
CRD's CEL rule (``duration(self) >= duration('5s')``, refused by the API server at apply
time) and the pydantic check (for input that reaches the operator or a test by another
path), with the same message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

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


#: The longest duration Go (and so the API server's CEL ``duration()``) can represent.
MAX_DURATION_SECONDS: Final = (2**63 - 1) / 1e9


def _check(text: str) -> str:
    if parse_duration(text) > MAX_DURATION_SECONDS:
        raise ValueError(f"{text!r} is too long: at most 2562047h (about 292 years)")
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=32, json_schema_extra={"format": "duration"}),
    AfterValidator(_check),
]


@dataclass(frozen=True)
class AtLeast:
    """Annotation for a :data:`Duration` that may not be shorter than ``minimum``.

    Generates the CEL rule for the CRD and the pydantic check from one definition."""

    minimum: str

    def __post_init__(self) -> None:
        parse_duration(self.minimum)  # a typo in the floor fails at import time

    @property
    def message(self) -> str:
        return f"must be at least {self.minimum}"

    @property
    def cel(self) -> dict[str, str]:
        return {"rule": f"duration(self) >= duration('{self.minimum}')", "message": self.message}

    def check(self, text: str) -> str:
        if parse_duration(text) < parse_duration(self.minimum):
            raise ValueError(f"{text!r} is too short: {self.message}")
        return text

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        out.setdefault("x-kubernetes-validations", []).append(self.cel)
        return out
