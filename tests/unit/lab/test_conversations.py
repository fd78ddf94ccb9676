"""The lab's conversations: history, follow-ups, agent loops and the per-conversation tally."""

from __future__ import annotations

import random
from typing import Any

from tierguard.lab import scenario_world as sw
from tierguard.lab.conversations import (
    FOLLOW_UPS,
    SESSION_HEADER,
    Conversation,
    ConversationTally,
    conversation_lines,
)
from tierguard.lab.population import Population
from tierguard.lab.report import render_markdown
from tierguard.lab.runrecord import RunRecord


def answer(text: str | None = None, call_id: str | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": text}
    if call_id:
        msg["tool_calls"] = [{"id": call_id, "type": "function", "function": {"name": "f"}}]
    return {"choices": [{"message": msg}]}


def test_turns_resend_the_history_and_follow_ups_read_simple() -> None:
    conv = Conversation("s1", "u1", "refund_dispute", agent=False)
    rng = random.Random(0)
    texts = []
    for _ in range(20):
        texts.append(conv.add_user_turn("a long refund dispute", rng))
        conv.add_answer(answer("ok"))
    assert texts[0] == "a long refund dispute"
    assert any(t in FOLLOW_UPS for t in texts) and texts.count("a long refund dispute") > 1
    body = conv.request_body("auto")
    assert len(body["messages"]) == 40 and "tools" not in body
    if texts[-1] in FOLLOW_UPS:  # a follow-up is judged by its own category
        assert body["metadata"]["category"] != "refund_dispute"


def test_an_agent_turn_sends_tool_results_back() -> None:
    conv = Conversation("s2", "u1", "order_tracking", agent=True)
    conv.add_user_turn("where is my order", random.Random(0))
    assert "tools" in conv.request_body("auto")
    assert conv.add_answer(answer(None, "tgc1.x"))
    assert conv.messages[-1] == {
        "role": "tool",
        "tool_call_id": "tgc1.x",
        "content": conv.messages[-1]["content"],
    }
    assert not conv.add_answer(answer("done"))
    assert not conv.add_answer({"error": {}})


def test_tally_counts_switches_drops_unsafe_and_cache() -> None:
    t = ConversationTally()
    a = Conversation("a", "u", "c", agent=True)
    b = Conversation("b", "u", "c", agent=False)
    usage = {"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 60}}
    t.record(
        a, status=200, error_code=None, model="small", tier="simple", usage=usage, tool_result=False
    )
    t.record(
        a, status=200, error_code=None, model="big", tier="complex", usage=usage, tool_result=True
    )
    t.record(
        a, status=200, error_code=None, model="small", tier="simple", usage=None, tool_result=False
    )
    t.record(
        b,
        status=400,
        error_code="invalid_tool_call_id",
        model=None,
        tier=None,
        usage=None,
        tool_result=True,
    )
    s = t.summary()
    assert (s["conversations"], s["agent_conversations"], s["requests"]) == (2, 1, 4)
    assert (s["model_switches"], s["sessions_with_switch"], s["tier_drops"]) == (2, 1, 1)
    assert s["unsafe_switches"] == 1 and s["cache_hit_ratio"] == 0.6
    assert s["tier_changes"] == {"simple>complex": 1, "complex>simple": 1}
    lines = "\n".join(conversation_lines(s, 0))
    assert "## Conversations" in lines and "60.0 %" in lines and "| 1 |" in lines


def test_population_turns_belong_to_conversations() -> None:
    pop = Population(sw.TrafficSpec(users=50, session_length=3.0, seed=4))
    turns = [pop.next_turn() for _ in range(300)]
    by_session: dict[str, list[bool]] = {}
    for turn in turns:
        by_session.setdefault(turn.session, []).append(turn.last)
    # a conversation ends exactly once, with its last turn
    ended = [lasts for lasts in by_session.values() if any(lasts)]
    assert ended and all(lasts[-1] and not any(lasts[:-1]) for lasts in ended)
    assert len({t.user for t in turns if t.session == turns[0].session}) == 1


def test_report_has_a_conversations_section() -> None:
    tally: dict[str, Any] = {
        "requests": 10,
        "arm_switches": 0,
        "conversations": ConversationTally().summary() | {"conversations": 3},
    }
    record = RunRecord("healthy", "t", "s", "Promoted", None, tally=tally)
    from tierguard.lab.runrecord import Sample

    record.samples.append(Sample(t=1.0, status={}))
    text = render_markdown(record, plots=())
    assert "## Conversations" in text
    assert SESSION_HEADER == "x-session-id"


def test_per_request_counterfactual_counts_the_switches_sessions_avoid() -> None:
    t = ConversationTally()
    conv = Conversation("a", "u", "refund_dispute", agent=False)

    def record(model: str, tier: str, arm: str, request_tier: str) -> None:
        t.record(
            conv,
            status=200,
            error_code=None,
            usage=None,
            tool_result=False,
            model=model,
            tier=tier,
            arm=arm,
            request_tier=request_tier,
        )

    # a canary conversation goes complex, then a follow-up reads simple: the router keeps
    # the complex tier (capable); alone, the follow-up would have gone to the cheap model
    record(model="cheap", tier="simple", arm="canary", request_tier="simple")
    record(model="capable", tier="complex", arm="stable", request_tier="complex")
    record(model="capable", tier="complex", arm="stable", request_tier="simple")
    record(model="capable", tier="complex", arm="stable", request_tier="complex")
    s = t.summary()
    assert s["model_switches"] == 1  # up once, then kept
    # alone, the follow-up would have gone back to the cheap model and then up again
    assert s["per_request_model_switches"] == 3 and s["per_request_sessions_with_switch"] == 1
    assert "tiered alone" in "\n".join(conversation_lines(s, 0))
    assert ConversationTally().summary()["per_request_model_switches"] is None


def test_follow_ups_read_simple_to_the_bundled_classifier() -> None:
    """The lab's premise: a follow-up alone reads simple (so per-request tiering would
    drop a complex conversation to the cheap model, and a simple one stays simple)."""
    from tierguard.classifier.runtime import default_model_path, load_classifier

    classifier = load_classifier(default_model_path())
    assert [classifier.classify(t).tier for t in FOLLOW_UPS] == ["simple"] * len(FOLLOW_UPS)


def test_each_turn_is_judged_by_its_own_category() -> None:
    from tierguard.lab.conversations import FOLLOW_UP_CATEGORIES

    conv = Conversation("c", "u", "refund_dispute", agent=False)
    rng = random.Random(1)
    seen = set()
    for i in range(30):
        text = conv.add_user_turn(f"new question {i}", rng, "plan_change")
        expected = FOLLOW_UP_CATEGORIES.get(text, "plan_change")
        assert (
            conv.category == expected
            and conv.request_body("auto")["metadata"]["category"] == expected
        )
        seen.add(conv.category)
    assert "plan_change" in seen and len(seen) > 2
