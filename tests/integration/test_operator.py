"""The operator against the real thing: kube-apiserver + etcd + controller manager,
Prometheus scraping real router processes, fake providers; the operator runs as a
subprocess with its least-privilege ServiceAccount (rbac.OPERATOR_RULES), never admin.

Durations are seconds long (interval and bake 5s, the CRD's floors); assertions wait on
observable state (status, Events, ConfigMap), never on elapsed time.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from operatorkit import (
    OperatorProcess,
    Routed,
    install_crd,
    operator_identity,
    policy_manifest,
)
from tierguard.api import constants as c
from tierguard.api.enums import Phase, Reason
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import render_routerconfig, rendermeta

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tierguard.lab.controlplane import ControlPlane
    from tierguard.lab.prometheus import Prometheus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

POLICY = "shop"


class Cluster:
    """The policy (``policy``, default :data:`POLICY`) as the API server has it, plus
    helpers to read what the operator did."""

    def __init__(self, kube_api: ApiClient, namespace: str, policy: str = POLICY) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(kube_api)
        self.core = client.CoreV1Api(kube_api)
        self.ns = namespace
        self.policy = policy

    def create(self, manifest: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, c.PLURAL, manifest)

    def body(self) -> dict[str, Any]:
        out = self.custom.get_namespaced_custom_object(
            c.GROUP, c.VERSION, self.ns, c.PLURAL, self.policy
        )
        assert isinstance(out, dict)
        return out

    def status(self) -> RoutingPolicyStatus:
        return RoutingPolicyStatus.model_validate(self.body().get("status") or {})

    def annotate(self, action: str, nonce: str) -> None:
        self.custom.patch_namespaced_custom_object(
            c.GROUP,
            c.VERSION,
            self.ns,
            c.PLURAL,
            self.policy,
            {
                "metadata": {
                    "annotations": {c.ANNOTATION_ACTION: action, c.ANNOTATION_ACTION_NONCE: nonce}
                }
            },
        )

    def patch_spec(self, spec: dict[str, Any]) -> None:
        """A merge patch of the spec (lists are replaced whole), as ``kubectl apply`` or
        a GitOps sync would change it."""
        self.custom.patch_namespaced_custom_object(
            c.GROUP, c.VERSION, self.ns, c.PLURAL, self.policy, {"spec": spec}
        )

    def events(self, reason: str) -> list[Any]:
        evs = self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={self.policy}"
        ).items
        return [e for e in evs if e.reason == reason]

    def split(self) -> list[dict[str, Any]]:
        return list(self.router_config()["split"])

    def router_config(self) -> dict[str, Any]:
        cm = self.core.read_namespaced_config_map(rendermeta.object_name(self.policy), self.ns)
        assert cm.data is not None
        return dict(yaml.safe_load(cm.data[c.ROUTER_CONFIG_KEY]))


@pytest.fixture
def cluster(crd: None, kube_api: ApiClient, namespace: str) -> Cluster:
    return Cluster(kube_api, namespace)


def _phase(cluster: Cluster, phase: Phase) -> Callable[[], RoutingPolicyStatus | None]:
    def check() -> RoutingPolicyStatus | None:
        st = cluster.status()
        return st if st.phase == phase else None

    return check


def test_good_candidate_goes_from_10_to_100_percent(
    cluster: Cluster,
    operator: OperatorProcess,
    routed: Routed,
    wait_for: Any,
) -> None:
    with routed(POLICY) as rs:
        traffic = rs.serve().traffic
        st = wait_for(
            _phase(cluster, Phase.PROMOTED),
            timeout=300,
            message=f"never promoted; operator log:\n{operator.log()}",
        )
    assert [h.weight for h in st.history] == [10.0, 50.0, 95.0]
    assert [h.reason for h in st.history] == [
        Reason.ROLLOUT_STARTED.value,
        Reason.STEP_ADVANCED.value,
        Reason.PROMOTED.value,
    ]
    assert all(t.verdict.value == "Pass" for t in st.tiers), st.tiers
    assert all(s["weight"] == 95.0 and s["controlArm"] == "holdback" for s in cluster.split())
    assert wait_for(
        lambda: cluster.events(Reason.PROMOTED.value), timeout=30, message="a Promoted Event"
    )
    assert traffic.seen, "traffic flowed"
    ready = next(x for x in st.conditions if x.type.value == "Ready")
    assert ready.status == "True"


def test_degraded_tier_is_rolled_back_early_and_named(
    cluster: Cluster,
    operator: OperatorProcess,
    routed: Routed,
    wait_for: Any,
) -> None:
    with routed(POLICY, {"complex": 0.3}) as rs:
        rs.serve()
        st = wait_for(
            _phase(cluster, Phase.ROLLED_BACK),
            timeout=300,
            message=f"never rolled back; operator log:\n{operator.log()}",
        )
    assert st.history[-1].step == 0, "caught at the first stage"
    assert "tier complex" in st.message and "ThumbsDown" in st.message
    tiers = {t.tier: t.verdict.value for t in st.tiers}
    assert tiers["complex"] == "Fail" and tiers["simple"] != "Fail"
    assert all(s["weight"] == 0 for s in cluster.split())
    events = wait_for(
        lambda: cluster.events(Reason.GATE_FAILED.value), timeout=30, message="a GateFailed Event"
    )
    assert len(events) == 1 and "tier complex" in events[0].message
    assert events[0].type == "Warning"


def test_prometheus_stopped_holds_then_resumes(
    cluster: Cluster,
    operator: OperatorProcess,
    prometheus: Prometheus,
    routed: Routed,
    wait_for: Any,
) -> None:
    with routed(POLICY) as rs:
        rs.serve(bake="1h", no_data_after="10m")
        wait_for(
            lambda: (
                cluster.status().tiers
                and cluster.status().no_data_since is None
                and all(t.verdict.value != "NoData" for t in cluster.status().tiers)
            ),
            timeout=120,
            message="gates never saw data",
        )
        assert prometheus.process is not None
        pid = prometheus.process.pid
        assert pid is not None, "Prometheus runs"
        os.kill(pid, signal.SIGSTOP)  # Prometheus stops answering mid-stage
        try:
            held = wait_for(
                lambda: (st := cluster.status()).no_data_since is not None and st,
                timeout=60,
                message="the operator never noticed",
            )
            assert held.phase == Phase.PROGRESSING and held.step == 0
            degraded = next(x for x in held.conditions if x.type.value == "Degraded")
            assert degraded.status == "True"
            # Events are posted right after the status write that records the hold.
            wait_for(
                lambda: cluster.events(Reason.PROMETHEUS_UNREACHABLE.value),
                timeout=30,
                message="a PrometheusUnreachable Event",
            )
        finally:
            os.kill(pid, signal.SIGCONT)
        back = wait_for(
            lambda: (st := cluster.status()).no_data_since is None and st,
            timeout=90,
            message="never resumed after Prometheus came back",
        )
        assert back.phase == Phase.PROGRESSING and back.step == 0
        wait_for(
            lambda: cluster.events(Reason.DATA_RESUMED.value),
            timeout=30,
            message="a DataResumed Event",
        )


def test_operator_killed_mid_stage_continues_the_same_stage(
    cluster: Cluster,
    operator: OperatorProcess,
    routed: Routed,
    wait_for: Any,
) -> None:
    with routed(POLICY) as rs:
        rs.serve(bake="15s")
        before = wait_for(
            lambda: (st := cluster.status()).step == 1 and st.tiers and st,
            timeout=240,
            message=f"never reached step 2:\n{operator.log()}",
        )
        operator.kill()
        frozen = cluster.status()
        operator.start()
        wait_for(
            lambda: cluster.status().last_evaluated_at != frozen.last_evaluated_at,
            timeout=60,
            message=f"restarted operator never evaluated:\n{operator.log()}",
        )
        after = cluster.status()
        assert after.step >= before.step
        if after.step == before.step:
            assert after.step_started_at == before.step_started_at, "same stage, not restarted"
        done = wait_for(
            _phase(cluster, Phase.PROMOTED),
            timeout=240,
            message=f"never promoted after restart:\n{operator.log()}",
        )
    assert [h.weight for h in done.history] == [10.0, 50.0, 95.0], "no step repeated/skipped"


def test_promote_and_abort_annotations_act_once_each(
    control_plane: ControlPlane,
    cluster: Cluster,
    operator: OperatorProcess,
    routed: Routed,
    wait_for: Any,
) -> None:
    with routed(POLICY) as rs:
        rs.serve(bake="1h", steps=[10, 25, 50, 100])
        wait_for(
            lambda: cluster.status().phase == Phase.PROGRESSING,
            timeout=60,
            message="rollout never started",
        )
        cluster.annotate("promote", "commit-1")
        st = wait_for(
            lambda: (s := cluster.status()).last_handled_action and s,
            timeout=60,
            message="promote never handled",
        )
        assert st.step == 1 and st.canary_weight == 25.0
        # The annotation stays (it belongs to Git); more reconciles must not act again.
        evaluated = st.last_evaluated_at
        wait_for(
            lambda: cluster.status().last_evaluated_at != evaluated,
            timeout=60,
            message="no further reconcile",
        )
        again = cluster.status()
        assert again.step == 1 and len(again.history) == len(st.history)
        assert cluster.body()["metadata"]["annotations"][c.ANNOTATION_ACTION] == "promote"
        cluster.annotate("abort", "commit-2")
        aborted = wait_for(
            _phase(cluster, Phase.ROLLED_BACK), timeout=60, message="abort never handled"
        )
        assert aborted.history[-1].reason == Reason.MANUAL_ABORT.value
        # Status is written first, then the objects rendered from it are applied.
        wait_for(
            lambda: all(s["weight"] == 0 for s in cluster.split()),
            timeout=30,
            message="the ConfigMap to serve weight 0",
        )
        assert len(cluster.events(Reason.MANUAL_PROMOTE.value)) == 1
        wait_for(
            lambda: cluster.events(Reason.MANUAL_ABORT.value),
            timeout=30,
            message="a ManualAbort Event",
        )
        assert len(cluster.events(Reason.MANUAL_ABORT.value)) == 1


def test_two_operator_replicas_never_act_twice(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    tmp_path: Path,
    routed: Routed,
    wait_for: Any,
) -> None:
    """Two replicas, both acting (no peering, the worst case): the status write's
    resourceVersion check lets only one of them record each decision, so every transition
    happens once and has exactly one Event."""
    second = OperatorProcess(operator.kubeconfig, namespace, tmp_path / "operator-2.log")
    second.start()
    try:
        with routed(POLICY) as rs:
            rs.serve()
            st = wait_for(
                _phase(cluster, Phase.PROMOTED),
                timeout=300,
                message=f"never promoted:\n{operator.log()}\n{second.log()}",
            )
    finally:
        second.stop()
    assert [h.weight for h in st.history] == [10.0, 50.0, 95.0]
    assert len(cluster.events(Reason.ROLLOUT_STARTED.value)) == 1
    assert len(cluster.events(Reason.STEP_ADVANCED.value)) == 1
    wait_for(lambda: cluster.events(Reason.PROMOTED.value), timeout=30, message="a Promoted Event")
    assert len(cluster.events(Reason.PROMOTED.value)) == 1


SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {
            "kind": "ServiceMonitor",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
            "listKind": "ServiceMonitorList",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def test_rendered_objects_are_owned_reapplied_and_garbage_collected(
    control_plane: ControlPlane,
    kube_api: ApiClient,
    namespace: str,
    tmp_path: Path,
    wait_for: Any,
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from kubemodels import as_model

    install_crd(control_plane)
    ext = client.ApiextensionsV1Api(kube_api)
    try:
        ext.create_custom_resource_definition(
            as_model(client.V1CustomResourceDefinition, SERVICE_MONITOR_CRD)
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    control_plane.wait_established("servicemonitors.monitoring.coreos.com")
    cluster = Cluster(kube_api, namespace)
    apps = client.AppsV1Api(kube_api)
    custom = client.CustomObjectsApi(kube_api)
    with operator_identity(control_plane, kube_api, namespace) as kubeconfig:
        op = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log")
        op.start()
        try:
            cluster.create(
                policy_manifest(
                    POLICY, "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"
                )
            )
            name = rendermeta.object_name(POLICY)
            sm = wait_for(
                lambda: custom.get_namespaced_custom_object(
                    "monitoring.coreos.com", "v1", namespace, "servicemonitors", name
                ),
                timeout=90,
                message=f"ServiceMonitor; operator log:\n{op.log()}",
            )
            uid = cluster.body()["metadata"]["uid"]
            roles = client.RbacAuthorizationV1Api(kube_api)
            pdbs = client.PolicyV1Api(kube_api)
            # One router: no disruption budget (it would let its only pod go anyway).
            with pytest.raises(ApiException) as missing:
                pdbs.read_namespaced_pod_disruption_budget(name, namespace)
            assert missing.value.status == 404
            metas = [
                cluster.core.read_namespaced_config_map(name, namespace).metadata,
                cluster.core.read_namespaced_service(name, namespace).metadata,
                cluster.core.read_namespaced_service_account(name, namespace).metadata,
                apps.read_namespaced_deployment(name, namespace).metadata,
                roles.read_namespaced_role(name, namespace).metadata,
            ]
            for meta in metas:
                assert meta is not None and meta.labels is not None
                assert meta.owner_references is not None and meta.managed_fields is not None
                assert meta.labels[c.LABEL_POLICY] == POLICY
                assert meta.owner_references[0].uid == uid
                # created by a POST (an Update entry), or applied since (Apply): the
                # operator's either way (tests/integration/test_fast_create.py)
                assert any(
                    m.manager == c.FIELD_MANAGER and m.operation in ("Apply", "Update")
                    for m in meta.managed_fields
                )
            assert sm["metadata"]["ownerReferences"][0]["uid"] == uid
            secret = cluster.core.read_namespaced_secret(
                rendermeta.signing_secret_name(POLICY), namespace
            )
            assert secret.data and render_routerconfig.GENERATED_SIGNING_KEY in secret.data
            # A hand edit of a rendered field is taken back on the next reconcile.
            apps.patch_namespaced_deployment(name, namespace, {"spec": {"replicas": 5}})
            wait_for(
                lambda: apps.read_namespaced_deployment(name, namespace).spec.replicas == 1,
                timeout=60,
                message="the operator to re-apply the Deployment",
            )
            assert cluster.body()["metadata"]["generation"] == 1, "the spec is never written"
            # Deleting the policy (no finalizer: it goes at once, and its daemon stops on
            # the watch's DELETED) deletes what it owns, by the real garbage collector.
            cluster.custom.delete_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.PLURAL, POLICY
            )

            def gone() -> bool:
                try:
                    cluster.core.read_namespaced_config_map(name, namespace)
                except ApiException as exc:
                    return bool(exc.status == 404)
                return False

            wait_for(gone, timeout=90, message="garbage collection of the rendered ConfigMap")
        finally:
            op.stop()


def test_missing_api_key_secret_is_named_on_ready_then_clears(
    cluster: Cluster, operator: OperatorProcess, wait_for: Any
) -> None:
    """A Secret the routers need but cannot find is reported against the field that names
    it (Ready=False, a Warning Event), and the report clears once the Secret exists. The
    Secret's value never appears in status."""
    from kubernetes import client

    manifest = policy_manifest(
        POLICY, "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"
    )
    manifest["spec"]["models"][1]["apiKeySecretRef"] = {"name": "provider-keys", "key": "small"}
    cluster.create(manifest)

    def ready() -> Any:
        for cond in cluster.status().conditions:
            if cond.type == "Ready":
                return cond
        return None

    cond = wait_for(
        lambda: (r := ready()) is not None and r.status == "False" and r,
        timeout=90,
        message=f"Ready=False for the missing Secret; operator log:\n{operator.log()}",
    )
    assert "spec.models[1].apiKeySecretRef" in cond.message
    assert "provider-keys" in cond.message
    # The Event follows the status write that records Ready=False.
    wait_for(
        lambda: cluster.events(Reason.RECONCILE_FAILED.value),
        timeout=30,
        message="a ReconcileFailed Warning Event",
    )

    secret_value = "sk-test-value-that-must-not-leak"
    cluster.core.create_namespaced_secret(
        cluster.ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="provider-keys"),
            string_data={"small": secret_value},
        ),
    )
    wait_for(
        lambda: (r := ready()) is not None and r.status == "True",
        timeout=90,
        message=f"Ready=True once the Secret exists; operator log:\n{operator.log()}",
    )
    assert secret_value not in str(cluster.body())
    assert secret_value not in operator.log()


