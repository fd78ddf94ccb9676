"""The decision log: one JSON line per request (and per feedback), for audits and joins.

Fields: ts, request_id, user_hash (salted sha256, never the user id), policy, revision,
tier, probabilities, tier_source (``classifier``, ``no_text``, ``classifier_error`` or
``pinned``), bucket, arm, stream, model, outcome, status, latency_s, chain (each
attempt and its result), escalations, hedged, and for an answered request decision_id,
ttft_s, tokens (prompt, completion, cached), cost_usd (and error when a stream ended
early); for routed requests key_source, and when they apply stateful, locked_to,
tier_fallback_from and context_escalation (see :class:`DecisionRecord`). Prompt text only when
``observability.logPrompts`` is on; never secrets. Lines are buffered and flushed every
second so the hot path does no blocking write per request.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, fields
from typing import IO, Any, ClassVar

from tierguard.router import jsonlib


def hash_user(salt: str, user: str | None) -> str | None:
    if not user:
        return None
    return hashlib.sha256(f"user:{salt}:{user}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class DecisionRecord:
    """One request's line of the decision log; unset optional fields are left out (a
    request no model answered has no decision id, tokens or cost)."""

    ts: float
    request_id: str
    user_hash: str | None
    policy: str
    revision: str
    tier: str
    probabilities: dict[str, float] | None
    tier_source: str
    bucket: int | None
    arm: str
    stream: bool
    model: str | None
    outcome: str
    status: int
    latency_s: float
    chain: list[str]
    escalations: list[str]
    hedged: bool = False
    decision_id: str | None = None
    ttft_s: float | None = None
    tokens: dict[str, int] | None = None
    cost_usd: float | None = None
    error: str | None = None
    prompt: str | None = None
    #: conversation fields (router/turnmetrics.py): where the stickiness key came from
    #: (never the key), whether the turn had no new user text and which model its tool
    #: call locked it to, the planned tier when a fallback served it from another tier,
    #: a context-window escalation (from->to), cached prompt tokens
    key_source: str | None = None
    stateful: bool | None = None
    locked_to: str | None = None
    tier_fallback_from: str | None = None
    context_escalation: str | None = None
    #: the request's slice values (analysis.slices), {slice: value}; left out when none
    slices: dict[str, str] | None = None

    _OPTIONAL: ClassVar[tuple[str, ...]] = (
        "decision_id",
        "ttft_s",
        "tokens",
        "cost_usd",
        "error",
        "prompt",
        "key_source",
        "stateful",
        "locked_to",
        "tier_fallback_from",
        "context_escalation",
        "slices",
    )

    def to_json(self) -> dict[str, Any]:
        """The line's fields (a shallow copy: ``dataclasses.asdict`` deep-copies every
        list and dict, which cost more than writing the line)."""
        out = {name: getattr(self, name) for name in _FIELDS}
        for key in self._OPTIONAL:
            if out[key] is None:
                del out[key]
        return out


_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(DecisionRecord))


#: the size up to which a write to a pipe is atomic (POSIX: at least 512; Linux: 4096)
PIPE_BUF = 4096


def pipe_batches(lines: list[str], limit: int = PIPE_BUF) -> list[str]:
    """``lines`` joined into newline-terminated batches of at most ``limit`` bytes (a
    longer line is a batch of its own)."""
    batches: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        n = len(line.encode()) + 1
        if current and size + n > limit:
            batches.append("\n".join(current) + "\n")
            current, size = [], 0
        current.append(line)
        size += n
    if current:
        batches.append("\n".join(current) + "\n")
    return batches


class DecisionLog:
    """Writes to ``path`` ('-' = stdout); ``None`` disables it."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._out: IO[str] | None
        if path is None:
            self._out = None
        elif path == "-":
            self._out = sys.stdout
        else:
            self._out = open(path, "a", buffering=1 << 16, encoding="utf-8")  # noqa: SIM115
        self._buf: list[str] = []

    @property
    def enabled(self) -> bool:
        return self._out is not None

    def write(self, record: dict[str, Any]) -> None:
        if self._out is not None:
            self._buf.append(jsonlib.dumps_str(record, default=str))
            if len(self._buf) >= 512:
                self.flush()

    def flush(self) -> None:
        if self._out is None or not self._buf:
            return
        lines, self._buf = self._buf, []
        try:
            if self._out is sys.stdout:
                # a pipe (the container log) shared with the other workers: only writes
                # of up to PIPE_BUF bytes are atomic, so whole lines go in batches of that
                for batch in pipe_batches(lines):
                    self._out.write(batch)
                    self._out.flush()
            else:  # a file opened O_APPEND: one write per flush lands whole
                self._out.write("\n".join(lines) + "\n")
                self._out.flush()
        except (OSError, ValueError):  # a full disk or a closed stdout must not kill routing
            pass

    def close(self) -> None:
        self.flush()
        if self._out is not None and self._out is not sys.stdout:
            self._out.close()
        self._out = None
