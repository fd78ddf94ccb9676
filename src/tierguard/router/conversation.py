"""Planning a routed request as a turn of a conversation. Pure (CPU only: the classifier
runs in-process; no network, no clock).

The steps, each in its own module:

1. the session key and its source (:mod:`~tierguard.router.session`) → the bucket and arm
   (:mod:`~tierguard.router.split`, unchanged: ``hash(salt, key)``);
2. a turn that ends with tool results or an assistant message is *locked* to the model,
   tier and arm that issued its tool call (:mod:`~tierguard.router.toolcalls`); its
   fallbacks are only that tier's or higher;
3. otherwise the tier is the session tier, the highest among the user messages
   (:mod:`~tierguard.router.tiering`), or with ``classifier.tiering: Request`` this
   request's classifier input alone;
4. the fallback chain keeps only models of the chosen tier or higher, and a prompt too
   long for the serving model climbs to the next that fits
   (:mod:`~tierguard.router.ladder`).

The result is the same on every replica for the same request: the key, the tiers, the
lock and the split are all functions of the request and the config.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tierguard.api.enums import Arm, KeySource, Tiering
from tierguard.api.routerconfig import Route, RouterConfig
from tierguard.classifier.runtime import Classification
from tierguard.router.decisionshadow import ClassifierPick
from tierguard.router.ladder import Ladder, estimate_tokens, fit_context, upward_chain
from tierguard.router.session import session_key
from tierguard.router.split import RoutePlan, bucket, build_chain, plan_routed
from tierguard.router.tiering import TierCache, session_tier, user_texts
from tierguard.router.toolcalls import Lock, find_lock, has_wrapped_ids, unwrap_messages

log = logging.getLogger(__name__)

#: TurnPlan.source values (the decision log's classification source)
SOURCE_CLASSIFIER = "classifier"
SOURCE_CLASSIFIER_ERROR = "classifier_error"
SOURCE_NO_TEXT = "no_text"
SOURCE_LOCKED = "tool_call_lock"


@dataclass(frozen=True)
class TurnPlan:
    """A routed request's plan and how it was reached (for metrics and the decision log)."""

    route: RoutePlan
    key_source: KeySource
    probabilities: dict[str, float] | None
    #: the conversation's tier before its newest user message (tier change metric)
    previous_tier: str | None
    #: the turn has no new user text (tool results or an assistant message last)
    stateful: bool
    #: the issuing route of a stateful turn, when a verified tool-call id names it
    lock: Lock | None
    #: the messages to send upstream (tool-call ids unwrapped)
    messages: list[dict[str, Any]]
    #: how the tier was reached (a ``SOURCE_*`` value)
    source: str
    #: (from model, to model) when the prompt did not fit the serving model
    context_escalation: tuple[str, str] | None = None
    #: no model of the ladder fits the prompt (sent as planned; the upstream decides)
    context_overflow: bool = False
    prompt_tokens_estimate: int = 0
    classified: int = 0
    cache_hits: int = 0
    #: the category head's label for the message that decided the tier (slice source
    #: Classifier); None when nothing was classified or the model has no category head
    category: str | None = None
    #: the lock named a model this config no longer has (counted as an unsafe switch)
    lock_lost: bool = False
    #: the stickiness key (only ever exported hashed: gen_ai.conversation.id)
    session_key: str = field(default="", repr=False)
    #: the cell and decider while a classifier change is in progress (None otherwise)
    classifier_pick: ClassifierPick | None = None


@dataclass(frozen=True)
class Planner:
    """What planning needs from one config generation."""

    config: RouterConfig
    routes: Mapping[str, Route]
    budgets: Mapping[str, float]
    ladder: Ladder
    cache: TierCache
    classify: Callable[[list[str]], list[Classification]]
    signing_key: bytes
    #: tier for a request with no user text to classify (unset: the last, most capable)
    no_text_tier: str | None = None
    #: a classifier change in progress: the candidate scores (and for the canary's
    #: sessions decides) the tier (:func:`tierguard.router.decisionshadow.picker`)
    pick: Callable[[str, list[dict[str, Any]], str], ClassifierPick | None] | None = None


@dataclass(frozen=True)
class _Tiered:
    tier: str
    probabilities: dict[str, float] | None
    previous: str | None
    source: str
    classified: int = 0
    cache_hits: int = 0
    category: str | None = None


