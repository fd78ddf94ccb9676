"""`helm lint` and `helm template` on the chart, with the default values and with every
option on (charts/tierguard/ci/full-values.yaml), and the least-privilege RBAC checked
against what the operator says it needs (tierguard.operator.rbac).

helm is built from the Go module proxy by scripts/build-helm.sh and cached under
~/.cache/tierguard/helm/<version>/ (the first run takes a few minutes; later runs reuse
the binary). A missing Go toolchain fails the tests rather than skipping them."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierguard.api.crdgen import build_crd

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


def test_two_active_operators_are_refused(helm: list[str]) -> None:
    proc = run(
        [
            *helm,
            "template",
            str(CHART),
            "--set",
            "operator.replicas=2",
            "--set",
            "operator.leaderElection.enabled=false",
        ]
    )
    assert proc.returncode != 0
    assert "leaderElection" in proc.stderr


# --------------------------------------------------------------------------- default render


def test_default_render_objects(helm: list[str]) -> None:
    docs = template(helm)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
        ]
    )
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "tierguard"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_crd_template_is_the_generated_crd_and_is_kept(helm: list[str]) -> None:
    crd = one(template(helm), "CustomResourceDefinition")
    generated = build_crd()
    assert crd["spec"] == json.loads(json.dumps(generated["spec"]))
    assert crd["metadata"]["name"] == generated["metadata"]["name"]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_crd_can_be_left_out(helm: list[str]) -> None:
    docs = template(helm, "--set", "crd.create=false")
    assert not by_kind(docs, "CustomResourceDefinition")


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
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e for e in container["env"]}
    assert env["TIERGUARD_LEADER_ELECTION"]["value"] == "true"
    assert env["TIERGUARD_LEASE_NAME"]["value"] == "tierguard-operator"
    assert env["TIERGUARD_WATCH_NAMESPACES"]["value"] == ""
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert container["image"] == "tierguard/operator:0.1.0"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "health": 8080,
        "metrics": 9102,
    }


# --------------------------------------------------------------------------- full render


def test_full_render_objects(helm: list[str]) -> None:
    docs = template(helm, "--values", str(FULL))
    assert len(by_kind(docs, "ServiceMonitor")) == 2
    rule = one(docs, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == {
        "TierguardRolloutRolledBack",
        "TierguardRolloutPausedTooLong",
        "TierguardOperatorPrometheusErrors",
        "TierguardOperatorDown",
        "TierguardRouterErrorRate",
    }
    for g in rule["spec"]["groups"]:
        for r in g["rules"]:
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
    assert pod["containers"][0]["args"] == ["--verbose"]


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
        out |= {(g, r, v) for g in groups for r in resources for v in verbs}
    return out


#: What the design implies the operator does (DESIGN.md; docs/concepts.md). Checked
#: always, so the chart cannot lose one of these while tierguard.operator.rbac is absent.
DESIGN_NEEDS: set[Triple] = expand(
    [
        {"apiGroups": ["tierguard.io"], "resources": ["routingpolicies"],
         "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": ["tierguard.io"], "resources": ["routingpolicies/status"],
         "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["configmaps", "services", "serviceaccounts"],
         "verbs": ["get", "create", "patch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "patch"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
         "verbs": ["get", "create", "patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update"]},
    ]
)  # fmt: skip

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


def operator_rules() -> set[Triple] | None:
    """The operator's own list of required permissions, if that module exists yet."""
    try:
        mod = importlib.import_module("tierguard.operator.rbac")
    except ModuleNotFoundError:
        return None
    for name in ("REQUIRED_RULES", "RULES", "OPERATOR_RULES", "CLUSTER_RULES"):
        if hasattr(mod, name):
            rules = getattr(mod, name)
            extra = getattr(mod, "NAMESPACED_RULES", [])
            return expand([*(rules() if callable(rules) else rules), *extra])
    if hasattr(mod, "required_rules"):
        return expand(mod.required_rules())
    raise AssertionError("tierguard.operator.rbac exposes no REQUIRED_RULES/RULES list")


def test_rbac_covers_the_design(helm: list[str]) -> None:
    have = granted(template(helm))
    assert not DESIGN_NEEDS - have, sorted(DESIGN_NEEDS - have)
    assert not FORBIDDEN & have


def test_rbac_is_least_privilege_shape(helm: list[str]) -> None:
    docs = template(helm)
    have = granted(docs)
    assert not any("*" in t for t in have), "no wildcards"
    cluster_scoped = one(docs, "ClusterRole", "tierguard-operator-cluster")
    assert {r for rule in cluster_scoped["rules"] for r in rule["resources"]} == {
        "customresourcedefinitions",
        "namespaces",
    }
    assert all(
        set(rule["verbs"]) <= {"get", "list", "watch"} for rule in cluster_scoped["rules"]
    ), "cluster-scoped access is read-only"


def test_chart_grants_what_the_operator_needs(helm: list[str]) -> None:
    """Fails when tierguard.operator.rbac lists a permission the chart lacks."""
    needed = operator_rules()
    if needed is None:
        pytest.skip("tierguard.operator.rbac is not merged yet; DESIGN_NEEDS is checked instead")
    have = granted(template(helm))
    missing = needed - have
    assert not missing, f"chart lacks: {sorted(missing)}"


def test_chart_grants_nothing_the_operator_does_not_need(helm: list[str]) -> None:
    """Least privilege the other way round: every granted permission is one the operator
    declares (events.k8s.io and core events count as one need)."""
    needed = operator_rules()
    if needed is None:
        pytest.skip("tierguard.operator.rbac is not merged yet")
    have = granted(template(helm))
    events = {t for t in have if t[1] == "events"}
    extra = have - needed - (events if any(t[1] == "events" for t in needed) else set())
    assert not extra, f"chart grants unused permissions: {sorted(extra)}"