def _no_router_policy(prom_url: str, **kw: Any) -> dict[str, Any]:
    """A policy whose gates never pass (no routers, no data) and never time out, so only
    manual actions and spec edits move it."""
    return policy_manifest(
        POLICY,
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        prom_url,
        bake="1h",
        no_data_after="10m",
        **kw,
    )


def _seen_by_operator(cluster: Cluster, wait_for: Any, operator: OperatorProcess) -> None:
    """Wait until the operator has reconciled the policy as it is now: bump the generation
    with an edit that changes nothing for users (maxStepDuration) and wait for
    observedGeneration to catch up. An idle operator writes nothing, so this, not
    lastEvaluatedAt, proves it read the current annotations."""
    body = cluster.body()
    minutes = int(body["metadata"]["generation"]) % 50
    cluster.patch_spec({"rollout": {"maxStepDuration": f"2h{minutes + 1}m"}})
    generation = int(cluster.body()["metadata"]["generation"])
    wait_for(
        lambda: cluster.status().observed_generation >= generation,
        timeout=60,
        message=f"generation {generation} never observed; operator log:\n{operator.log()}",
    )


def test_reapplied_old_action_annotations_never_act_again(
    cluster: Cluster, operator: OperatorProcess, prometheus: Prometheus, wait_for: Any
) -> None:
    """Argo CD self-heal re-applies the manifest carrying an action annotation that was
    handled long ago, after later actions: it must never act again, in any order."""
    cluster.create(_no_router_policy(prometheus.url, steps=[10, 25, 50, 100]))
    wait_for(_phase(cluster, Phase.PROGRESSING), timeout=60, message="rollout never started")

    def handled(nonce: str) -> RoutingPolicyStatus:
        return wait_for(  # type: ignore[no-any-return]
            lambda: (
                (s := cluster.status()).last_handled_action is not None
                and s.last_handled_action.nonce == nonce
                and s
            ),
            timeout=60,
            message=f"{nonce} never handled; operator log:\n{operator.log()}",
        )

    cluster.annotate("promote", "commit-1")
    assert handled("commit-1").step == 1
    cluster.annotate("pause", "commit-2")
    assert handled("commit-2").phase == Phase.PAUSED
    # Self-heal puts the old promote back: nothing may happen.
    cluster.annotate("promote", "commit-1")
    _seen_by_operator(cluster, wait_for, operator)
    st = cluster.status()
    assert (st.phase, st.step, st.canary_weight) == (Phase.PAUSED, 1, 25.0)
    cluster.annotate("abort", "commit-3")
    assert handled("commit-3").phase == Phase.ROLLED_BACK
    cluster.annotate("retry", "commit-4")
    assert handled("commit-4").phase == Phase.PROGRESSING
    # Old annotations come back in another order: none acts (abort would undo the retry).
    for action, nonce in (("abort", "commit-3"), ("pause", "commit-2"), ("promote", "commit-1")):
        cluster.annotate(action, nonce)
        _seen_by_operator(cluster, wait_for, operator)
        st = cluster.status()
        assert (st.phase, st.step) == (Phase.PROGRESSING, 0), (action, nonce, st.message)
    assert [h.nonce for h in st.handled_actions] == [f"commit-{i}" for i in range(1, 5)]
    assert len(cluster.events(Reason.MANUAL_PROMOTE.value)) == 1
    assert len(cluster.events(Reason.MANUAL_ABORT.value)) == 1
    assert all(s["weight"] == 10.0 for s in cluster.split())


