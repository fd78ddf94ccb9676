"""The Helm chart against a real kube-apiserver (the testbed's, no mocks), and its alert
rules against Prometheus' own rule checker and rule unit-test runner.

* Rendered manifests (default and full values) pass a server-side dry run: the API
  server validates every object against its real schemas.
* The default manifests are applied for real, and the RBAC is exercised: the API server
  answers access reviews for the operator's ServiceAccount, and the same ServiceAccount
  (a token, no admin rights) does what the operator does in an application namespace.
* With tierguard.operator present, the operator runs with exactly that ServiceAccount
  and the Deployment's environment and must reconcile an example policy.
* Every Kubernetes manifest under examples/ is applied.
* The PrometheusRule passes `promtool check rules` (its behaviour: the promtool tests
  shipped in the chart, run by tests/unit/test_chart_alerts.py).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierguard.api.constants import CRD_NAME
from tierguard.lab.controlplane import K8S_VERSION, ControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tierguard"
FULL = CHART / "ci" / "full-values.yaml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MONITORING = "monitoring.coreos.com/v1"
WaitFor = Callable[..., Any]

# What the operator does in an application namespace, as (verb, resource) pairs for
# `kubectl auth can-i`; the chart must allow each, and must refuse the forbidden ones.
ALLOWED = [
    ("get", "routingpolicies.tierguard.io"),
    ("list", "routingpolicies.tierguard.io"),
    ("watch", "routingpolicies.tierguard.io"),
    ("patch", "routingpolicies.tierguard.io"),
    ("patch", "routingpolicies.tierguard.io/status"),
    ("update", "routingpolicies.tierguard.io/finalizers"),
    ("create", "configmaps"),
    ("patch", "configmaps"),
    ("delete", "configmaps"),  # pruning frozen classifier copies (operator/prunecopies.py)
    ("create", "services"),
    ("create", "serviceaccounts"),
    ("create", "deployments.apps"),
    ("create", "poddisruptionbudgets.policy"),
    ("patch", "poddisruptionbudgets.policy"),
    ("patch", "deployments.apps"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("get", "secrets"),
    ("create", "secrets"),
    ("create", "events"),
    ("create", "events.events.k8s.io"),
    ("create", "servicemonitors.monitoring.coreos.com"),
]
FORBIDDEN = [
    ("list", "secrets"),
    ("watch", "secrets"),
    ("delete", "routingpolicies.tierguard.io"),
    ("update", "routingpolicies.tierguard.io"),
    ("create", "pods"),
    ("escalate", "roles.rbac.authorization.k8s.io"),
    ("bind", "roles.rbac.authorization.k8s.io"),
    ("create", "leases.coordination.k8s.io"),
    ("delete", "services"),  # the garbage collector deletes rendered objects
    ("delete", "deployments.apps"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """helm built from the Go module proxy (cached); homes in a temp dir."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "build-helm.sh")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"scripts/build-helm.sh failed:\n{proc.stderr[-4000:]}"
    home = tmp_path_factory.mktemp("helm-home")
    for var in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
        os.environ[var] = str(home / var.lower())
    yield proc.stdout.strip().splitlines()[-1]


