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
        self.backlog = Gauge(
            m.RECONCILE_BACKLOG.name,
            m.RECONCILE_BACKLOG.help,
            m.RECONCILE_BACKLOG.labels,
            registry=r,
        )

    def forget(self, namespace: str, policy: str) -> None:
        """Drop a deleted policy's series."""
        for gauge in (self.weight, self.evaluation_lag):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, policy)

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
