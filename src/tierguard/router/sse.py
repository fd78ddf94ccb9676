"""Server-sent events from an upstream: decoding them, telling the opening of a stream
from its content, and rewriting chunks on their way to the client. Pure.

Decoding (:class:`SSEDecoder`) follows the WHATWG event-stream format: lines end with
CRLF, LF or CR; the ``data`` fields of one event are joined by LF; a blank line ends the
event; comments (``:``) and other fields are ignored. There is no line-length limit of
its own: one event may be as large as ``server.maxResponseBytes`` (then
:class:`EventTooLargeError`). Two leniencies for real upstreams: a final event not
followed by a blank line still counts, and a ``data`` line that starts a new JSON object
while the pending event already holds one complete object ends that event (servers that
omit the blank line between events).

Rewriting (:class:`ChunkRewriter`): every chunk carries the upstream's completion ``id``
and ``model``; the client must see the router's signed decision id (on EVERY chunk, even
when the upstream changes ids mid-stream) and the model name it asked for. Parsing and
re-serialising every chunk's JSON costs more CPU than everything else the router does
per chunk, so the common chunk is rewritten at the byte level: the upstream id and model
are learned from a parsed chunk; a later chunk whose top-level object starts with its
``"id"`` (OpenAI's order: then any id, even one that changes every chunk) or contains
exactly one ``"id": "<learned id>"`` pair, and exactly one ``"model": "<learned model>"``
pair (and nothing the router must read), gets these two replaced. Inside a JSON string a quote is
escaped, so these byte sequences with bare quotes can only be JSON keys and values; the
only chunk this could misread is one whose top-level id changed while a nested ``id``
key still holds the old one. Any other chunk (a new id, usage, an error, or all of
them when the answer text is collected for shadow evaluation) takes the parse path, as
do chunks carrying tool calls when the router wraps their ids
(:mod:`tierguard.router.toolcalls`). The rewriter also tells whether the stream finished
(``[DONE]``, or a ``finish_reason`` for every choice seen, read from the parsed chunks
and, once at the end, from the last few byte-level ones), so a stream that merely stops
can be told from a complete one.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tierguard.router import jsonlib
from tierguard.router.toolcalls import wrap_choices

DONE = b"[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"

#: fast-path chunks kept to look for the finish_reason at the end of a stream
TAIL = 16
#: a chunk whose top-level object starts with its id (OpenAI's order): ``{"id": "..."``
_LEADING_ID = re.compile(rb'\{\s*"id"\s*:\s*"[^"\\]*(?:\\.[^"\\]*)*"')


class StreamError(Exception):
    """An upstream stream cannot be relayed. ``reason`` is an ``ERROR_REASONS`` label:
    ``stream_error`` for an error event, ``protocol`` for unreadable or oversized data."""

    def __init__(self, message: str, reason: str = "protocol") -> None:
        super().__init__(message)
        self.reason = reason


class EventTooLargeError(StreamError):
    """One event (or line) is over the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"an upstream event is larger than server.maxResponseBytes ({limit} bytes)"
        )
        self.limit = limit


# --------------------------------------------------------------------------- decoding