def test_steps_shortened_mid_rollout_land_on_the_new_steps(
    cluster: Cluster, operator: OperatorProcess, prometheus: Prometheus, wait_for: Any
) -> None:
    """At step 3 of 5 (25 %), steps become [50, 100]: status, the served split and the
    Argo CD health follow the new steps; the next promote promotes at 100 % - holdback."""
    from argocdkit import argocd_health

    cluster.create(_no_router_policy(prometheus.url, steps=[5, 10, 25, 50, 100]))
    wait_for(_phase(cluster, Phase.PROGRESSING), timeout=60, message="rollout never started")
    for i in range(2):
        cluster.annotate("promote", f"p{i}")
        wait_for(
            lambda i=i: cluster.status().step == i + 1,
            timeout=60,
            message=f"promote {i} never handled:\n{operator.log()}",
        )
    assert cluster.status().step_display == "3/5"
    cluster.patch_spec({"rollout": {"steps": [50, 100]}})
    st = wait_for(
        lambda: (s := cluster.status()).observed_generation == 2 and s,
        timeout=60,
        message=f"the steps edit was never observed:\n{operator.log()}",
    )
    assert (st.phase, st.step, st.step_display, st.canary_weight) == (
        Phase.PROGRESSING,
        0,
        "1/2",
        50.0,
    )
    assert st.history[-1].reason == Reason.STEPS_CHANGED.value
    wait_for(
        lambda: all(s["weight"] == 50.0 for s in cluster.split()),
        timeout=60,
        message="the ConfigMap never served the remapped weight",
    )
    health = argocd_health(cluster.body())
    assert health["status"] == "Progressing" and "step 1/2" in health["message"], health
    cluster.annotate("promote", "p-final")
    done = wait_for(_phase(cluster, Phase.PROMOTED), timeout=60, message="never promoted")
    assert done.canary_weight == 95.0 and done.step_display == "2/2"
    assert argocd_health(cluster.body())["status"] == "Healthy"


