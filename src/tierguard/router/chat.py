"""Validating a chat completion request and preparing what goes upstream. Pure.

Only the fields the router acts on are checked (``model``, ``messages``, ``stream``,
``user``, ``stream_options``); every other OpenAI parameter (``temperature``, ``tools``,
``response_format``, ``metadata`` ...) passes through to the upstream untouched, so new
OpenAI parameters work without a router release. The one exception is
``metadata.tierguard_reference``, a reference answer for the pairwise judge: it is taken
out of the body here, so no upstream, log or trace ever sees it.

What the classifier sees (documented in router/README.md): the text of the LAST user
message (``classifier.input: LastUserMessage``, the default) or of all user messages
joined by newlines (``AllUserMessages``), text parts only (images and tool payloads are
ignored), cut to ``classifier.maxInputChars``. System and assistant messages are never
classified: the product's own system prompt would otherwise dominate every query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tierguard.api.judgeprompt import take_reference
from tierguard.router import jsonlib
from tierguard.router.errors import InvalidRequestError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True)
class ChatRequest:
    """A validated request. ``body`` is the client's JSON object, kept whole for
    pass-through."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    user: str | None
    include_usage: bool
    body: dict[str, Any]
    #: ``metadata.tierguard_reference``: a reference answer for the pairwise judge's
    #: template, taken out of ``body`` (never sent upstream, logged or traced)
    reference: str | None = None


def parse_json(raw: bytes) -> Any:
    """The JSON body, or :class:`InvalidRequestError` for anything that is not JSON the
    router can safely pass on: not UTF-8, malformed, nested too deeply, an integer too
    long to convert, or a string holding a lone UTF-16 surrogate (``"\\ud83d"``, which
    no UTF-8 text can carry)."""
    try:
        body = jsonlib.loads(raw)
    except RecursionError:
        raise InvalidRequestError(
            "The JSON body of your request is nested too deeply.", code="invalid_json"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise InvalidRequestError(
            f"We could not parse the JSON body of your request ({exc}).", code="invalid_json"
        ) from None
    if _MAYBE_SURROGATE.search(raw) or b"\x00" in raw[:4]:  # (UTF-16/32 bodies: always look)
        where = lone_surrogate(body)
        if where is not None:
            raise InvalidRequestError(
                f"Invalid Unicode in '{where}': a lone UTF-16 surrogate escape (e.g. "
                "\\ud83d without its pair) is not text.",
                param=where,
                code="invalid_unicode",
            )
    return body


# a \uD800-\uDFFF escape; the raw bytes of a surrogate are not UTF-8, so json.loads
# refuses those itself and only escapes can produce one
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def lone_surrogate(value: Any) -> str | None:
    """The path (``messages[0].content``) of the first string or key holding a lone
    surrogate, else ``None``. Iterative: a deeply nested body cannot overflow the stack."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            if _has_surrogate(v):
                return path or "body"
        elif isinstance(v, dict):
            for k, item in v.items():
                sub = f"{path}.{k}" if path else str(k)
                if _has_surrogate(k):
                    return path or "body"
                stack.append((sub, item))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(v))
    return None


def _has_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _type_name(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _mistyped(param: str, want: str, value: Any) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid type for '{param}': expected {want}, but got {_type_name(value)}.",
        param=param,
        code="invalid_type",
    )


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Validate the body of ``POST /v1/chat/completions``; raise
    :class:`InvalidRequestError` naming the offending parameter."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise _mistyped("body", "an object", body)
    body, reference = take_reference(body)
    if "model" not in body:
        raise InvalidRequestError(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    model = body["model"]
    if not isinstance(model, str) or not model:
        raise _mistyped("model", "a non-empty string", model)
    if "messages" not in body:
        raise InvalidRequestError(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _mistyped("messages", "an array", messages)
    if not messages:
        raise InvalidRequestError(
            "'messages' must contain at least one message.", param="messages", code="empty_array"
        )
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _mistyped(where, "an object", msg)
        role = msg.get("role")
        if not isinstance(role, str):
            raise _mistyped(f"{where}.role", "a string", role)
        if role not in ROLES:
            raise InvalidRequestError(
                f"Invalid value for '{where}.role': {role!r}; supported: {sorted(ROLES)}.",
                param=f"{where}.role",
                code="invalid_value",
            )
        content = msg.get("content")
        if content is None:
            if not (role == "assistant" and (msg.get("tool_calls") or msg.get("function_call"))):
                raise InvalidRequestError(
                    f"Missing required parameter: '{where}.content'.",
                    param=f"{where}.content",
                    code="missing_required_parameter",
                )
        elif not isinstance(content, str | list):
            raise _mistyped(f"{where}.content", "a string or an array of parts", content)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _mistyped("stream", "a boolean", stream)
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _mistyped("user", "a string", user)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _mistyped("stream_options", "an object", options)
    include_usage = bool(options and options.get("include_usage"))
    return ChatRequest(model, messages, stream, user or None, include_usage, body, reference)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def classifier_text(messages: list[dict[str, Any]], mode: str, max_chars: int) -> str:
    """The text the classifier sees (see the module docstring)."""
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        return ""
    if mode == "AllUserMessages":
        text = "\n".join(_text_of(m.get("content")) for m in users)
    else:
        text = _text_of(users[-1].get("content"))
    return text[:max_chars]


def render_system_prompt(template: str, model: str, tier: str) -> str:
    """Fill ``{model}`` and ``{tier}``. Plain replacement, not ``str.format``: a prompt
    that contains JSON braces must not break."""
    return template.replace("{model}", model).replace("{tier}", tier)


def upstream_body(
    req: ChatRequest, upstream_model: str, system_prompt: str | None, *, add_usage: bool
) -> dict[str, Any]:
    """The body sent to one upstream: the client's parameters with the upstream's model
    id and the model's system prompt first (the client's own system message is kept
    after it). ``add_usage`` (a streaming call to a model configured with ``streamUsage``)
    adds ``stream_options.include_usage`` so tokens and cost are counted; the extra usage
    chunk is dropped again if the client did not ask for it. Nothing else is added."""
    body = dict(req.body)
    body["model"] = upstream_model
    if system_prompt:
        body["messages"] = [{"role": "system", "content": system_prompt}, *req.messages]
    if req.stream and add_usage:
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
    return body
