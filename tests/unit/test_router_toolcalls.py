"""Tool-call locks: ids carry their issuer, verified, unwrapped before going upstream."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tierguard.router.toolcalls import (
    Lock,
    find_lock,
    has_wrapped_ids,
    is_stateful,
    unwrap,
    unwrap_messages,
    wrap,
    wrap_choices,
)

KEY = b"k" * 32
LOCK = Lock("small", "simple", "canary")


@given(st.text(min_size=1, max_size=60))
def test_wrap_round_trips(upstream_id: str) -> None:
    wrapped = wrap(upstream_id, LOCK, KEY)
    assert unwrap(wrapped, KEY) == (upstream_id, LOCK) or upstream_id.startswith("tgc1.")


def test_another_key_or_a_forged_route_gives_no_lock() -> None:
    wrapped = wrap("call_1", LOCK, KEY)
    assert unwrap(wrapped, b"other") == ("call_1", None)
    forged = wrapped.replace("tgc1.small.", "tgc1.big.")
    assert unwrap(forged, KEY) == ("call_1", None)
    assert unwrap("call_plain", KEY) == ("call_plain", None)
    assert unwrap("tgc1.broken", KEY) == ("tgc1.broken", None)


def agent_turn(lock: Lock = LOCK) -> list[dict[str, Any]]:
    ids = [wrap("call_a", lock, KEY), wrap("call_b.with.dots", lock, KEY)]
    return [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "book a table"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}}
                for i in ids
            ],
        },
        {"role": "tool", "tool_call_id": ids[0], "content": "ok"},
        {"role": "tool", "tool_call_id": ids[1], "content": "ok"},
    ]


def test_a_tool_result_turn_is_locked_to_the_issuer() -> None:
    msgs = agent_turn()
    assert is_stateful(msgs)
    assert find_lock(msgs, KEY) == LOCK
    assert find_lock([*msgs, {"role": "assistant", "content": "partial"}], KEY) == LOCK


def test_a_new_user_message_releases_the_lock() -> None:
    msgs = [
        *agent_turn(),
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "x"},
    ]
    assert not is_stateful(msgs)
    assert find_lock(msgs, KEY) is None


def test_an_older_exchange_does_not_lock_a_later_turn() -> None:
    later = Lock("big", "complex", "stable")
    msgs = [*agent_turn(), {"role": "user", "content": "and now?"}]
    msgs += agent_turn(later)[2:]
    assert find_lock(msgs, KEY) == later


def test_unverified_ids_give_no_lock() -> None:
    assert find_lock(agent_turn(), b"another key") is None


def test_unwrap_restores_the_upstream_ids_and_touches_nothing_else() -> None:
    msgs = agent_turn()
    out = unwrap_messages(msgs, KEY)
    assert [c["id"] for c in out[2]["tool_calls"]] == ["call_a", "call_b.with.dots"]
    assert [m.get("tool_call_id") for m in out[3:]] == ["call_a", "call_b.with.dots"]
    assert out[0] is msgs[0] and out[1] is msgs[1]
    assert out[2]["tool_calls"][0]["function"] == msgs[2]["tool_calls"][0]["function"]
    assert has_wrapped_ids(msgs) and not has_wrapped_ids(out)
    assert msgs[3]["tool_call_id"].startswith("tgc1.")  # the input is not mutated


def test_wrap_choices_in_answers_and_chunks() -> None:
    payload: dict[str, Any] = {
        "choices": [
            {"message": {"role": "assistant", "tool_calls": [{"id": "call_x", "type": "function"}]}}
        ]
    }
    assert wrap_choices(payload, "message", lambda i: wrap(i, LOCK, KEY))
    wrapped = payload["choices"][0]["message"]["tool_calls"][0]["id"]
    assert unwrap(wrapped, KEY) == ("call_x", LOCK)
    chunk = {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}}]}
    assert not wrap_choices(chunk, "delta", lambda i: wrap(i, LOCK, KEY))
    assert not wrap_choices({"choices": [{"message": {"content": "hi"}}]}, "message", str)
