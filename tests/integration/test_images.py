"""Each container image installs what its entry point imports, at the locked versions.

No Docker engine here, so each image's Python environment is rebuilt the way its
Dockerfile builds it: the install command is **read from the Dockerfile** (the RUN that
installs the component's extra), run in a fresh virtualenv in a directory holding only
the files the Dockerfile COPYs, with this machine's Python standing in for the image's.
Then the **real entry point** runs from that virtualenv (no PYTHONPATH, nothing from the
development environment) against the testbed:

* the router with ``--configmap`` (how the operator starts every router) and
  ``--event-loop=uvloop``, answering a chat completion through a fake provider with the
  bundled classifier;
* the operator against the API server, with least-privilege RBAC, reconciling a policy.

Two deliberate differences from a docker build, both about where files come from, not
what is installed: ``--no-cache-dir`` is dropped so pip may reuse this machine's wheel
cache, and paths (/opt/tierguard, /tmp/requirements.txt) point into the test's temp dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from operatorkit import install_crd, operator_identity, policy_manifest
from routerkit import SIMPLE_QUERY, fake_provider, free_port, http, router_config, wait_http
from tierguard.api import constants as c

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tierguard.lab.controlplane import ControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def build_stage(dockerfile: Path) -> list[tuple[str, str]]:
    ins = instructions(dockerfile)
    starts = [i for i, (w, _) in enumerate(ins) if w == "FROM"]
    assert len(starts) >= 2, "expected a build stage and a final stage"
    return ins[starts[0] : starts[1]]


def build_venv(component: str, workdir: Path) -> Path:
    """Run the Dockerfile's install RUN for ``component``; return the venv's bin dir."""
    stage = build_stage(ROOT / component / "Dockerfile")
    context = workdir / "context"
    context.mkdir()
    for word, args in stage:
        if word == "COPY":
            *sources, dest = args.split()
            assert not any(s.startswith("--") for s in sources), args
            for src in sources:
                target = context / dest / Path(src).name if dest.endswith("/") else context / dest
                if (ROOT / src).is_dir():
                    shutil.copytree(
                        ROOT / src,
                        target,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
                    )
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / src, target)
    (run,) = [args for word, args in stage if word == "RUN" and "pip install" in args]
    venv = workdir / "venv"
    script = (
        run.replace("/opt/tierguard", str(venv))
        .replace("/tmp/requirements.txt", str(workdir / "requirements.txt"))
        .replace("--no-cache-dir", "")
    )
    shim = workdir / "shim"
    shim.mkdir()
    base_python = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    (shim / "python").symlink_to(base_python)
    env = {
        "PATH": f"{shim}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, (
        f"{component} install failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return venv / "bin"


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name.strip().lower())] = version.strip()
    return pins


def installed(bin_dir: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {re.sub(r"[-_.]+", "-", d["name"].lower()): d["version"] for d in json.loads(out)}


def clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH and no development venv on PATH: only the image's environment."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        **extra,
    }


@pytest.fixture(scope="module")
def image_venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        component: build_venv(component, tmp_path_factory.mktemp(f"image-{component}"))
        for component in ("router", "operator")
    }


@pytest.mark.parametrize("component", ["router", "operator"])
def test_image_installs_the_locked_versions(image_venvs: dict[str, Path], component: str) -> None:
    bin_dir = image_venvs[component]
    have = installed(bin_dir)
    pins = locked()
    assert "tierguard" in have
    drift = {
        name: (version, pins[name])
        for name, version in have.items()
        if name in pins and version != pins[name]
    }
    assert not drift, f"{component} image differs from constraints.txt: {drift}"
    unpinned = set(have) - set(pins) - {"tierguard", "pip", "setuptools", "wheel"}
    assert not unpinned, f"installed but not in the lock: {unpinned}"
    check = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "check"], capture_output=True, text=True
    )
    # tierguard itself is installed --no-deps on purpose (only its component's extra);
    # every other distribution must have what it requires.
    broken = [ln for ln in check.stdout.splitlines() if ln and not ln.startswith("tierguard ")]
    assert not broken, check.stdout
    if component == "router":
        assert {"uvloop", "kubernetes", "onnxruntime"} <= set(have)
        assert not {"kopf", "scikit-learn", "prometheus-api-client"} & set(have)
    else:
        assert {"kopf", "kubernetes", "numpy"} <= set(have)
        assert not {"onnxruntime", "scikit-learn"} & set(have)


@contextmanager
def _running(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_router_image_serves_from_its_configmap_on_uvloop(
    image_venvs: dict[str, Path],
    tmp_path: Path,
    control_plane: ControlPlane,
    kube_api: ApiClient,
    namespace: str,
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    with fake_provider(tmp_path, "big") as big, fake_provider(tmp_path, "small") as small:
        port = free_port()
        cfg = router_config(
            "unused", big_url=f"{big}/v1", small_url=f"{small}/v1",
            server={"host": "127.0.0.1", "port": port},
        )  # fmt: skip
        # The bundled classifier (tiers simple, complex): it must be in the image.
        cfg["classifier"] = {"tiers": [{"name": "simple", "threshold": 0.7}, {"name": "complex"}]}
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="rt"),
                data={c.ROUTER_CONFIG_KEY: yaml.safe_dump(cfg)},
            ),
        )
        log = tmp_path / "router.log"
        cmd = [
            str(image_venvs["router"] / "tierguard"), "router", "--configmap", "rt",
            "--namespace", namespace, "--kubeconfig", str(control_plane.kubeconfig),
            "--event-loop", "uvloop",
        ]  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        with _running(cmd, clean_env(), log) as proc:
            try:
                wait_http(f"{url}/readyz", proc, timeout_s=60)
            except RuntimeError as exc:
                pytest.fail(f"{exc}\n{log.read_text()[-4000:]}")
            status, body = http(
                "POST",
                f"{url}/v1/chat/completions",
                {"model": "auto", "messages": [{"role": "user", "content": SIMPLE_QUERY}]},
            )
            assert status == 200, body
            assert body["choices"][0]["message"]["content"]
            assert http("GET", f"{url}/metrics")[0] == 200
        text = log.read_text()
        assert "event loop: uvloop" in text, text[-3000:]
        assert "Traceback" not in text and "ModuleNotFoundError" not in text, text[-3000:]


def test_operator_image_reconciles_a_policy(
    image_venvs: dict[str, Path],
    tmp_path: Path,
    control_plane: ControlPlane,
    kube_api: ApiClient,
    namespace: str,
    wait_for: Callable[..., Any],
) -> None:
    from kubernetes import client

    install_crd(control_plane)
    custom = client.CustomObjectsApi(kube_api)
    with operator_identity(control_plane, kube_api, namespace) as kubeconfig:
        custom.create_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.PLURAL,
            policy_manifest("img", "http://127.0.0.1:1", "http://127.0.0.1:1",
                            "http://127.0.0.1:1"),
        )  # fmt: skip
        log = tmp_path / "operator.log"
        ready_port = free_port()
        cmd = [
            str(image_venvs["operator"] / "tierguard"), "operator",
            "--kubeconfig", str(kubeconfig), "--namespace", namespace, "--standalone",
            "--resync", "1", "--metrics-port", str(free_port()),
            "--liveness", f"http://127.0.0.1:{free_port()}/healthz",
            "--readiness", f"http://127.0.0.1:{ready_port}/readyz",
        ]  # fmt: skip
        with _running(cmd, clean_env(KUBECONFIG=str(kubeconfig)), log) as proc:

            def observed() -> bool:
                if proc.poll() is not None:
                    pytest.fail(f"the operator exited:\n{log.read_text()[-4000:]}")
                obj = custom.get_namespaced_custom_object(
                    c.GROUP, c.VERSION, namespace, c.PLURAL, "img"
                )
                assert isinstance(obj, dict)
                gen = obj["metadata"]["generation"]
                return bool(obj.get("status", {}).get("observedGeneration") == gen)

            wait_for(observed, timeout=120, message="the image's operator never reconciled")
            status, body = http("GET", f"http://127.0.0.1:{ready_port}/readyz")
            assert status == 200 and "connected" in str(body)
        text = log.read_text()
        assert "ModuleNotFoundError" not in text and "ImportError" not in text, text[-3000:]
