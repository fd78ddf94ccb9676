"""The decision log: one JSON line per request (and per feedback), for audits and joins.

Fields: ts, request_id, user_hash (salted sha256, never the user id), policy, revision,
tier, probabilities, bucket, arm, chain (each attempt and its result), model, outcome,
status, latency_s, ttft_s, tokens, cost_usd, stream. Prompt text only when
``observability.logPrompts`` is on; never secrets. Lines are buffered and flushed every
second so the hot path does no blocking write per request.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import IO, Any


def hash_user(salt: str, user: str | None) -> str | None:
    if not user:
        return None
    return hashlib.sha256(f"user:{salt}:{user}".encode()).hexdigest()[:16]


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
            self._buf.append(json.dumps(record, separators=(",", ":"), default=str))
            if len(self._buf) >= 512:
                self.flush()

    def flush(self) -> None:
        if self._out is None or not self._buf:
            return
        lines, self._buf = self._buf, []
        try:
            self._out.write("\n".join(lines) + "\n")
            self._out.flush()
        except (OSError, ValueError):  # a full disk or a closed stdout must not kill routing
            pass

    def close(self) -> None:
        self.flush()
        if self._out is not None and self._out is not sys.stdout:
            self._out.close()
        self._out = None
