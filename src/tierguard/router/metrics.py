"""prometheus_client objects built from :mod:`tierguard.api.metrics` (the contract).

No metric name, label or bucket is written here: everything comes from the
``MetricDef`` objects, so the router, the operator's queries, the alerts and
docs/metrics.md cannot drift apart. Each app gets a private ``CollectorRegistry`` (tests
run several apps in one process). Latency histograms get the policy's SLO latency
objectives added to their buckets so the operator's "share slower than objective" is an
exact bucket read, not an interpolation.

**Several worker processes** (``tierguard router --workers N``) use prometheus_client's
multiprocess mode: the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory)
before it starts the workers, every worker's counters and histograms live in
memory-mapped files there, and ``/metrics`` on any worker sums them over all workers
(:class:`SharedCollector`), so a scrape of any one worker gives the pod's totals and they
stay monotonic (a worker's file outlives it). The router's gauges (the canary weight,
the classifier info) are configuration, not accumulations: each is a collector of the
loaded config's values (:class:`ConfigGauge`, no stored value), so each worker reports
them from its own config and they are never summed over workers (which would be N times
the weight).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from tierguard.api import metrics as m
from tierguard.api.metrics import MetricDef


def latency_buckets(objectives_s: Iterable[float]) -> tuple[float, ...]:
    """The contract's latency buckets plus the SLO objectives, sorted, de-duplicated."""
    return tuple(sorted({*m.LATENCY_BUCKETS, *(round(o, 6) for o in objectives_s)}))


def _build(d: MetricDef, registry: CollectorRegistry, buckets: tuple[float, ...] = ()) -> Any:
    if d.type == "counter":
        return Counter(d.base, d.help, d.labels, registry=registry)
    if d.type == "histogram":
        return Histogram(d.name, d.help, d.labels, buckets=buckets, registry=registry)
    raise ValueError(f"{d.name}: the router's gauges are collectors (see ConfigGauge)")


#: where the workers of one router keep their metric files (prometheus_client's variable)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_HELP = {d.base: d.help for d in m.ROUTER_METRICS}


class SharedCollector:
    """The counters and histograms of every worker, summed per series (prometheus_client's
    merge of the workers' files; gauge files are left out, see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        files = [
            f
            for f in glob.glob(os.path.join(self.path, "*.db"))
            if not os.path.basename(f).startswith("gauge_")
        ]
        for metric in MultiProcessCollector.merge(files, accumulate=True):  # type: ignore[no-untyped-call]
            metric.documentation = _HELP.get(metric.name, metric.documentation)
            yield metric


class ConfigGauge:
    """A gauge of the loaded config (the canary weights, the classifier info): its series
    are read at scrape time and replaced whole on every reload, so a removed tier or an
    old digest disappears."""

    def __init__(self, d: MetricDef) -> None:
        self.d = d
        self.values: dict[tuple[str, ...], float] = {}

    def replace(self, values: dict[tuple[str, ...], float]) -> None:
        self.values = dict(values)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.d.name, self.d.help, labels=self.d.labels)
        for labels, value in self.values.items():
            family.add_metric(labels, value)
        yield family


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
        self.preflight_spend: Counter = _build(m.PREFLIGHT_SPEND, r)
        self.preflight_shed: Counter = _build(m.PREFLIGHT_SHED, r)
        self.classifier_duration: Histogram = _build(
            m.CLASSIFIER_DURATION, r, tuple(m.CLASSIFIER_BUCKETS)
        )
        self.canary_weight = ConfigGauge(m.CANARY_WEIGHT)
        r.register(self.canary_weight)
        self.config_reloads: Counter = _build(m.CONFIG_RELOADS, r)
        self.invalid_requests: Counter = _build(m.INVALID_REQUESTS, r)
        self.session_keys: Counter = _build(m.SESSION_KEYS, r)
        self.session_tier_changes: Counter = _build(m.SESSION_TIER_CHANGES, r)
        self.stateful_turns: Counter = _build(m.STATEFUL_TURNS, r)
        self.unsafe_switches: Counter = _build(m.UNSAFE_SWITCHES, r)
        self.classifier_cache: Counter = _build(m.CLASSIFIER_CACHE, r)
        self.classifier_info = ConfigGauge(m.CLASSIFIER_INFO)
        r.register(self.classifier_info)
        self.classifier_transitions: Counter = _build(m.CLASSIFIER_TRANSITIONS, r)
        self.classifier_cell_requests: Counter = _build(m.CLASSIFIER_CELL_REQUESTS, r)
        self.classifier_cell_feedback: Counter = _build(m.CLASSIFIER_CELL_FEEDBACK, r)
        self.classifier_cell_cost: Counter = _build(m.CLASSIFIER_CELL_COST, r)
        self.overhead: Histogram = _build(m.ROUTER_OVERHEAD, r, tuple(m.OVERHEAD_BUCKETS))
        self._overhead_children: dict[str, tuple[Any, ...]] = {}
        self.slice_requests: Counter = _build(m.SLICE_REQUESTS, r)
        self.slice_feedback: Counter = _build(m.SLICE_FEEDBACK, r)
        self.slice_shadow_judgements: Counter = _build(m.SLICE_SHADOW_JUDGEMENTS, r)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        #: what /metrics exposes: this registry, or with several workers the merge of all
        #: workers' files plus this worker's config gauges
        self.exposed = self.registry
        shared = os.environ.get(MULTIPROC_ENV)
        if shared:
            self.exposed = CollectorRegistry(auto_describe=False)
            self.exposed.register(SharedCollector(shared))
            self.exposed.register(self.canary_weight)
            self.exposed.register(self.classifier_info)

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: the hot path's label sets repeat, and
        prometheus_client's ``labels`` (validation, a lock, a dict) costs more than the
        increment. Only for metrics whose children are never removed."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def overhead_phases(self, policy: str) -> tuple[Any, ...]:
        """The overhead histogram's children for ``policy``, in ``PHASES`` order (cached:
        a label lookup per phase per request would cost more than the observation)."""
        children = self._overhead_children.get(policy)
        if children is None:
            children = tuple(self.overhead.labels(policy, p) for p in m.PHASES)
            self._overhead_children[policy] = children
        return children

    def exposition(self) -> bytes:
        return generate_latest(self.exposed)
