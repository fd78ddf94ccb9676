"""Pure parts of the control-plane module: kubeconfig content, binary discovery errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tierguard.lab import controlplane
from tierguard.lab.controlplane import (
    ControlPlaneBinaries,
    cache_bin_dir,
    ensure_binaries,
    kubeconfig_dict,
)
from tierguard.lab.processes import BinaryUnavailableError


def test_token_kubeconfig_embeds_the_ca_and_the_namespace() -> None:
    config = kubeconfig_dict(
        "https://127.0.0.1:6443", b"PEM", user="sa", token="t0k", namespace="team-a"
    )
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == b"PEM"
    assert config["users"] == [{"name": "sa", "user": {"token": "t0k"}}]
    [context] = config["contexts"]
    assert context["context"]["namespace"] == "team-a"
    assert config["current-context"] == context["name"]


def test_client_cert_kubeconfig(tmp_path: Path) -> None:
    config = kubeconfig_dict(
        "https://x", b"", user="u", client_cert=tmp_path / "c.crt", client_key=tmp_path / "c.key"
    )
    user = config["users"][0]["user"]
    assert user == {"client-certificate": str(tmp_path / "c.crt"),
                    "client-key": str(tmp_path / "c.key")}  # fmt: skip
    assert "namespace" not in config["contexts"][0]["context"]


def test_cache_dir_is_keyed_by_versions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIERGUARD_CACHE", str(tmp_path))
    assert cache_bin_dir("1.2.3", "4.5.6") == tmp_path / "controlplane/k8s-1.2.3-etcd-4.5.6/bin"


def test_override_dir_without_binaries_fails_with_instructions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIERGUARD_CONTROLPLANE_BIN", str(tmp_path))
    with pytest.raises(BinaryUnavailableError) as info:
        ensure_binaries()
    message = str(info.value)
    assert "kube-apiserver" in message
    assert "scripts/build-controlplane.sh" in message


def test_no_build_allowed_fails_with_instructions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TIERGUARD_CONTROLPLANE_BIN", raising=False)
    monkeypatch.setenv("TIERGUARD_CACHE", str(tmp_path))
    with pytest.raises(BinaryUnavailableError, match="building is disabled"):
        ensure_binaries(build=False)


def test_binaries_present_need_no_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in controlplane.BINARY_NAMES:
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("TIERGUARD_CONTROLPLANE_BIN", str(tmp_path))
    assert ensure_binaries(build=False) == ControlPlaneBinaries.in_dir(tmp_path)


def test_an_audit_policy_for_some_users_logs_only_theirs() -> None:
    import yaml

    policy = yaml.safe_load(controlplane.audit_policy_for(["system:serviceaccount:ns:op"]))
    assert policy["kind"] == "Policy" and policy["omitStages"] == ["RequestReceived"]
    first, rest = policy["rules"]
    assert first == {"level": "Metadata", "users": ["system:serviceaccount:ns:op"]}
    assert rest == {"level": "None"}, "everyone else: not audited"
    everyone = yaml.safe_load(controlplane.AUDIT_POLICY)
    assert everyone["rules"] == [{"level": "Metadata"}]
