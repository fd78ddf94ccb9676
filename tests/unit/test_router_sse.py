"""SSE chunk rewriting: the byte-level fast path must equal the parse path."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierguard.router.sse import (
    ChunkRewriter,
    EventTooLargeError,
    SSEDecoder,
    StreamError,
    opening_kind,
)


def line(obj: Any, spaced: bool = False) -> bytes:
    """One event's data (what the decoder hands the rewriter)."""
    sep = (", ", ": ") if spaced else (",", ":")
    return json.dumps(obj, separators=sep).encode()


def chunk(content: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "up-123",
        "object": "chat.completion.chunk",
        "model": "small-1",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
        **extra,
    }


def decode(out: bytes | None) -> Any:
    assert out is not None and out.startswith(b"data: ") and out.endswith(b"\n\n")
    return json.loads(out[6:])


@given(st.lists(st.text(), min_size=1, max_size=5), st.booleans())
def test_fast_path_equals_parse_path(contents: list[str], spaced: bool) -> None:
    fast = ChunkRewriter("chatcmpl-ours", "auto", include_usage=False, collect=False)
    slow = ChunkRewriter("chatcmpl-ours", "auto", include_usage=False, collect=True)
    for c in contents:
        a, b = (
            decode(fast.rewrite(line(chunk(c), spaced))),
            decode(slow.rewrite(line(chunk(c), spaced))),
        )
        assert a == b
        assert (a["id"], a["model"]) == ("chatcmpl-ours", "auto")
    assert slow.text == "".join(contents)


def test_tool_call_ids_and_lookalike_content_untouched() -> None:
    rw = ChunkRewriter("chatcmpl-ours", "auto", include_usage=False, collect=False)
    rw.rewrite(line(chunk("")))
    tricky = chunk('say "up-123" and "model":"small-1"')
    tricky["choices"][0]["delta"]["tool_calls"] = [{"id": "call_1", "index": 0}]
    out = decode(rw.rewrite(line(tricky)))
    assert out["choices"][0]["delta"]["content"] == 'say "up-123" and "model":"small-1"'
    assert out["choices"][0]["delta"]["tool_calls"][0]["id"] == "call_1"
    assert (out["id"], out["model"]) == ("chatcmpl-ours", "auto")


def test_usage_chunk_kept_or_dropped() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 5}
    usage_line = line({"id": "up-123", "model": "small-1", "choices": [], "usage": usage})
    dropped = ChunkRewriter("x", "auto", include_usage=False, collect=False)
    assert dropped.rewrite(usage_line) is None and dropped.usage == usage
    kept = ChunkRewriter("x", "auto", include_usage=True, collect=False)
    assert decode(kept.rewrite(usage_line))["usage"] == usage
    assert kept.rewrite(b"[DONE]") == b"data: [DONE]\n\n"


@pytest.mark.parametrize("bad", [b'{"error": {"message": "boom"}}', b"{nope"])
def test_errors_raise(bad: bytes) -> None:
    with pytest.raises(StreamError):
        ChunkRewriter("x", "auto", include_usage=False, collect=False).rewrite(bad)


def test_error_event_reason() -> None:
    with pytest.raises(StreamError) as info:
        ChunkRewriter("x", "auto", False, False).rewrite(b'{"error": {"message": "boom"}}')
    assert info.value.reason == "stream_error" and "boom" in str(info.value)


# --------------------------------------------------------------------------- ids


@given(
    st.lists(st.tuples(st.text(max_size=8), st.text(min_size=1, max_size=6)), max_size=6),
    st.booleans(),
    st.booleans(),
)
def test_every_chunk_gets_our_id_whatever_the_upstream_ids(
    items: list[tuple[str, str]], spaced: bool, collect: bool
) -> None:
    rw = ChunkRewriter("chatcmpl-ours", "auto", include_usage=False, collect=collect)
    for content, upstream_id in items:
        out = decode(rw.rewrite(line({**chunk(content), "id": upstream_id}, spaced)))
        assert (out["id"], out["model"]) == ("chatcmpl-ours", "auto")
        assert out["choices"][0]["delta"]["content"] == content


def test_model_change_mid_stream_is_rewritten() -> None:
    rw = ChunkRewriter("ours", "auto", include_usage=False, collect=False)
    rw.rewrite(line(chunk("a")))
    assert decode(rw.rewrite(line({**chunk("b"), "model": "other-2"})))["model"] == "auto"
    no_model = chunk("c")
    del no_model["model"]
    assert "model" not in decode(rw.rewrite(line(no_model)))


# --------------------------------------------------------------------------- finishing


def finish(index: int = 0, reason: str | None = "stop") -> dict[str, Any]:
    return {
        "id": "up-123",
        "model": "small-1",
        "choices": [{"index": index, "delta": {}, "finish_reason": reason}],
    }


