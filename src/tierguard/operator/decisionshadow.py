"""The decision shadow's figures: the transition matrix the routers count, turned into the
share of traffic that would move and the projected cost change. Pure.

* :func:`snapshot` is the classifier as it decides tiers (content digest, model key,
  tier-deciding settings), what ``status.stableClassifier`` keeps;
  :func:`changed` says whether a classifier change has to go through a decision shadow.
* :func:`summarize` reads a matrix ``(from, to) -> requests``: ``from`` is the stable
  classifier's tier (it decides), ``to`` the candidate's. A move *down* is to a tier
  earlier in ``classifier.tiers`` (cheaper), *up* to a later one.
* The projected cost change prices a request of tier *t* at the ``input + output`` price
  per token of the model the rollout puts on that tier (its candidate, else its baseline:
  the steady state the classifier change affects) and assumes the same tokens per
  request in every tier:
  ``sum(n[f,t] * price[t]) / sum(n[f,t] * price[f]) - 1``. It says which way and roughly
  how far the bill moves, not what a tier's users will actually ask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tierguard.api.classifierchange import ClassifierSnapshot, TransitionCell
from tierguard.api.policy import RoutingPolicySpec

#: spec.classifier fields that do not change a tier decision (left out of the snapshot)
_NOT_DECIDING = ("source", "cacheSize")


@dataclass(frozen=True)
class TransitionCounts:
    """The routers' ``tierguard_classifier_transitions_total`` for the revision, summed
    over routers: ``(from, to) -> requests``. ``error``: the query failed."""

    cells: Mapping[tuple[str, str], float] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class ShadowFigures:
    requests: int
    moved_share: float | None
    down_share: float | None
    up_share: float | None
    projected_cost_change: float | None
    cells: list[TransitionCell]

    def describe(self) -> str:
        """One line for status and events."""
        if not self.requests or self.moved_share is None:
            return "no classified request counted yet"
        text = (
            f"{self.requests} requests; {self.moved_share:.1%} would move to another tier "
            f"({self.down_share or 0:.1%} down, {self.up_share or 0:.1%} up)"
        )
        moves = sorted(
            (c for c in self.cells if c.from_tier != c.to_tier), key=lambda c: -c.requests
        )
        if moves:
            top = moves[0]
            text += f"; largest {top.from_tier}→{top.to_tier} {top.requests / self.requests:.1%}"
        if self.projected_cost_change is not None:
            text += f"; projected cost {self.projected_cost_change:+.1%}"
        return text


def snapshot(spec: RoutingPolicySpec, digest: str) -> ClassifierSnapshot:
    """The spec's classifier as it decides (``digest``: its content digest, "" bundled)."""
    settings = spec.classifier.to_k8s()
    for k in _NOT_DECIDING:
        settings.pop(k, None)
    ref = spec.classifier.source.config_map_ref
    return ClassifierSnapshot(digest=digest, key=ref.key if ref else "", settings=settings)


def tier_names(snap: ClassifierSnapshot) -> list[str]:
    return [str(t.get("name")) for t in snap.settings.get("tiers", []) if isinstance(t, dict)]


def changed(stable: ClassifierSnapshot, new: ClassifierSnapshot) -> bool:
    """Whether ``new`` decides differently from ``stable``: another content digest, or
    (the bundled model, no digest) other settings. The same bytes under another
    ConfigMap name or key are the same classifier."""
    if stable.digest != new.digest:
        return True
    return not new.digest and stable.settings != new.settings


def tier_prices(spec: RoutingPolicySpec) -> dict[str, float]:
    """Each tier's price (USD per 1M input + 1M output tokens) of the model the rollout
    puts on it: its candidate, else its baseline."""
    models = {m.name: m for m in spec.models}
    out = {}
    for r in spec.routes:
        m = models.get(r.candidate or r.baseline)
        if m is not None:
            p = m.pricing
            out[r.tier] = p.input_per_million_tokens + p.output_per_million_tokens
    return out


def summarize(
    counts: Mapping[tuple[str, str], float], tiers: Sequence[str], prices: Mapping[str, float]
) -> ShadowFigures:
    """The figures of a transition matrix (cells of unknown tiers are left out)."""
    rank = {t: i for i, t in enumerate(tiers)}
    cells = {
        (f, t): round(n) for (f, t), n in counts.items() if f in rank and t in rank and round(n) > 0
    }
    total = sum(cells.values())
    listed = [
        TransitionCell.model_validate({"from": f, "to": t, "requests": n})
        for (f, t), n in sorted(cells.items(), key=lambda kv: (rank[kv[0][0]], rank[kv[0][1]]))
    ]
    if total == 0:
        return ShadowFigures(0, None, None, None, None, listed)
    down = sum(n for (f, t), n in cells.items() if rank[t] < rank[f])
    up = sum(n for (f, t), n in cells.items() if rank[t] > rank[f])
    cost: float | None = None
    if all(t in prices for t in tiers):
        before = sum(n * prices[f] for (f, _), n in cells.items())
        after = sum(n * prices[t] for (_, t), n in cells.items())
        cost = after / before - 1.0 if before > 0 else None
    return ShadowFigures(total, (down + up) / total, down / total, up / total, cost, listed)
