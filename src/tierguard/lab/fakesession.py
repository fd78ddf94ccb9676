"""What a real provider does with conversations, simulated for the fake provider. Pure.

* **Prefix cache.** Each model keeps the message-boundary prefixes of the prompts it has
  seen for ``prompt_cache_ttl_s`` seconds (refreshed on use, as providers do). A request
  whose messages start with a cached prefix reports the prefix's tokens as
  ``usage.prompt_tokens_details.cached_tokens``. The cache is per model: a conversation
  moved to another model starts cold, which is the cost the session tiers avoid.
* **Tool calls.** A request that offers ``tools`` and ends with a user message is answered
  with a tool call; after the results come back, with another one until
  ``metadata.tool_rounds`` (default 1) calls were made since the last user message, then
  with text. Ids are ``call_<issuer tag>_<n>``, the issuer being the provider process
  and model: only the issuing model accepts them (two providers serving the same model
  id refuse each other's). Tool
  results sent to another model (the trailing ``tool`` messages of the request) get a
  400, as providers that validate tool-call ids do; a closed exchange further up the
  history is accepted by every model.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

MAX_ENTRIES: Final = 200_000


def _tag(issuer: str) -> str:
    return hashlib.sha256(("tool:" + issuer).encode()).hexdigest()[:8]


def message_tokens(msg: Any) -> int:
    """The fake's token count of one message (its words + 3)."""
    if not isinstance(msg, dict):
        return 0
    content = msg.get("content")
    n = len(content.split()) + 3 if isinstance(content, str) else 3
    for call in msg.get("tool_calls") or ():
        if isinstance(call, dict):
            n += len(json.dumps(call).split())
    return n


class PrefixCache:
    """Per-model message-prefix cache with a TTL (``now`` is passed in: no clock here)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._expiry: OrderedDict[tuple[str, bytes], float] = OrderedDict()

    def lookup_and_store(
        self, model: str, messages: list[Any], now: float, ttl_s: float
    ) -> tuple[int, int]:
        """(prompt tokens, cached tokens) for a request, then remember its prefixes."""
        h = hashlib.sha256()
        total = cached = 0
        keys: list[tuple[str, bytes]] = []
        for msg in messages:
            h.update(json.dumps(msg, sort_keys=True, separators=(",", ":")).encode())
            total += message_tokens(msg)
            key = (model, h.copy().digest())
            keys.append(key)
            exp = self._expiry.get(key)
            if exp is not None and exp > now and cached == total - message_tokens(msg):
                cached = total
        if ttl_s > 0:
            for key in keys:
                self._expiry[key] = now + ttl_s
                self._expiry.move_to_end(key)
            while len(self._expiry) > self.max_entries:
                self._expiry.popitem(last=False)
        return max(1, total), cached


def new_tool_call_id(issuer: str, seq: int) -> str:
    """A tool-call id naming its issuer (a provider's model) by a short hash."""
    return f"call_{_tag(issuer)}_{seq}"


def foreign_tool_call(issuer: str, messages: list[Any]) -> str | None:
    """The first tool-call id among the request's trailing tool results that ``issuer``
    did not issue, else None."""
    mine = f"call_{_tag(issuer)}_"
    for msg in reversed(messages):
        if not isinstance(msg, dict) or msg.get("role") != "tool":
            break
        tid = msg.get("tool_call_id")
        if not isinstance(tid, str) or not tid.startswith(mine):
            return str(tid)
    return None


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


def tool_call_to_make(body: dict[str, Any], issuer: str, seq: int) -> ToolCall | None:
    """The tool call this request is answered with, or None for a text answer."""
    tools = body.get("tools")
    messages = body.get("messages") or []
    if not isinstance(tools, list) or not tools or not messages:
        return None
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    try:
        rounds = int(meta.get("tool_rounds", 1))
    except (TypeError, ValueError):
        rounds = 1
    made = 0
    for msg in reversed(messages):
        if not isinstance(msg, dict) or msg.get("role") == "user":
            break
        if msg.get("role") == "assistant" and msg.get("tool_calls"):
            made += 1
    if made >= rounds:
        return None
    first = tools[0] if isinstance(tools[0], dict) else {}
    name = str((first.get("function") or {}).get("name") or "tool")
    return ToolCall(new_tool_call_id(issuer, seq), name, json.dumps({"step": made + 1}))
