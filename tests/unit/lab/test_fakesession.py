"""The fake provider's conversation behaviour: prefix cache with TTL, tool-call ids."""

from __future__ import annotations

from typing import Any

from tierguard.lab.fakesession import (
    PrefixCache,
    foreign_tool_call,
    new_tool_call_id,
    tool_call_to_make,
)

SYS = {"role": "system", "content": "You are a helpful assistant for Acme."}


def turn(n: int) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [SYS]
    for i in range(n):
        msgs.append({"role": "user", "content": f"question {i} about my order"})
        msgs.append({"role": "assistant", "content": f"answer {i}"})
    msgs.append({"role": "user", "content": "and another thing"})
    return msgs


def test_the_second_turn_reuses_the_first_turns_prefix() -> None:
    cache = PrefixCache()
    total1, cached1 = cache.lookup_and_store("m", turn(0), now=0.0, ttl_s=60)
    assert cached1 == 0
    second = [*turn(0), {"role": "assistant", "content": "ok"}, {"role": "user", "content": "x"}]
    total2, cached2 = cache.lookup_and_store("m", second, now=1.0, ttl_s=60)
    assert cached2 == total1 and total2 > total1


def test_the_cache_is_per_model_and_expires() -> None:
    cache = PrefixCache()
    cache.lookup_and_store("a", turn(1), now=0.0, ttl_s=10)
    assert cache.lookup_and_store("b", turn(1), now=1.0, ttl_s=10)[1] == 0
    assert cache.lookup_and_store("a", turn(1), now=5.0, ttl_s=10)[1] > 0
    assert cache.lookup_and_store("a", turn(1), now=100.0, ttl_s=10)[1] == 0


def test_a_changed_system_prompt_is_a_miss() -> None:
    cache = PrefixCache()
    cache.lookup_and_store("a", turn(1), now=0.0, ttl_s=10)
    other = [{"role": "system", "content": "tier complex"}, *turn(1)[1:]]
    assert cache.lookup_and_store("a", other, now=1.0, ttl_s=10)[1] == 0


def test_the_cache_is_bounded() -> None:
    cache = PrefixCache(max_entries=5)
    for i in range(10):
        cache.lookup_and_store("a", [{"role": "user", "content": str(i)}], now=0.0, ttl_s=10)
    assert len(cache._expiry) == 5


def test_tool_results_only_for_the_issuing_model() -> None:
    cid = new_tool_call_id("small-1", 7)
    msgs = [
        {"role": "user", "content": "book"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": cid}]},
        {"role": "tool", "tool_call_id": cid, "content": "done"},
    ]
    assert foreign_tool_call("small-1", msgs) is None
    assert foreign_tool_call("big-1", msgs) == cid
    closed = [*msgs, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "x"}]
    assert foreign_tool_call("big-1", closed) is None  # a closed exchange is history


def test_tool_rounds() -> None:
    tools = [{"type": "function", "function": {"name": "lookup"}}]
    body: dict[str, Any] = {"tools": tools, "messages": [{"role": "user", "content": "x"}]}
    call = tool_call_to_make(body, "m", 1)
    assert call is not None and call.name == "lookup" and call.id == new_tool_call_id("m", 1)
    body["messages"] += [
        {"role": "assistant", "tool_calls": [{"id": call.id}]},
        {"role": "tool", "tool_call_id": call.id, "content": "r"},
    ]
    assert tool_call_to_make(body, "m", 2) is None
    body["metadata"] = {"tool_rounds": 2}
    assert tool_call_to_make(body, "m", 2) is not None
    assert tool_call_to_make({"messages": [{"role": "user", "content": "x"}]}, "m", 1) is None


def test_a_stock_follow_up_is_a_new_question_in_every_conversation() -> None:
    from tierguard.lab.fakeanswers import question_of

    one = [{"role": "user", "content": "where is my order"}]
    assert question_of(one) == "where is my order"
    a = [*one, {"role": "assistant", "content": "x"}, {"role": "user", "content": "thanks!"}]
    b = [{"role": "user", "content": "reset my password"}, *a[1:]]
    assert question_of(a) != question_of(b)  # not one quality draw for all conversations
    assert question_of(a).endswith("thanks!")
    tool_turn = [*a, {"role": "assistant", "tool_calls": [{"id": "c"}]}, {"role": "tool"}]
    assert question_of(tool_turn) == question_of(a)
    assert question_of([]) == ""
