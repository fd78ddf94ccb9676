"""The kubelet stand-in: a router Deployment translated into local processes."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from specs import one_model_spec
from tierguard.lab.podenv import PodTranslationError, expand, resolve_env
from tierguard.lab.pods import local_pods


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


def test_volumes_are_projected_like_the_kubelet_does() -> None:
    from tierguard.lab.podvolumes import pod_mounts

    pod_spec = {
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "signing", "secret": {"secretName": "keys"}},
            {"name": "cm", "configMap": {"name": "cm", "items": [{"key": "a", "path": "x/a.txt"}]}},
        ]
    }
    container = {
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "signing", "mountPath": "/var/run/secrets/t/signing", "readOnly": True},
            {"name": "cm", "mountPath": "/etc/t"},
        ]
    }
    mounts = pod_mounts(
        pod_spec, container, secrets=SECRETS, configmaps={"cm": {"data": {"a": "1", "b": "2"}}}
    )
    assert [m.files for m in mounts] == [None, {"cheap": b"s3cret"}, {"x/a.txt": b"1"}]
    assert mounts[1].read_only and not mounts[2].read_only
    with pytest.raises(PodTranslationError, match="not found"):
        pod_mounts(pod_spec, container, secrets={}, configmaps={})


def test_mount_script_overlays_missing_parents_and_binds_volumes() -> None:
    from tierguard.lab.podvolumes import VolumeMount, mount_script, unshare_prefix

    host = {"/", "/tmp", "/var", "/var/run", "/run", "/etc"}
    mounts = [
        (VolumeMount("tmp", "/tmp", False, None), Path("/s/tmp")),
        (VolumeMount("signing", "/var/run/secrets/t/signing", True, {"k": b"v"}), Path("/s/sig")),
        (VolumeMount("cm", "/etc/t", False, {"a": b"1"}), Path("/s/cm")),
    ]
    script, notes = mount_script(
        mounts,
        Path("/s/scratch"),
        exists=lambda p: p in host,
        realpath=lambda p: "/run" if p == "/var/run" else p,
    )
    lines = script.splitlines()
    assert lines[0] == "set -e" and lines[-1] == 'exec "$@"'
    assert any(ln.startswith("mount -t overlay") and ln.endswith(" /run") for ln in lines)
    assert any(ln.startswith("mount -t overlay") and ln.endswith(" /etc") for ln in lines)
    assert "mount --bind /s/sig /var/run/secrets/t/signing" in lines
    assert "mount -o remount,bind,ro /var/run/secrets/t/signing" in lines
    assert "mount --bind /s/cm /etc/t" in lines
    assert not any("/s/tmp" in ln for ln in lines)  # the host's /tmp stays
    assert notes and "/tmp" in notes[0]
    assert unshare_prefix(0) == ["unshare", "--mount", "--propagation", "private"]
    assert unshare_prefix(1000)[-2:] == ["--user", "--map-root-user"]


def test_mount_script_refuses_a_mount_with_no_existing_parent() -> None:
    from tierguard.lab.podvolumes import VolumeMount, mount_script

    with pytest.raises(PodTranslationError, match="cannot emulate"):
        mount_script(
            [(VolumeMount("v", "/data/x", False, {}), Path("/s"))],
            Path("/s/scratch"),
            exists=lambda p: p == "/",
            realpath=lambda p: p,
        )


def test_the_rendered_routers_keep_one_budget_ledger_per_pod() -> None:
    """The operator's Deployment names the pre-flight budget ledger after the pod: local
    pods share the host's /tmp, yet never share a ledger (one share per process)."""
    from tierguard.api import constants as c
    from tierguard.operator import render, rendermeta

    spec = one_model_spec()
    dep = render.deployment(rendermeta.PolicyRef("support", "lab", "uid"), spec)
    dep["spec"]["template"]["spec"]["volumes"] = []  # volumes are not under test here
    dep["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = []
    pods = local_pods(
        dep,
        secrets={},
        configmaps={},
        ports=[9001, 9002],
        kubeconfig=Path("/tmp/sa.kubeconfig"),
        base_env={},
    )
    ledgers = [p.env[c.ENV_ROUTER_BUDGET_LEDGER] for p in pods]
    assert ledgers[0] != ledgers[1] and all(p.name in ledgers[i] for i, p in enumerate(pods))
    assert all(x.startswith("/tmp/") and "$(" not in x for x in ledgers)