def _tier(p: Planner, messages: list[dict[str, Any]], request_text: str) -> _Tiered:
    """The tier of an unlocked turn. A classifier failure routes to the catch-all (last)
    tier, never fails the request; nothing to classify goes to ``no_text_tier``."""
    c = p.config.classifier
    tiers = [t.name for t in c.tiers]
    no_text = p.no_text_tier or tiers[-1]
    try:
        if c.tiering is Tiering.REQUEST:
            if not request_text.strip():
                return _Tiered(no_text, None, None, SOURCE_NO_TEXT)
            result = p.classify([request_text])[0]
            return _Tiered(
                result.tier,
                result.probabilities,
                None,
                SOURCE_CLASSIFIER,
                1,
                category=result.category,
            )
        texts = [t for t in user_texts(messages, c.max_input_chars) if t.strip()]
        if not texts:
            return _Tiered(no_text, None, None, SOURCE_NO_TEXT)
        hits_before = p.cache.hits
        st = session_tier(texts, tiers, p.classify, p.cache, last_n=c.session_messages)
        return _Tiered(
            st.tier,
            st.probabilities,
            st.previous,
            SOURCE_CLASSIFIER,
            st.classified,
            p.cache.hits - hits_before,
            st.category,
        )
    except Exception:
        log.exception("classifier failed; routing to the catch-all tier")
        return _Tiered(tiers[-1], None, None, SOURCE_CLASSIFIER_ERROR)


def plan_turn(
    p: Planner,
    *,
    messages: list[dict[str, Any]],
    body: dict[str, Any],
    user: str | None,
    headers: Mapping[str, str],
    request_id: str,
    request_text: str,
) -> TurnPlan:
    """The plan of one routed request (see the module docstring). ``request_text`` is the
    classifier input for ``tiering: Request``."""
    config = p.config
    sk = session_key(
        config.stickiness,
        session_header=headers.get(config.stickiness.session_header),
        user_header=headers.get(config.stickiness.header),
        body=body,
        user=user,
        messages=messages,
        request_id=request_id,
    )
    key_bucket = bucket(config.salt, sk.key)
    stateful = bool(messages) and messages[-1].get("role") != "user"
    lock = find_lock(messages, p.signing_key) if stateful else None
    upstream_messages = (
        unwrap_messages(messages, p.signing_key) if has_wrapped_ids(messages) else messages
    )
    lock_lost = lock is not None and lock.model not in p.ladder.windows
    if lock is not None and not lock_lost and lock.tier in p.routes:
        route = p.routes[lock.tier]
        try:
            arm = Arm(lock.arm)
        except ValueError:
            arm = Arm.STABLE
        chain = upward_chain(
            p.ladder, lock.tier, build_chain(lock.model, [route.baseline, *route.fallbacks])
        )
        plan = RoutePlan(
            tier=lock.tier,
            arm=arm,
            chain=chain,
            latency_budget_s=p.budgets[lock.tier],
            bucket=key_bucket,
            baseline=route.baseline,
        )
        return TurnPlan(
            route=plan,
            key_source=sk.source,
            probabilities=None,
            previous_tier=None,
            stateful=True,
            lock=lock,
            messages=upstream_messages,
            source=SOURCE_LOCKED,
            session_key=sk.key,
        )
    tiered = _tier(p, messages, request_text)
    tier = tiered.tier
    pick = None
    if p.pick is not None and tiered.source == SOURCE_CLASSIFIER:
        pick = p.pick(tier, messages, sk.key)
        if pick is not None:
            tier = pick.tier
    route = p.routes[tier]
    plan = plan_routed(route, config.weight(tier), key_bucket, p.budgets[tier])
    plan = dataclasses.replace(plan, chain=upward_chain(p.ladder, tier, plan.chain))
    tokens = estimate_tokens(upstream_messages, body.get("tools"))
    fit = fit_context(p.ladder, tier, plan.chain, tokens)
    if fit.escalated is not None:
        plan = dataclasses.replace(plan, chain=fit.chain)
    return TurnPlan(
        route=plan,
        key_source=sk.source,
        probabilities=tiered.probabilities,
        # a stateful turn's change (if any) was counted by the turn that issued the call
        previous_tier=None if stateful else tiered.previous,
        stateful=stateful,
        lock=None,
        messages=upstream_messages,
        source=tiered.source,
        context_escalation=fit.escalated,
        context_overflow=fit.overflow,
        prompt_tokens_estimate=tokens,
        classified=tiered.classified,
        cache_hits=tiered.cache_hits,
        category=tiered.category,
        lock_lost=lock_lost,
        session_key=sk.key,
        classifier_pick=pick,
    )