def test_unusable_spec_is_failed_degraded_and_observed_then_resumes(
    control_plane: ControlPlane,
    cluster: Cluster,
    operator: OperatorProcess,
    prometheus: Prometheus,
    wait_for: Any,
) -> None:
    """A policy stored under an older CRD (without the candidate != baseline rule) that
    the operator cannot use: Failed/InvalidSpec with observedGeneration caught up, so
    Argo CD shows Degraded instead of Progressing forever; fixed, the rollout goes on."""
    from argocdkit import argocd_health
    from tierguard.api.crdgen import build_crd

    manifest = _no_router_policy(prometheus.url)
    cluster.create(manifest)
    wait_for(_phase(cluster, Phase.PROGRESSING), timeout=60, message="rollout never started")
    routes = manifest["spec"]["routes"]
    older = build_crd()
    schema = older["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    route_schema = schema["properties"]["spec"]["properties"]["routes"]["items"]
    assert route_schema.pop("x-kubernetes-validations"), "the candidate rule is in the CRD"
    try:
        control_plane.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(older)
        )

        def patched() -> bool:
            # The API server takes a moment to serve the replaced CRD's schema.
            from kubernetes.client.exceptions import ApiException

            try:
                cluster.patch_spec({"routes": [{**routes[0], "candidate": "big"}, routes[1]]})
            except ApiException as exc:
                if exc.status != 422:
                    raise
                return False
            return True

        wait_for(patched, timeout=30, message="the older CRD to be served")
        st = wait_for(
            lambda: (s := cluster.status()).observed_generation == 2 and s,
            timeout=60,
            message=f"generation 2 never observed:\n{operator.log()}",
        )
    finally:
        install_crd(control_plane)
    assert st.phase == Phase.FAILED
    assert "spec.routes.0" in st.message and "candidate must differ" in st.message
    conds = {x.type.value: x for x in st.conditions}
    assert conds["Ready"].status == "False" and conds["Ready"].reason == Reason.INVALID_SPEC
    assert conds["Degraded"].status == "True" and conds["Progressing"].status == "False"
    assert all(x.observed_generation == 2 for x in conds.values())
    health = argocd_health(cluster.body())
    assert health["status"] == "Degraded" and "candidate must differ" in health["message"]
    assert all(s["weight"] == 10.0 for s in cluster.split()), "served weights untouched"
    wait_for(
        lambda: cluster.events(Reason.INVALID_SPEC.value),
        timeout=30,
        message="an InvalidSpec Event",
    )
    cluster.patch_spec({"routes": routes})
    back = wait_for(
        lambda: (s := cluster.status()).observed_generation == 3 and s,
        timeout=60,
        message=f"generation 3 never observed:\n{operator.log()}",
    )
    assert (back.phase, back.step, back.canary_weight) == (Phase.PROGRESSING, 0, 10.0)
    assert back.history[-1].reason == Reason.SPEC_VALID.value
    wait_for(
        lambda: any(
            x.type.value == "Ready" and x.status == "True" for x in cluster.status().conditions
        ),
        timeout=60,
        message="Ready never came back",
    )
    assert argocd_health(cluster.body())["status"] == "Progressing"
    assert len(cluster.events(Reason.INVALID_SPEC.value)) == 1, "one Event per problem"


