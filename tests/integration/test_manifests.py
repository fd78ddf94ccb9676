"""Every manifest a user applies — each chart render (several value sets), every
Kubernetes example and every object the operator renders for the example policies —
validated two ways against the testbed's own API server, with the Prometheus Operator's
real CRDs installed (vendored from its Go module: scripts/vendor-monitoring-crds.sh):

* a server-side dry run (the API server's own validation, admission and field checks);
* ``kubeconform -strict`` with schemas generated from that API server's OpenAPI v3
  (built-in kinds plus the installed CRDs: tests/kubeschemas.py), so no schema is
  downloaded at test time and unknown fields are errors.

kubeconform is built from the Go module proxy by scripts/build-go-tool.sh (setup.sh).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from kubeschemas import fetch_openapi, schemas_from_openapi, write_schemas
from tierguard.api.resource import RoutingPolicy
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import render, rendermeta
from toolbox import go_tool, helm

if TYPE_CHECKING:
    from tierguard.lab.controlplane import ControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tierguard"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MONITORING_CRDS = sorted((FIXTURES / "prometheus-operator").glob("*.yaml"))
EXAMPLES = ROOT / "examples" / "kubernetes"
K8S_VERSION = "1.36.3"

#: The value sets every check renders: what users combine in practice.
VALUE_SETS: dict[str, list[str]] = {
    "default": [],
    "full": ["--values", str(CHART / "ci" / "full-values.yaml")],
    "kube-prometheus-stack": [
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
        "--set", "metrics.prometheusRule.enabled=true",
        "--set", "metrics.prometheusRule.labels.release=kube-prometheus-stack",
        "--set", "dashboard.enabled=true",
    ],
    "namespaced": ["--set", "operator.watchNamespaces={team-a,team-b}"],
    "single-replica-no-crd": [
        "--set", "operator.replicas=1", "--set", "operator.peering.enabled=false",
        "--set", "crd.create=false",
    ],
}  # fmt: skip


def render_chart(name: str, namespace: str = "tierguard-system") -> list[dict[str, Any]]:
    proc = subprocess.run(
        [helm(), "template", "tierguard", str(CHART), "--namespace", namespace,
         "--kube-version", K8S_VERSION, *VALUE_SETS[name]],
        capture_output=True, text=True, check=False,
        env={**os.environ, "HELM_CONFIG_HOME": "/tmp/tierguard-helm-config"},
    )  # fmt: skip
    assert proc.returncode == 0, f"{name}: {proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def operator_renders(namespace: str) -> list[dict[str, Any]]:
    """What the operator renders for each example policy (ServiceMonitor included)."""
    out: list[dict[str, Any]] = []
    for path in sorted((EXAMPLES / "policies").glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        body["metadata"]["namespace"] = namespace
        body["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001"
        policy = RoutingPolicy.from_k8s(body)
        ref = rendermeta.PolicyRef(policy.metadata.name, namespace, body["metadata"]["uid"])
        out += render.render_all(
            ref, policy.spec, RoutingPolicyStatus(), service_monitor_available=True
        )
    return out


def _apply(cp: ControlPlane, docs: list[dict[str, Any]], *extra: str) -> Any:
    return cp.kubectl(
        "apply", "--server-side", "--field-manager=tierguard-manifest-test", "-f", "-", *extra,
        input=yaml.safe_dump_all(docs, sort_keys=False), check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """The testbed with every CRD a render or example uses: tierguard's, kopf's peering,
    the Prometheus Operator's (removed again afterwards, so other modules see the cluster
    as they expect) and the Argo CD Application stand-in."""
    crds = [d for d in render_chart("default") if d["kind"] == "CustomResourceDefinition"]
    crds.append(yaml.safe_load((FIXTURES / "argocd-application-crd.yaml").read_text()))
    monitoring = [yaml.safe_load(p.read_text()) for p in MONITORING_CRDS]
    had = {
        d["metadata"]["name"]
        for d in monitoring
        if cp_has(control_plane, f"crd/{d['metadata']['name']}")
    }
    # The session's control plane is shared: test_chart.py installs the same CRDs under
    # another release name and field manager, so this module takes the fields over.
    res = _apply(control_plane, crds + monitoring, "--force-conflicts")
    assert res.returncode == 0, res.stderr
    control_plane.wait_established(*(d["metadata"]["name"] for d in crds + monitoring))
    for ns in ("team-a", "team-b", "argocd", "tierguard-system", "llm"):
        control_plane.kubectl("create", "namespace", ns, check=False)
    yield control_plane
    for d in monitoring:
        if d["metadata"]["name"] not in had:
            control_plane.kubectl(
                "delete", "crd", d["metadata"]["name"], "--ignore-not-found", check=False
            )


def cp_has(cp: ControlPlane, ref: str) -> bool:
    return bool(cp.kubectl("get", ref, check=False).returncode == 0)


@pytest.fixture(scope="module")
def schema_location(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> str:
    """kubeconform schemas from the API server's OpenAPI v3, once every CRD is served."""
    wanted = {
        "apis/monitoring.coreos.com/v1", "apis/tierguard.io/v1alpha1",
        "apis/argoproj.io/v1alpha1", "apis/kopf.dev/v1", "apis/apps/v1", "api/v1",
    }  # fmt: skip
    from tierguard.lab.waiting import wait_for

    def served() -> bool:
        index = json.loads(cluster.kubectl("get", "--raw", "/openapi/v3").stdout)
        return wanted <= set(index["paths"])

    wait_for(served, timeout=60, message="the CRDs never appeared in /openapi/v3")
    docs = fetch_openapi(lambda path: cluster.kubectl("get", "--raw", path).stdout)
    schemas = schemas_from_openapi(docs)
    assert "monitoring.coreos.com/servicemonitor-v1.json" in schemas
    assert "tierguard.io/routingpolicy-v1alpha1.json" in schemas
    return write_schemas(schemas, tmp_path_factory.mktemp("kubeconform-schemas"))


