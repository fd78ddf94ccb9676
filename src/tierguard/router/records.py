"""The typed records a chat request passes along its path (see
:mod:`tierguard.router.pipeline`): its :class:`Classification`, the :class:`Planned`
route, what the client got (:class:`Delivery`) and what it cost (:class:`Usage`, priced
by :func:`usage_cost`, the one place cost is computed). Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tierguard.api.policy import Pricing
from tierguard.router.chat import ChatRequest
from tierguard.router.conversation import TurnPlan
from tierguard.router.split import RoutePlan

CLIENT_DISCONNECTED = "client_disconnected"

#: Classification.source of a pinned request (routed ones: the values of
#: ``tierguard.router.conversation.SOURCE_*``)
SOURCE_PINNED = "pinned"


@dataclass(frozen=True)
class Classification:
    """The tier of a request and why: ``source`` is ``classifier`` (the model decided,
    ``probabilities`` set), ``no_text`` (no user text to classify: the configured
    ``classifier.noTextTier``, by default the most capable tier), ``classifier_error``
    (it failed: the catch-all tier) or ``pinned`` (the client named a model; nothing was
    classified)."""

    tier: str
    probabilities: dict[str, float] | None
    source: str


@dataclass(frozen=True)
class Planned:
    """A request with its route decided: everything later steps need to know about it."""

    req: ChatRequest
    request_id: str
    route: RoutePlan
    classification: Classification
    wall_start: float  # time.time() at arrival (log timestamps, decision ids)
    started: float  # loop.time() at arrival
    deadline: float  # loop.time() by which the request must be answered
    #: how a routed request was planned as a turn of its conversation (None: pinned)
    turn: TurnPlan | None = None
    #: seconds the classifier model spent on this request (0: not classified)
    classify_s: float = 0.0
    #: ((slice, value), ...) per declared slice (analysis.slices); () when pinned
    slices: tuple[tuple[str, str], ...] = ()

    @property
    def arm(self) -> str:
        return str(self.route.arm)

    @property
    def tier(self) -> str:
        return self.route.tier


@dataclass(frozen=True)
class Usage:
    """Tokens of one answer and what they cost (computed in one place: :func:`usage_cost`)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


def usage_cost(pricing: Pricing, usage: dict[str, Any] | None) -> Usage:
    """An upstream ``usage`` object priced with the model's pricing (no usage: zero). The
    prompt's cached part (``prompt_tokens_details.cached_tokens``) is priced at
    ``cachedInputPerMillionTokens`` when the model declares it."""
    if not usage:
        return Usage()
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = min(prompt, _count(details.get("cached_tokens"))) if isinstance(details, dict) else 0
    cached_price = pricing.cached_input_per_million_tokens
    if cached_price is None:
        cached_price = pricing.input_per_million_tokens
    cost = (
        (prompt - cached) * pricing.input_per_million_tokens
        + cached * cached_price
        + completion * pricing.output_per_million_tokens
    ) / 1e6
    return Usage(prompt, completion, cost)


#: more tokens than any answer has: a count above it is garbage, not a bill
MAX_TOKENS = 10**12


def _count(value: Any) -> int:
    """A token count from an upstream's usage object (garbage counts as 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(0, int(value)) if value <= MAX_TOKENS else 0


@dataclass(frozen=True)
class Delivery:
    """What the client got from a served answer (reported by :mod:`~tierguard.router.relay`).

    ``failed`` is why a stream ended early (``None``: complete): an ``ERROR_REASONS``
    label when the upstream failed (``truncated``, ``stream_error``, ``timeout`` ...),
    ``deadline_exceeded``, or :data:`CLIENT_DISCONNECTED` (the client leaving, not the
    model failing)."""

    ttft_s: float
    usage: dict[str, Any] | None
    answer: str | None
    failed: str | None = None
    #: seconds the router spent rewriting the stream's events (its own time, per chunk)
    rewrite_s: float = 0.0