def render(
    helm: str, namespace: str, *args: str, release: str = "tierguard"
) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [helm, "template", release, str(CHART), "--namespace", namespace,
         "--kube-version", K8S_VERSION, *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def apply(
    cp: ControlPlane, docs: list[dict[str, Any]], *extra: str
) -> subprocess.CompletedProcess[str]:
    return cp.kubectl(
        "apply", "--server-side", "--field-manager=tierguard-chart-test", "-f", "-", *extra,
        input=dump(docs), check=False,
    )  # fmt: skip


def install_in_order(cp: ControlPlane, docs: list[dict[str, Any]]) -> None:
    """CRDs first, then (once they are established) everything else, as Helm does with
    its hooks: the peering object's kind only exists after its CRD."""
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    if crds:
        res = apply(cp, crds)
        assert res.returncode == 0, res.stderr
        cp.wait_established(*(crd["metadata"]["name"] for crd in crds))
    res = apply(cp, [d for d in docs if d["kind"] != "CustomResourceDefinition"])
    assert res.returncode == 0, res.stderr


def ensure_namespace(cp: ControlPlane, name: str) -> None:
    cp.kubectl("create", "namespace", name, check=False)


def can_i(
    cp: ControlPlane, verb: str, resource: str, namespace: str, user: str, name: str = ""
) -> bool:
    """The API server's own answer (a SubjectAccessReview, as `kubectl auth can-i` sends)
    for ``resource`` written as ``plural[.group][/subresource]``; works for kinds whose
    CRD is not installed (e.g. ServiceMonitor), where kubectl's discovery cannot help."""
    res_group, _, sub = resource.partition("/")
    plural, _, group = res_group.partition(".")
    groups = ["system:authenticated"]
    if user.startswith("system:serviceaccount:"):
        groups += ["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}"]
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": groups,
            "resourceAttributes": {
                "verb": verb, "group": group, "resource": plural, "subresource": sub,
                "namespace": namespace, "name": name,
            },
        },
    }  # fmt: skip
    out = cp.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review))
    return bool(json.loads(out.stdout)["status"].get("allowed", False))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


# --------------------------------------------------------------------------- dry run


def test_default_manifests_pass_server_side_dry_run(
    control_plane: ControlPlane,
    helm: str,
    namespace: str,
    installed: tuple[str, list[dict[str, Any]]],
) -> None:
    """(``installed`` put kopf's peering CRDs on the cluster, as a first install would.)"""
    docs = render(helm, namespace, release=unique("dry"))
    res = apply(control_plane, docs, "--dry-run=server")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("(server dry run)") == len(docs)


def test_full_manifests_pass_server_side_dry_run(
    control_plane: ControlPlane,
    helm: str,
    namespace: str,
    installed: tuple[str, list[dict[str, Any]]],
) -> None:
    """(``installed`` put kopf's peering CRDs on the cluster, as a first install would.)"""
    """Every object of the full render except the Prometheus Operator's kinds (their CRDs
    are not on this cluster; the rules are checked by promtool below)."""
    for ns in ("team-a", "team-b"):
        ensure_namespace(control_plane, ns)
    docs = render(helm, namespace, "--values", str(FULL))
    kube = [d for d in docs if d["apiVersion"] != MONITORING]
    assert len(kube) < len(docs)
    res = apply(control_plane, kube, "--dry-run=server")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("(server dry run)") == len(kube)


