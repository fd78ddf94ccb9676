"""What a conversation turn adds to the metrics and the decision log (see
:mod:`tierguard.router.conversation` for how the turn was planned).

At plan time (:func:`observe_plan`): the key source, a session tier change (from, to),
classifier cache hits and misses, a context-window escalation. Once served
(:func:`observe_served`): the stateful-turn outcome (locked / fallback / unlocked), an
unsafe switch should one ever happen, the cached prompt tokens, and the decision-log
fields (:class:`TurnFields`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tierguard.api import metrics as mdefs
from tierguard.router.conversation import TurnPlan
from tierguard.router.ladder import Ladder
from tierguard.router.metrics import RouterMetrics


def cached_tokens(usage: dict[str, Any] | None) -> int:
    """``usage.prompt_tokens_details.cached_tokens`` (OpenAI's field; garbage is 0)."""
    if not isinstance(usage, dict):
        return 0
    details = usage.get("prompt_tokens_details")
    value = details.get("cached_tokens") if isinstance(details, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(0, int(value))


def observe_plan(m: RouterMetrics, policy: str, turn: TurnPlan) -> None:
    route = turn.route
    m.child(m.session_keys, policy, str(turn.key_source)).inc()
    if turn.previous_tier is not None and turn.previous_tier != route.tier:
        m.session_tier_changes.labels(policy, turn.previous_tier, route.tier).inc()
    if turn.classified or turn.cache_hits:
        m.child(m.classifier_cache, policy, mdefs.CACHE_HIT).inc(turn.cache_hits)
        m.child(m.classifier_cache, policy, mdefs.CACHE_MISS).inc(turn.classified)
    if turn.context_escalation is not None:
        src, dst = turn.context_escalation
        m.escalations.labels(
            policy, route.tier, str(route.arm), src, dst, mdefs.ESCALATION_CONTEXT
        ).inc()
    first = route.chain[0] if route.chain else None
    if turn.lock_lost or (turn.lock is not None and first != turn.lock.model):
        m.unsafe_switches.labels(policy, route.tier).inc()


@dataclass(frozen=True)
class TurnFields:
    """The decision log's conversation fields (None: left out of the line)."""

    key_source: str
    stateful: bool | None = None
    locked_to: str | None = None
    tier_fallback_from: str | None = None
    context_escalation: str | None = None
    cached_tokens: int | None = None


def observe_served(
    m: RouterMetrics,
    policy: str,
    turn: TurnPlan,
    ladder: Ladder,
    *,
    model: str,
    usage: dict[str, Any] | None,
) -> TurnFields:
    route = turn.route
    tier, arm = route.tier, str(route.arm)
    labels = (policy, tier, arm, model)
    cached = cached_tokens(usage)
    if usage is not None:
        m.tokens.labels(*labels, mdefs.KIND_CACHED).inc(cached)
    if turn.stateful:
        if turn.lock is None:
            outcome = mdefs.STATEFUL_UNLOCKED
        elif model == turn.lock.model:
            outcome = mdefs.STATEFUL_LOCKED
        else:
            outcome = mdefs.STATEFUL_FALLBACK
        m.stateful_turns.labels(*labels, outcome).inc()
    served_rank = ladder.ranks.get(model)
    tier_rank = ladder.rank_of_tier(tier)
    if turn.lock is not None and served_rank is not None and served_rank < tier_rank:
        m.unsafe_switches.labels(policy, tier).inc()  # cannot happen: chains only go up
    fallback_from = None
    if model != route.chain[0] and served_rank is not None and served_rank != tier_rank:
        fallback_from = tier
    return TurnFields(
        key_source=str(turn.key_source),
        stateful=turn.stateful or None,
        locked_to=turn.lock.model if turn.lock else None,
        tier_fallback_from=fallback_from,
        context_escalation=(
            "->".join(turn.context_escalation) if turn.context_escalation else None
        ),
        cached_tokens=cached if usage is not None else None,
    )
