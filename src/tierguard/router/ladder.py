"""The tier ladder: fallbacks only go up, and a prompt too long for a model climbs. Pure.

A model's *rank* is the highest tier (index in ``classifier.tiers``, cheapest first)
whose route names it as baseline or candidate. A model that no route serves (a dedicated
backup named only in ``fallbacks``) has no rank and may serve any tier's fallback.

* :func:`upward_chain` drops the fallbacks ranked below the request's tier, so a failure
  of the capable model never hands a complex question to the cheap one (the decision log
  records ``tier_fallback_from`` when a higher tier's model serves it).
* :func:`fit_context` moves a request whose estimated prompt exceeds the serving model's
  ``contextWindow`` to the first model, in chain order and then up the ladder, that fits
  it. It is its own escalation reason (``context_window``), decided before any call, so
  the request is answered by the chain's first model with outcome ``ok``: a long
  conversation is not a quality failure of the cheap model and does not count in the
  ErrorRate gate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: characters per token for the prompt estimate (OpenAI's rule of thumb for English;
#: conservative for code, which has more tokens per character than prose has fewer)
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Ladder:
    """Tier order and what each model can do, from one config generation."""

    tiers: tuple[str, ...]
    ranks: Mapping[str, int]  # model -> highest tier index it serves
    windows: Mapping[str, int | None]  # model -> context window (None: unlimited)
    #: per tier, the models that serve it (baseline first, then candidate, then fallbacks)
    tier_models: Mapping[str, tuple[str, ...]]

    def rank_of_tier(self, tier: str) -> int:
        return self.tiers.index(tier) if tier in self.tiers else len(self.tiers) - 1

    def tier_of_model(self, model: str) -> str | None:
        r = self.ranks.get(model)
        return None if r is None else self.tiers[r]


def build_ladder(
    tiers: Sequence[str],
    routes: Sequence[tuple[str, str, str | None, Sequence[str]]],
    windows: Mapping[str, int | None],
) -> Ladder:
    """``routes`` as (tier, baseline, candidate, fallbacks)."""
    index = {t: i for i, t in enumerate(tiers)}
    ranks: dict[str, int] = {}
    tier_models: dict[str, tuple[str, ...]] = {}
    for tier, baseline, candidate, fallbacks in routes:
        i = index.get(tier, len(tiers) - 1)
        for m in (baseline, candidate):
            if m is not None:
                ranks[m] = max(ranks.get(m, i), i)
        names = [baseline, *([candidate] if candidate else []), *fallbacks]
        tier_models[tier] = tuple(dict.fromkeys(names))
    return Ladder(tuple(tiers), ranks, dict(windows), tier_models)


def upward_chain(ladder: Ladder, tier: str, chain: Sequence[str]) -> tuple[str, ...]:
    """``chain`` without the fallbacks ranked below ``tier`` (the first model, which the
    plan chose, always stays)."""
    floor = ladder.rank_of_tier(tier)
    out = [chain[0]] if chain else []
    for m in chain[1:]:
        r = ladder.ranks.get(m)
        if (r is None or r >= floor) and m not in out:
            out.append(m)
    return tuple(out)


def estimate_tokens(messages: Sequence[Any], extra: Any = None) -> int:
    """A prompt size estimate: serialized characters / :data:`CHARS_PER_TOKEN` over the
    messages (and ``extra``, e.g. the tool definitions). Errs high (JSON punctuation
    counts), which is the safe side for a window check."""
    size = len(json.dumps(messages, ensure_ascii=False, separators=(",", ":")))
    if extra is not None:
        size += len(json.dumps(extra, ensure_ascii=False, separators=(",", ":")))
    return size // CHARS_PER_TOKEN + 1


def fits(ladder: Ladder, model: str, tokens: int) -> bool:
    window = ladder.windows.get(model)
    return window is None or tokens <= window


@dataclass(frozen=True)
class ContextFit:
    chain: tuple[str, ...]
    #: (from, to) when the serving model changed because the prompt did not fit
    escalated: tuple[str, str] | None = None
    #: no model fits: the chain is unchanged and the upstream will say so
    overflow: bool = False


def fit_context(ladder: Ladder, tier: str, chain: Sequence[str], tokens: int) -> ContextFit:
    """The chain for a prompt of ``tokens``: the models of ``chain`` that fit, then the
    models of the tiers above that fit (cheapest tier first), in that order."""
    chain = tuple(chain)
    if not chain or fits(ladder, chain[0], tokens):
        return ContextFit(chain)
    candidates = list(chain[1:])
    for higher in ladder.tiers[ladder.rank_of_tier(tier) + 1 :]:
        candidates += ladder.tier_models.get(higher, ())
    floor = ladder.rank_of_tier(tier)
    fitting = [
        m
        for m in dict.fromkeys(candidates)
        if m != chain[0]
        and fits(ladder, m, tokens)
        and ladder.ranks.get(m, floor) >= floor  # never down the ladder
    ]
    if not fitting:
        return ContextFit(chain, overflow=True)
    return ContextFit(tuple(fitting), escalated=(chain[0], fitting[0]))