# --------------------------------------------------------------------------- real apply


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane, helm: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The default render applied for real in its own release namespace."""
    release_ns = unique("tierguard-system")
    ensure_namespace(control_plane, release_ns)
    docs = render(helm, release_ns)
    install_in_order(control_plane, docs)
    yield release_ns, docs
    cluster_scoped = [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    control_plane.kubectl("delete", "--ignore-not-found", "-f", "-", input=dump(cluster_scoped))
    control_plane.kubectl("delete", "namespace", release_ns, "--wait=false", check=False)


def sa_name(docs: list[dict[str, Any]]) -> str:
    (sa,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    return str(sa["metadata"]["name"])


def test_rbac_allows_what_the_operator_does_and_nothing_more(
    control_plane: ControlPlane, installed: tuple[str, list[dict[str, Any]]], namespace: str
) -> None:
    release_ns, docs = installed
    sa = f"system:serviceaccount:{release_ns}:{sa_name(docs)}"
    denied = [(v, r) for v, r in ALLOWED if not can_i(control_plane, v, r, namespace, sa)]
    assert not denied, f"the chart's RBAC refuses {denied}"
    allowed = [(v, r) for v, r in FORBIDDEN if can_i(control_plane, v, r, namespace, sa)]
    assert not allowed, f"the chart's RBAC allows {allowed}"
    for verb in ("get", "watch", "patch"):
        assert can_i(control_plane, verb, "clusterkopfpeerings.kopf.dev", "", sa)
    assert not can_i(control_plane, "delete", "clusterkopfpeerings.kopf.dev", "", sa)
    assert can_i(control_plane, "list", "customresourcedefinitions.apiextensions.k8s.io", "", sa)
    assert not can_i(
        control_plane, "create", "customresourcedefinitions.apiextensions.k8s.io", "", sa
    )


def test_operator_service_account_can_render_a_router(
    control_plane: ControlPlane, installed: tuple[str, list[dict[str, Any]]], namespace: str
) -> None:
    """As the operator's ServiceAccount (a real token), do what the operator does for a
    policy: read it, write its status, render the router's objects, give the router's
    ServiceAccount read access to its ConfigMap (no escalate/bind needed), create the
    signing-key Secret, post an Event, beat kopf's peering heartbeat."""
    release_ns, docs = installed
    policy = yaml.safe_load(
        (ROOT / "examples" / "kubernetes" / "policies" / "minimal.yaml").read_text()
    )
    res = apply(control_plane, [policy], "-n", namespace)  # as admin: users create policies
    assert res.returncode == 0, res.stderr
    kubeconfig = control_plane.service_account_kubeconfig(release_ns, sa_name(docs))

    def as_operator(*args: str, input: str | None = None) -> str:
        res = control_plane.kubectl(*args, input=input, kubeconfig=kubeconfig, check=False)
        assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
        return res.stdout

    assert "minimal" in as_operator("get", "rpol", "-n", namespace, "-o", "name")
    as_operator(
        "patch", "rpol", "minimal", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"phase": "Pending", "observedGeneration": 1}}),
    )  # fmt: skip
    router = "minimal-router"
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": router}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": router},
         "data": {"router.yaml": "{}"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": router},
         "spec": {"selector": {"app": router}, "ports": [{"name": "http", "port": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": router},
         "spec": {"selector": {"matchLabels": {"app": router}},
                  "template": {"metadata": {"labels": {"app": router}},
                               "spec": {"serviceAccountName": router,
                                        "containers": [{"name": "router",
                                                        "image": "tierguard/router:0.1.0"}]}}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": router},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [router],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": router},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": router},
         "subjects": [{"kind": "ServiceAccount", "name": router, "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "Event",
         "metadata": {"name": unique("minimal")},
         "involvedObject": {"apiVersion": "tierguard.io/v1alpha1", "kind": "RoutingPolicy",
                            "name": "minimal", "namespace": namespace},
         "reason": "RolloutStarted", "message": "chart RBAC test", "type": "Normal"},
    ]  # fmt: skip
    as_operator(
        "apply", "--server-side", "--field-manager=tierguard-operator", "-n", namespace,
        "-f", "-", input=dump(objects),
    )  # fmt: skip
    # The signing key is created once (POST): the chart grants create, not patch, on
    # Secrets, so the operator can never rewrite a Secret it did not create.
    signing = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{router}-signing"},
               "stringData": {"key": secrets.token_hex(16)}}  # fmt: skip
    as_operator("create", "-n", namespace, "-f", "-", input=dump([signing]))
    assert "minimal-router-signing" in as_operator("get", "secret", f"{router}-signing",
                                                   "-n", namespace, "-o", "name")  # fmt: skip
    # kopf's peering heartbeat: the replica patches its entry into the peering object.
    (peering,) = [d for d in docs if d["kind"] == "ClusterKopfPeering"]
    status = {"status": {"test-replica": {"priority": 7, "lifetime": 60}}}
    as_operator(
        "patch", "clusterkopfpeering", peering["metadata"]["name"], "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip
    # The router's ServiceAccount can now read its own ConfigMap, and only that.
    router_sa = f"system:serviceaccount:{namespace}:{router}"
    assert can_i(control_plane, "get", "configmaps", namespace, router_sa, name=router)
    assert not can_i(control_plane, "get", "configmaps", namespace, router_sa, name="other")
    assert not can_i(control_plane, "get", "secrets", namespace, router_sa)


def test_watch_namespaces_limit_rbac_to_those_namespaces(
    control_plane: ControlPlane, helm: str, namespace: str, tmp_path: Path
) -> None:
    watched = unique("watched")
    ensure_namespace(control_plane, watched)
    release = unique("scoped")
    docs = render(
        helm, namespace, "--set", f"operator.watchNamespaces={{{watched}}}",
        "--set", "crd.create=false", release=release,
    )  # fmt: skip
    res = apply(control_plane, docs)
    assert res.returncode == 0, res.stderr
    try:
        sa = f"system:serviceaccount:{namespace}:{sa_name(docs)}"
        assert can_i(control_plane, "create", "configmaps", watched, sa)
        assert can_i(control_plane, "watch", "routingpolicies.tierguard.io", watched, sa)
        assert not can_i(control_plane, "create", "configmaps", "default", sa)
        assert not can_i(control_plane, "watch", "routingpolicies.tierguard.io", "default", sa)
        # Secrets (the README's "namespaced mode"): only where policies are watched.
        assert can_i(control_plane, "get", "secrets", watched, sa)
        assert can_i(control_plane, "create", "secrets", watched, sa)
        assert not can_i(control_plane, "get", "secrets", "default", sa)
        assert not can_i(control_plane, "get", "secrets", "kube-system", sa)
        assert not can_i(control_plane, "list", "secrets", watched, sa)
    finally:
        cluster = [d for d in docs if d["kind"].startswith("Cluster")]
        control_plane.kubectl("delete", "--ignore-not-found", "-f", "-", input=dump(cluster))
        control_plane.kubectl("delete", "namespace", watched, "--wait=false", check=False)


def test_operator_runs_with_the_chart(
    control_plane: ControlPlane,
    installed: tuple[str, list[dict[str, Any]]],
    namespace: str,
    wait_for: WaitFor,
    tmp_path: Path,
) -> None:
    """The operator, as the chart's ServiceAccount with the Deployment's arguments and
    environment, reconciles an example policy: status appears and nothing is forbidden.
    Only the two listening ports are moved to free ones (tests share this machine)."""
    release_ns, docs = installed
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    env = dict(os.environ)
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
    env |= {
        "POD_NAME": "tierguard-operator-test",
        "POD_NAMESPACE": release_ns,
        "KUBECONFIG": str(control_plane.service_account_kubeconfig(release_ns, sa_name(docs))),
        "PYTHONPATH": os.environ.get("PYTHONPATH") or str(ROOT / "src"),
    }
    health, ready, metrics_port = free_port(), free_port(), free_port()
    args = []
    for arg in container["args"]:
        if arg.startswith("--liveness="):
            arg = f"--liveness=http://127.0.0.1:{health}/healthz"
        elif arg.startswith("--readiness="):
            arg = f"--readiness=http://127.0.0.1:{ready}/readyz"
        elif arg.startswith("--metrics-port="):
            arg = f"--metrics-port={metrics_port}"
        args.append(arg)
    policy = yaml.safe_load(
        (ROOT / "examples" / "kubernetes" / "policies" / "minimal.yaml").read_text()
    )
    policy["metadata"]["name"] = "runs-with-chart"
    assert apply(control_plane, [policy], "-n", namespace).returncode == 0
    log = tmp_path / "operator.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tierguard.cli", *args],  # args[0] == "operator"
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
        try:

            def reconciled() -> bool:
                assert proc.poll() is None, f"operator exited:\n{log.read_text()[-4000:]}"
                res = control_plane.kubectl(
                    "get", "rpol", "runs-with-chart", "-n", namespace, "-o",
                    "jsonpath={.status.observedGeneration}", check=False,
                )  # fmt: skip
                return res.stdout.strip() not in ("", "0")

            wait_for(reconciled, timeout=120, message="the operator never wrote status")
            # Distinct probes: liveness from kopf's loop, readiness from the API check.
            live = urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=5)
            assert live.status == 200
            with urllib.request.urlopen(f"http://127.0.0.1:{ready}/readyz", timeout=5) as r:
                assert r.status == 200 and "connected" in r.read().decode()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    # The operator watches all namespaces, so it also sees other tests' policies whose
    # namespaces are being deleted; the API server refuses writes there with a 403
    # (NamespaceTerminating) that says nothing about RBAC. Any other 403 is a missing rule.
    denied = [
        line
        for line in log.read_text().splitlines()
        if ("403" in line or "forbidden" in line.lower()) and "NamespaceTerminating" not in line
    ]
    assert not denied, "\n".join(denied[-20:])


# --------------------------------------------------------------------------- helm lifecycle


def test_helm_install_upgrade_uninstall(
    control_plane: ControlPlane, helm: str, installed: tuple[str, list[dict[str, Any]]]
) -> None:
    """helm itself against the real API server: install (adopting the CRD already on the
    cluster, as a user who applied crds/ by hand would), upgrade (the CRD is a template,
    so upgrades reach it, unlike crds/), uninstall (the CRD and so every RoutingPolicy
    stay: helm.sh/resource-policy=keep)."""
    release, release_ns = unique("life"), unique("tierguard-life")
    kube = ["--kubeconfig", str(control_plane.kubeconfig), "-n", release_ns]
    control_plane.kubectl(
        "annotate", "--overwrite", f"crd/{CRD_NAME}",
        f"meta.helm.sh/release-name={release}", f"meta.helm.sh/release-namespace={release_ns}",
    )  # fmt: skip
    control_plane.kubectl(
        "label", "--overwrite", f"crd/{CRD_NAME}", "app.kubernetes.io/managed-by=Helm"
    )

    def helm_cmd(*args: str) -> str:
        res = subprocess.run([helm, *args, *kube], capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    # kopf's peering CRDs are already on the cluster (the `installed` fixture): like a
    # second kopf operator's release, this one leaves them alone.
    out = helm_cmd("install", release, str(CHART), "--create-namespace",
                   "--set", "operator.replicas=1",
                   "--set", "operator.peering.createCRDs=false")  # fmt: skip
    assert "STATUS: deployed" in out
    assert f"kubectl -n {release_ns} get deploy,pods" in out, "NOTES.txt is shown"
    deploy = json.loads(control_plane.kubectl(
        "get", "deploy", "-n", release_ns, "-o", "json").stdout)["items"]  # fmt: skip
    assert [d["metadata"]["name"] for d in deploy] == [f"{release}-tierguard-operator"]

    helm_cmd("upgrade", release, str(CHART), "--reuse-values",
             "--set", "crd.annotations.example\\.com/upgraded=yes")  # fmt: skip
    crd = json.loads(control_plane.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    assert crd["metadata"]["annotations"]["example.com/upgraded"] == "yes"

    helm_cmd("uninstall", release)
    assert control_plane.kubectl("get", "crd", CRD_NAME, check=False).returncode == 0, (
        "uninstall must keep the CRD"
    )
    gone = control_plane.kubectl("get", "clusterrole", f"{release}-tierguard-operator", check=False)
    assert gone.returncode != 0
    control_plane.kubectl("delete", "namespace", release_ns, "--wait=false", check=False)


# --------------------------------------------------------------------------- examples


EXAMPLES = ROOT / "examples" / "kubernetes"


def example_manifests() -> list[Path]:
    return sorted(EXAMPLES.rglob("*.y*ml"))


def _is_k8s_object(doc: object) -> bool:
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def test_examples_are_all_found_and_separated() -> None:
    """examples/kubernetes/ holds only Kubernetes objects (so `kubectl apply -R -f` and
    kubeconform work on it); tierguard's own config files live in examples/config/."""
    names = {p.relative_to(EXAMPLES).as_posix() for p in example_manifests()}
    assert {
        "policies/minimal.yaml",
        "policies/support-assistant.yaml",
        "argocd/application.yaml",
        "argocd/argocd-cm.yaml",
    } <= names
    for path in example_manifests():
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs and all(_is_k8s_object(d) for d in docs), path
    for path in (ROOT / "examples").rglob("*.y*ml"):
        if EXAMPLES in path.parents:
            continue
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert not any(_is_k8s_object(d) for d in docs), f"{path} belongs in {EXAMPLES}"


def _argocd_crd(control_plane: ControlPlane) -> None:
    crd = yaml.safe_load((FIXTURES / "argocd-application-crd.yaml").read_text())
    assert apply(control_plane, [crd]).returncode == 0
    control_plane.wait_established("applications.argoproj.io")


def test_kubectl_apply_recursive_on_the_examples(
    control_plane: ControlPlane, installed: tuple[str, list[dict[str, Any]]]
) -> None:
    """What a user types: `kubectl apply -R -f examples/kubernetes/` (server-side dry
    run, so the default namespace stays clean), with no error and no API warning."""
    _argocd_crd(control_plane)
    ensure_namespace(control_plane, "argocd")
    res = control_plane.kubectl("apply", "-R", "-f", str(EXAMPLES), "--dry-run=server", check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("(server dry run)") == sum(
        len([d for d in yaml.safe_load_all(p.read_text()) if d]) for p in example_manifests()
    )
    assert "Warning" not in res.stderr, res.stderr


@pytest.mark.parametrize(
    "path", example_manifests(), ids=lambda p: p.relative_to(EXAMPLES).as_posix()
)
def test_example_applies(
    control_plane: ControlPlane,
    installed: tuple[str, list[dict[str, Any]]],
    namespace: str,
    path: Path,
) -> None:
    """Applied for real (server-side, strict field validation). Objects that name a
    namespace get it created; Argo CD's Application uses a stand-in CRD (see fixtures)."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    if any(d["apiVersion"].startswith("argoproj.io/") for d in docs):
        _argocd_crd(control_plane)
    for ns in {d["metadata"].get("namespace") for d in docs} - {None}:
        ensure_namespace(control_plane, ns)
    own_ns = all("namespace" in d["metadata"] for d in docs)
    res = apply(control_plane, docs, *([] if own_ns else ["-n", namespace]))
    assert res.returncode == 0, res.stderr
    assert "Warning" not in res.stderr, res.stderr  # e.g. a deprecated finalizer form
    for d in docs:
        ns = d["metadata"].get("namespace", namespace)
        got = control_plane.kubectl(
            "get", f"{d['kind'].lower()}.{d['apiVersion'].split('/')[0]}"
            if "/" in d["apiVersion"] else d["kind"].lower(),
            d["metadata"]["name"], "-n", ns, "-o", "json",
        )  # fmt: skip
        live = json.loads(got.stdout)
        assert live["metadata"]["name"] == d["metadata"]["name"]
        if d["kind"] == "RoutingPolicy":
            # The API server filled in every default, as the reference promises.
            assert live["spec"]["rollout"]["steps"]
            assert "minSamplesPerArm" in live["spec"]["rollout"]


# --------------------------------------------------------------------------- alert rules


def promtool() -> str:
    from tierguard.lab.prometheus import ensure_prometheus

    found = shutil.which("promtool") or str(ensure_prometheus().parent / "promtool")
    assert Path(found).exists(), "promtool comes with Prometheus (Debian package prometheus)"
    return found


@pytest.fixture(scope="module")
def rules_file(helm: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    docs = render(helm, "monitoring", "--set", "metrics.prometheusRule.enabled=true",
                  "--set", "metrics.serviceMonitor.enabled=true")  # fmt: skip
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    path = tmp_path_factory.mktemp("rules") / "tierguard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path, rule


def test_promtool_checks_the_rules(rules_file: tuple[Path, dict[str, Any]]) -> None:
    path, rule = rules_file
    res = subprocess.run([promtool(), "check", "rules", str(path)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    rendered = sum(len(group["rules"]) for group in rule["spec"]["groups"])
    assert rendered >= 5, "the chart renders the documented alerts"
    assert f"SUCCESS: {rendered} rules found" in res.stdout


# The alerts' behaviour (promtool test rules) is tested with the unit tests shipped in
# the chart: tests/unit/test_chart_alerts.py runs charts/tierguard/promtool/.


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Every dashboard query is valid PromQL: Grafana's variables are substituted as
    Grafana would, and the queries are checked by promtool as recording rules."""
    dash = json.loads((CHART / "dashboards" / "tierguard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dash["annotations"]["list"]]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    grafana = {"$__rate_interval": "2m", "$__range": "6h", "$namespace": ".*",
               "$policy": ".*", "$tier": ".*"}  # fmt: skip
    rules = []
    for i, expr in enumerate(exprs):
        for var, value in grafana.items():
            expr = expr.replace(var, value)
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", expr)
        if match:  # a Grafana variable query: its series selector must parse
            expr = f"count by ({match.group(2)}) ({match.group(1)})"
        rules.append({"record": f"tierguard:dashboard_query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    res = subprocess.run([promtool(), "check", "rules", str(path)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(rules)} rules found" in res.stdout