def kubeconform(schema_location: str, files: list[Path]) -> dict[str, Any]:
    proc = subprocess.run(
        [go_tool("kubeconform"), "-strict", "-summary", "-output", "json",
         "-schema-location", schema_location, *map(str, files)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"kubeconform: {proc.stdout}{proc.stderr}")
    result["returncode"] = proc.returncode
    return result


def _write(tmp: Path, name: str, docs: list[dict[str, Any]]) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_chart_render_passes_server_side_dry_run(cluster: ControlPlane, values: str) -> None:
    docs = render_chart(values)
    res = _apply(cluster, docs, "--dry-run=server")
    assert res.returncode == 0, f"{values}: {res.stderr}"
    assert res.stdout.count("(server dry run)") == len(docs)
    assert "Warning" not in res.stderr, res.stderr


def test_monitoring_objects_are_among_what_was_dry_run() -> None:
    kinds = {d["kind"] for d in render_chart("full")}
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds


def test_operator_renders_pass_server_side_dry_run(cluster: ControlPlane) -> None:
    docs = operator_renders("llm")
    assert "ServiceMonitor" in {d["kind"] for d in docs}
    # ownerReferences name a policy UID that does not exist: the dry run accepts that
    # (garbage collection is asynchronous), it still validates every field.
    res = _apply(cluster, docs, "--dry-run=server")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("(server dry run)") == len(docs)


def test_kubeconform_strict_on_every_render_and_example(
    schema_location: str, tmp_path: Path
) -> None:
    files = [_write(tmp_path, f"chart-{name}", render_chart(name)) for name in VALUE_SETS]
    files.append(_write(tmp_path, "operator-renders", operator_renders("llm")))
    examples = sorted(EXAMPLES.rglob("*.yaml"))
    files += examples
    expected = sum(len([d for d in yaml.safe_load_all(p.read_text()) if d]) for p in files)
    result = kubeconform(schema_location, files)
    summary = result["summary"]
    assert result["returncode"] == 0, json.dumps(result["resources"], indent=1)[:6000]
    assert summary["invalid"] == 0 and summary["errors"] == 0, result["resources"]
    assert summary["skipped"] == 0
    assert summary["valid"] == expected


def test_kubeconform_strict_refuses_an_unknown_field(schema_location: str, tmp_path: Path) -> None:
    """The schemas are strict: a typo'd field is an error, not silently accepted."""
    policy = yaml.safe_load((EXAMPLES / "policies" / "minimal.yaml").read_text())
    policy["spec"]["rollout"] = {"stepz": [5, 100]}
    deploy = next(d for d in render_chart("default") if d["kind"] == "Deployment")
    deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    result = kubeconform(schema_location, [_write(tmp_path, "bad", [policy, deploy])])
    assert result["returncode"] != 0
    assert result["summary"]["invalid"] == 2
    text = json.dumps(result["resources"])
    assert "stepz" in text and "imagePullPolicyy" in text


# --------------------------------------------------------------------------- selection

#: The Prometheus that kube-prometheus-stack's chart configures by default
#: (prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=true): it selects the
#: ServiceMonitors labelled with its Helm release, in every namespace.
KPS_RELEASE = "kube-prometheus-stack"
KPS_PROMETHEUS_SPEC: dict[str, Any] = {
    "serviceMonitorSelector": {"matchLabels": {"release": KPS_RELEASE}},
    "serviceMonitorNamespaceSelector": {},
}


def selector_string(selector: dict[str, Any]) -> str:
    """A metav1.LabelSelector as kubectl's -l syntax, for the API server to evaluate."""
    parts = [f"{k}={v}" for k, v in selector.get("matchLabels", {}).items()]
    for e in selector.get("matchExpressions", []):
        op, key, values = e["operator"], e["key"], ",".join(e.get("values", []))
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
             "Exists": key, "DoesNotExist": f"!{key}"}[op]
        )  # fmt: skip
    return ",".join(parts)


