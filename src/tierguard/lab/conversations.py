"""The lab's users hold conversations. Pure (the generator in :mod:`tierguard.lab.traffic`
does the I/O).

A session of the traffic :class:`~tierguard.lab.population.Population` is one conversation:
its first turn is a query from the pool (seed 003's mix), and each later turn resends the
whole history plus a new user message -- mostly (:data:`FOLLOW_UP_SHARE`) a follow-up that
reads simple ("ok thanks, and where is my order?") whatever the opener was, which is what
drops a per-request router to the cheap tier mid-conversation; otherwise a new question.
A share of the conversations are agent loops: the request offers a tool, the model
answers with a tool call, the client sends the result back, and only then does the model
answer in text (the fake provider plays the model; tool-call ids only the issuing model
accepts).

Every conversation sends its id as the ``x-session-id`` header (the router's default
session header), so the session is the assignment unit, and the lab measures per
conversation (:class:`ConversationTally`): model switches between consecutive requests,
unsafe switches (a tool result refused as foreign: a 400 ``invalid_tool_call_id``), tier
drops (must be 0 with session tiers), and the prompt-cache hit ratio from the providers'
``usage.prompt_tokens_details.cached_tokens``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from tierguard.lab import scenario_world as sw

SESSION_HEADER: Final = "x-session-id"
#: follow-ups that read simple whatever the conversation is about, with the (simple)
#: category each one asks about: the providers judge a turn by its own category
FOLLOW_UP_CATEGORIES: Final = {
    "ok thanks, and where is my order?": "order_tracking",
    "thanks! how do I reset my password?": "password_reset",
    "great. what are your opening hours?": "opening_hours",
    "ok. can you confirm the email address on my account?": "account_lookup",
    "thanks, and what is my billing status?": "billing_status",
}
FOLLOW_UPS: Final = tuple(FOLLOW_UP_CATEGORIES)
#: share of later turns that follow up on the conversation (the rest open a new question
#: from the pool, which may be complex and lifts the conversation's tier for good)
FOLLOW_UP_SHARE: Final = 0.8
AGENT_SHARE: Final = 0.2
#: tool calls an agent turn makes before the model answers in text
AGENT_TOOL_ROUNDS: Final = 2
TOOLS: Final = [
    {
        "type": "function",
        "function": {
            "name": "lookup_account",
            "description": "Look up the customer's account, orders and invoices.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]
TIER_ORDER: Final = ("simple", "complex")
UNSAFE_CODE: Final = "invalid_tool_call_id"


@dataclass
class Conversation:
    """One simulated conversation: its history and what the router did with it."""

    id: str
    user: str
    category: str  # the current turn's category (the fake providers' quality key)
    agent: bool
    messages: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0

    def add_user_turn(
        self, new_text: str, rng: random.Random, new_category: str | None = None
    ) -> str:
        """Append the next user message and return it: on the first turn ``new_text`` (the
        opener), later mostly a follow-up, else ``new_text`` (a new question). The turn's
        category becomes the message's (``new_category`` for a new question)."""
        if self.turns == 0 or rng.random() >= FOLLOW_UP_SHARE:
            text = new_text
            if new_category is not None:
                self.category = new_category
        else:
            text = rng.choice(FOLLOW_UPS)
            self.category = FOLLOW_UP_CATEGORIES[text]
        self.messages.append({"role": "user", "content": text})
        self.turns += 1
        return text

    def request_body(self, model: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "user": self.user,
            "messages": list(self.messages),
            # read by the fake providers only (the router forwards unknown fields)
            "metadata": {"category": self.category, "tool_rounds": AGENT_TOOL_ROUNDS},
        }
        if self.agent:
            body["tools"] = TOOLS
        return body

    def add_answer(self, payload: dict[str, Any]) -> bool:
        """Append the assistant message of an answer as a client would; for a tool call
        also the tool results. Returns whether the model asked for a tool (another
        request of the same turn follows)."""
        try:
            message = payload["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            return False
        if not isinstance(message, dict):
            return False
        kept = {k: v for k, v in message.items() if k in ("role", "content", "tool_calls")}
        kept["role"] = "assistant"
        self.messages.append(kept)
        calls = message.get("tool_calls") or []
        for call in calls:
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                result = {"status": "ok", "orders": 2}
                self.messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)}
                )
        return bool(calls)


