"""Request validation, classifier input, upstream body, and error mapping (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tierguard.router.chat import (
    classifier_text,
    parse_chat_request,
    render_system_prompt,
    upstream_body,
)
from tierguard.router.errors import (
    DeadlineExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    PayloadTooLargeError,
    RouterError,
    UpstreamFailedError,
    UpstreamRejectedError,
    from_http_status,
    http_status,
)
from tierguard.router.upstream import classify_status


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


OK = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def test_valid_request_keeps_unknown_parameters() -> None:
    req = parse_chat_request(
        raw({**OK, "temperature": 0.2, "tools": [], "user": "u1", "stream": True})
    )
    assert (req.model, req.stream, req.user) == ("auto", True, "u1")
    assert req.body["temperature"] == 0.2 and req.body["tools"] == []


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{not json", None, "invalid_json"),
        (b"\xff\xfe", None, "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, None, "invalid_json"),
        (raw([1, 2]), "body", "invalid_type"),
        (raw({"messages": OK["messages"]}), "model", "missing_required_parameter"),
        (raw({**OK, "model": 3}), "model", "invalid_type"),
        (raw({"model": "auto"}), "messages", "missing_required_parameter"),
        (raw({"model": "auto", "messages": "hi"}), "messages", "invalid_type"),
        (raw({"model": "auto", "messages": []}), "messages", "empty_array"),
        (raw({"model": "auto", "messages": ["hi"]}), "messages[0]", "invalid_type"),
        (
            raw({"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}),
            "messages[0].role",
            "invalid_value",
        ),
        (
            raw({"model": "auto", "messages": [{"role": "user"}]}),
            "messages[0].content",
            "missing_required_parameter",
        ),
        (
            raw({"model": "auto", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
            "invalid_type",
        ),
        (raw({**OK, "stream": "yes"}), "stream", "invalid_type"),
        (raw({**OK, "user": 7}), "user", "invalid_type"),
    ],
)
def test_bad_requests_name_the_parameter(body: bytes, param: str | None, code: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_chat_request(body)
    assert info.value.param == param and info.value.code == code
    err = info.value.body()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and http_status(info.value) == 400


def test_assistant_tool_call_without_content_is_fine() -> None:
    msgs = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
    ]
    assert parse_chat_request(raw({"model": "auto", "messages": msgs})).messages == msgs


def test_classifier_text_modes() -> None:
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a lawyer writing detailed legal analysis"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "answer"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "where is"},
                {"type": "image_url", "image_url": {"url": "x"}},
                {"type": "text", "text": "my order"},
            ],
        },
    ]
    assert classifier_text(msgs, "LastUserMessage", 100) == "where is\nmy order"
    assert classifier_text(msgs, "AllUserMessages", 100) == "first question\nwhere is\nmy order"
    assert classifier_text(msgs, "AllUserMessages", 5) == "first"
    assert classifier_text([{"role": "system", "content": "x"}], "LastUserMessage", 9) == ""


def test_upstream_body_prepends_voice_and_asks_for_usage() -> None:
    req = parse_chat_request(
        raw(
            {
                **OK,
                "stream": True,
                "messages": [
                    {"role": "system", "content": "client system"},
                    {"role": "user", "content": "hi"},
                ],
            }
        )
    )
    body = upstream_body(
        req,
        "small-1",
        render_system_prompt("Acme {model}/{tier} {x}", "small", "simple"),
        add_usage=True,
    )
    assert body["model"] == "small-1"
    assert body["messages"][0] == {"role": "system", "content": "Acme small/simple {x}"}
    assert body["messages"][1]["content"] == "client system"
    assert body["stream_options"] == {"include_usage": True}
    assert req.body["model"] == "auto"  # the client's body is not mutated
    # not configured to add usage: only what the client sent
    plain = upstream_body(req, "small-1", None, add_usage=False)
    assert "stream_options" not in plain and plain["messages"] == req.messages


def test_error_statuses() -> None:
    assert http_status(ModelNotFoundError("x")) == 404
    assert http_status(PayloadTooLargeError("x")) == 413
    assert http_status(UpstreamFailedError("x")) == 502
    assert http_status(DeadlineExceededError("x")) == 504
    assert http_status(UpstreamRejectedError(422, "x")) == 422
    assert isinstance(from_http_status(404, "Not Found"), RouterError)
    assert http_status(from_http_status(405, "Method Not Allowed")) == 405
    assert http_status(from_http_status(418, "teapot")) == 400
    assert from_http_status(404, "Not Found").body()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("status", "reason", "retry"),
    [
        (429, "rate_limited", True),
        (500, "server_error", True),
        (503, "server_error", True),
        (504, "timeout", True),
        (408, "timeout", True),
        (401, "client_error", True),
        (404, "client_error", True),
        (400, "client_error", False),
        (422, "client_error", False),
    ],
)
def test_upstream_status_mapping(status: int, reason: str, retry: bool) -> None:
    assert classify_status(status) == (reason, retry)


def test_similarity_and_llm_verdict_parsing() -> None:
    from tierguard.router.shadow import parse_llm_verdict, similarity

    assert similarity("the cat sat", "The cat sat!") == 1.0
    assert similarity("a b", "c d") == 0.0 and similarity("", "") == 1.0
    assert parse_llm_verdict("AGREE.") == "agree"
    assert parse_llm_verdict("Disagree - they differ") == "disagree"
    assert parse_llm_verdict("I think they agree") == "error"


# --------------------------------------------------------------------------- unicode


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**OK, "user": "\ud83d"}, "user"),
        ({**OK, "messages": [{"role": "user", "content": "a\udc00"}]}, "messages[0].content"),
        (
            {**OK, "messages": [{"role": "user", "content": [{"type": "text", "text": "\ud800"}]}]},
            "messages[0].content[0].text",
        ),
        ({**OK, "metadata": {"k\udfff": 1}}, "metadata"),
        ({**OK, "tools": [[[["\ud83d"]]]]}, "tools[0][0][0][0]"),
    ],
)
def test_lone_surrogates_are_refused_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_chat_request(raw(body))  # json.dumps escapes them as \udXXX
    assert (info.value.param, info.value.code) == (param, "invalid_unicode")


def test_lone_surrogate_in_a_utf16_body_is_refused() -> None:
    body = json.dumps({**OK, "user": "\ud83d"}).encode("utf-16")
    with pytest.raises(InvalidRequestError) as info:
        parse_chat_request(body)
    assert info.value.code == "invalid_unicode"


def test_surrogate_pairs_and_lookalikes_are_fine() -> None:
    req = parse_chat_request(raw({**OK, "user": "\U0001f600 \\ud83d"}))
    assert req.user == "\U0001f600 \\ud83d"


def test_an_integer_too_long_to_convert_is_invalid_json() -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_chat_request(b'{"model": "auto", "n": ' + b"7" * 5000 + b"}")
    assert info.value.code == "invalid_json"
