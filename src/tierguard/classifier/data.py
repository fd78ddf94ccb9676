"""Reading labelled query files (JSON lines) with errors that name the line.

Format, one JSON object per line::

    {"text": "where is my order #1234?", "tier": "simple", "category": "order_tracking"}

``text`` (non-empty string) and ``tier`` (one of the model's tiers) are required;
``category`` (string), ``hard`` (bool) and ``quality`` (number in [0, 1], e.g. whether the
cheap model's answer was judged equivalent) are optional; other keys are ignored so a
raw export from a logging pipeline can be used as is. Blank lines are skipped.

Why strict: a model trained on a file where half the lines silently failed to parse,
or where "Complex" and "complex" were two tiers, would look fine in aggregate and
misroute a whole slice, the seed 003 failure in miniature. So every problem stops
training with the file, the line number and what to fix.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DataError", "LabelledQuery", "LabelledSet", "load_jsonl", "parse_jsonl"]


class DataError(ValueError):
    """The training or calibration data is unusable; the message names file and line."""


@dataclass(frozen=True)
class LabelledQuery:
    """One line of a labelled query file."""

    text: str
    tier: str
    category: str | None = None
    hard: bool = False
    quality: float | None = None
    line: int = 0


@dataclass(frozen=True)
class LabelledSet:
    """A parsed file and the SHA-256 of its bytes (recorded in model metadata)."""

    queries: tuple[LabelledQuery, ...]
    sha256: str
    source: str

    @property
    def texts(self) -> list[str]:
        return [q.text for q in self.queries]

    @property
    def tiers(self) -> list[str]:
        return [q.tier for q in self.queries]

    @property
    def categories(self) -> list[str | None] | None:
        """Per-query categories, or None when no line has one."""
        if all(q.category is None for q in self.queries):
            return None
        return [q.category for q in self.queries]

    @property
    def hard(self) -> list[bool]:
        return [q.hard for q in self.queries]

    @property
    def quality(self) -> list[float | None] | None:
        """Per-query quality labels, or None when no line has one."""
        if all(q.quality is None for q in self.queries):
            return None
        return [q.quality for q in self.queries]


def _parse_line(raw: str, lineno: int, where: str, tiers: Sequence[str]) -> LabelledQuery:
    try:
        obj: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{where}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno}): {raw[:80]!r}"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(
            f"{where}:{lineno}: expected a JSON object with 'text' and 'tier', "
            f"got {type(obj).__name__}"
        )
    for key in ("text", "tier"):
        if key not in obj:
            raise DataError(f"{where}:{lineno}: missing field {key!r} (have: {sorted(obj)})")
    text, tier = obj["text"], obj["tier"]
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}:{lineno}: field 'text' must be a non-empty string")
    if not isinstance(tier, str) or tier not in tiers:
        raise DataError(
            f"{where}:{lineno}: unknown tier {tier!r}; expected one of {list(tiers)} "
            "(tier names are case-sensitive; pass --tiers to train other tiers)"
        )
    category = obj.get("category")
    if category is not None and not isinstance(category, str):
        raise DataError(f"{where}:{lineno}: field 'category' must be a string")
    hard = obj.get("hard", False)
    if not isinstance(hard, bool):
        raise DataError(f"{where}:{lineno}: field 'hard' must be true or false")
    quality = obj.get("quality")
    if quality is not None:
        if isinstance(quality, bool):
            quality = 1.0 if quality else 0.0
        if not isinstance(quality, int | float) or not (
            math.isfinite(quality) and 0.0 <= quality <= 1.0
        ):
            raise DataError(f"{where}:{lineno}: field 'quality' must be a number in [0, 1]")
        quality = float(quality)
    return LabelledQuery(text, tier, category, hard, quality, lineno)


def parse_jsonl(
    content: bytes,
    tiers: Sequence[str],
    where: str = "<data>",
    *,
    require_all_tiers: bool = True,
) -> LabelledSet:
    """Parse and validate labelled JSON lines (pure: bytes in, queries out).

    ``require_all_tiers`` is on for training (a classifier cannot learn a tier it never
    sees) and may be off for calibration data of a narrow slice.
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = content[: exc.start].count(b"\n") + 1
        raise DataError(f"{where}:{lineno}: not valid UTF-8 ({exc.reason})") from None
    queries = [
        _parse_line(raw, i, where, tiers)
        for i, raw in enumerate(text.splitlines(), start=1)
        if raw.strip()
    ]
    if not queries:
        raise DataError(
            f"{where}: no examples (the file is empty or has only blank lines); expected JSON "
            'lines like {"text": "where is my order?", "tier": "simple"}'
        )
    counts = Counter(q.tier for q in queries)
    missing = [t for t in tiers if counts[t] == 0]
    if require_all_tiers and missing:
        first_line = {q.tier: q.line for q in reversed(queries)}
        present = ", ".join(f"{t!r} ({counts[t]}, first at line {first_line[t]})" for t in counts)
        raise DataError(
            f"{where}: every tier needs examples but tiers {missing} have none; "
            f"the file has only {present}"
        )
    digest = hashlib.sha256(content).hexdigest()
    return LabelledSet(tuple(queries), digest, where)


def load_jsonl(
    path: str | Path, tiers: Sequence[str], *, require_all_tiers: bool = True
) -> LabelledSet:
    """Read and validate a labelled JSON-lines file (see :func:`parse_jsonl`)."""
    p = Path(path)
    try:
        content = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror})") from None
    return parse_jsonl(content, tiers, str(p), require_all_tiers=require_all_tiers)
