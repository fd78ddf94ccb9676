"""The operator at rest and under failure, against the real API server (writes counted
from its audit log) and a real Prometheus:

* idle means idle: steady policies cause no API write over several evaluation intervals,
  and a hand edit of a rendered object is still taken back (by the watch, not a timer),
  even one that edits away the label the watches select (the API server filters them:
  the operator's lists and watches of the rendered kinds all carry its label selector);
* one failing policy does not stall the others: ConfigMap writes of some policies are
  refused with 500 by the API server itself (a validating webhook nobody serves, with
  ``failurePolicy: Fail``), and the healthy policies' gates keep their cadence.
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from operatorkit import OperatorProcess, install_crd, operator_identity, policy_manifest
from routerkit import free_port
from tierguard.api import constants as c
from tierguard.api import metrics as m
from tierguard.api.enums import Phase
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import rendermeta

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tierguard.lab.controlplane import ControlPlane
    from tierguard.lab.prometheus import Prometheus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
INTERVAL = 5.0  # seconds; rollout.interval of every policy here


def _manifest(name: str, prom_url: str, *, candidate: bool = True) -> dict[str, Any]:
    doc = policy_manifest(
        name,
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        prom_url,
        interval=f"{INTERVAL:g}s",
        bake="5s",
        no_data_after="1h",
    )
    if not candidate:
        for r in doc["spec"]["routes"]:
            r.pop("candidate")
    return doc


class Policies:
    def __init__(self, kube_api: ApiClient, namespace: str) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(kube_api)
        self.ns = namespace

    def create(self, manifest: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, c.PLURAL, manifest)

    def body(self, name: str) -> dict[str, Any]:
        out = self.custom.get_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, c.PLURAL, name)
        return cast(dict[str, Any], out)

    def status(self, name: str) -> RoutingPolicyStatus:
        return RoutingPolicyStatus.model_validate(self.body(name).get("status") or {})

    def ready(self, name: str) -> str | None:
        for cond in self.status(name).conditions:
            if cond.type == "Ready":
                return cond.status
        return None


def _operator_writes(events: list[dict[str, Any]], namespace: str) -> Counter[str]:
    """Write requests by the operator's ServiceAccount, as 'verb resource[/sub] name'."""
    return _operator_requests(events, namespace, WRITE_VERBS)


def _operator_requests(
    events: list[dict[str, Any]], namespace: str, verbs: set[str] | frozenset[str]
) -> Counter[str]:
    """Requests with one of ``verbs`` by the operator's ServiceAccount, as
    'verb resource[/sub] name'."""
    user = f"system:serviceaccount:{namespace}:tierguard-operator"
    out: Counter[str] = Counter()
    for ev in events:
        if ev.get("user", {}).get("username") != user or ev.get("verb") not in verbs:
            continue
        ref = ev.get("objectRef", {})
        sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
        out[f"{ev['verb']} {ref.get('resource')}{sub} {ref.get('name', '')}"] += 1
    return out


