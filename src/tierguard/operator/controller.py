"""One reconcile of one RoutingPolicy: read, decide (pure), write status, events, objects.

The order is chosen for crash safety: the decision is written to status first (with the
resourceVersion it was based on, so a concurrent writer makes us re-read and decide
again), and only then are the objects rendered *from that status* applied. An operator
killed between the two re-renders the same objects from the same status when it comes
back; it never applies a weight that status does not record, so no step is repeated or
skipped and no user is moved back from canary to control.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from tierguard.api import constants as c
from tierguard.api.durations import parse_duration
from tierguard.api.enums import ConditionType, Reason, Verdict
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import gates as g
from tierguard.operator import render, rollout, specerror
from tierguard.operator.conditions import get_condition, set_condition
from tierguard.operator.kube import Kube, KubeError, NotFoundError, StatusConflictError
from tierguard.operator.observe import PrometheusReader, observe
from tierguard.operator.telemetry import OperatorMetrics

log = logging.getLogger("tierguard.operator")

CONFLICT_RETRIES = 5


@dataclass
class ControllerSettings:
    """Operator-wide knobs (from the command line)."""

    #: Longest sleep between two reconciles of a policy (gate evaluation follows each
    #: policy's own ``rollout.interval``; this only bounds reaction to the clock).
    resync_seconds: float = 10.0
    #: Use this Prometheus instead of the policies' ``spec.prometheus.url`` (running the
    #: operator outside the cluster, tests).
    prometheus_url: str | None = None
    #: If set, also filter router metrics by this label = the policy's namespace (the
    #: ``namespace`` target label a ServiceMonitor adds).
    namespace_label: str | None = None
    #: Unchanged rendered objects are re-applied at most this often (to take back hand
    #: edits); a change is applied at once.
    reapply_seconds: float = 30.0


def validation_errors(exc: ValidationError, root: str, limit: int = 5) -> str:
    """Each problem as ``<root>.<field path>: <why>`` (at most ``limit`` of them)."""
    parts = []
    for err in exc.errors()[:limit]:
        path = ".".join([root, *(str(x) for x in err["loc"])])
        parts.append(f"{path}: {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class Controller:
    def __init__(
        self, kube: Kube, settings: ControllerSettings, metrics: OperatorMetrics | None = None
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self._secrets_done: set[str] = set()
        #: policy uid -> (hash of the rendered objects, monotonic time applied). Memory
        #: only as an optimisation: losing it just means one more (idempotent) apply.
        self._applied: dict[str, tuple[str, float]] = {}

    # -- inputs ----------------------------------------------------------------------

    def _reader(self, spec: RoutingPolicySpec, namespace: str) -> PrometheusReader:
        token = None
        ref = spec.prometheus.bearer_token_secret_ref
        if ref is not None:
            token = self.kube.read_secret_key(namespace, ref.name, ref.key)
        return PrometheusReader(
            self.settings.prometheus_url or spec.prometheus.url,
            timeout=parse_duration(spec.prometheus.timeout),
            bearer_token=token,
            insecure_skip_verify=spec.prometheus.insecure_skip_verify,
        )

    def _observe(
        self, spec: RoutingPolicySpec, namespace: str, name: str, now: datetime
    ) -> g.Observations:
        try:
            reader = self._reader(spec, namespace)
        except KubeError as exc:
            return g.Observations(at=now, error=f"cannot read the Prometheus token: {exc}")
        label = self.settings.namespace_label
        obs = observe(
            reader, name, g.gate_specs(spec), now, namespace=(label, namespace) if label else None
        )
        if self.metrics is not None and (
            obs.error is not None or any(r.error for r in obs.gates.values())
        ):
            self.metrics.prom_errors.labels(namespace, name).inc()
        return obs

    # -- the loop body ---------------------------------------------------------------

    def reconcile_once(self, namespace: str, name: str) -> float:
        """Reconcile one policy; returns how long to sleep before the next call."""
        for _ in range(CONFLICT_RETRIES):
            try:
                return self._attempt(namespace, name)
            except StatusConflictError as exc:
                log.info("%s/%s changed while deciding; deciding again (%s)", namespace, name, exc)
            except NotFoundError:
                return float("inf")
        return 1.0

    def _attempt(self, namespace: str, name: str) -> float:
        body = self.kube.get_policy(namespace, name)
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return float("inf")
        generation = int(meta.get("generation", 0))
        now = datetime.now(UTC)
        try:
            spec = RoutingPolicySpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            self._report_invalid(body, generation, now, "spec", exc)
            return self.settings.resync_seconds
        try:
            status = RoutingPolicyStatus.model_validate(body.get("status") or {})
        except ValidationError as exc:
            self._report_invalid(body, generation, now, "status", exc)
            return self.settings.resync_seconds

        annotations: dict[str, str] = meta.get("annotations") or {}
        request = None
        if annotations.get(c.ANNOTATION_ACTION):
            request = rollout.ManualRequest(
                annotations[c.ANNOTATION_ACTION], annotations.get(c.ANNOTATION_ACTION_NONCE, "")
            )
        obs = (
            self._observe(spec, namespace, name, now)
            if rollout.evaluation_due(spec, status, now)
            else None
        )
        decision = rollout.reconcile(
            spec, status, now, generation=generation, request=request, observations=obs
        )
        new = decision.status
        written = body
        if new.to_k8s() != status.to_k8s():
            written = self.kube.replace_status(body, new.to_k8s())
        for ev in decision.events:
            self._event(written, ev.type, ev.reason, ev.message)
        self._apply(written, spec, new, now, generation)
        self._record(namespace, name, decision)
        wait = rollout.seconds_until_due(spec, new, datetime.now(UTC))
        return max(0.2, min(self.settings.resync_seconds, wait))

    # -- outputs ---------------------------------------------------------------------

    def _event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        try:
            self.kube.emit_event(body, type_, reason, message)
        except KubeError as exc:
            log.warning("could not post event %s: %s", reason, exc)
        log.info(
            "%s/%s %s: %s", body["metadata"]["namespace"], body["metadata"]["name"], reason, message
        )

    def _apply(
        self,
        body: dict[str, Any],
        spec: RoutingPolicySpec,
        status: RoutingPolicyStatus,
        now: datetime,
        generation: int,
    ) -> None:
        meta = body["metadata"]
        ref = render.PolicyRef(meta["name"], meta["namespace"], meta["uid"])
        error = None
        try:
            if spec.router.signing_key_secret_ref is None and ref.uid not in self._secrets_done:
                self.kube.ensure_secret(render.signing_secret(ref), render.GENERATED_SIGNING_KEY)
                self._secrets_done.add(ref.uid)
            sm = self.kube.service_monitor_available()
            objs = render.render_all(ref, spec, status, service_monitor_available=sm)
            digest = hashlib.sha256(json.dumps(objs, sort_keys=True).encode()).hexdigest()
            last = self._applied.get(ref.uid)
            due = last is None or last[0] != digest
            due = (
                due
                or time.monotonic() - (last[1] if last else 0.0) >= self.settings.reapply_seconds
            )
            if due:
                for obj in objs:
                    self.kube.apply(obj)
                self._applied[ref.uid] = (digest, time.monotonic())
        except KubeError as exc:
            error = str(exc)
            log.error("%s/%s: %s", ref.namespace, ref.name, error)
        if error is None:
            error = self._missing_secrets(ref.namespace, spec)
        ready = get_condition(status.conditions, ConditionType.READY)
        want = "True" if error is None else "False"
        if ready is not None and ready.status == want and (error is None or ready.message == error):
            return
        conds = set_condition(
            status.conditions,
            ConditionType.READY,
            error is None,
            Reason.RECONCILED.value if error is None else Reason.RECONCILE_FAILED.value,
            "router objects applied" if error is None else error,
            now,
            generation,
        )
        new = status.model_copy(update={"conditions": conds})
        with contextlib.suppress(StatusConflictError):  # the next reconcile sets it
            self.kube.replace_status(body, new.to_k8s())
        if error is not None:
            self._event(body, "Warning", Reason.RECONCILE_FAILED.value, error)

    def _missing_secrets(self, namespace: str, spec: RoutingPolicySpec) -> str | None:
        """Name every referenced Secret key that cannot be read (the values stay here)."""
        problems = []
        for field, ref in render.secret_refs(spec):
            try:
                self.kube.read_secret_key(namespace, ref.name, ref.key)
            except KubeError as exc:  # includes NotFoundError: a missing Secret, not policy
                problems.append(f"{field}: {exc}")
        if not problems:
            return None
        return "routers cannot start until these Secrets exist: " + "; ".join(problems)

    def _report_invalid(
        self,
        body: dict[str, Any],
        generation: int,
        now: datetime,
        root: str,
        exc: ValidationError,
    ) -> None:
        """Phase Failed, Ready=False InvalidSpec, observedGeneration caught up (see
        :mod:`specerror`); the rollout state and the served weights stay as they are."""
        raw = body.get("status") or {}
        what = "the spec cannot be used" if root == "spec" else "the status cannot be read"
        msg = f"{what}: {validation_errors(exc, root)}"
        try:
            status = RoutingPolicyStatus.model_validate(raw)
        except ValidationError:
            status = RoutingPolicyStatus()
        new, fresh = specerror.invalid_spec_status(status, generation, now, msg)
        if new.to_k8s() != status.to_k8s():
            self.kube.replace_status(body, {**raw, **new.to_k8s()})
        if fresh:
            self._event(body, "Warning", Reason.INVALID_SPEC.value, msg)

    def _record(self, namespace: str, name: str, decision: rollout.Decision) -> None:
        if self.metrics is None:
            return
        s = decision.status
        self.metrics.set_phase(namespace, name, s.phase, s.canary_weight)
        for a in decision.actions:
            if isinstance(a, rollout.GateEvaluated):
                self.metrics.gates.labels(namespace, name, a.tier, a.signal, a.verdict.value).inc()
            elif isinstance(a, rollout.RolledBack):
                self.metrics.rollbacks.labels(namespace, name, a.reason).inc()


__all__ = ["Controller", "ControllerSettings", "Verdict"]