def test_pairwise_judge_rolls_back_a_worse_candidate_with_judge_health_in_status(
    cluster: Cluster,
    operator: OperatorProcess,
    routed: Routed,
    wait_for: Any,
) -> None:
    """The candidate answers complex questions badly (30 % good): the pairwise judge finds
    its answers worse than the baseline's and the paired gate rolls the rollout back at
    the first stage; simple (as good as the baseline) does not fail."""
    with routed(POLICY, {"complex": 0.3}) as rs:
        rs.serve(judge_url=rs.big)
        st = wait_for(
            _phase(cluster, Phase.ROLLED_BACK),
            timeout=300,
            message=f"never rolled back; operator log:\n{operator.log()}",
        )
    assert st.history[-1].step == 0, "caught at the first stage"
    assert "tier complex" in st.message and "ShadowDisagreement" in st.message
    tiers = {t.tier: t for t in st.tiers}
    assert tiers["complex"].verdict.value == "Fail" and tiers["simple"].verdict.value != "Fail"
    judge = tiers["complex"].signals[0].judge
    assert judge is not None and judge.healthy
    assert judge.worse > judge.better and judge.judged >= judge.worse + judge.better
    simple = tiers["simple"].signals[0].judge
    assert simple is not None and simple.worse == 0 and simple.better == 0  # all ties