@pytest.mark.parametrize("spaced", [False, True])
def test_finish_reason_is_seen_on_the_fast_path(spaced: bool) -> None:
    rw = ChunkRewriter("x", "auto", include_usage=False, collect=False)
    rw.rewrite(line(chunk("a"), spaced))
    rw.rewrite(line(chunk("b"), spaced))
    assert not rw.finished()
    rw.rewrite(line(finish(), spaced))
    assert rw.finished() and not rw.done


def test_every_choice_must_finish() -> None:
    rw = ChunkRewriter("x", "auto", include_usage=False, collect=False)
    rw.rewrite(line(finish(0, None)))
    rw.rewrite(line(finish(1, None)))
    rw.rewrite(line(finish(1)))
    assert not rw.finished()
    rw.rewrite(line(finish(0, "length")))
    assert rw.finished()


def test_done_finishes() -> None:
    rw = ChunkRewriter("x", "auto", include_usage=False, collect=False)
    rw.rewrite(line(chunk("a")))
    assert rw.rewrite(b"[DONE]") == b"data: [DONE]\n\n" and rw.finished()


# --------------------------------------------------------------------------- opening


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (
            line({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            "preamble",
        ),
        (line({"choices": [], "prompt_filter_results": []}), "preamble"),
        (line(chunk("hi")), "content"),
        (line({"choices": [{"delta": {"tool_calls": [{"index": 0}]}}]}), "content"),
        (line(finish()), "content"),
        (line({"choices": [], "usage": {"completion_tokens": 0}}), "content"),
        (b"[DONE]", "done"),
    ],
)
def test_opening_kind(data: bytes, kind: str) -> None:
    assert opening_kind(data) == kind


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"error": {"message": "overloaded"}}', "stream_error"),
        (b"{nope", "protocol"),
        (b"[1]", "protocol"),
    ],
)
def test_opening_errors(data: bytes, reason: str) -> None:
    with pytest.raises(StreamError) as info:
        opening_kind(data)
    assert info.value.reason == reason


# --------------------------------------------------------------------------- decoding


def feed_all(pieces: list[bytes], limit: int = 1 << 20) -> list[bytes]:
    d = SSEDecoder(limit)
    out: list[bytes] = []
    for p in pieces:
        out += d.feed(p)
    return out + d.close()


STREAM = (
    b": keep-alive comment\r\n"
    b"event: message\r\n"
    b'data: {"a": 1}\r\n\r\n'
    b"data: line one\n"
    b"data:line two\n\n"
    b'data: {"b": 2}\r\r'
    b"data: [DONE]\n\n"
)
EXPECTED = [b'{"a": 1}', b"line one\nline two", b'{"b": 2}', b"[DONE]"]


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=8))
def test_decoder_is_independent_of_chunking(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    pieces = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    assert feed_all(pieces) == EXPECTED


def test_decoder_has_no_line_limit_below_its_configured_one() -> None:
    big = b"x" * (3 << 20)
    pieces = [b"data: " + big[: 1 << 20], big[1 << 20 :], b"\n\n"]
    assert feed_all(pieces, limit=4 << 20) == [big]


@pytest.mark.parametrize(
    "pieces", [[b"data: " + b"x" * 2000], [b"data: " + b"x" * 900 + b"\n"] * 3]
)
def test_decoder_refuses_events_over_its_limit(pieces: list[bytes]) -> None:
    with pytest.raises(EventTooLargeError, match="maxResponseBytes"):
        feed_all(pieces, limit=1024)


def test_decoder_leniencies() -> None:
    # no blank line between events, and none after the last
    assert feed_all([b'data: {"a":1}\ndata: {"b":2}\ndata: [DONE]']) == [
        b'{"a":1}',
        b'{"b":2}\n[DONE]',
    ]
    # a multi-line JSON object is still one event
    assert feed_all([b'data: {"a":\ndata: {"b": 2}}\n\n']) == [b'{"a":\n{"b": 2}}']


def test_tool_call_ids_in_chunks_are_wrapped() -> None:
    rw = ChunkRewriter("did", "auto", include_usage=False, collect=False, wrap_id=lambda i: "W" + i)
    rw.rewrite(line(chunk("")))  # learn the id (fast path afterwards)
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    obj = chunk("", choices=[{"index": 0, "delta": {"tool_calls": [call]}}])
    out = decode(rw.rewrite(line(obj)))
    assert out["choices"][0]["delta"]["tool_calls"][0]["id"] == "Wcall_1"
    assert out["id"] == "did"


def test_decoder_fields() -> None:
    # "data" alone is an empty data field; other fields and comments are ignored
    assert feed_all([b"data\n\nid: 7\nretry: 10\n: hi\ndata:x\n\n"]) == [b"", b"x"]


@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=5), st.booleans())
def test_id_not_first_key_still_rewritten(ids: list[str], spaced: bool) -> None:
    rw = ChunkRewriter("ours", "auto", include_usage=False, collect=False)
    for i, upstream_id in enumerate(ids):
        obj = {"object": "chat.completion.chunk", **chunk(f"w{i}"), "id": upstream_id}
        out = decode(rw.rewrite(line(obj, spaced)))
        assert (out["id"], out["model"], next(iter(out))) == ("ours", "auto", "object")
