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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tierguard.api.enums import Tiering
from tierguard.api.routerconfig import ClassifierConfig
from tierguard.classifier.runtime import Classification, Classifier
from tierguard.router.chat import classifier_text
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


def init_cells(counter: Any, policy: str, revision: str, tiers: list[str]) -> None:
    """Create every (from, to) series at 0, so the first transition of a cell is an
    increase Prometheus sees (tiers^2 series)."""
    for a in tiers:
        for b in tiers:
            counter.labels(policy, revision, a, b)