def selected_service_monitors(
    cp: ControlPlane, prometheus_spec: dict[str, Any], prometheus_namespace: str
) -> set[tuple[str, str]]:
    """(namespace, name) of the ServiceMonitors a Prometheus with this spec scrapes, by the
    Prometheus Operator's documented selection rules (API reference, PrometheusSpec):
    serviceMonitorSelector nil selects none and {} all; serviceMonitorNamespaceSelector nil
    means the Prometheus' own namespace only and {} every namespace. The label selectors
    themselves are evaluated by the API server (``-l``), not re-implemented here. (The
    Prometheus Operator itself is not run here: no image, no registry.)"""
    sm_sel = prometheus_spec.get("serviceMonitorSelector")
    if sm_sel is None:
        return set()
    ns_sel = prometheus_spec.get("serviceMonitorNamespaceSelector")
    if ns_sel is None:
        namespaces = {prometheus_namespace}
    else:
        out = cp.kubectl("get", "namespaces", "-l", selector_string(ns_sel), "-o", "json")
        namespaces = {n["metadata"]["name"] for n in json.loads(out.stdout)["items"]}
    args = ["get", "servicemonitors.monitoring.coreos.com", "-A", "-o", "json"]
    if selector_string(sm_sel):
        args += ["-l", selector_string(sm_sel)]
    items = json.loads(cp.kubectl(*args).stdout)["items"]
    return {
        (i["metadata"]["namespace"], i["metadata"]["name"])
        for i in items
        if i["metadata"]["namespace"] in namespaces
    }