class SSEDecoder:
    """Incremental event-stream decoder: :meth:`feed` bytes as they arrive, get the data
    of each completed event; :meth:`close` at the end of the body. Line ends are
    normalised to LF as bytes arrive (a CR at the end of one read and an LF at the start
    of the next are one CRLF), so lines are split by one C-level ``split`` per read."""

    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self._buf = bytearray()  # an incomplete last line
        self._skip_lf = False  # the last read ended with CR: a leading LF belongs to it
        self._data: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = chunk[-1:] == b"\r"
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = chunk.rfind(b"\n")
        if end < 0:  # no line end in this read (only the new bytes are searched)
            self._buf += chunk
            if len(self._buf) > self.max_event_bytes:
                raise EventTooLargeError(self.max_event_bytes)
            return []
        if self._buf:
            head = bytes(self._buf) + chunk[:end]
            self._buf.clear()
        else:
            head = chunk[:end]
        self._buf += chunk[end + 1 :]
        out: list[bytes] = []
        for line in head.split(b"\n"):
            self._line(line, out)
        if len(self._buf) > self.max_event_bytes:
            raise EventTooLargeError(self.max_event_bytes)
        return out

    def close(self) -> list[bytes]:
        """The events still pending at the end of the body (lenient: a last line without
        its line end, a last event without its blank line)."""
        out: list[bytes] = []
        if self._buf:
            self._line(bytes(self._buf), out)
            self._buf.clear()
        self._dispatch(out)
        return out

    def _line(self, line: bytes, out: list[bytes]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line.startswith(b"data: "):
            value = line[6:]
        elif line.startswith(b"data:"):
            value = line[5:]
        elif line[:1] == b":" or b":" in line or line != b"data":
            return  # a comment, another field, or a field name alone
        else:
            value = b""
        if (
            self._data
            and len(self._data) == 1
            and value[:1] == b"{"
            and self._data[0][:1] == b"{"
            and self._data[0].rstrip()[-1:] == b"}"
        ):
            self._dispatch(out)  # a server that left out the blank line between events
        self._size += len(value)
        if self._size > self.max_event_bytes:
            raise EventTooLargeError(self.max_event_bytes)
        self._data.append(value)

    def _dispatch(self, out: list[bytes]) -> None:
        if self._data:
            out.append(self._data[0] if len(self._data) == 1 else b"\n".join(self._data))
            self._data = []
            self._size = 0


# --------------------------------------------------------------------------- opening

Opening = Literal["preamble", "content", "done"]


def opening_kind(data: bytes) -> Opening:
    """What an event that arrives before any content is: ``done`` (``[DONE]``),
    ``preamble`` (nothing to show yet: a role-only or empty delta, an empty ``choices``
    list such as Azure's content-filter results) or ``content`` (text, a tool call, a
    refusal, a finish_reason or usage). Raises :class:`StreamError` for an error event
    (reason ``stream_error``) or unreadable data."""
    data = data.strip()
    if data == DONE:
        return "done"
    try:
        chunk = jsonlib.loads(data)
    except ValueError:
        raise StreamError(f"unreadable chunk: {data[:100]!r}") from None
    if not isinstance(chunk, dict):
        raise StreamError(f"a chunk is not a JSON object: {data[:100]!r}")
    if "error" in chunk:
        raise StreamError(_error_message(chunk["error"]), "stream_error")
    if chunk.get("usage"):
        return "content"
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason") is not None:
            return "content"
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(v for k, v in delta.items() if k != "role"):
            return "content"
    return "preamble"


def _error_message(err: Any) -> str:
    message = err.get("message") if isinstance(err, dict) else err
    return f"upstream stream error: {str(message)[:200]}"


# --------------------------------------------------------------------------- rewriting


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
    done: bool = False  # the upstream sent [DONE]
    choices_seen: set[int] = field(default_factory=set)
    choices_finished: set[int] = field(default_factory=set)
    _id: bytes | None = None  # the learned upstream id, as a JSON string token
    _id_to: bytes = b""
    _model: bytes | None = None
    _model_to: bytes = b""
    _sep: bytes = b":"  # the key/value separator the upstream uses
    _lead: bytes = b""  # the last chunk's leading '{"id": "..."' bytes
    _tail: deque[bytes] = field(default_factory=lambda: deque(maxlen=TAIL))

    def finished(self) -> bool:
        """Whether the upstream ended the answer: ``[DONE]``, or a finish_reason for every
        choice seen (an upstream that ignores ``n`` is not penalised). Chunks taken by
        the byte-level path are not parsed as they pass; the last :data:`TAIL` of them
        are read here, once, at the end of a stream without ``[DONE]``."""
        if self.done:
            return True
        for data in self._tail:
            with contextlib.suppress(ValueError):
                chunk = json.loads(data)
                if isinstance(chunk, dict):
                    self._note_choices(chunk)
        self._tail.clear()
        return bool(self.choices_finished) and self.choices_seen <= self.choices_finished

    def rewrite(self, data: bytes) -> bytes | None:
        """The bytes to send for one event's data (``data: ...\\n\\n``), or ``None`` to
        drop it. Raises :class:`StreamError` on an upstream error event."""
        data = data.strip()
        if data == DONE:
            self.done = True
            return DONE_EVENT
        return self._fast(data) or self._parsed(data)

    def _fast(self, data: bytes) -> bytes | None:
        """The byte-level rewrite, or ``None`` when this chunk must be parsed: it holds
        something the router reads, or not exactly one ``"id": <learned id>`` and one
        ``"model": <learned model>`` key-value pair (a changed id, a nested look-alike,
        unusual spacing). Plain substring tests and replacements only: this runs for
        every chunk of every stream."""
        if self.collect:
            return None
        if b'"usage"' in data or b'"error"' in data:
            return None
        if self.wrap_id is not None and b'"tool_calls"' in data:
            return None
        out: bytes | None
        if self._lead and data.startswith(self._lead):  # the same leading id as before
            out = b"{" + self._id_to + data[len(self._lead) :]
        elif (lead := _LEADING_ID.match(data)) is not None:  # the first key: any id
            self._lead = data[: lead.end()]
            out = b"{" + self._id_to + data[lead.end() :]
        elif self._id is not None:
            out = self._replace(data, b'"id"', self._id, self._id_to)
        else:
            return None
        if out is None:
            return None
        if self._model is not None:
            out = self._replace(out, b'"model"', self._model, self._model_to)
            if out is None:
                return None
        elif b'"model"' in data:
            return None
        self._tail.append(data)
        return b"data: " + out + b"\n\n"

    def _replace(self, data: bytes, key: bytes, value: bytes, to: bytes) -> bytes | None:
        """``data`` with its one ``key: value`` pair replaced by ``to``, or ``None`` unless
        exactly one such pair is there (a quote inside a JSON string is escaped, so the
        pair can only be a key and its value). The separator an upstream uses (``:`` or
        ``: ``) is remembered, so the common chunk costs one count and one replace."""
        first = self._sep
        for sep in (first, b": " if first == b":" else b":"):
            pair = key + sep + value
            n = data.count(pair)
            if n == 1:
                self._sep = sep
                return data.replace(pair, to, 1)
            if n > 1:
                return None
        return None

    def _parsed(self, data: bytes) -> bytes | None:
        try:
            chunk = jsonlib.loads(data)
        except ValueError:
            raise StreamError(f"unreadable chunk: {data[:100]!r}") from None
        if not isinstance(chunk, dict):
            return b"data: " + data + b"\n\n"
        if "error" in chunk:
            raise StreamError(_error_message(chunk["error"]), "stream_error")
        self._learn(chunk)
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
        self._note_choices(chunk)
        if self.collect:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and choice.get("index", 0) == 0:
                    content = delta.get("content")
                    self.parts += [content] if isinstance(content, str) else []
        return b"data: " + jsonlib.dumps(chunk) + b"\n\n"

    def _note_choices(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            index = index if isinstance(index, int) else 0
            self.choices_seen.add(index)
            if choice.get("finish_reason") is not None:
                self.choices_finished.add(index)

    def _learn(self, chunk: dict[str, Any]) -> None:
        """Remember this chunk's upstream id and model (as JSON tokens) for the
        byte-level path (an upstream that changes ids mid-stream is learned again)."""
        upstream_id, model = chunk.get("id"), chunk.get("model")
        self._id = json.dumps(upstream_id).encode() if isinstance(upstream_id, str) else None
        self._id_to = b'"id":' + json.dumps(self.decision_id).encode()
        self._model = json.dumps(model).encode() if isinstance(model, str) else None
        self._model_to = b'"model":' + json.dumps(self.model).encode()

    @property
    def text(self) -> str:
        return "".join(self.parts)
