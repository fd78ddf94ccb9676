"""Rendering is pure: spec + status in, Kubernetes objects out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml
from rolloutsim import T0, make_spec

from tierguard.api import constants as c
from tierguard.api.enums import Arm, Phase
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.routerconfig import RouterConfig
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import render, render_routerconfig, rendermeta
from tierguard.operator import rollout as r
from tierguard.operator.revision import compute_revision

REF = rendermeta.PolicyRef("shop", "team-a", "0000-uid")


def started() -> RoutingPolicyStatus:
    return r.reconcile(make_spec(), None, T0).status


def cfg(objs: list[dict[str, Any]]) -> RouterConfig:
    cm = next(o for o in objs if o["kind"] == "ConfigMap")
    return RouterConfig.model_validate(yaml.safe_load(cm["data"][c.ROUTER_CONFIG_KEY]))


def test_every_object_is_labelled_and_owned() -> None:
    objs = render.render_all(REF, make_spec(), started(), service_monitor_available=True)
    kinds = [o["kind"] for o in objs]
    assert kinds == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ServiceMonitor",
    ]
    for o in objs:
        meta = o["metadata"]
        assert meta["namespace"] == "team-a"
        assert meta["labels"][c.LABEL_POLICY] == "shop"
        assert meta["labels"][c.LABEL_MANAGED_BY] == c.MANAGED_BY
        owner = meta["ownerReferences"][0]
        assert owner["uid"] == "0000-uid" and owner["kind"] == c.KIND and owner["controller"]
    assert "ServiceMonitor" not in [
        o["kind"] for o in render.render_all(REF, make_spec(), started())
    ]


def test_config_carries_current_weight_and_arm() -> None:
    spec = make_spec()
    st = started()
    conf = cfg(render.render_all(REF, spec, st))
    assert {s.tier: s.weight for s in conf.split} == {"simple": 5.0, "tricky": 5.0}
    assert conf.revision == compute_revision(spec)
    promoted = st.model_copy(update={"phase": Phase.PROMOTED, "step": 3, "canary_weight": 95.0})
    conf = cfg(render.render_all(REF, spec, promoted))
    assert all(s.weight == 95.0 and s.control_arm == Arm.HOLDBACK for s in conf.split)
    back = st.model_copy(update={"phase": Phase.ROLLED_BACK, "canary_weight": 0.0})
    assert all(s.weight == 0 for s in cfg(render.render_all(REF, spec, back)).split)


def test_salt_is_stable_across_steps_and_changes_with_revision() -> None:
    spec = make_spec()
    st = started()
    later = r.reconcile(
        spec, st, T0 + timedelta(hours=1), request=r.ManualRequest("promote", "1")
    ).status
    assert later.step == 1
    assert (
        cfg(render.render_all(REF, spec, st)).salt == cfg(render.render_all(REF, spec, later)).salt
    )
    spec2 = make_spec()
    spec2.models[1].system_prompt = "Be brief."
    st2 = r.reconcile(spec2, st, T0).status
    assert st2.revision != st.revision
    assert (
        cfg(render.render_all(REF, spec2, st2)).salt != cfg(render.render_all(REF, spec, st)).salt
    )


def test_retry_draws_a_new_split_salt() -> None:
    """Issue 13.2: users are the unit of independence; a retry of a rolled-back revision
    must not judge the candidate on the same users again. A new revision starts at
    attempt 0."""
    spec = make_spec()
    st = started()
    back = r.reconcile(
        spec, st, T0 + timedelta(minutes=5), request=r.ManualRequest("abort", "a")
    ).status
    retried = r.reconcile(
        spec, back, T0 + timedelta(minutes=6), request=r.ManualRequest("retry", "b")
    ).status
    assert retried.phase == Phase.PROGRESSING and retried.attempt == 1
    salt = cfg(render.render_all(REF, spec, st)).salt
    salt1 = cfg(render.render_all(REF, spec, retried)).salt
    assert salt1 != salt
    back2 = r.reconcile(
        spec, retried, T0 + timedelta(minutes=7), request=r.ManualRequest("abort", "c")
    ).status
    retried2 = r.reconcile(
        spec, back2, T0 + timedelta(minutes=8), request=r.ManualRequest("retry", "d")
    ).status
    assert retried2.attempt == 2
    assert cfg(render.render_all(REF, spec, retried2)).salt not in (salt, salt1)
    spec2 = make_spec()
    spec2.models[1].system_prompt = "Be brief."
    assert r.reconcile(spec2, retried2, T0 + timedelta(minutes=9)).status.attempt == 0


def test_deployment_is_hardened_and_secrets_are_references() -> None:
    spec = make_spec()
    spec.models[0].api_key_secret_ref = spec.models[0].api_key_secret_ref or None
    from tierguard.api.policy import SecretKeyRef

    spec.models[0].api_key_secret_ref = SecretKeyRef(name="keys", key="big")
    dep = render.deployment(REF, spec)
    pod = dep["spec"]["template"]["spec"]
    ctr = pod["containers"][0]
    sc = ctr["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"]
    assert not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert ctr["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert ctr["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e for e in ctr["env"]}
    key = env[render_routerconfig.api_key_env("big")]
    assert key["valueFrom"]["secretKeyRef"] == {"name": "keys", "key": "big"}
    assert "value" not in key
    assert pod["serviceAccountName"] == rendermeta.object_name("shop")
    assert "--configmap" in ctr["args"]
    # No config hash on the pod: a weight change must not restart routers.
    assert "annotations" not in dep["spec"]["template"]["metadata"]
    conf = render_routerconfig.router_config(REF, spec, started())
    big = next(m for m in conf.models if m.name == "big")
    assert big.api_key is not None and big.api_key.env == render_routerconfig.api_key_env("big")


def test_router_role_reads_only_its_own_configmap() -> None:
    role = render.role(REF)
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [rendermeta.object_name("shop")],
            "verbs": ["get", "list", "watch"],
        }
    ]


def test_rendering_ignores_what_it_does_not_own() -> None:
    spec = make_spec()
    st = started()
    a = render.render_all(REF, spec, st)
    noisy = st.model_copy(update={"message": "x", "last_evaluated_at": T0 + timedelta(days=3)})
    assert render.render_all(REF, spec, noisy) == a


def test_revision_ignores_rollout_settings_but_not_candidates() -> None:
    a = make_spec()
    b = make_spec(bakeTime="1h", steps=[10, 100])
    assert compute_revision(a) == compute_revision(b)
    c2 = make_spec()
    c2.routes[0].candidate = None
    assert compute_revision(c2) != compute_revision(a)
    c2.routes[1].candidate = None
    assert compute_revision(c2) == ""


def test_router_request_settings_reach_the_router_config() -> None:
    """classifier.noTextTier, models[].streamUsage and router.maxResponseBytes are
    rendered into the router's config (defaults: the most capable tier, off, 32 MiB)."""
    default = cfg(render.render_all(REF, make_spec(), started()))
    assert default.classifier.no_text_tier_name == "complex"
    assert not any(m.stream_usage for m in default.models)
    assert default.server.max_response_bytes == 32 << 20
    doc = make_spec().to_k8s()
    doc["classifier"]["noTextTier"] = "tricky"
    doc["models"][1]["streamUsage"] = True
    doc["router"]["maxResponseBytes"] = 1 << 20
    spec = RoutingPolicySpec.model_validate(doc)
    # (the status of this spec: the classifier that decides is the one status adopted)
    conf = cfg(render.render_all(REF, spec, r.reconcile(spec, None, T0).status))
    assert conf.classifier.no_text_tier_name == "tricky"
    assert [m.stream_usage for m in conf.models] == [False, True]
    assert conf.server.max_response_bytes == 1 << 20


