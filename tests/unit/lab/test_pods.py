"""The kubelet stand-in: a router Deployment translated into local processes."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tierguard.lab.pods import PodTranslationError, expand, local_pods, resolve_env


def _deployment(**container: Any) -> dict[str, Any]:
    c = {
        "name": "router",
        "image": "tierguard/tierguard:0.1.0",
        "command": ["tierguard"],
        "args": ["router", "--configmap", "support-lab-router", "--port", "8080"],
        "ports": [{"containerPort": 8080}],
        "env": [
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "TIERGUARD_KEY_CHEAP",
                "valueFrom": {"secretKeyRef": {"name": "keys", "key": "cheap"}},
            },
            {"name": "GREETING", "value": "hi $(POD_NAME) $$(NOT)"},
        ],
    }
    c.update(container)
    return {
        "metadata": {"name": "support-lab-router", "namespace": "lab"},
        "spec": {
            "replicas": 2,
            "template": {"spec": {"serviceAccountName": "support-lab-router", "containers": [c]}},
        },
    }


SECRETS = {"keys": {"data": {"cheap": base64.b64encode(b"s3cret").decode()}}}


def test_expand_follows_kubernetes_rules() -> None:
    assert expand("a $(X) $(Y) $$(X)", {"X": "1"}) == "a 1 $(Y) $(X)"


def test_local_pods_resolve_env_and_adjust_only_what_a_pod_cannot_share() -> None:
    pods = local_pods(
        _deployment(),
        secrets=SECRETS,
        configmaps={},
        ports=[9001, 9002],
        kubeconfig=Path("/tmp/sa.kubeconfig"),
        base_env={"PATH": "/bin", "SECRET_OF_MINE": "x"},
        python="/py",
    )
    assert [p.port for p in pods] == [9001, 9002]
    first = pods[0]
    assert first.argv[:3] == ["/py", "-m", "tierguard.cli"]
    argv = first.argv[3:]
    assert argv[:3] == ["router", "--configmap", "support-lab-router"]
    assert argv[argv.index("--port") + 1] == "9001" and argv.count("--port") == 1
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--kubeconfig") + 1] == "/tmp/sa.kubeconfig"
    assert first.env["TIERGUARD_KEY_CHEAP"] == "s3cret"
    assert first.env["POD_NAMESPACE"] == "lab"
    assert first.env["GREETING"] == f"hi {first.name} $(NOT)"
    assert first.env["PATH"] == "/bin" and "SECRET_OF_MINE" not in first.env
    assert first.service_account == "support-lab-router"
    assert pods[1].name != first.name


def test_missing_secret_key_fails_like_a_pod_would() -> None:
    with pytest.raises(PodTranslationError, match="keys/cheap"):
        local_pods(
            _deployment(),
            secrets={},
            configmaps={},
            ports=[1],
            kubeconfig=Path("k"),
            base_env={},
        )


def test_optional_refs_and_env_from() -> None:
    container = {
        "envFrom": [
            {"secretRef": {"name": "keys"}, "prefix": "K_"},
            {"configMapRef": {"name": "cm"}},
        ],
        "env": [
            {
                "name": "OPT",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}},
            },
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}},
        ],
    }
    env = resolve_env(
        container,
        pod_name="p",
        namespace="n",
        secrets=SECRETS,
        configmaps={"cm": {"data": {"a": "1"}}},
        service_account="sa",
    )
    assert env == {"K_cheap": "s3cret", "a": "1", "FROM_CM": "1"}


def test_foreign_entry_points_are_refused() -> None:
    with pytest.raises(PodTranslationError, match="only run tierguard"):
        local_pods(
            _deployment(command=["/bin/sh", "-c"]),
            secrets=SECRETS,
            configmaps={},
            ports=[1],
            kubeconfig=Path("k"),
            base_env={},
        )
