"""Session tiers: a conversation's tier only goes up. Pure (the classifier is passed in).

Every chat request resends the conversation, so the router needs no store to know a
session's history: with ``classifier.tiering: Session`` a request's tier is the highest
tier among its user messages (optionally only the last ``classifier.sessionMessages``).
Each message is classified on its own and the result cached by the hash of its text
(:class:`TierCache`, a bounded LRU), so a conversation's n-th turn costs one
classification (its new message), not n. The cache only saves work: a replica that has
never seen the conversation classifies the same messages and reaches the same tier, so
every replica agrees without sharing anything.

Consequences, each a unit test in ``tests/unit/router/test_tiering.py``:

* monotone: appending messages never lowers the tier (max over a growing set), so
  "ok thanks, where is my order?" after a refund dispute stays on the complex tier;
* a turn without new user text (tool results, an assistant prefill) has exactly the tier
  of the turn that issued the call (the same user messages);
* :attr:`SessionTier.previous` is the tier without the last user message, so a tier
  change (from, to) is counted without remembering anything.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tierguard.classifier.runtime import Classification


def message_text(content: Any) -> str:
    """The text parts of a message's content (images and tool payloads ignored)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def user_texts(messages: list[dict[str, Any]], max_chars: int) -> list[str]:
    """The text of every user message, in order, each cut to ``max_chars``."""
    return [message_text(m.get("content"))[:max_chars] for m in messages if m.get("role") == "user"]


def has_new_user_text(messages: list[dict[str, Any]]) -> bool:
    """Whether the request ends with a user message (a new question to classify) rather
    than a tool result or an assistant turn (the continuation of an earlier turn)."""
    return bool(messages) and messages[-1].get("role") == "user"


class TierCache:
    """Classifications by message hash, least recently used evicted past ``size``.

    Keyed by sha256 of the text so the cache holds no message text. ``size`` 0 disables
    it (every lookup misses). Not thread-safe: the router serves from one event loop.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[bytes, Classification] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "replace")).digest()

    def get(self, text: str) -> Classification | None:
        k = self.key(text)
        hit = self._items.get(k)
        if hit is None:
            self.misses += 1
            return None
        self._items.move_to_end(k)
        self.hits += 1
        return hit

    def put(self, text: str, result: Classification) -> None:
        if self.size <= 0:
            return
        k = self.key(text)
        self._items[k] = result
        self._items.move_to_end(k)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class SessionTier:
    """A request's tier and how it was reached."""

    tier: str
    #: the tier of the conversation before its last user message (None: first message)
    previous: str | None
    #: probabilities of the message that decided the tier (None: nothing classified)
    probabilities: dict[str, float] | None
    #: how many messages had to be classified (cache misses)
    classified: int
    #: the category label of the message that decided the tier (None: no category head)
    category: str | None = None


def session_tier(
    texts: Sequence[str],
    tiers: Sequence[str],
    classify: Callable[[list[str]], list[Classification]],
    cache: TierCache,
    *,
    last_n: int = 0,
    empty_tier: str | None = None,
) -> SessionTier:
    """The highest tier among ``texts`` (the user messages, oldest first), the last
    ``last_n`` only when > 0. ``classify`` scores a batch of texts (only cache misses
    are sent). No user text: ``empty_tier`` (default the cheapest tier)."""
    window = list(texts[-last_n:]) if last_n > 0 else list(texts)
    if not window:
        return SessionTier(empty_tier or tiers[0], None, None, 0)
    results: list[Classification | None] = [cache.get(t) for t in window]
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        fresh = classify([window[i] for i in missing])
        for i, r in zip(missing, fresh, strict=True):
            results[i] = r
            cache.put(window[i], r)
    rank = {t: i for i, t in enumerate(tiers)}
    done = [r for r in results if r is not None]

    def top(rs: list[Classification]) -> Classification:
        # the highest tier; among equals the latest message (its probabilities are logged)
        best = rs[0]
        for r in rs[1:]:
            if rank.get(r.tier, len(tiers) - 1) >= rank.get(best.tier, len(tiers) - 1):
                best = r
        return best

    current = top(done)
    classified = len(missing)
    previous: str | None = None
    if len(texts) > 1:
        # the same window rule applied to the conversation before its last user message
        before = list(texts[:-1])
        prior_window = before[-last_n:] if last_n > 0 else before
        by_text = dict(zip(window, done, strict=True))
        prior: list[Classification] = []
        for t in prior_window:
            known = by_text.get(t) or cache.get(t)
            if known is None:  # only outside the window when last_n > 0 (one message)
                known = classify([t])[0]
                cache.put(t, known)
                classified += 1
            prior.append(known)
        previous = top(prior).tier
    return SessionTier(current.tier, previous, current.probabilities, classified, current.category)
