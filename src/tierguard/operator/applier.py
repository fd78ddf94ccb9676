"""Rendering and applying one policy's objects (the controller's output side).

I/O through :class:`~tierguard.operator.kube.Kube` only; what to render comes from status
(:mod:`render`), what changed since the last apply from :mod:`writes`:

* a policy's objects are server-side applied only when their content changed since this
  process applied them (or a watch event showed drift); the first time this process sees
  a policy that was applied before (a restart), they are compared with the live objects
  instead (reads, not writes);
* failures back off per policy (:mod:`backoff`), waited out by the caller on the event
  loop, never in the worker;
* :func:`with_ready` says what the Ready condition becomes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from tierguard.api.enums import ConditionType, Reason
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import classifiercontent as cc
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator import render, render_routerconfig, rendermeta
from tierguard.operator.backoff import Backoff
from tierguard.operator.conditions import get_condition, set_condition
from tierguard.operator.kube import Kube, KubeError, NotFoundError, StatusConflictError
from tierguard.operator.rendermeta import RenderedMetadata, with_metadata
from tierguard.operator.writes import AppliedObjects, contains, object_key

log = logging.getLogger("tierguard.operator")


def with_ready(
    status: RoutingPolicyStatus, error: str | None, now: datetime, generation: int
) -> RoutingPolicyStatus | None:
    """``status`` with Ready saying ``error`` (None: applied), or None if it says so."""
    ready = get_condition(status.conditions, ConditionType.READY)
    want = "True" if error is None else "False"
    if ready is not None and ready.status == want and (error is None or ready.message == error):
        return None
    conds = set_condition(
        status.conditions,
        ConditionType.READY,
        error is None,
        Reason.RECONCILED.value if error is None else Reason.RECONCILE_FAILED.value,
        "router objects applied" if error is None else error,
        now,
        generation,
    )
    return status.model_copy(update={"conditions": conds})


class Applier:
    """Applies rendered objects for every policy of this process (thread-safe: one
    reconcile per policy at a time, many policies in parallel)."""

    def __init__(self, kube: Kube, rendered: RenderedMetadata) -> None:
        self.kube = kube
        self.rendered = rendered
        #: What was last applied per policy (hashes and objects, for drift checks).
        self.applied = AppliedObjects()
        #: (namespace, name) -> retry state of a policy whose objects failed to apply.
        self._backoff: dict[tuple[str, str], Backoff] = {}
        #: uids of the policies whose generated signing Secret exists.
        self._secrets_done: set[str] = set()

    def forget(self, namespace: str, name: str) -> None:
        self.applied.forget(namespace, name)
        self._backoff.pop((namespace, name), None)

    def apply_rendered(
        self,
        body: dict[str, Any],
        spec: RoutingPolicySpec,
        status: RoutingPolicyStatus,
        classifier: cc.ClassifierLookup,
        judge_prompt: jpc.JudgePromptLookup,
    ) -> tuple[str | None, float]:
        """Apply the objects rendered from ``status`` that changed: (what failed or None,
        seconds until a retry or ``inf``)."""
        meta = body["metadata"]
        ref = rendermeta.PolicyRef(meta["name"], meta["namespace"], meta["uid"])
        error = None
        retry = float("inf")
        backoff = self._backoff.setdefault((ref.namespace, ref.name), Backoff())
        try:
            if spec.router.signing_key_secret_ref is None and ref.uid not in self._secrets_done:
                self.kube.ensure_secret(
                    with_metadata(render.signing_secret(ref), self.rendered),
                    render_routerconfig.GENERATED_SIGNING_KEY,
                )
                self._secrets_done.add(ref.uid)
            sm = self.kube.service_monitor_available()
            objs = [
                with_metadata(o, self.rendered)
                for o in render.render_all(
                    ref,
                    spec,
                    status,
                    service_monitor_available=sm,
                    classifier=classifier.model
                    if classifier.digest and classifier.digest == status.classifier_digest
                    else None,
                    judge_prompt=judge_prompt,
                )
            ]
            ready = get_condition(status.conditions, ConditionType.READY)
            self._apply_objects(ref, objs, applied_before=ready is not None)
            backoff.succeeded()
        except KubeError as exc:
            error = str(exc)
            retry = backoff.failed(getattr(exc, "retry_after", None))
            log.error("%s/%s: %s (retrying in %.0fs)", ref.namespace, ref.name, error, retry)
        if error is None:
            error = self.missing_secrets(ref.namespace, spec)
        return error, retry

    def _prune(self, ref: rendermeta.PolicyRef, objs: list[dict[str, Any]], first: bool) -> None:
        """Delete the disruption budget the render left out (the policy went down to one
        router: :func:`render.wants_disruption_budget`): the one this process applied, or,
        the first time it sees a policy applied before (a restart, an upgrade from an
        operator that rendered it for every policy), the one it finds (a read, and a
        delete only if there is one). Owned objects go with their owner, not with a
        render that drops them, so this is the operator's to do."""
        budget = render.pod_disruption_budget(ref)
        key = object_key(budget)
        if key in {object_key(o) for o in objs}:
            return
        if not first and not self.applied.holds(ref.namespace, ref.name, ref.uid, key):
            return
        kind, name = key
        try:
            live = self.kube.read_object(budget["apiVersion"], kind, ref.namespace, name)
            uid = str(live["metadata"]["uid"])
            owners = live["metadata"].get("ownerReferences") or []
            if not any(o.get("uid") == ref.uid for o in owners):
                return  # not this policy's: leave it alone
            self.kube.delete_object(budget["apiVersion"], kind, ref.namespace, name, uid)
            log.info(
                "%s/%s: deleted its PodDisruptionBudget (fewer than 2 routers)",
                ref.namespace,
                ref.name,
            )
        except NotFoundError:
            pass
        except StatusConflictError:  # replaced meanwhile by another object: not ours
            pass

    def missing_secrets(self, namespace: str, spec: RoutingPolicySpec) -> str | None:
        """Name every referenced Secret key that cannot be read (the values stay here)."""
        problems = []
        for field, ref in render_routerconfig.secret_refs(spec):
            try:
                self.kube.read_secret_key(namespace, ref.name, ref.key)
            except KubeError as exc:  # includes NotFoundError: a missing Secret, not policy
                problems.append(f"{field}: {exc}")
        if not problems:
            return None
        return "routers cannot start until these Secrets exist: " + "; ".join(problems)

    def _apply_objects(
        self, ref: rendermeta.PolicyRef, objs: list[dict[str, Any]], applied_before: bool
    ) -> None:
        """Apply what changed since the last apply. The first time this process sees a
        policy whose objects were applied before (by an earlier run), compare with the
        live objects instead (reads, not writes), so a restart does not re-apply
        everything. A new policy's objects (never applied: no Ready condition yet) are
        created with a plain POST, which costs the API server less than an apply that
        creates; one that exists already (409: a crash before Ready, a deleted policy's
        namesake not yet collected) is applied instead. An object whose apply could not
        take over the fields of its create (:meth:`Kube.apply` False: it kept changing)
        is applied again at the next reconcile, so a field the render dropped goes."""
        known = self.applied.known(ref.namespace, ref.name, ref.uid)
        first = applied_before and not known
        new = not applied_before and not known
        todo = self.applied.due(ref.namespace, ref.name, ref.uid, objs)
        unsettled = []
        for i in todo:
            obj = objs[i]
            if new and self.kube.create(obj):
                continue
            if first:
                try:
                    live = self.kube.read_object(
                        obj["apiVersion"], obj["kind"], ref.namespace, obj["metadata"]["name"]
                    )
                except NotFoundError:
                    live = None
                if live is not None and contains(live, obj):
                    continue
            if not self.kube.apply(obj):
                unsettled.append(object_key(obj))
        if not new:
            self._prune(ref, objs, first)
        self.applied.record(ref.namespace, ref.name, ref.uid, objs)
        for key in unsettled:  # applied, but the fold of its create's entry kept losing
            self.applied.again(ref.namespace, ref.name, key)
