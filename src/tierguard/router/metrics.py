"""prometheus_client objects built from :mod:`tierguard.api.metrics` (the contract).

No metric name, label or bucket is written here: everything comes from the
``MetricDef`` objects, so the router, the operator's queries, the alerts and
docs/metrics.md cannot drift apart. Each app gets a private ``CollectorRegistry`` (tests
run several apps in one process). Latency histograms get the policy's SLO latency
objectives added to their buckets so the operator's "share slower than objective" is an
exact bucket read, not an interpolation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from tierguard.api import metrics as m
from tierguard.api.metrics import MetricDef


def latency_buckets(objectives_s: Iterable[float]) -> tuple[float, ...]:
    """The contract's latency buckets plus the SLO objectives, sorted, de-duplicated."""
    return tuple(sorted({*m.LATENCY_BUCKETS, *(round(o, 6) for o in objectives_s)}))


def _build(d: MetricDef, registry: CollectorRegistry, buckets: tuple[float, ...] = ()) -> Any:
    if d.type == "counter":
        return Counter(d.base, d.help, d.labels, registry=registry)
    if d.type == "gauge":
        return Gauge(d.name, d.help, d.labels, registry=registry)
    return Histogram(d.name, d.help, d.labels, buckets=buckets, registry=registry)


class RouterMetrics:
    """Every router metric, one attribute each. Label order is the contract's."""

    def __init__(self, latency_objectives_s: Iterable[float] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency_buckets = latency_buckets(latency_objectives_s)
        r = self.registry
        self.requests: Counter = _build(m.REQUESTS, r)
        self.request_duration: Histogram = _build(m.REQUEST_DURATION, r, self.latency_buckets)
        self.ttft: Histogram = _build(m.TIME_TO_FIRST_TOKEN, r, self.latency_buckets)
        self.tokens: Counter = _build(m.TOKENS, r)
        self.cost: Counter = _build(m.COST, r)
        self.shadow_cost: Counter = _build(m.SHADOW_COST, r)
        self.upstream_errors: Counter = _build(m.UPSTREAM_ERRORS, r)
        self.escalations: Counter = _build(m.ESCALATIONS, r)
        self.hedges: Counter = _build(m.HEDGES, r)
        self.feedback: Counter = _build(m.FEEDBACK, r)
        self.feedback_rejected: Counter = _build(m.FEEDBACK_REJECTED, r)
        self.shadow_judgements: Counter = _build(m.SHADOW_JUDGEMENTS, r)
        self.shadow_pairwise: Counter = _build(m.SHADOW_PAIRWISE, r)
        self.classifier_duration: Histogram = _build(
            m.CLASSIFIER_DURATION, r, tuple(m.CLASSIFIER_BUCKETS)
        )
        self.canary_weight: Gauge = _build(m.CANARY_WEIGHT, r)
        self.config_reloads: Counter = _build(m.CONFIG_RELOADS, r)
        self.invalid_requests: Counter = _build(m.INVALID_REQUESTS, r)
        self.session_keys: Counter = _build(m.SESSION_KEYS, r)
        self.session_tier_changes: Counter = _build(m.SESSION_TIER_CHANGES, r)
        self.stateful_turns: Counter = _build(m.STATEFUL_TURNS, r)
        self.unsafe_switches: Counter = _build(m.UNSAFE_SWITCHES, r)
        self.classifier_cache: Counter = _build(m.CLASSIFIER_CACHE, r)
        self.classifier_info: Gauge = _build(m.CLASSIFIER_INFO, r)
        self.overhead: Histogram = _build(m.ROUTER_OVERHEAD, r, tuple(m.OVERHEAD_BUCKETS))
        self._overhead_children: dict[str, tuple[Any, ...]] = {}
        self.slice_requests: Counter = _build(m.SLICE_REQUESTS, r)
        self.slice_feedback: Counter = _build(m.SLICE_FEEDBACK, r)
        self.slice_shadow_judgements: Counter = _build(m.SLICE_SHADOW_JUDGEMENTS, r)

    def overhead_phases(self, policy: str) -> tuple[Any, ...]:
        """The overhead histogram's children for ``policy``, in ``PHASES`` order (cached:
        a label lookup per phase per request would cost more than the observation)."""
        children = self._overhead_children.get(policy)
        if children is None:
            children = tuple(self.overhead.labels(policy, p) for p in m.PHASES)
            self._overhead_children[policy] = children
        return children

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