@dataclass
class ConversationTally:
    """Per-conversation facts (pure; :meth:`record` is called once per request)."""

    conversations: int = 0
    agent_conversations: int = 0
    requests: int = 0
    tool_result_requests: int = 0
    model_switches: int = 0
    sessions_with_switch: int = 0
    unsafe_switches: int = 0
    tier_drops: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    by_tiers: Counter[str] = field(default_factory=Counter)  # "simple>complex" sequences
    #: the same conversations had each request been tiered on its own last user message
    #: (the router before session tiers): model switches and conversations that switched
    per_request_switches: int = 0
    per_request_sessions_with_switch: int = 0
    per_request_observed: int = 0
    _last: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (model, tier)
    _last_cf: dict[str, str] = field(default_factory=dict)  # id -> per-request model
    _simple_arm: dict[str, str] = field(default_factory=dict)  # id -> arm in the simple tier
    _switched: set[str] = field(default_factory=set)
    _switched_cf: set[str] = field(default_factory=set)
    _seen: set[str] = field(default_factory=set)

    def record(
        self,
        conv: Conversation,
        *,
        status: int,
        error_code: str | None,
        model: str | None,
        tier: str | None,
        usage: dict[str, Any] | None,
        tool_result: bool,
        arm: str | None = None,
        request_tier: str | None = None,
    ) -> None:
        """One request's outcome. ``request_tier``: the tier its last user message gets on
        its own (for the per-request counterfactual; None: not computed)."""
        if conv.id not in self._seen:
            self._seen.add(conv.id)
            self.conversations += 1
            self.agent_conversations += int(conv.agent)
        self.requests += 1
        self.tool_result_requests += int(tool_result)
        if status == 400 and error_code == UNSAFE_CODE:
            self.unsafe_switches += 1
        if isinstance(usage, dict):
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            details = usage.get("prompt_tokens_details")
            if isinstance(details, dict):
                self.cached_tokens += int(details.get("cached_tokens") or 0)
        if model is None or tier is None:
            return
        if arm is not None and tier == sw.SIMPLE:
            # the conversation's side of the simple tier's split (a complex turn is labelled
            # stable, which says nothing about it)
            self._simple_arm[conv.id] = arm
        if request_tier is not None:
            self.per_request_observed += 1
            cf = per_request_model(request_tier, self._simple_arm.get(conv.id, "control"))
            prev_cf = self._last_cf.get(conv.id)
            if prev_cf is not None and prev_cf != cf:
                self.per_request_switches += 1
                if conv.id not in self._switched_cf:
                    self._switched_cf.add(conv.id)
                    self.per_request_sessions_with_switch += 1
            self._last_cf[conv.id] = cf
        prev = self._last.get(conv.id)
        if prev is not None:
            if prev[0] != model:
                self.model_switches += 1
                if conv.id not in self._switched:
                    self._switched.add(conv.id)
                    self.sessions_with_switch += 1
            if _rank(tier) < _rank(prev[1]):
                self.tier_drops += 1
            if prev[1] != tier:
                self.by_tiers[f"{prev[1]}>{tier}"] += 1
        self._last[conv.id] = (model, tier)

    def summary(self) -> dict[str, Any]:
        return {
            "conversations": self.conversations,
            "agent_conversations": self.agent_conversations,
            "requests": self.requests,
            "tool_result_requests": self.tool_result_requests,
            "model_switches": self.model_switches,
            "sessions_with_switch": self.sessions_with_switch,
            "unsafe_switches": self.unsafe_switches,
            "tier_drops": self.tier_drops,
            "tier_changes": dict(self.by_tiers),
            "per_request_model_switches": (
                self.per_request_switches if self.per_request_observed else None
            ),
            "per_request_sessions_with_switch": (
                self.per_request_sessions_with_switch if self.per_request_observed else None
            ),
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_hit_ratio": (
                self.cached_tokens / self.prompt_tokens if self.prompt_tokens else None
            ),
        }


def per_request_model(tier: str, arm: str) -> str:
    """The model the lab's policy serves ``tier`` with in ``arm``: the cheap candidate for
    the simple tier's canary arm, the capable baseline otherwise."""
    return sw.CHEAP if tier == sw.SIMPLE and arm == "canary" else sw.CAPABLE


def _rank(tier: str) -> int:
    return TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER)


def conversation_lines(summary: dict[str, Any], stickiness: int | None) -> list[str]:
    """The report's "Conversations" section (markdown lines)."""
    n = summary.get("conversations") or 0
    if not n:
        return []
    ratio = summary.get("cache_hit_ratio")
    lines = [
        "## Conversations",
        "",
        "| | |",
        "|---|---|",
        f"| conversations (agent loops) | {n} ({summary.get('agent_conversations', 0)}) |",
        f"| requests (tool-result turns) | {summary.get('requests', 0)} "
        f"({summary.get('tool_result_requests', 0)}) |",
        f"| model switches per conversation | {summary.get('model_switches', 0) / n:.3f} "
        f"({summary.get('sessions_with_switch', 0)} conversations switched) |",
        f"| unsafe switches (tool result refused by a model that did not issue it) | "
        f"{summary.get('unsafe_switches', 0)} |",
        f"| tier drops within a conversation | {summary.get('tier_drops', 0)} |",
        "| prompt-cache hit ratio (cached / prompt tokens) | "
        + (f"{ratio * 100:.1f} %" if isinstance(ratio, int | float) else "n/a")
        + " |",
    ]
    before = summary.get("per_request_model_switches")
    if isinstance(before, int):
        lines.append(
            f"| the same, had each request been tiered alone (before session tiers; a lower "
            "bound) | "
            f"{before / n:.3f} ({summary.get('per_request_sessions_with_switch', 0)} "
            "conversations switched) |"
        )
    if stickiness is not None:
        lines.append(f"| conversations sent back from the canary to the baseline | {stickiness} |")
    changes = summary.get("tier_changes") or {}
    lines += ["", "Tier changes between consecutive requests of a conversation: "]
    lines[-1] += ", ".join(f"{k}: {v}" for k, v in sorted(changes.items())) or "none"
    lines += [
        "",
        "A model switch is two consecutive requests of one conversation served by different "
        "models; with session tiers they come only from a tier going up or the canary "
        "weight moving. The line below it is the counterfactual: the bundled classifier on "
        "each request's last user message alone, served on the conversation's side of the "
        "simple tier's split (the router before session tiers). A conversation never served "
        "in the simple tier counts as control, since its side is not visible to a client, "
        "so a complex opener on the canary side followed by simple-reading turns, the case "
        "session tiers exist for, is missed: the line is a lower bound. "
        "`bench/router/sessions.py` measures both end to end.",
        "",
    ]
    return lines
