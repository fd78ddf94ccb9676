"""`helm lint` and `helm template` on the chart, with the default values and with every
option on (charts/tierguard/ci/full-values.yaml), and the least-privilege RBAC checked
against what the operator says it needs (tierguard.operator.rbac).

helm is built from the Go module proxy by scripts/build-helm.sh and cached under
~/.cache/tierguard/helm/<version>/ (the first run takes a few minutes; later runs reuse
the binary). A missing Go toolchain fails the tests rather than skipping them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierguard.api.crdgen import build_crd
from tierguard.api.policy import RoutingPolicySpec
from tierguard.operator import render, rendermeta
from tierguard.operator.rbac import OPERATOR_RULES

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tierguard"
FULL = CHART / "ci" / "full-values.yaml"
KUBE_VERSION = "1.36.3"  # the API server the integration tests run


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """The helm command, with config/cache/data homes in a temp dir (no user state)."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "build-helm.sh")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"scripts/build-helm.sh failed:\n{proc.stderr[-4000:]}"
    binary = proc.stdout.strip().splitlines()[-1]
    home = tmp_path_factory.mktemp("helm-home")
    for var in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
        os.environ[var] = str(home / var.lower())
    yield [binary]


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)


def template(helm: list[str], *args: str) -> list[dict[str, Any]]:
    proc = run(
        [
            *helm,
            "template",
            "tierguard",
            str(CHART),
            "--namespace",
            "tierguard-system",
            "--kube-version",
            KUBE_VERSION,
            *args,
        ]
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def by_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


# --------------------------------------------------------------------------- lint


@pytest.mark.parametrize("values", [None, FULL], ids=["default", "full"])
def test_lint_strict(helm: list[str], values: Path | None) -> None:
    extra = ["--values", str(values)] if values else []
    proc = run([*helm, "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *extra])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("operator.replicas=lots", "replicas"),
        ("operator.logLevel=verbose", "logLevel"),
        ("operator.unknownKey=1", "unknownKey"),
        ("metrics.prometheusRule.pausedTooLong.for=soon", "for"),
        ("operator.watchNamespaces[0]=Bad_NS", "watchNamespaces"),
    ],
)
def test_schema_refuses_bad_values(helm: list[str], setting: str, needle: str) -> None:
    proc = run([*helm, "lint", str(CHART), "--set", setting])
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        (["operator.metricsPort=8080", "operator.healthPort=8080"], "need a port each"),
        (["operator.readinessPort=8080"], "need a port each"),
        (["operator.podDisruptionBudget.minAvailable=2"], "forbid every voluntary eviction"),
        (["operator.replicas=3", "operator.podDisruptionBudget.minAvailable=5"], "e.g. 2"),
        (["operator.podDisruptionBudget.minAvailable=100%"], "forbid every voluntary eviction"),
    ],
)
def test_values_that_cannot_work_are_refused(
    helm: list[str], settings: list[str], needle: str
) -> None:
    """Accepted by the schema alone, but unworkable: a shared health/metrics port, or a
    PodDisruptionBudget no eviction can ever satisfy."""
    args = [a for s in settings for a in ("--set", s)]
    proc = run([*helm, "template", str(CHART), *args])
    assert proc.returncode != 0
    assert needle in proc.stderr


def test_workable_budgets_render(helm: list[str]) -> None:
    for settings in (
        ["operator.podDisruptionBudget.minAvailable=50%"],
        ["operator.replicas=3", "operator.podDisruptionBudget.minAvailable=2"],
    ):
        docs = template(helm, *[a for s in settings for a in ("--set", s)])
        (pdb,) = by_kind(docs, "PodDisruptionBudget")
        # An unready replica must not block a node drain (kube-linter).
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_routers_are_never_scraped_twice(helm: list[str]) -> None:
    proc = run(
        [*helm, "template", str(CHART), "--set", "metrics.serviceMonitor.enabled=true",
         "--set", "metrics.serviceMonitor.routers.enabled=true"]
    )  # fmt: skip
    assert proc.returncode != 0
    assert "scrape every router twice" in proc.stderr


def test_two_active_operators_are_refused(helm: list[str]) -> None:
    proc = run(
        [
            *helm,
            "template",
            str(CHART),
            "--set",
            "operator.replicas=2",
            "--set",
            "operator.peering.enabled=false",
        ]
    )
    assert proc.returncode != 0
    assert "peering" in proc.stderr


# --------------------------------------------------------------------------- default render