def _weighted_policies(port: int) -> set[str]:
    """The policies whose weight the operator exports (a running daemon sets it)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        sample.labels[m.POLICY]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == m.ROLLOUT_WEIGHT.name
    }


def _gate_evaluations(port: int) -> Counter[str]:
    """Per policy: gate evaluations the operator has counted (its own /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != m.GATE_EVALUATIONS.base:
            continue
        for sample in family.samples:
            if sample.name == m.GATE_EVALUATIONS.name:
                out[sample.labels[m.POLICY]] += int(sample.value)
    return out


@pytest.fixture
def identity(control_plane: ControlPlane, kube_api: ApiClient, namespace: str) -> Iterator[Path]:
    install_crd(control_plane)
    with operator_identity(control_plane, kube_api, namespace) as kubeconfig:
        yield kubeconfig


def test_steady_policies_make_no_api_writes(
    control_plane: ControlPlane,
    kube_api: ApiClient,
    namespace: str,
    identity: Path,
    prometheus: Prometheus,
    tmp_path: Path,
    wait_for: Any,
) -> None:
    """A policy without a candidate, and two rolling out with no traffic (gates look every
    5 s and find nothing new): once settled, 25 s of operation cause zero writes. The
    operator leaves no discovery cache behind in its temp directory."""
    from kubernetes import client

    tmpdir = tmp_path / "operator-tmp"
    tmpdir.mkdir()
    port = free_port()
    op = OperatorProcess(
        identity,
        namespace,
        tmp_path / "operator.log",
        extra_args=["--metrics-port", str(port), "--metrics-address", "127.0.0.1"],
        env={"TMPDIR": str(tmpdir)},
    )
    op.start()
    policies = Policies(kube_api, namespace)
    names = ["steady-a", "steady-b", "plain"]
    _, created_at = control_plane.audit_events()
    try:
        for name in names:
            policies.create(_manifest(name, prometheus.url, candidate=name != "plain"))

        def settled() -> bool:
            for name in names:
                st = policies.status(name)
                if policies.ready(name) != "True":
                    return False
                if name != "plain" and (st.phase != Phase.PROGRESSING or st.no_data_since is None):
                    return False
            return True

        wait_for(settled, timeout=120, message=f"policies never settled:\n{op.log()}")
        # A new policy's decision and its Ready come in one status write (what a burst
        # of new policies waits for); the policy without a candidate has nothing else.
        # (A write refused with 409 changed nothing.) No finalizer: kopf's daemons ask
        # for one (a patch per new policy), this operator's does not need it.
        first, _ = control_plane.audit_events(created_at)
        done = [e for e in first if e.get("responseStatus", {}).get("code", 0) < 300]
        plain = {k: v for k, v in _operator_writes(done, namespace).items() if "plain" in k}
        assert plain.get("update routingpolicies/status plain") == 1, (
            f"writes for a new policy: {plain}\n{op.log()}"
        )
        assert "patch routingpolicies plain" not in plain, f"a finalizer patch: {plain}"
        assert not policies.body("plain")["metadata"].get("finalizers")
        time.sleep(2 * INTERVAL)  # the bake time ends: one last real change
        _, offset = control_plane.audit_events()
        looks_before = _gate_evaluations(port)
        time.sleep(5 * INTERVAL)
        events, _ = control_plane.audit_events(offset)
        looks_after = _gate_evaluations(port)
        writes = _operator_writes(events, namespace)
        assert not writes, f"an idle operator wrote: {dict(writes)}\n{op.log()}"
        for name in ("steady-a", "steady-b"):
            assert looks_after[name] - looks_before[name] >= 3 * 2, "gates kept looking"
        # Reconciles decide on the watch's copy of a policy once it has delivered the
        # operator's own last write: no GET per look (the first reconcile of a new policy
        # may still read when it races the watch).
        gets = _operator_requests(events, namespace, {"get"})
        assert not [k for k in gets if k.startswith("get routingpolicies ")], dict(gets)
        everything, _ = control_plane.audit_events(created_at)
        assert _operator_requests(everything, namespace, {"get", "list", "watch"}), (
            "the audit log does record the operator's reads"
        )

        # Drift is still taken back, woken by the watch (no re-apply timer any more).
        apps = client.AppsV1Api(kube_api)
        dep = rendermeta.object_name("plain")
        apps.patch_namespaced_deployment(dep, namespace, {"spec": {"replicas": 4}})

        def taken_back() -> bool:
            # The Deployment was created by a POST: the first apply also folds that
            # create's Update entry into the operator's Apply entry (a managedFields patch
            # and the apply again); wait for all three writes.
            live = apps.read_namespaced_deployment(dep, namespace)
            entries = (live.metadata.managed_fields if live.metadata else None) or []
            ours = [m.operation for m in entries if m.manager == c.FIELD_MANAGER]
            return bool(live.spec and live.spec.replicas == 1 and ours == ["Apply"])

        wait_for(taken_back, timeout=30, message=f"the hand edit was never taken back:\n{op.log()}")
        # An object whose label is edited away leaves the operator's filtered watch (a
        # DELETED event): that is drift too, and the label is put back.
        core = client.CoreV1Api(kube_api)
        cm = rendermeta.object_name("plain")
        core.patch_namespaced_config_map(
            cm, namespace, {"metadata": {"labels": {c.LABEL_MANAGED_BY: None}}}
        )

        def relabelled() -> bool:
            live = core.read_namespaced_config_map(cm, namespace)
            return bool(live.metadata and (live.metadata.labels or {}).get(c.LABEL_MANAGED_BY))

        wait_for(relabelled, timeout=30, message=f"the label was never put back:\n{op.log()}")
        # Watch events that still show the edit (the controller manager's status updates
        # of the edited Deployment) may wake one more apply: wait until 2 s pass quietly.
        for _ in range(10):
            _, quiet_from = control_plane.audit_events()
            time.sleep(2)
            recent, _ = control_plane.audit_events(quiet_from)
            if not _operator_writes(recent, namespace):
                break
        # The API server filters the watches of the rendered kinds by the operator's
        # label: other ConfigMaps, Deployments, ... of the cluster are never sent to it.
        lists, _ = control_plane.audit_events(created_at)
        owned = {"configmaps", "services", "serviceaccounts", "deployments"}
        owned |= {"poddisruptionbudgets", "roles", "rolebindings"}
        user = f"system:serviceaccount:{namespace}:tierguard-operator"
        streams = [
            e["requestURI"]
            for e in lists
            if e.get("user", {}).get("username") == user
            and e.get("verb") in {"list", "watch"}
            and e.get("objectRef", {}).get("resource") in owned
        ]
        assert {urllib.parse.urlsplit(u).path.rsplit("/", 1)[-1] for u in streams} == owned
        selector = [f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"]
        unfiltered = [
            u
            for u in streams
            if urllib.parse.parse_qs(urllib.parse.urlsplit(u).query).get("labelSelector")
            != selector
        ]
        assert not unfiltered, f"unfiltered lists or watches: {unfiltered}"

        # Deleted without a finalizer: the watch's DELETED stops the policy's daemon (it
        # drops the policy's series on its way out), and nothing is written for it after.
        assert "plain" in _weighted_policies(port)
        _, offset = control_plane.audit_events()
        policies.custom.delete_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.PLURAL, "plain"
        )
        wait_for(
            lambda: "plain" not in _weighted_policies(port),
            timeout=30,
            message=f"the deleted policy's daemon kept running:\n{op.log()}",
        )
        after, _ = control_plane.audit_events(offset)
        late = {k: v for k, v in _operator_writes(after, namespace).items() if "plain" in k}
        assert not late, f"writes for a deleted policy: {late}"
    finally:
        op.stop()
    leftovers = sorted(p.name for p in tmpdir.iterdir())
    assert not leftovers, f"the operator left files in its temp directory: {leftovers}"


def _refusing_webhook(namespace: str, policies: list[str]) -> dict[str, Any]:
    """ConfigMap writes of ``policies`` are sent to a webhook nobody serves: with
    ``failurePolicy: Fail`` the API server answers 500 (InternalError) at once."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"refuse-{namespace}"},
        "webhooks": [
            {
                "name": "refuse.tierguard.test",
                "clientConfig": {"url": "https://127.0.0.1:1/refuse"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["configmaps"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "objectSelector": {
                    "matchExpressions": [
                        {"key": c.LABEL_POLICY, "operator": "In", "values": policies}
                    ]
                },
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 2,
            }
        ],
    }


def test_failing_policies_leave_the_others_cadence_alone(
    control_plane: ControlPlane,
    kube_api: ApiClient,
    namespace: str,
    identity: Path,
    prometheus: Prometheus,
    tmp_path: Path,
    wait_for: Any,
) -> None:
    """30 policies whose ConfigMap the API server refuses with 500, 3 healthy ones: the
    healthy gates still look about every interval (5 s), and the failing ones say why."""
    from kubernetes import client

    from kubemodels import as_model

    broken = [f"broken-{i}" for i in range(30)]
    healthy = [f"healthy-{i}" for i in range(3)]
    admission = client.AdmissionregistrationV1Api(kube_api)
    admission.create_validating_webhook_configuration(
        as_model(client.V1ValidatingWebhookConfiguration, _refusing_webhook(namespace, broken))
    )
    port = free_port()
    op = OperatorProcess(
        identity,
        namespace,
        tmp_path / "operator.log",
        extra_args=["--metrics-port", str(port), "--metrics-address", "127.0.0.1"],
    )
    try:
        policies = Policies(kube_api, namespace)
        for name in broken + healthy:
            policies.create(_manifest(name, prometheus.url))
        op.start()
        wait_for(
            lambda: all(policies.ready(n) == "True" for n in healthy),
            timeout=120,
            message=f"healthy policies never Ready:\n{op.log()}",
        )
        wait_for(
            lambda: all(policies.ready(n) == "False" for n in broken),
            timeout=120,
            message=f"failing policies never reported:\n{op.log()}",
        )
        assert "failed calling webhook" in next(
            cond.message for cond in policies.status(broken[0]).conditions if cond.type == "Ready"
        )
        wait_for(
            lambda: all(_gate_evaluations(port)[n] > 0 for n in healthy),
            timeout=60,
            message=f"healthy gates never looked:\n{op.log()}",
        )
        before = _gate_evaluations(port)
        window = 8 * INTERVAL
        time.sleep(window)
        after = _gate_evaluations(port)
        looks = {n: (after[n] - before[n]) // 2 for n in healthy}  # two gates per policy
        # One look per interval is 8 in this window; a stalled operator managed ~1-2.
        assert all(v >= 6 for v in looks.values()), f"healthy looks {looks}\n{op.log()}"
    finally:
        op.stop()
        admission.delete_validating_webhook_configuration(f"refuse-{namespace}")
