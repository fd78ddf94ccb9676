"""The router watches its ConfigMap through a real kube-apiserver, with a least-privilege
ServiceAccount: a new weight (and a rollback to 0) takes effect without a restart, and an
invalid config is refused while the old one keeps serving."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest
import yaml
from test_router_app import sample

from routerkit import SIMPLE_QUERY, fake_provider, free_port, http, process, router_config
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api.constants import ROUTER_CONFIG_KEY

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tierguard.lab.controlplane import ControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

#: what the operator's RBAC must grant the router (documented in router/README.md)
ROUTER_RULES = [
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["get", "list", "watch"],
        "resourceNames": ["support-router"],
    }
]


def test_configmap_watch_applies_weights_and_refuses_invalid(
    tiny_classifier: Path,
    tmp_path: Path,
    control_plane: ControlPlane,
    kube_api: ApiClient,
    namespace: str,
    wait_for: Callable[..., Any],
) -> None:
    from kubernetes import client

    from kubemodels import as_model

    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    meta = client.V1ObjectMeta(name="router")
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=meta))
    role = {"metadata": {"name": "router"}, "rules": ROUTER_RULES}
    rbac.create_namespaced_role(namespace, as_model(client.V1Role, role))
    binding = {
        "metadata": {"name": "router"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "router"},
        "subjects": [{"kind": "ServiceAccount", "name": "router", "namespace": namespace}],
    }
    rbac.create_namespaced_role_binding(namespace, as_model(client.V1RoleBinding, binding))
    kubeconfig = control_plane.service_account_kubeconfig(namespace, "router")

    with fake_provider(tmp_path, "big") as big, fake_provider(tmp_path, "small") as small:
        port = free_port()
        cfg = router_config(
            tiny_classifier,
            big_url=f"{big}/v1",
            small_url=f"{small}/v1",
            server={"host": "127.0.0.1", "port": port},
        )

        def put(config: dict[str, Any] | str) -> None:
            text = config if isinstance(config, str) else yaml.safe_dump(config)
            body = client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="support-router"), data={ROUTER_CONFIG_KEY: text}
            )
            try:
                core.replace_namespaced_config_map("support-router", namespace, body)
            except client.exceptions.ApiException as exc:
                if exc.status != 404:
                    raise
                core.create_namespaced_config_map(namespace, body)

        put(cfg)
        url = f"http://127.0.0.1:{port}"
        with process(
            [
                "router",
                "--configmap",
                "support-router",
                "--namespace",
                namespace,
                "--kubeconfig",
                str(kubeconfig),
            ],
            f"{url}/readyz",
            tmp_path / "router.log",
        ):
            sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)

            def arm() -> str:
                raw = sdk.chat.completions.with_raw_response.create(
                    model="auto",
                    messages=[{"role": "user", "content": SIMPLE_QUERY}],
                    user="same-user",
                )
                return raw.headers["x-tierguard-arm"]

            def metric(name: str, **labels: str) -> float:
                return sample(http("GET", f"{url}/metrics")[1], name, **labels)

            assert arm() == "control"
            put({**cfg, "split": [{"tier": "simple", "weight": 100}]})
            wait_for(
                lambda: metric("tierguard_canary_weight_percent", tier="simple") == 100,
                timeout=30,
                message="weight 100 never applied",
            )
            assert arm() == "canary"
            put("policy: [broken")
            wait_for(
                lambda: metric("tierguard_config_reloads_total", outcome="error") >= 1,
                timeout=30,
                message="the invalid config was not noticed",
            )
            assert arm() == "canary"  # the old config stays active
            put({**cfg, "split": [{"tier": "simple", "weight": 0}]})  # rollback
            wait_for(
                lambda: metric("tierguard_canary_weight_percent", tier="simple") == 0,
                timeout=30,
                message="rollback to 0 never applied",
            )
            assert arm() == "control"