def test_default_render_objects(helm: list[str]) -> None:
    docs = template(helm)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",  # RoutingPolicy
            "CustomResourceDefinition",  # kopf's ClusterKopfPeering
            "CustomResourceDefinition",  # kopf's KopfPeering
            "ClusterKopfPeering",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
        ]
    )
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "tierguard"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    peering = one(docs, "ClusterKopfPeering")
    # Created after its CRD exists: Helm cannot map a kind whose CRD is in the same release.
    assert peering["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"


def our_crd(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d
        for d in by_kind(docs, "CustomResourceDefinition")
        if d["metadata"]["name"] == build_crd()["metadata"]["name"]
    ]


def test_crd_template_is_the_generated_crd_and_is_kept(helm: list[str]) -> None:
    (crd,) = our_crd(template(helm))
    generated = build_crd()
    assert crd["spec"] == json.loads(json.dumps(generated["spec"]))
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false"


def test_crd_can_be_left_out(helm: list[str]) -> None:
    assert not our_crd(template(helm, "--set", "crd.create=false"))


def test_operator_deployment_is_hardened_and_ha(helm: list[str]) -> None:
    dep = one(template(helm), "Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["affinity"]["podAntiAffinity"]
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["ephemeral-storage"]
    assert container["resources"]["limits"]["ephemeral-storage"]
    # Liveness/start-up: the event loop answers; readiness: the API server answers.
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ready"}
    assert container["args"] == [
        "operator",
        "--all-namespaces",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--readiness=http://0.0.0.0:8081/readyz",
        "--metrics-port=9102",
        "--log-level=info",
        "--resync=60",
        "--peering-name=tierguard-operator",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # Two glibc malloc arenas instead of one per reconcile thread (the RSS at 1,000
    # policies: docs/benchmarks.md, "Control-plane scale").
    assert env["MALLOC_ARENA_MAX"]["value"] == "2"
    assert container["image"] == "tierguard/operator:0.1.0"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "health": 8080,
        "ready": 8081,
        "metrics": 9102,
    }


def test_single_replica_may_run_standalone(helm: list[str]) -> None:
    docs = template(helm, "--set", "operator.replicas=1", "--set", "operator.peering.enabled=false")
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--standalone" in container["args"]
    assert not by_kind(docs, "ClusterKopfPeering")
    assert not any("kopf.dev" in d["metadata"]["name"] for d in docs)


# --------------------------------------------------------------------------- full render


def test_full_render_objects(helm: list[str]) -> None:
    docs = template(helm, "--values", str(FULL))
    assert len(by_kind(docs, "ServiceMonitor")) == 2
    operator_sm = one(docs, "ServiceMonitor", "tg-operator")
    assert operator_sm["spec"]["endpoints"][0]["honorLabels"] is True
    rule = one(docs, "PrometheusRule")
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert {r["record"] for r in rules if "record" in r} == {
        "tierguard:cost_per_satisfied_request:ratio_rate5m"
    }
    alerts = {r["alert"] for r in rules if "alert" in r}
    assert alerts == {
        "TierguardRolloutRolledBack",
        "TierguardRolloutPausedTooLong",
        "TierguardOperatorPrometheusErrors",
        "TierguardOperatorDown",
        "TierguardRouterErrorRate",
        "TierguardUnsafeSwitch",
    }
    for g in rule["spec"]["groups"]:
        for r in g["rules"]:
            if "record" in r:
                continue
            assert r["labels"]["team"] == "platform"
            assert "{{ $labels" in r["annotations"]["summary"] or r["alert"] == (
                "TierguardOperatorDown"
            )
    dash = one(docs, "ConfigMap", "tg-dashboard")
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dash["data"]["tierguard.json"]) == json.loads(
        (CHART / "dashboards" / "tierguard.json").read_text()
    )
    dep = one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "tierguard-controller"
    assert pod["containers"][0]["image"] == (
        "registry.example.com/tierguard/operator@sha256:" + "0" * 64
    )
    args = pod["containers"][0]["args"]
    assert args[:3] == ["operator", "--namespace=team-a", "--namespace=team-b"]
    assert "--peering-name=tierguard-peers" in args
    assert "--prometheus-url=http://prometheus.monitoring.svc:9090" in args
    assert args[-1] == "--verbose"
    peerings = by_kind(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]


def test_watch_namespaces_bind_rules_only_there(helm: list[str]) -> None:
    docs = template(helm, "--values", str(FULL))
    bindings = by_kind(docs, "RoleBinding")
    main = [b for b in bindings if b["roleRef"]["kind"] == "ClusterRole"]
    assert sorted(b["metadata"]["namespace"] for b in main) == ["team-a", "team-b"]
    crbs = by_kind(docs, "ClusterRoleBinding")
    assert [b["roleRef"]["name"] for b in crbs] == ["tg-operator-cluster"]
    sms = {s["metadata"]["name"]: s for s in by_kind(docs, "ServiceMonitor")}
    assert sms["tg-routers"]["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


# --------------------------------------------------------------------------- RBAC


Triple = tuple[str, str, str]


def granted(docs: list[dict[str, Any]]) -> set[Triple]:
    """(apiGroup, resource, verb) granted by every Role and ClusterRole rendered."""
    out: set[Triple] = set()
    for d in docs:
        if d["kind"] in ("Role", "ClusterRole"):
            for rule in d["rules"]:
                for g in rule["apiGroups"]:
                    for r in rule["resources"]:
                        for v in rule["verbs"]:
                            out.add((g, r, v))
    return out


def expand(rules: Iterable[Any]) -> set[Triple]:
    """Rules as dicts (apiGroups/resources/verbs, as in a Role) or objects with
    api_groups/resources/verbs attributes, expanded into triples."""
    out: set[Triple] = set()
    for rule in rules:
        if isinstance(rule, dict):
            groups, resources, verbs = (
                rule.get("apiGroups", rule.get("api_groups")),
                rule["resources"],
                rule["verbs"],
            )
        else:
            groups, resources, verbs = rule.api_groups, rule.resources, rule.verbs
        assert groups is not None, f"a resource rule names its API groups: {rule}"
        out |= {(g, r, v) for g in groups for r in resources for v in verbs}
    return out


#: Never granted: the operator must not be able to read every Secret or grant more than
#: it holds.
FORBIDDEN: set[Triple] = {
    ("", "secrets", "list"),
    ("", "secrets", "watch"),
    ("rbac.authorization.k8s.io", "roles", "escalate"),
    ("rbac.authorization.k8s.io", "clusterroles", "bind"),
    ("rbac.authorization.k8s.io", "roles", "bind"),
    ("*", "*", "*"),
}


def operator_rules() -> set[Triple]:
    """What the operator says it needs (tierguard.operator.rbac)."""
    return expand(OPERATOR_RULES)


def test_rbac_refuses_the_dangerous(helm: list[str]) -> None:
    have = granted(template(helm)) | granted(template(helm, "--values", str(FULL)))
    assert not FORBIDDEN & have


def test_rbac_is_least_privilege_shape(helm: list[str]) -> None:
    docs = template(helm)
    have = granted(docs)
    assert not any("*" in t for t in have), "no wildcards"
    cluster_scoped = one(docs, "ClusterRole", "tierguard-operator-cluster")
    assert {r for rule in cluster_scoped["rules"] for r in rule["resources"]} == {
        "customresourcedefinitions",
        "namespaces",
        "clusterkopfpeerings",
    }
    for rule in cluster_scoped["rules"]:
        writes = set(rule["verbs"]) - {"get", "list", "watch"}
        # Cluster-wide, the operator only reads, except kopf's peering heartbeat.
        assert not writes or (rule["apiGroups"] == ["kopf.dev"] and writes == {"patch"})


def test_chart_grants_what_the_operator_needs(helm: list[str]) -> None:
    """Fails when the operator needs a permission the chart lacks."""
    missing = operator_rules() - granted(template(helm))
    assert not missing, f"chart lacks: {sorted(missing)}"


def test_chart_grants_nothing_the_operator_does_not_need(helm: list[str]) -> None:
    """Least privilege the other way round: every granted permission is one the operator
    declares."""
    extra = granted(template(helm)) - operator_rules()
    assert not extra, f"chart grants unused permissions: {sorted(extra)}"


def test_argocd_application_values_render(helm: list[str], tmp_path: Path) -> None:
    """The example Application's Helm values are valid for this chart (schema and
    templates), and it points at this chart's path."""
    apps = [
        d
        for d in yaml.safe_load_all(
            (ROOT / "examples" / "kubernetes" / "argocd" / "application.yaml").read_text()
        )
        if d and d["spec"]["source"].get("path") == "charts/tierguard"
    ]
    assert len(apps) == 1
    source = apps[0]["spec"]["source"]
    assert (ROOT / source["path"] / "Chart.yaml").exists()
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(source["helm"]["valuesObject"]))
    docs = template(helm, "--values", str(values))
    assert by_kind(docs, "PrometheusRule") and by_kind(docs, "ConfigMap")
    assert "ServerSideApply=true" in apps[0]["spec"]["syncPolicy"]["syncOptions"]


def test_router_servicemonitor_selects_what_the_operator_renders(helm: list[str]) -> None:
    """The chart's optional routers ServiceMonitor selects the operator's router Services
    by label and port name (contract with tierguard.operator.render)."""
    docs = template(
        helm,
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.serviceMonitor.routers.enabled=true",
        "--set", "rbac.serviceMonitors=false",
    )  # fmt: skip
    sm = one(docs, "ServiceMonitor", "tierguard-routers")
    policy = yaml.safe_load(
        (ROOT / "examples" / "kubernetes" / "policies" / "minimal.yaml").read_text()
    )
    spec = RoutingPolicySpec.model_validate(policy["spec"])
    svc = render.service(rendermeta.PolicyRef("minimal", "team-a", "uid-1"), spec)
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_network_policy_is_optional_and_selects_the_operator(helm: list[str]) -> None:
    assert not by_kind(template(helm), "NetworkPolicy"), "off by default"
    docs = template(helm, "--values", str(FULL))
    np = one(docs, "NetworkPolicy")
    dep = one(docs, "Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert np["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ports = {p["containerPort"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["port"] for p in np["spec"]["ingress"][0]["ports"]} == ports
    egress_ports = {p["port"] for rule in np["spec"]["egress"] for p in rule["ports"]}
    assert {53, 443, 6443, 9090} <= egress_ports
