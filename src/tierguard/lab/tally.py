"""What the simulated users experienced: one :class:`Outcome` per request, summed up in
a :class:`Tally` per tier, arm, model and category, and the stickiness check. Pure.

Filled by the traffic generator (:mod:`tierguard.lab.traffic`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

#: Stage token while a new weight propagates to the routers (stickiness is not judged);
#: otherwise the token is the number of weight decreases (rollbacks) seen so far.
STAGE_SETTLING: Final = -1


@dataclass(frozen=True)
class RouteInfo:
    """What the router told us about how it served a request."""

    tier: str
    arm: str
    model: str


@dataclass(frozen=True)
class Outcome:
    """One request as the simulated user experienced it."""

    t: float  # seconds since the generator started
    user: str
    category: str
    true_tier: str
    route: RouteInfo | None
    status: int  # HTTP status; 0 for a connection failure
    latency_s: float
    satisfied: bool | None  # None when the request failed
    rating: str | None
    stage: int = 0  # the supervisor's stage token at send time
    satisfied_if_baseline: bool | None = None  # counterfactual: served by the baseline
    #: the assignment unit (a conversation's id); None: the user
    unit: str | None = None


@dataclass
class Tally:
    """Running counts of what users experienced (pure; updated by :meth:`record`)."""

    requests: int = 0
    failed: int = 0
    ratings: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # tier,arm,rating
    served: Counter[tuple[str, str]] = field(default_factory=Counter)  # (tier, arm)
    satisfied: Counter[tuple[str, str]] = field(default_factory=Counter)  # (tier, arm)
    by_model: Counter[str] = field(default_factory=Counter)
    cat_served: Counter[tuple[str, str]] = field(default_factory=Counter)  # (category, model)
    cat_satisfied: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: true tier -> routed tier (how the classifier treated each true tier)
    routing: Counter[tuple[str, str]] = field(default_factory=Counter)
    arm_switches: int = 0
    #: requests whose user would have been satisfied had the baseline served them
    satisfied_if_baseline: int = 0
    latencies: list[float] = field(default_factory=list)
    _user_arm: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)

    def record(self, o: Outcome) -> None:
        self.requests += 1
        self.latencies.append(o.latency_s)
        if o.route is None or o.satisfied is None:
            self.failed += 1
            return
        key = (o.route.tier, o.route.arm)
        if o.satisfied_if_baseline:
            self.satisfied_if_baseline += 1
        self.served[key] += 1
        self.by_model[o.route.model] += 1
        self.cat_served[(o.category, o.route.model)] += 1
        self.routing[(o.true_tier, o.route.tier)] += 1
        if o.satisfied:
            self.satisfied[key] += 1
            self.cat_satisfied[(o.category, o.route.model)] += 1
        if o.rating is not None:
            self.ratings[(o.route.tier, o.route.arm, o.rating)] += 1
        # Stickiness: raising the weight only moves users from the baseline to the
        # candidate, so a user served by the canary must never be sent back to the
        # baseline (control or holdback) while the weight has not gone down. The stage
        # token counts weight decreases (rollbacks); STAGE_SETTLING marks the seconds
        # after any weight change while the routers pick up the new ConfigMap.
        if o.route.arm in ("control", "canary", "holdback") and o.stage != STAGE_SETTLING:
            key_user = (o.unit or o.user, o.route.tier)
            prev = self._user_arm.get(key_user)
            moved_back = prev is not None and prev[1] == "canary" and o.route.arm != "canary"
            if moved_back and prev is not None and prev[0] == o.stage:
                self.arm_switches += 1
            self._user_arm[key_user] = (o.stage, o.route.arm)

    # -- derived figures

    def satisfaction(self, tier: str | None = None, arm: str | None = None) -> float | None:
        """Share of satisfied users among served requests (None without data)."""
        keys = [k for k in self.served if (tier is None or k[0] == tier)]
        keys = [k for k in keys if arm is None or k[1] == arm]
        n = sum(self.served[k] for k in keys)
        return None if n == 0 else sum(self.satisfied[k] for k in keys) / n

    def served_total(self) -> int:
        return sum(self.served.values())

    def satisfied_total(self) -> int:
        return sum(self.satisfied.values())

    def rated(self) -> int:
        return sum(self.ratings.values())

    def thumbs_down_share(self, tier: str | None = None, arm: str | None = None) -> float | None:
        down = sum(
            v
            for (t, a, r), v in self.ratings.items()
            if r == "down" and (tier is None or t == tier) and (arm is None or a == arm)
        )
        total = sum(
            v
            for (t, a, _), v in self.ratings.items()
            if (tier is None or t == tier) and (arm is None or a == arm)
        )
        return None if total == 0 else down / total

    def category_satisfaction(self) -> dict[str, dict[str, tuple[int, float]]]:
        """category -> model -> (served, satisfied share)."""
        out: dict[str, dict[str, tuple[int, float]]] = defaultdict(dict)
        for (cat, model), n in sorted(self.cat_served.items()):
            out[cat][model] = (n, self.cat_satisfied[(cat, model)] / n)
        return dict(out)

    def latency_quantile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))]

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly snapshot for the report."""
        return {
            "requests": self.requests,
            "failed": self.failed,
            "rated": self.rated(),
            "satisfied_total": self.satisfied_total(),
            "satisfied_if_baseline": self.satisfied_if_baseline,
            "arm_switches": self.arm_switches,
            "latency_p50_s": self.latency_quantile(0.50),
            "latency_p95_s": self.latency_quantile(0.95),
            "latency_p99_s": self.latency_quantile(0.99),
            "served": {f"{t}/{a}": n for (t, a), n in sorted(self.served.items())},
            "satisfied": {f"{t}/{a}": n for (t, a), n in sorted(self.satisfied.items())},
            "by_model": dict(self.by_model),
            "routing": {f"{a}->{b}": n for (a, b), n in sorted(self.routing.items())},
            "categories": {
                c: {m: {"served": n, "satisfaction": s} for m, (n, s) in v.items()}
                for c, v in self.category_satisfaction().items()
            },
        }
