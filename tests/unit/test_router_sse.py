"""SSE chunk rewriting: the byte-level fast path must equal the parse path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierguard.router.sse import ChunkRewriter, StreamError


def line(obj: Any, spaced: bool = False) -> bytes:
    sep = (", ", ": ") if spaced else (",", ":")
    return b"data: " + json.dumps(obj, separators=sep).encode()


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
    assert kept.rewrite(b"data: [DONE]") == b"data: [DONE]\n\n"


@pytest.mark.parametrize("bad", [b'data: {"error": {"message": "boom"}}', b"data: {nope"])
def test_errors_raise(bad: bytes) -> None:
    with pytest.raises(StreamError):
        ChunkRewriter("x", "auto", include_usage=False, collect=False).rewrite(bad)


def test_tool_call_ids_in_chunks_are_wrapped() -> None:
    rw = ChunkRewriter("did", "auto", include_usage=False, collect=False, wrap_id=lambda i: "W" + i)
    rw.rewrite(line(chunk("")))  # learn the id (fast path afterwards)
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    obj = chunk("", choices=[{"index": 0, "delta": {"tool_calls": [call]}}])
    out = decode(rw.rewrite(line(obj)))
    assert out["choices"][0]["delta"]["tool_calls"][0]["id"] == "Wcall_1"
    assert out["id"] == "did"
