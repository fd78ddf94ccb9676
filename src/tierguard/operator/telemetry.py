"""The operator's own Prometheus metrics (names from :mod:`tierguard.api.metrics`)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from tierguard.api import metrics as m
from tierguard.api.enums import Phase
from tierguard.operator.rollout import ROLLBACK_REASONS


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.phase = Gauge(
            m.ROLLOUT_PHASE.name, m.ROLLOUT_PHASE.help, m.ROLLOUT_PHASE.labels, registry=r
        )
        self.weight = Gauge(
            m.ROLLOUT_WEIGHT.name, m.ROLLOUT_WEIGHT.help, m.ROLLOUT_WEIGHT.labels, registry=r
        )
        self.gates = Counter(
            m.GATE_EVALUATIONS.base, m.GATE_EVALUATIONS.help, m.GATE_EVALUATIONS.labels, registry=r
        )
        self.rollbacks = Counter(m.ROLLBACKS.base, m.ROLLBACKS.help, m.ROLLBACKS.labels, registry=r)
        self.prom_errors = Counter(
            m.PROMETHEUS_ERRORS.base,
            m.PROMETHEUS_ERRORS.help,
            m.PROMETHEUS_ERRORS.labels,
            registry=r,
        )
        self.evaluation_lag = Gauge(
            m.EVALUATION_LAG.name, m.EVALUATION_LAG.help, m.EVALUATION_LAG.labels, registry=r
        )
        self.gate_upper_bound = Gauge(
            m.GATE_UPPER_BOUND.name, m.GATE_UPPER_BOUND.help, m.GATE_UPPER_BOUND.labels, registry=r
        )
        self.gate_allowed = Gauge(
            m.GATE_ALLOWED.name, m.GATE_ALLOWED.help, m.GATE_ALLOWED.labels, registry=r
        )
        #: (namespace, policy) -> the (tier, signal) gates with a bound series, so that
        #: forget() can drop them.
        self._gate_keys: dict[tuple[str, str], set[tuple[str, str]]] = {}
        #: (namespace, policy) -> the (tier, signal, verdict) evaluation counters it has.
        self._evaluation_keys: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
        self.backlog = Gauge(
            m.RECONCILE_BACKLOG.name,
            m.RECONCILE_BACKLOG.help,
            m.RECONCILE_BACKLOG.labels,
            registry=r,
        )

    def forget(self, namespace: str, policy: str) -> None:
        """Drop every series of a policy that is deleted (or now another replica's, which
        exports them from then on): a policy's phase, counters and gate series would
        otherwise stay on the dashboards, and in memory, for as long as this process runs.
        Prometheus marks them stale at the next scrape."""
        labelled: list[tuple[Gauge | Counter, tuple[str, ...]]] = [
            (self.weight, ()),
            (self.evaluation_lag, ()),
            (self.prom_errors, ()),
            *((self.phase, (p.value,)) for p in Phase),
            *((self.rollbacks, (r.value,)) for r in ROLLBACK_REASONS),
        ]
        for tier, signal in self._gate_keys.pop((namespace, policy), set()):
            labelled += [
                (self.gate_upper_bound, (tier, signal)),
                (self.gate_allowed, (tier, signal)),
            ]
        for key in self._evaluation_keys.pop((namespace, policy), set()):
            labelled.append((self.gates, key))
        for metric, rest in labelled:
            with contextlib.suppress(KeyError):
                metric.remove(namespace, policy, *rest)

    def count_gate_evaluation(
        self, namespace: str, policy: str, tier: str, signal: str, verdict: str
    ) -> None:
        """One look of one gate, by verdict."""
        self._evaluation_keys.setdefault((namespace, policy), set()).add((tier, signal, verdict))
        self.gates.labels(namespace, policy, tier, signal, verdict).inc()

    def set_gate_bound(
        self, namespace: str, policy: str, tier: str, signal: str, upper: float, allowed: float
    ) -> None:
        """Record a gate's upper bound and what it allows (the dashboard plots the two)."""
        self._gate_keys.setdefault((namespace, policy), set()).add((tier, signal))
        self.gate_upper_bound.labels(namespace, policy, tier, signal).set(upper)
        self.gate_allowed.labels(namespace, policy, tier, signal).set(allowed)

    def set_phase(self, namespace: str, policy: str, phase: Phase, weight: float) -> None:
        """Record a policy's phase and weight, and make sure its counters exist.

        Counters are created at 0 for every label set they can take (each rollback
        reason, Prometheus errors), so the first event is an increase from 0:
        ``increase(...) > 0`` alerts cannot see a series that is born at 1.
        """
        for reason in ROLLBACK_REASONS:
            self.rollbacks.labels(namespace, policy, reason.value)
        self.prom_errors.labels(namespace, policy)
        for p in Phase:
            self.phase.labels(namespace, policy, p.value).set(1.0 if p == phase else 0.0)
        self.weight.labels(namespace, policy).set(weight)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
