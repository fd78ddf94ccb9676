"""Span and event attributes (tierguard.router.spanattrs): pure, no OpenTelemetry."""

from __future__ import annotations

import json
from typing import Any

from tierguard.api import traces as a
from tierguard.router import spanattrs as sa


def test_span_name_follows_the_conventions() -> None:
    assert sa.span_name("gpt-4o-mini") == "chat gpt-4o-mini"


def test_conversation_id_is_a_salted_stable_hash() -> None:
    one = sa.conversation_id("salt-a", "alice@example.com")
    assert one == sa.conversation_id("salt-a", "alice@example.com")
    assert one is not None and len(one) == 32 and "alice" not in one
    assert one != sa.conversation_id("salt-b", "alice@example.com")
    assert one != sa.conversation_id("salt-a", "bob@example.com")
    assert sa.conversation_id("salt-a", None) is None
    assert sa.conversation_id("salt-a", "") is None


def test_client_attributes_take_only_host_and_port_of_the_url() -> None:
    attrs = sa.client_attributes(
        kind=a.CALL_FALLBACK,
        model="big",
        upstream_model="big-1",
        base_url="https://user:pw@api.example.com/v1?key=abc",
        stream=True,
        policy="support",
        revision="r7",
        tier="simple",
        arm="canary",
        conversation="c0ffee",
        fallback_reason="budget",
    )
    assert attrs == {
        a.OPERATION_NAME: "chat",
        a.PROVIDER_NAME: "openai",
        a.REQUEST_MODEL: "big-1",
        a.REQUEST_STREAM: True,
        a.CALL_KIND: "fallback",
        a.MODEL: "big",
        a.POLICY: "support",
        a.REVISION: "r7",
        a.TIER: "simple",
        a.ARM: "canary",
        a.SERVER_ADDRESS: "api.example.com",
        a.SERVER_PORT: 443,
        a.CONVERSATION_ID: "c0ffee",
        a.FALLBACK_REASON: "budget",
    }
    assert "pw" not in json.dumps(attrs) and "abc" not in json.dumps(attrs)
    plain = sa.client_attributes(
        kind=a.CALL_PRIMARY,
        model="m",
        upstream_model="m-1",
        base_url="http://10.0.0.1:8000/v1",
        stream=False,
        policy="p",
        revision="",
        tier="t",
        arm="stable",
    )
    assert (plain[a.SERVER_ADDRESS], plain[a.SERVER_PORT]) == ("10.0.0.1", 8000)
    assert a.FALLBACK_REASON not in plain and a.CONVERSATION_ID not in plain


def test_route_attributes_leave_out_what_is_unknown() -> None:
    attrs = sa.route_attributes(
        tier="simple", arm="control", tier_source="classifier", conversation=None, classifier=None
    )
    assert attrs == {a.TIER: "simple", a.ARM: "control", a.TIER_SOURCE: "classifier"}
    assert sa.classifier_digest("ab12") == "sha256:ab12"
    assert sa.classifier_digest("") is None


def test_response_attributes_never_carry_content() -> None:
    payload = {
        "id": "chatcmpl-1",
        "model": "small-1",
        "choices": [
            {"message": {"role": "assistant", "content": "SECRET ANSWER"}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 8},
        },
    }
    attrs = sa.response_attributes(payload)
    assert attrs == {
        a.RESPONSE_ID: "chatcmpl-1",
        a.RESPONSE_MODEL: "small-1",
        a.RESPONSE_FINISH_REASONS: ["stop"],
        a.USAGE_INPUT_TOKENS: 12,
        a.USAGE_OUTPUT_TOKENS: 5,
        a.USAGE_CACHE_READ_INPUT_TOKENS: 8,
    }
    assert "SECRET" not in json.dumps(attrs)


def test_usage_attributes_skip_garbage_counts() -> None:
    assert sa.usage_attributes(None) == {}
    assert (
        sa.usage_attributes(
            {"prompt_tokens": True, "completion_tokens": -3, "prompt_tokens_details": None}
        )
        == {}
    )
    assert sa.usage_attributes({"prompt_tokens": 7}) == {a.USAGE_INPUT_TOKENS: 7}


def test_chunk_attributes_of_a_stream_opening() -> None:
    chunk = json.dumps(
        {
            "id": "c-9",
            "model": "big-1",
            "choices": [{"delta": {"content": "Hi"}, "finish_reason": None}],
        }
    ).encode()
    assert sa.chunk_attributes(chunk) == {a.RESPONSE_ID: "c-9", a.RESPONSE_MODEL: "big-1"}
    assert sa.chunk_attributes(b"not json") == {}
    assert sa.chunk_attributes(b"[1, 2]") == {}


def test_evaluation_attributes() -> None:
    assert sa.evaluation_attributes(name=a.EVAL_FEEDBACK, label="down", response_id="tg-1") == {
        a.EVALUATION_NAME: "tierguard.feedback",
        a.EVALUATION_SCORE_LABEL: "down",
        a.RESPONSE_ID: "tg-1",
    }
    with_why = sa.evaluation_attributes(
        name=a.EVAL_SHADOW, label="agree", response_id="tg-2", explanation="similarity judge"
    )
    assert with_why[a.EVALUATION_EXPLANATION] == "similarity judge"


def test_content_messages_in_the_conventions_shape() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:..."}},
            ],
        },
    ]
    assert json.loads(sa.input_messages(messages)) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {
            "role": "user",
            "parts": [{"type": "text", "content": "what is this?"}, {"type": "image_url"}],
        },
    ]
    assert json.loads(sa.output_messages("hello")) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "hello"}]}
    ]