def test_a_stalled_pairwise_judge_holds_the_stage_and_never_passes(
    cluster: Cluster,
    operator: OperatorProcess,
    routed: Routed,
    wait_for: Any,
) -> None:
    """Every judge call stalls past the judge model's timeout: no verdict is a loss, the
    gates report JudgeUnhealthy once the error rate is established, and the rollout stays
    at its first stage."""
    from routerkit import http

    with routed(POLICY) as rs:
        status, _ = http("PATCH", f"{rs.big}/admin/profile/judge-1", {"hang_rate": 1.0})
        assert status == 200
        rs.serve(judge_url=rs.big)

        def unhealthy() -> RoutingPolicyStatus | None:
            st = cluster.status()
            sigs = [s for t in st.tiers for s in t.signals]
            ok = sigs and all(s.message.startswith("JudgeUnhealthy") for s in sigs)
            return st if ok else None

        st = wait_for(
            unhealthy,
            timeout=300,
            message=f"the judge was never reported unhealthy; operator log:\n{operator.log()}",
        )
    assert st.phase == Phase.PROGRESSING and st.step == 0, (st.phase, st.history)
    assert st.canary_weight == 10.0
    assert all(t.verdict.value == "Inconclusive" for t in st.tiers), st.tiers
    for t in st.tiers:
        judge = t.signals[0].judge
        assert judge is not None and not judge.healthy and judge.judged == 0
        assert judge.errors > 0 and judge.error_rate == 1.0
