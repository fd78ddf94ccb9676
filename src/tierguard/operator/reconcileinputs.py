"""What one reconcile reads besides the policy itself (moved out of
:mod:`tierguard.operator.controller`): one look at Prometheus, and the classifier and
judge prompt ConfigMaps the spec refers to.

I/O only, through :class:`~tierguard.operator.kube.Kube` and
:class:`~tierguard.operator.promreader.PrometheusReader`; deciding from what was read is
:mod:`tierguard.operator.rollout`'s. Reads never raise: an unreachable Prometheus (or an
unreadable token) is ``Observations(error=...)``, an unreadable ConfigMap a lookup whose
content is *unknown* (never *changed*), with the reason.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from tierguard.api.durations import parse_duration
from tierguard.api.policy import RoutingPolicySpec
from tierguard.operator import classifiercontent as cc
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator import preflight
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gatetypes import Observations
from tierguard.operator.kube import Kube, KubeError, NotFoundError
from tierguard.operator.observe import observe, read_preflight_spend, read_preflight_traffic
from tierguard.operator.observe_routers import (
    observe_cells,
    observe_routers,
    observe_transitions,
)
from tierguard.operator.promreader import PrometheusReader
from tierguard.operator.shared_queries import SharedQueries
from tierguard.operator.telemetry import OperatorMetrics


class ReconcileInputs:
    """Reads a policy's inputs. ``prometheus_url``: use this Prometheus instead of the
    policies' ``spec.prometheus.url``; ``namespace_label``: also filter router metrics by
    this label = the policy's namespace; ``shared``: batched queries across policies."""

    def __init__(
        self,
        kube: Kube,
        *,
        prometheus_url: str | None,
        namespace_label: str | None,
        shared: SharedQueries | None,
        metrics: OperatorMetrics | None,
    ) -> None:
        self.kube = kube
        self.prometheus_url = prometheus_url
        self.namespace_label = namespace_label
        self.shared = shared
        self.metrics = metrics

    def reader(self, spec: RoutingPolicySpec, namespace: str) -> PrometheusReader:
        token = None
        ref = spec.prometheus.bearer_token_secret_ref
        if ref is not None:
            token = self.kube.read_secret_key(namespace, ref.name, ref.key)
        return PrometheusReader(
            self.prometheus_url or spec.prometheus.url,
            timeout=parse_duration(spec.prometheus.timeout),
            bearer_token=token,
            insecure_skip_verify=spec.prometheus.insecure_skip_verify,
        )

    def observations(
        self,
        spec: RoutingPolicySpec,
        namespace: str,
        name: str,
        now: datetime,
        shadow_revision: str | None = None,
        classifier_canary: bool = False,
    ) -> Observations:
        """One look at Prometheus; ``shadow_revision``: a decision shadow runs for this
        revision and its transition matrix is read too."""
        try:
            reader = self.reader(spec, namespace)
        except KubeError as exc:
            return Observations(at=now, error=f"cannot read the Prometheus token: {exc}")
        label = self.namespace_label
        obs = observe(
            reader,
            name,
            gate_specs(spec),
            now,
            namespace=(label, namespace) if label else None,
            shared=self.shared,
        )
        if obs.error is None:
            ns = (label, namespace) if label else None
            obs = dataclasses.replace(
                obs, routers=observe_routers(reader, name, ns, shared=self.shared)
            )
            if shadow_revision is not None:
                counts = observe_transitions(reader, name, shadow_revision, ns)
                obs = dataclasses.replace(obs, transitions=counts)
            if classifier_canary:
                obs = dataclasses.replace(obs, cells=observe_cells(reader, name, ns))
            if preflight.plan(spec, gate_specs(spec)).skipped is None:
                spend = read_preflight_spend(reader, name, ns)
                traffic = read_preflight_traffic(reader, name, ns)
                obs = dataclasses.replace(obs, preflight_spend=spend, preflight_traffic=traffic)
        if self.metrics is not None and (
            obs.error is not None
            or any(r.error for r in obs.gates.values())
            or (obs.routers is not None and obs.routers.error is not None)
        ):
            self.metrics.prom_errors.labels(namespace, name).inc()
        return obs

    def _configmap(self, namespace: str, name: str) -> tuple[dict[str, Any] | None, str | None]:
        """A referenced ConfigMap as read, or None and why it could not be."""
        try:
            cm = self.kube.read_object("v1", "ConfigMap", namespace, name)
        except NotFoundError:
            return None, f"ConfigMap {namespace}/{name} not found"
        except KubeError as exc:
            return None, str(exc)[:500]
        return (cm if isinstance(cm, dict) else None), None

    def classifier(self, spec: RoutingPolicySpec, namespace: str) -> cc.ClassifierLookup:
        """Read the referenced classifier ConfigMap (every reconcile: edits are not
        watched). Any failure is *unknown* (never *changed*), with the reason."""
        ref = spec.classifier.source.config_map_ref
        if ref is None:
            return cc.BUNDLED
        return cc.lookup(spec, *self._configmap(namespace, ref.name))

    def judge_prompt(self, spec: RoutingPolicySpec, namespace: str) -> jpc.JudgePromptLookup:
        """Read the referenced judge prompt ConfigMap (every reconcile, as the
        classifier's). Any failure is *unknown* (never *changed*), with the reason."""
        ref = jpc.reference(spec)
        if ref is None:
            return jpc.BUILTIN
        return jpc.lookup(spec, *self._configmap(namespace, ref.name))
