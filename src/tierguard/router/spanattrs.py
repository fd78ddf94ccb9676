"""The attributes of the router's trace spans and evaluation events, built from plain
values (pure: no OpenTelemetry import, unit-tested on its own; names from
:mod:`tierguard.api.traces`). :mod:`tierguard.router.tracing` puts them on spans.

What never goes into an attribute: API keys, ``Authorization`` or any other header, the
raw session key or user id (:func:`conversation_id` is a salted hash), and prompt or
answer text unless the policy sets ``captureContent`` (:func:`input_messages`,
:func:`output_messages` are only called then).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from tierguard.api import traces as a

Attributes = dict[str, Any]


def span_name(model: str) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``, as the conventions name spans."""
    return f"{a.OPERATION_CHAT} {model}"


def conversation_id(salt: str, session_key: str | None) -> str | None:
    """A salted hash of the session key: the same conversation gets the same id on every
    replica, and the key (often a user id) cannot be read back from it."""
    if not session_key:
        return None
    digest = hashlib.sha256(f"conversation:{salt}:{session_key}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def classifier_digest(model_sha256: str) -> str | None:
    return f"sha256:{model_sha256}" if model_sha256 else None


def server_attributes(
    *,
    policy: str,
    revision: str,
    request_model: str,
    stream: bool,
    request_id: str,
) -> Attributes:
    """The SERVER span's attributes known on arrival."""
    return {
        a.OPERATION_NAME: a.OPERATION_CHAT,
        a.PROVIDER_NAME: a.PROVIDER_OPENAI,
        a.REQUEST_MODEL: request_model,
        a.REQUEST_STREAM: stream,
        a.POLICY: policy,
        a.REVISION: revision,
        a.REQUEST_ID: request_id,
    }


def route_attributes(
    *,
    tier: str,
    arm: str,
    tier_source: str,
    conversation: str | None,
    classifier: str | None,
) -> Attributes:
    """The SERVER span's routing attributes once the request is planned."""
    attrs: Attributes = {a.TIER: tier, a.ARM: arm, a.TIER_SOURCE: tier_source}
    if conversation is not None:
        attrs[a.CONVERSATION_ID] = conversation
    if classifier is not None:
        attrs[a.CLASSIFIER_DIGEST] = classifier
    return attrs


def client_attributes(
    *,
    kind: str,
    model: str,
    upstream_model: str,
    base_url: str,
    stream: bool,
    policy: str,
    revision: str,
    tier: str,
    arm: str,
    conversation: str | None = None,
    fallback_reason: str | None = None,
) -> Attributes:
    """A CLIENT span's attributes at the start of an upstream call. ``base_url`` gives
    only the host and port (never its path, query or credentials)."""
    attrs: Attributes = {
        a.OPERATION_NAME: a.OPERATION_CHAT,
        a.PROVIDER_NAME: a.PROVIDER_OPENAI,
        a.REQUEST_MODEL: upstream_model,
        a.REQUEST_STREAM: stream,
        a.CALL_KIND: kind,
        a.MODEL: model,
        a.POLICY: policy,
        a.REVISION: revision,
        a.TIER: tier,
        a.ARM: arm,
    }
    url = urlsplit(base_url)
    if url.hostname:
        attrs[a.SERVER_ADDRESS] = url.hostname
        port = url.port or (443 if url.scheme == "https" else 80)
        attrs[a.SERVER_PORT] = port
    if conversation is not None:
        attrs[a.CONVERSATION_ID] = conversation
    if fallback_reason is not None:
        attrs[a.FALLBACK_REASON] = fallback_reason
    return attrs


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value >= 0 else None


def usage_attributes(usage: Mapping[str, Any] | None) -> Attributes:
    """Token counts of an OpenAI ``usage`` object (absent or garbage counts left out)."""
    if not isinstance(usage, Mapping):
        return {}
    attrs: Attributes = {}
    for key, name in (
        ("prompt_tokens", a.USAGE_INPUT_TOKENS),
        ("completion_tokens", a.USAGE_OUTPUT_TOKENS),
    ):
        n = _count(usage.get(key))
        if n is not None:
            attrs[name] = n
    details = usage.get("prompt_tokens_details")
    if isinstance(details, Mapping):
        cached = _count(details.get("cached_tokens"))
        if cached is not None:
            attrs[a.USAGE_CACHE_READ_INPUT_TOKENS] = cached
    return attrs


def response_attributes(payload: Mapping[str, Any]) -> Attributes:
    """What an upstream's JSON answer (or a stream's first chunk) says about itself: its
    id, model, finish reasons and usage. Never its content."""
    attrs: Attributes = {}
    rid = payload.get("id")
    if isinstance(rid, str) and rid:
        attrs[a.RESPONSE_ID] = rid
    model = payload.get("model")
    if isinstance(model, str) and model:
        attrs[a.RESPONSE_MODEL] = model
    choices = payload.get("choices")
    if isinstance(choices, list):
        reasons = [
            c["finish_reason"]
            for c in choices
            if isinstance(c, Mapping) and isinstance(c.get("finish_reason"), str)
        ]
        if reasons:
            attrs[a.RESPONSE_FINISH_REASONS] = reasons
    attrs.update(usage_attributes(payload.get("usage")))
    return attrs


def chunk_attributes(data: bytes) -> Attributes:
    """:func:`response_attributes` of a stream's first event (``{}`` if unreadable)."""
    try:
        payload = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(payload, dict):
        return {}
    attrs = response_attributes(payload)
    attrs.pop(a.RESPONSE_FINISH_REASONS, None)  # the first chunk's are not the answer's
    return attrs


def evaluation_attributes(
    *, name: str, label: str, response_id: str, explanation: str | None = None
) -> Attributes:
    """A ``gen_ai.evaluation.result`` event's attributes."""
    attrs: Attributes = {
        a.EVALUATION_NAME: name,
        a.EVALUATION_SCORE_LABEL: label,
        a.RESPONSE_ID: response_id,
    }
    if explanation:
        attrs[a.EVALUATION_EXPLANATION] = explanation
    return attrs


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for p in content:
            if isinstance(p, Mapping) and p.get("type") == "text":
                parts.append({"type": "text", "content": p.get("text", "")})
            else:
                parts.append({"type": str(p.get("type")) if isinstance(p, Mapping) else "other"})
        return parts
    return []


def input_messages(messages: list[dict[str, Any]]) -> str:
    """``gen_ai.input.messages`` (JSON, the conventions' role + parts shape): only called
    when content capture is enabled."""
    return json.dumps(
        [{"role": str(m.get("role", "")), "parts": _parts(m.get("content"))} for m in messages],
        ensure_ascii=False,
    )


def output_messages(text: str) -> str:
    """``gen_ai.output.messages`` of an answer's text: only called when content capture is
    enabled."""
    return json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": text}]}], ensure_ascii=False
    )
