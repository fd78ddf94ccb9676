"""Decision shadow of a classifier change: the candidate classifier scores every
classified request beside the stable one, which decides; the router counts the pair
(stable tier → candidate tier) in ``tierguard_classifier_transitions_total``.

Only while the config names a ``shadowClassifier`` (the operator renders one during the
first stage of a classifier change): otherwise :attr:`RouterState.shadow` is None and
the request path does not touch this module. The candidate has its own per-message cache
(:class:`~tierguard.router.tiering.TierCache`), so with session tiering a turn costs one
extra classification (its new message), as for the stable classifier.

The candidate's tier is reached by the same rule as the deciding tier (session tiering or
``Request``, its own ``input`` and ``maxInputChars``), so a cell (from, to) says where the
candidate would have put this very request. Locked turns (tool results), requests without
text and classifier failures are not counted: neither classifier decided them.

**Classifier canary.** With ``classifierCanaryWeight`` > 0 the candidate *decides* for
that share of sessions (:func:`picker`: sticky by the stickiness key, with a salt of its
own so the classifier canary and the model canary split users independently). Every
classified request then carries its cell (stable tier, candidate tier) and its decider;
the router counts requests, cost and feedback per cell and decider
(``tierguard_classifier_cell_*``), so the operator compares, within one cell, the
sessions the candidate decided with those the stable classifier decided.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tierguard.api.enums import Tiering
from tierguard.api.metrics import DECIDER_CANDIDATE, DECIDER_STABLE
from tierguard.api.routerconfig import ClassifierConfig
from tierguard.classifier.runtime import Classification, Classifier
from tierguard.router.chat import classifier_text
from tierguard.router.split import bucket, canary_buckets
from tierguard.router.tiering import TierCache, session_tier, user_texts

log = logging.getLogger(__name__)


@dataclass
class DecisionShadow:
    """The candidate classifier of one config generation."""

    config: ClassifierConfig
    classifier: Classifier
    cache: TierCache
    #: what decides whether a reload must load it again (as ``RouterState.classifier_key``)
    key: tuple[Any, ...]


def candidate_tier(
    c: ClassifierConfig,
    classify: Callable[[list[str]], list[Classification]],
    cache: TierCache,
    messages: list[dict[str, Any]],
) -> str | None:
    """The tier the candidate gives this request (None: nothing to classify, or it
    failed: not counted)."""
    tiers = [t.name for t in c.tiers]
    try:
        if c.tiering is Tiering.REQUEST:
            text = classifier_text(messages, c.input, c.max_input_chars)
            if not text.strip():
                return None
            return classify([text])[0].tier
        texts = [t for t in user_texts(messages, c.max_input_chars) if t.strip()]
        if not texts:
            return None
        return session_tier(texts, tiers, classify, cache, last_n=c.session_messages).tier
    except Exception:
        log.exception("the candidate classifier failed (decision shadow); not counted")
        return None


@dataclass(frozen=True)
class ClassifierPick:
    """A routed request's cell and which classifier decided its tier."""

    from_tier: str  # the stable classifier's tier
    to_tier: str  # the candidate's
    decider: str  # metrics.DECIDER_STABLE or DECIDER_CANDIDATE

    @property
    def tier(self) -> str:
        return self.to_tier if self.decider == DECIDER_CANDIDATE else self.from_tier

    def as_list(self) -> tuple[str, str, str]:
        return (self.from_tier, self.to_tier, self.decider)


def canary_salt(salt: str) -> str:
    """The classifier canary's own split salt: independent of the model canary's arms."""
    return f"{salt}/classifier"


def picker(
    shadow: DecisionShadow, salt: str, weight: float
) -> Callable[[str, list[dict[str, Any]], str], ClassifierPick | None]:
    """``pick(stable tier, messages, session key)``: the cell of the request and which
    classifier decides it. Sessions whose bucket (hashed with :func:`canary_salt`) falls
    below ``weight`` percent are decided by the candidate, the others by the stable
    classifier; the same session gets the same decider on every replica and every turn,
    and raising the weight only moves sessions to the candidate. None: the candidate
    could not score it (the stable tier stands, nothing is counted)."""
    cut = canary_buckets(weight)
    csalt = canary_salt(salt)

    def pick(tier: str, messages: list[dict[str, Any]], key: str) -> ClassifierPick | None:
        to = candidate_tier(shadow.config, shadow.classifier.classify_batch, shadow.cache, messages)
        if to is None:
            return None
        decider = DECIDER_CANDIDATE if cut and bucket(csalt, key) < cut else DECIDER_STABLE
        return ClassifierPick(tier, to, decider)

    return pick


def init_cells(counter: Any, policy: str, revision: str, tiers: list[str]) -> None:
    """Create every (from, to) series at 0, so the first transition of a cell is an
    increase Prometheus sees (tiers^2 series)."""
    for a in tiers:
        for b in tiers:
            counter.labels(policy, revision, a, b)
