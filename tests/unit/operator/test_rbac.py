"""The operator's RBAC rules cover every object it renders, and no more than needed."""

from __future__ import annotations

from rolloutsim import T0, make_spec

from tierguard.operator import rbac, render, rendermeta
from tierguard.operator import rollout as r

PLURALS = {
    "ConfigMap": "configmaps",
    "Deployment": "deployments",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "Service": "services",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ServiceMonitor": "servicemonitors",
    "Secret": "secrets",
}


def allowed(group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        for rule in rbac.OPERATOR_RULES
    )


def test_every_rendered_kind_can_be_applied() -> None:
    ref = rendermeta.PolicyRef("p", "ns", "uid")
    status = r.reconcile(make_spec(), None, T0).status
    for obj in render.render_all(ref, make_spec(), status, service_monitor_available=True):
        group = obj["apiVersion"].rpartition("/")[0]
        for verb in ("create", "patch", "get"):
            assert allowed(group, PLURALS[obj["kind"]], verb), (obj["kind"], verb)
    assert allowed("", "secrets", "create")


def test_no_wildcards_and_no_deletes_or_secret_listing() -> None:
    for rule in rbac.OPERATOR_RULES:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key]
        if "delete" in rule["verbs"]:  # owned objects are deleted by the garbage collector;
            # the exceptions: unreferenced frozen classifier copies (prunecopies.py) and the
            # budget of a policy down to one router (Applier._prune)
            assert rule in (
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["delete"]},
                {
                    "apiGroups": ["policy"],
                    "resources": ["poddisruptionbudgets"],
                    "verbs": ["delete"],
                },
            )
    assert allowed("", "configmaps", "delete") and not allowed("", "services", "delete")
    assert allowed("policy", "poddisruptionbudgets", "delete")
    assert not allowed("apps", "deployments", "delete")
    assert not allowed("", "secrets", "list") and not allowed("", "secrets", "watch")


def test_cluster_role_renders_the_same_rules() -> None:
    role = rbac.cluster_role("x")
    assert role["rules"] == rbac.OPERATOR_RULES
    assert role["rules"][3]["verbs"] is not rbac.OPERATOR_RULES[3]["verbs"]


def test_every_rendered_kind_has_a_known_api_path() -> None:
    """kube.apply serves only the kinds in kube.RESOURCES: a newly rendered kind must be
    added there (found by a real operator run once, now by this test)."""
    from tierguard.operator import kube

    ref = rendermeta.PolicyRef("p", "ns", "uid")
    status = r.reconcile(make_spec(), None, T0).status
    objs = render.render_all(ref, make_spec(), status, service_monitor_available=True)
    for obj in [*objs, render.signing_secret(ref)]:
        assert kube.resource_for(obj) is not None, obj["kind"]