def test_revision_counts_session_tiering_but_not_its_cache() -> None:
    from tierguard.api.enums import Tiering
    from tierguard.operator.revision import revision_material

    a = make_spec()
    material = revision_material(a)
    assert material is not None
    # a policy that sets none of the session fields hashes as before they existed, so an
    # operator upgrade does not restart its rollout
    assert not {"tiering", "sessionMessages", "cacheSize"} & set(material["classifier"])
    cached = make_spec()
    cached.classifier.cache_size = 5
    assert compute_revision(cached) == compute_revision(a)
    per_request = make_spec()
    per_request.classifier.tiering = Tiering.REQUEST
    assert compute_revision(per_request) != compute_revision(a)
    bounded = make_spec()
    bounded.classifier.session_messages = 3
    assert compute_revision(bounded) != compute_revision(a)


def test_session_fields_reach_the_router_config() -> None:
    from tierguard.api.enums import StickinessKey, Tiering

    spec = make_spec(stickiness={"sessionHeader": "x-conversation"})
    spec.models[1].context_window = 8000
    spec.classifier.session_messages = 4
    conf = cfg(render.render_all(REF, spec, r.reconcile(spec, None, T0).status))
    assert conf.stickiness.key is StickinessKey.SESSION
    assert conf.stickiness.session_header == "x-conversation"
    assert {m.name: m.context_window for m in conf.models} == {"big": None, "small": 8000}
    assert conf.classifier.tiering is Tiering.SESSION
    assert (conf.classifier.session_messages, conf.classifier.cache_size) == (4, 10000)


def test_router_disruption_budget_and_spread() -> None:
    """At most one router evicted at a time (never blocking a drain, whatever the replica
    count), and replicas preferably on different nodes."""
    objs = render.render_all(REF, make_spec(), started())
    (pdb,) = [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    (dep,) = [o for o in objs if o["kind"] == "Deployment"]
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"  # kube-linter
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    anti = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= pod_labels.items()


def test_router_workers_become_the_routers_flag() -> None:
    spec = make_spec()
    ctr = render.deployment(REF, spec)["spec"]["template"]["spec"]["containers"][0]
    assert "--workers" not in ctr["args"]  # one process: the command line as before
    spec.router.workers = 3
    pod = render.deployment(REF, spec)["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--workers") + 1] == "3"
    # the workers' metric files go to the writable /tmp emptyDir (read-only root)
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])


def test_a_budget_only_for_two_or_more_routers() -> None:
    """With one router ``maxUnavailable: 1`` lets its only pod go: no budget is rendered
    for 0 or 1 replicas (kube-score skips its budget check below 2 replicas too)."""

    def kinds(replicas: int) -> list[str]:
        spec = make_spec()
        spec.router.replicas = replicas
        return [o["kind"] for o in render.render_all(REF, spec, started())]

    assert "PodDisruptionBudget" not in kinds(0)
    assert "PodDisruptionBudget" not in kinds(1)
    assert kinds(2).count("PodDisruptionBudget") == 1
    assert kinds(5).count("PodDisruptionBudget") == 1
    assert kinds(1) == [k for k in kinds(2) if k != "PodDisruptionBudget"], "nothing else"