def test_kube_prometheus_stack_selects_the_routers_when_the_chart_says_so(
    cluster: ControlPlane, namespace: str
) -> None:
    """Chart value → operator flag → rendered ServiceMonitor → selected by a Prometheus
    configured as kube-prometheus-stack configures it; without the value, not selected
    (the gates would see NoData and every rollout would pause)."""
    import argparse

    from tierguard.operator import cli
    from tierguard.operator.rendermeta import with_metadata

    def router_service_monitor(chart_values: list[str], policy: str) -> dict[str, Any]:
        proc = subprocess.run(
            [helm(), "template", "tierguard", str(CHART), "--namespace", "tierguard-system",
             "--kube-version", K8S_VERSION, "--show-only", "templates/deployment.yaml",
             *chart_values],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        container = yaml.safe_load(proc.stdout)["spec"]["template"]["spec"]["containers"][0]
        parser = argparse.ArgumentParser()
        cli.configure(parser)
        args = parser.parse_args(container["args"][1:])  # args[0] is the subcommand
        ref = rendermeta.PolicyRef(policy, namespace, "00000000-0000-0000-0000-000000000002")
        return with_metadata(render.service_monitor(ref), cli.rendered_metadata(args))

    labelled = router_service_monitor(
        ["--set", f"operator.renderedLabels.release={KPS_RELEASE}"], "labelled"
    )
    plain = router_service_monitor([], "plain")
    # The chart's own ServiceMonitor for the operator, with the label as the docs say.
    chart_sm = next(
        d for d in render_chart("kube-prometheus-stack", namespace) if d["kind"] == "ServiceMonitor"
    )
    for obj in (labelled, plain):
        obj["metadata"].pop("ownerReferences")  # no such policy object here
    res = _apply(cluster, [labelled, plain, chart_sm], "-n", namespace)
    assert res.returncode == 0, res.stderr
    chosen = selected_service_monitors(cluster, KPS_PROMETHEUS_SPEC, "monitoring")
    assert (namespace, labelled["metadata"]["name"]) in chosen
    assert (namespace, chart_sm["metadata"]["name"]) in chosen
    assert (namespace, plain["metadata"]["name"]) not in chosen
    # The selection rules themselves: nil selects nothing, {} everything in scope.
    assert selected_service_monitors(cluster, {}, namespace) == set()
    everything = selected_service_monitors(cluster, {"serviceMonitorSelector": {}}, namespace)
    assert (namespace, plain["metadata"]["name"]) in everything
    assert (
        selected_service_monitors(cluster, {"serviceMonitorSelector": {}}, "some-other-namespace")
        == set()
    )


# --------------------------------------------------------------------------- install page

INSTALL_PAGE = ROOT / "docs" / "install-kube-prometheus-stack-argocd.md"


def page_commands(text: str) -> list[str]:
    """The commands of the page's ```sh blocks (continuations joined), in order."""
    out: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        out += [ln.strip() for ln in joined.splitlines() if ln.strip()]
    return out


def test_install_page_commands(cluster: ControlPlane, tmp_path: Path) -> None:
    """Every command of docs/install-kube-prometheus-stack-argocd.md, as written, against
    the testbed (kubectl and helm on PATH, the admin kubeconfig). Before: what a cluster
    with Argo CD already has (argocd-cm with a key of its own). Cluster-wide objects other
    tests created (CRDs) are handed to the release the way `helm` adopts them."""
    commands = page_commands(INSTALL_PAGE.read_text())
    assert len(commands) >= 5
    assert any(c.startswith("helm upgrade --install") for c in commands)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").symlink_to(cluster.binaries.kubectl)
    (bin_dir / "helm").symlink_to(helm())
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "KUBECONFIG": str(cluster.kubeconfig),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }
    for crd in [d for d in render_chart("default") if d["kind"] == "CustomResourceDefinition"]:
        ref = f"crd/{crd['metadata']['name']}"
        cluster.kubectl("annotate", "--overwrite", ref, "meta.helm.sh/release-name=tierguard",
                        "meta.helm.sh/release-namespace=tierguard-system")  # fmt: skip
        cluster.kubectl("label", "--overwrite", ref, "app.kubernetes.io/managed-by=Helm")
    cluster.kubectl("-n", "argocd", "delete", "configmap", "argocd-cm", "--ignore-not-found")
    # Applications of the page that other tests created by server-side apply: the page's
    # client-side `kubectl apply` would warn about the missing last-applied annotation.
    # There is no Argo CD controller to honour their finalizer, so it is dropped first.
    apps = yaml.safe_load_all((EXAMPLES / "argocd" / "application.yaml").read_text())
    for app in [a for a in apps if a and a["kind"] == "Application"]:
        ref = f"applications.argoproj.io/{app['metadata']['name']}"
        cluster.kubectl("-n", "argocd", "patch", ref, "--type=merge",
                        "-p", '{"metadata":{"finalizers":null}}', check=False)  # fmt: skip
        cluster.kubectl("-n", "argocd", "delete", ref, "--ignore-not-found")
    cluster.kubectl("-n", "argocd", "create", "configmap", "argocd-cm",
                    "--from-literal=url=https://argocd.example.com")  # fmt: skip
    try:
        for command in commands:
            res = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert res.returncode == 0, f"{command}\n{res.stdout}\n{res.stderr}"
            assert "Warning" not in res.stderr, f"{command}\n{res.stderr}"
        # What the commands were for:
        listed = cluster.kubectl(
            "-n", "tierguard-system", "get", "servicemonitors,prometheusrules",
            "-l", "release=kube-prometheus-stack", "-o", "name",
        ).stdout.split()  # fmt: skip
        assert any("servicemonitor" in n for n in listed) and any(
            "prometheusrule" in n for n in listed
        )
        deploy = json.loads(
            cluster.kubectl("-n", "tierguard-system", "get", "deploy", "-o", "json").stdout
        )["items"][0]
        args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--rendered-label=release=kube-prometheus-stack" in args
        cm = json.loads(
            cluster.kubectl("-n", "argocd", "get", "configmap", "argocd-cm", "-o", "json").stdout
        )["data"]
        assert cm["url"] == "https://argocd.example.com", "the patch kept Argo CD's own keys"
        assert "resource.customizations.health.tierguard.io_RoutingPolicy" in cm
        assert "resource.customizations.actions.tierguard.io_RoutingPolicy" in cm
        app = json.loads(
            cluster.kubectl("-n", "argocd", "get", "application", "tierguard", "-o", "json").stdout
        )
        assert app["metadata"]["finalizers"] == [
            "resources-finalizer.argocd.argoproj.io/foreground"
        ]
        values = app["spec"]["source"]["helm"]["valuesObject"]
        assert values["operator"]["renderedLabels"] == {"release": "kube-prometheus-stack"}
    finally:
        subprocess.run(["helm", "uninstall", "tierguard", "-n", "tierguard-system"],
                       env=env, capture_output=True, check=False)  # fmt: skip
        cluster.kubectl("-n", "argocd", "delete", "application", "tierguard",
                        "--ignore-not-found", "--wait=false", check=False)  # fmt: skip
        cluster.kubectl("patch", "-n", "argocd", "application", "tierguard", "--type=merge",
                        "-p", '{"metadata":{"finalizers":null}}', check=False)  # fmt: skip
