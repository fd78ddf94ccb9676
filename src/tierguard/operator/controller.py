"""One reconcile of one RoutingPolicy: read, decide (pure), write status, events, objects.

The order is chosen for crash safety: the decision is written to status first (with the
resourceVersion it was based on, so a concurrent writer makes us re-read and decide
again), and only then are the objects rendered *from that status* applied. An operator
killed between the two re-renders the same objects from the same status when it comes
back; it never applies a weight that status does not record, so no step is repeated or
skipped and no user is moved back from canary to control.

What is read besides the policy (Prometheus, the referenced ConfigMaps) is
:mod:`tierguard.operator.reconcileinputs`; rendering and applying the objects is
:mod:`tierguard.operator.applier`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from tierguard.api import constants as c
from tierguard.api.durations import parse_duration
from tierguard.api.enums import Reason
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import classifiercontent as cc
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator import (
    prunecopies,
    rollout,
    rollout_clfcanary,
    rollout_shadow,
    specerror,
)
from tierguard.operator.applier import Applier, with_ready
from tierguard.operator.freshness import KnownVersions
from tierguard.operator.kube import Kube, KubeError, NotFoundError, StatusConflictError
from tierguard.operator.reconcileinputs import ReconcileInputs
from tierguard.operator.reconcilestatus import delayed_condition, is_fresh, validation_errors
from tierguard.operator.rendermeta import RenderedMetadata
from tierguard.operator.shared_queries import SharedQueries
from tierguard.operator.telemetry import OperatorMetrics
from tierguard.operator.writes import status_needs_write

log = logging.getLogger("tierguard.operator")

CONFLICT_RETRIES = 5


@dataclass
class ControllerSettings:
    """Operator-wide knobs (from the command line)."""

    #: Longest sleep between two reconciles of a policy (gate evaluation follows each
    #: policy's own ``rollout.interval``; this only bounds reaction to the clock).
    resync_seconds: float = 60.0
    #: Use this Prometheus instead of the policies' ``spec.prometheus.url`` (running the
    #: operator outside the cluster, tests).
    prometheus_url: str | None = None
    #: If set, also filter router metrics by this label = the policy's namespace (the
    #: ``namespace`` target label a ServiceMonitor adds).
    namespace_label: str | None = None
    #: Extra labels/annotations on everything rendered (e.g. kube-prometheus-stack's
    #: ``release`` label on the routers' ServiceMonitors).
    rendered: RenderedMetadata = dataclasses.field(default_factory=RenderedMetadata)
    #: Threads that run reconciles (each policy uses at most one at a time).
    workers: int = 16
    #: Built-in signal queries are batched across policies and reused for this many
    #: seconds (one query per signal per round, whatever the number of policies);
    #: 0 sends each policy's own queries.
    query_round_seconds: float = 5.0


class Controller:
    def __init__(
        self, kube: Kube, settings: ControllerSettings, metrics: OperatorMetrics | None = None
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        #: Renders and applies each policy's objects (and keeps what it applied).
        self.applier = Applier(kube, settings.rendered)
        #: What was last applied per policy (hashes and objects, for drift checks).
        self.applied = self.applier.applied
        #: policy uid -> when this process last evaluated its gates. An evaluation that
        #: changed nothing else is not written to status; this keeps its schedule.
        self._evaluated: dict[str, datetime] = {}
        self.shared = (
            SharedQueries(settings.query_round_seconds)
            if settings.query_round_seconds > 0
            else None
        )
        #: Reads what a reconcile decides on besides the policy: Prometheus, ConfigMaps.
        self.inputs = ReconcileInputs(
            kube,
            prometheus_url=settings.prometheus_url,
            namespace_label=settings.namespace_label,
            shared=self.shared,
            metrics=metrics,
        )
        #: (namespace, name) -> (uid, referenced digests) at the last prune of its copies.
        self._pruned: dict[tuple[str, str], tuple[str, prunecopies.Referenced]] = {}
        #: The resourceVersion this process last wrote or read, per policy.
        self._versions = KnownVersions()

    # -- the loop body ---------------------------------------------------------------

    def reconcile_once(
        self, namespace: str, name: str, seen: dict[str, Any] | None = None
    ) -> float:
        """Reconcile one policy; returns how long to sleep before the next call.
        ``seen``: the policy as the watch last delivered it, decided on instead of a GET
        when it is current enough (:mod:`tierguard.operator.freshness`)."""
        for _ in range(CONFLICT_RETRIES):
            try:
                return self._attempt(namespace, name, seen)
            except StatusConflictError as exc:
                log.info("%s/%s changed while deciding; deciding again (%s)", namespace, name, exc)
                seen = None  # the watch has not caught up: read it
            except NotFoundError:
                return float("inf")
        return 1.0

    def _current(self, namespace: str, name: str, seen: dict[str, Any] | None) -> dict[str, Any]:
        """The policy to decide on: the watch's copy if it is current enough
        (:mod:`tierguard.operator.freshness`), else a GET."""
        if seen is not None and self._versions.usable((namespace, name), seen):
            return seen
        body = self.kube.get_policy(namespace, name)
        self._versions.note((namespace, name), body)
        return body

    def _write_status(self, body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Replace the status (resourceVersion-checked); remember the version written."""
        written = self.kube.replace_status(body, status)
        self._versions.note((body["metadata"]["namespace"], body["metadata"]["name"]), written)
        return written

    def _attempt(self, namespace: str, name: str, seen: dict[str, Any] | None = None) -> float:
        body = self._current(namespace, name, seen)
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return float("inf")
        generation = int(meta.get("generation", 0))
        uid = str(meta.get("uid", ""))
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
        timing = self._timing(uid, status)
        obs = None
        lag = None
        if rollout.evaluation_due(spec, timing, now):
            # Lag only against this process's own schedule: the first look after a
            # start (status may be hours old for an idle policy) is not late.
            if uid in self._evaluated:
                lag = self._record_lag(namespace, name, spec, timing, now)
            shadowing = status.revision if rollout_shadow.running(status) else None
            canary = rollout_clfcanary.running(status)
            obs = self.inputs.observations(spec, namespace, name, now, shadowing, canary)
        classifier = self.inputs.classifier(spec, namespace)
        judge_prompt = self.inputs.judge_prompt(spec, namespace)
        decision = rollout.reconcile(
            spec,
            status,
            now,
            generation=generation,
            request=request,
            observations=obs,
            classifier=classifier,
            judge_prompt=judge_prompt,
        )
        new = decision.status
        if lag is not None:
            new.conditions = delayed_condition(new.conditions, lag, spec, now, generation)
        if is_fresh(status):
            apply_wait, new = self._first_reconcile(
                body, spec, decision, now, generation, classifier, judge_prompt
            )
        else:
            written = body
            if status_needs_write(status, new):
                written = self._write_status(body, new.to_k8s())
            for ev in decision.events:
                self._event(written, ev.type, ev.reason, ev.message)
            apply_wait = self._apply(written, spec, new, now, generation, classifier, judge_prompt)
        if obs is not None:
            self._evaluated[uid] = now
        if apply_wait == float("inf"):  # applied: the copy status names exists
            self._prune_copies(namespace, name, uid, new)
        self._record(namespace, name, decision)
        wait = rollout.seconds_until_due(spec, self._timing(uid, new), datetime.now(UTC))
        return max(0.2, min(self.settings.resync_seconds, wait, apply_wait))

    def _prune_copies(
        self, namespace: str, name: str, uid: str, status: RoutingPolicyStatus
    ) -> None:
        """Delete the frozen classifier and judge prompt copies no digest in ``status``
        refers to, once per change of the referenced set (:mod:`tierguard.operator.prunecopies`)."""
        referenced = prunecopies.referenced(status)
        last = self._pruned.get((namespace, name))
        if last == (uid, referenced):
            return
        if referenced.empty and last is None:  # no copy referred to since this process started:
            self._pruned[(namespace, name)] = (uid, referenced)  # no list call per policy
            return
        try:
            prunecopies.prune(self.kube, namespace, name, uid, referenced)
        except KubeError as exc:  # the next change (or restart) tries again
            log.warning("%s/%s: could not prune frozen copies: %s", namespace, name, exc)
            return
        self._pruned[(namespace, name)] = (uid, referenced)

    def _timing(self, uid: str, status: RoutingPolicyStatus) -> RoutingPolicyStatus:
        """``status`` with ``lastEvaluatedAt`` as this process last evaluated it. A status
        without one (a rollout that just started) is due at once, whatever was before."""
        mine = self._evaluated.get(uid)
        if mine is None or status.last_evaluated_at is None or status.last_evaluated_at >= mine:
            return status
        return status.model_copy(update={"last_evaluated_at": mine})

    def _record_lag(
        self,
        namespace: str,
        name: str,
        spec: RoutingPolicySpec,
        status: RoutingPolicyStatus,
        now: datetime,
    ) -> float:
        """How late this evaluation starts against its schedule (backpressure)."""
        lag = 0.0
        if status.last_evaluated_at is not None:
            due = status.last_evaluated_at + timedelta(
                seconds=parse_duration(spec.rollout.interval)
            )
            lag = max(0.0, (now - due).total_seconds())
        if self.metrics is not None:
            self.metrics.evaluation_lag.labels(namespace, name).set(lag)
        return lag

    def forget(self, namespace: str, name: str) -> None:
        """The policy is gone (or no longer this replica's): drop what is kept for it."""
        self.applier.forget(namespace, name)
        self._pruned.pop((namespace, name), None)
        self._versions.forget((namespace, name))
        if self.metrics is not None:
            self.metrics.forget(namespace, name)

    # -- outputs ---------------------------------------------------------------------

    def _event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        try:
            self.kube.emit_event(body, type_, reason, message)
        except KubeError as exc:
            log.warning("could not post event %s: %s", reason, exc)
        log.info(
            "%s/%s %s: %s", body["metadata"]["namespace"], body["metadata"]["name"], reason, message
        )

    def _first_reconcile(
        self,
        body: dict[str, Any],
        spec: RoutingPolicySpec,
        decision: rollout.Decision,
        now: datetime,
        generation: int,
        classifier: cc.ClassifierLookup,
        judge_prompt: jpc.JudgePromptLookup,
    ) -> tuple[float, RoutingPolicyStatus]:
        """A policy no operator has written status for: apply its objects, then write the
        decision and Ready in one status write (instead of decision, apply, Ready: one
        write and one round trip less per new policy, which is what a burst of new
        policies waits for). Safe without the usual status-first order: a crash before
        the write leaves status empty, and deciding again from an empty status renders
        the same objects (the first step depends on the spec alone)."""
        new = decision.status
        error, retry = self.applier.apply_rendered(body, spec, new, classifier, judge_prompt)
        new = with_ready(new, error, now, generation) or new
        written = self._write_status(body, new.to_k8s())  # a conflict: decide again
        for ev in decision.events:
            self._event(written, ev.type, ev.reason, ev.message)
        if error is not None:
            self._event(written, "Warning", Reason.RECONCILE_FAILED.value, error)
        return retry, new

    def _apply(
        self,
        body: dict[str, Any],
        spec: RoutingPolicySpec,
        status: RoutingPolicyStatus,
        now: datetime,
        generation: int,
        classifier: cc.ClassifierLookup = cc.BUNDLED,
        judge_prompt: jpc.JudgePromptLookup = jpc.BUILTIN,
    ) -> float:
        """Apply the rendered objects that changed; set Ready. Returns how soon to retry
        (``inf`` when nothing failed). ``classifier``: what was read this reconcile; its
        model is frozen into the immutable copy when it is the one status rolls out."""
        error, retry = self.applier.apply_rendered(body, spec, status, classifier, judge_prompt)
        new = with_ready(status, error, now, generation)
        if new is None:
            return retry
        with contextlib.suppress(StatusConflictError):  # the next reconcile sets it
            self._write_status(body, new.to_k8s())
        if error is not None:
            self._event(body, "Warning", Reason.RECONCILE_FAILED.value, error)
        return retry

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
            self._write_status(body, {**raw, **new.to_k8s()})
        if fresh:
            self._event(body, "Warning", Reason.INVALID_SPEC.value, msg)

    def _record(self, namespace: str, name: str, decision: rollout.Decision) -> None:
        if self.metrics is None:
            return
        s = decision.status
        self.metrics.set_phase(namespace, name, s.phase, s.canary_weight)
        for a in decision.actions:
            if isinstance(a, rollout.GateEvaluated):
                self.metrics.count_gate_evaluation(
                    namespace, name, a.tier, a.signal, a.verdict.value
                )
                if a.upper_bound is not None and math.isfinite(a.upper_bound):
                    self.metrics.set_gate_bound(
                        namespace, name, a.tier, a.signal, a.upper_bound, a.allowed
                    )
            elif isinstance(a, rollout.RolledBack):
                self.metrics.rollbacks.labels(namespace, name, a.reason).inc()


__all__ = ["Controller", "ControllerSettings"]
