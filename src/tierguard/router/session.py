"""The session key: what a request's arm is hashed from. Pure.

With ``stickiness.key: session`` (the default for new policies) the assignment unit is
the conversation, identified by the first of:

1. the configured session header (``stickiness.sessionHeader``, e.g. ``x-session-id``);
2. the request's ``prompt_cache_key`` (OpenAI's own per-conversation cache key);
3. the request's ``user``;
4. a fingerprint of the conversation's start: the first 256 characters of the first
   system/developer message and the whole first user message. Every chat request resends
   the conversation from its start, so every turn of a conversation has the same
   fingerprint, on every replica, without a store.

Only the *source* (a :class:`~tierguard.api.enums.KeySource`) is exported as a metric
label and written to the decision log; the key itself never leaves the process (the
fingerprint is a hash, the others may be user ids).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from tierguard.api.enums import KeySource, StickinessKey
from tierguard.api.routerconfig import Stickiness

#: how much of the system prompt goes into the fingerprint (a product's system prompt can
#: embed per-request data such as the date further down; the head is its stable part)
SYSTEM_HEAD_CHARS: Final = 256
MAX_KEY_CHARS: Final = 512


@dataclass(frozen=True)
class SessionKey:
    key: str
    source: KeySource


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def fingerprint(messages: list[dict[str, Any]]) -> str | None:
    """A hash of the conversation's start, or None when it has no user message."""
    system = next(
        (_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")),
        "",
    )
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    if first_user is None:
        return None
    h = hashlib.sha256()
    h.update(system[:SYSTEM_HEAD_CHARS].encode("utf-8", "replace"))
    h.update(b"\x00")
    h.update(_text(first_user.get("content")).encode("utf-8", "replace"))
    return "fp:" + h.hexdigest()[:32]


def _usable(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= MAX_KEY_CHARS:
        return value
    return None


def session_key(
    stickiness: Stickiness,
    *,
    session_header: str | None,
    user_header: str | None,
    body: dict[str, Any],
    user: str | None,
    messages: list[dict[str, Any]],
    request_id: str,
) -> SessionKey:
    """The stickiness key of a request and where it came from (see the module docstring;
    the ``user``/``header``/``requestId`` modes keep their earlier behaviour)."""
    if stickiness.key is StickinessKey.SESSION:
        if v := _usable(session_header):
            return SessionKey("h:" + v, KeySource.HEADER)
        if v := _usable(body.get("prompt_cache_key")):
            return SessionKey("c:" + v, KeySource.PROMPT_CACHE_KEY)
        if v := _usable(user):
            return SessionKey(v, KeySource.USER)
        if fp := fingerprint(messages):
            return SessionKey(fp, KeySource.FINGERPRINT)
        return SessionKey(request_id, KeySource.REQUEST_ID)
    if stickiness.key is StickinessKey.USER:
        if user:
            return SessionKey(user, KeySource.USER)
        if user_header:
            return SessionKey(user_header, KeySource.HEADER)
        return SessionKey(request_id, KeySource.REQUEST_ID)
    if stickiness.key is StickinessKey.HEADER and user_header:
        return SessionKey(user_header, KeySource.HEADER)
    return SessionKey(request_id, KeySource.REQUEST_ID)
