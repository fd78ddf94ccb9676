"""Rewriting an upstream's SSE chunks on their way to the client. Pure.

Every chunk carries the upstream's completion ``id`` and ``model``; the client must see
the router's signed decision id and the model name it asked for. Parsing and
re-serialising every chunk's JSON costs more CPU than everything else the router does per
chunk, so the common chunk is rewritten at the byte level: the upstream id and model are
learned from the first chunk (parsed once), and later chunks get the same two literal
replacements. This is exact, not heuristic: inside a JSON string a quote is escaped, so
the byte sequences ``"<id>"`` and ``"model":"<name>"`` with bare quotes can only be the
JSON tokens themselves. Chunks that must be read (usage, errors, or all of them when the
answer text is collected for shadow evaluation, and chunks carrying tool calls, whose ids
the router wraps) take the parse path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tierguard.router.toolcalls import wrap_choices


class StreamError(Exception):
    """The upstream sent an error event (or unreadable JSON) in the middle of a stream."""


@dataclass
class ChunkRewriter:
    decision_id: str
    model: str
    include_usage: bool  # the client asked for the usage chunk
    collect: bool  # keep the answer text (shadow evaluation, prompt logging)
    #: rewrites an upstream tool-call id for the client (see router/toolcalls.py)
    wrap_id: Callable[[str], str] | None = None
    usage: dict[str, Any] | None = None
    parts: list[str] = field(default_factory=list)
    _id_from: bytes | None = None
    _id_to: bytes = b""
    _model_re: re.Pattern[bytes] | None = None
    _model_to: bytes = b""

    def rewrite(self, line: bytes) -> bytes | None:
        """The bytes to send for one ``data:`` line (``data: ...\\n\\n``), or ``None`` to
        drop it. Raises :class:`StreamError` on an upstream error event."""
        data = line[5:].strip()
        if data == b"[DONE]":
            return b"data: [DONE]\n\n"
        if (
            self._id_from is not None
            and not self.collect
            and b'"usage"' not in data
            and b'"error"' not in data
            and (self.wrap_id is None or b'"tool_calls"' not in data)
        ):
            out = data.replace(self._id_from, self._id_to, 1)
            if self._model_re is not None:
                out = self._model_re.sub(self._model_to, out, count=1)
            return b"data: " + out + b"\n\n"
        return self._parsed(data)

    def _parsed(self, data: bytes) -> bytes | None:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise StreamError(f"unreadable chunk: {data[:100]!r}") from None
        if not isinstance(chunk, dict):
            return b"data: " + data + b"\n\n"
        if "error" in chunk:
            raise StreamError(f"upstream stream error: {str(chunk['error'])[:200]}")
        if self._id_from is None and isinstance(chunk.get("id"), str):
            self._id_from = json.dumps(chunk["id"]).encode()
            self._id_to = json.dumps(self.decision_id).encode()
            if isinstance(chunk.get("model"), str):
                self._model_re = re.compile(
                    rb'"model"\s*:\s*' + re.escape(json.dumps(chunk["model"]).encode())
                )
                self._model_to = b'"model":' + json.dumps(self.model).encode()
        chunk["id"] = self.decision_id
        if "model" in chunk:
            chunk["model"] = self.model
        if self.wrap_id is not None:
            wrap_choices(chunk, "delta", self.wrap_id)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
            if not self.include_usage:
                if not chunk.get("choices"):
                    return None  # the usage-only chunk the router asked for itself
                chunk.pop("usage")
        if self.collect:
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") or {}
                if choice.get("index", 0) == 0 and isinstance(delta.get("content"), str):
                    self.parts.append(delta["content"])
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    @property
    def text(self) -> str:
        return "".join(self.parts)
