"""Tool-call locks: a tool result goes back to the model that issued the call. Pure.

An agent turn that ends with tool results (or an assistant message) has no new user text
to classify, and it must reach the model that asked for the tool: providers tie a
tool-call id to the conversation that issued it, and a model that did not issue it may
refuse the id (a 400) or misread the exchange. The router keeps no store, so the issuing
model travels with the conversation itself, inside the tool-call ids the client has to
send back anyway:

* on the way out, every tool-call id an upstream issues is wrapped as
  ``tgc1.<model>.<tier>.<arm>.<tag>.<upstream id>``, where ``tag`` is an HMAC (the
  feedback signing key, the same on every replica) over the other parts, so any replica
  can read who issued the call and a client cannot forge a route;
* on the way in, the ids are unwrapped again before the request goes upstream, so the
  provider sees exactly the ids it issued (its prompt cache and its id checks hold);
* a request whose last message is not a user message is *locked* to the model, tier and
  arm in the newest verified id after the last user message (:func:`find_lock`).

Names are RFC 1123 labels (no dots) and the arm is a fixed word, so the layout parses
unambiguously; the upstream id is the rest and may itself contain dots. An id that is
not wrapped, or whose tag does not verify (another policy, a rotated key), gives no lock:
the router then recomputes the route from the conversation (same tier, same arm), which
matches the issuing turn unless the weight moved in between.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

PREFIX: Final = "tgc1."
_TAG_BYTES: Final = 9


@dataclass(frozen=True)
class Lock:
    """The route of the turn that issued a tool call."""

    model: str
    tier: str
    arm: str


def _tag(key: bytes, lock: Lock, upstream_id: str) -> str:
    msg = "\x1f".join((PREFIX, lock.model, lock.tier, lock.arm, upstream_id)).encode()
    digest = hmac.new(key, msg, hashlib.sha256).digest()[:_TAG_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def wrap(upstream_id: str, lock: Lock, key: bytes) -> str:
    """The id the client sees for an upstream's tool-call id."""
    if upstream_id.startswith(PREFIX):  # already ours (an upstream echoing an id back)
        return upstream_id
    tag = _tag(key, lock, upstream_id)
    return f"{PREFIX}{lock.model}.{lock.tier}.{lock.arm}.{tag}.{upstream_id}"


def unwrap(tool_call_id: str, key: bytes) -> tuple[str, Lock | None]:
    """The upstream's own id and, when the tag verifies, the lock it carries."""
    if not tool_call_id.startswith(PREFIX):
        return tool_call_id, None
    parts = tool_call_id[len(PREFIX) :].split(".", 4)
    if len(parts) != 5:
        return tool_call_id, None
    model, tier, arm, tag, upstream_id = parts
    lock = Lock(model, tier, arm)
    if hmac.compare_digest(tag, _tag(key, lock, upstream_id)):
        return upstream_id, lock
    return upstream_id, None


def _call_ids(msg: dict[str, Any]) -> list[str]:
    calls = msg.get("tool_calls")
    if not isinstance(calls, list):
        return []
    return [c["id"] for c in calls if isinstance(c, dict) and isinstance(c.get("id"), str)]


def find_lock(messages: list[dict[str, Any]], key: bytes) -> Lock | None:
    """The lock of a turn without new user text: the newest verified tool-call id after
    the last user message (None for a turn that ends with a user message)."""
    if not messages or messages[-1].get("role") == "user":
        return None
    for msg in reversed(messages):
        role = msg.get("role")
        if role == "user":
            return None
        ids: list[str] = []
        if role == "assistant":
            ids = _call_ids(msg)
        elif role == "tool" and isinstance(msg.get("tool_call_id"), str):
            ids = [msg["tool_call_id"]]
        for tid in reversed(ids):
            _, lock = unwrap(tid, key)
            if lock is not None:
                return lock
    return None


def is_stateful(messages: list[dict[str, Any]]) -> bool:
    """Whether the turn continues an earlier one (its last message is not a user's)."""
    return bool(messages) and messages[-1].get("role") != "user"


def unwrap_messages(messages: list[dict[str, Any]], key: bytes) -> list[dict[str, Any]]:
    """``messages`` with every wrapped tool-call id replaced by the upstream's own; the
    messages without one are the same objects (nothing else is touched)."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        role = msg.get("role")
        if role == "tool":
            tid = msg.get("tool_call_id")
            if isinstance(tid, str) and tid.startswith(PREFIX):
                msg = {**msg, "tool_call_id": unwrap(tid, key)[0]}
        elif role == "assistant" and any(i.startswith(PREFIX) for i in _call_ids(msg)):
            calls = []
            for c in msg["tool_calls"]:
                if isinstance(c, dict) and isinstance(c.get("id"), str):
                    c = {**c, "id": unwrap(c["id"], key)[0]}
                calls.append(c)
            msg = {**msg, "tool_calls": calls}
        out.append(msg)
    return out


def has_wrapped_ids(messages: list[dict[str, Any]]) -> bool:
    for msg in messages:
        tid = msg.get("tool_call_id")
        if isinstance(tid, str) and tid.startswith(PREFIX):
            return True
        if any(i.startswith(PREFIX) for i in _call_ids(msg)):
            return True
    return False


def wrap_choices(payload: dict[str, Any], field: str, wrap_id: Callable[[str], str]) -> bool:
    """Wrap the tool-call ids in ``payload["choices"][*][field]["tool_calls"]`` in place
    (``field`` is ``message`` for a JSON answer, ``delta`` for a stream chunk). Returns
    whether anything changed."""
    changed = False
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        part = choice.get(field)
        if not isinstance(part, dict) or not isinstance(part.get("tool_calls"), list):
            continue
        for call in part["tool_calls"]:
            if isinstance(call, dict) and isinstance(call.get("id"), str) and call["id"]:
                call["id"] = wrap_id(call["id"])
                changed = True
    return changed
