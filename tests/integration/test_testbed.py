"""Smoke tests of the testbed itself: real kube-apiserver, controller manager, kubectl
and Prometheus behave like a cluster the operator can rely on, and nothing outlives
the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_api_client import PrometheusConnect

import tierguard
from tierguard.lab.controlplane import K8S_VERSION, ControlPlane
from tierguard.lab.processes import ProcessExitedError, pid_running, process_group_members
from tierguard.lab.prometheus import Prometheus
from tierguard.operator.kube import load_api_client

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

WaitFor = Callable[..., Any]


def _name(obj: client.V1Namespace | client.V1ConfigMap) -> str:
    """The name of an object read from the API (the client types metadata optional)."""
    assert obj.metadata is not None and obj.metadata.name is not None
    return obj.metadata.name


def _get(url: str, ca_file: Path) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
        return int(resp.status), resp.read().decode()


def _gone(read: Callable[[], object]) -> bool:
    """True once ``read`` raises 404."""
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


# --------------------------------------------------------------------------- API server


def test_apiserver_answers_readyz_and_reports_its_version(control_plane: ControlPlane) -> None:
    status, body = _get(f"{control_plane.server}/readyz", control_plane.ca_file)
    assert (status, body) == (200, "ok")
    _, version = _get(f"{control_plane.server}/version", control_plane.ca_file)
    assert json.loads(version)["gitVersion"] == f"v{K8S_VERSION}"


def test_python_client_talks_to_the_apiserver(kube_api: client.ApiClient) -> None:
    info = client.VersionApi(kube_api).get_code()
    assert info.git_version == f"v{K8S_VERSION}"
    names = {_name(ns) for ns in client.CoreV1Api(kube_api).list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_built_kubectl_works(control_plane: ControlPlane, namespace: str) -> None:
    versions = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert versions["clientVersion"]["gitVersion"] == f"v{K8S_VERSION}"
    assert versions["serverVersion"]["gitVersion"] == f"v{K8S_VERSION}"
    manifest = textwrap.dedent(
        """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: from-kubectl}
        data: {greeting: hello}
        """
    )
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    got = control_plane.kubectl(
        "get", "configmap", "from-kubectl", "-n", namespace, "-o", "jsonpath={.data.greeting}"
    )
    assert got.stdout == "hello"


# --------------------------------------------------------------------------- controller manager


@pytest.mark.timeout(180)
def test_namespace_deletion_completes(kube_api: client.ApiClient, wait_for: WaitFor) -> None:
    core = client.CoreV1Api(kube_api)
    name = "t-ns-deletion"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="content"))
    )
    # the serviceaccount controller gives every namespace its default ServiceAccount
    wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=60,
        message=f"ServiceAccount {name}/default to be created",
    )
    core.delete_namespace(name)
    # without a working namespace controller it would stay Terminating forever
    wait_for(
        lambda: _gone(lambda: core.read_namespace(name)),
        timeout=120,
        message=f"namespace {name} to disappear",
    )


@pytest.mark.timeout(180)
def test_owned_objects_are_garbage_collected(
    kube_api: client.ApiClient, namespace: str, wait_for: WaitFor
) -> None:
    core = client.CoreV1Api(kube_api)

    def configmap(name: str, owner: client.V1ConfigMap | None = None) -> client.V1ConfigMap:
        refs = None
        if owner is not None:
            assert owner.metadata is not None and owner.metadata.uid is not None
            refs = [
                client.V1OwnerReference(
                    api_version="v1", kind="ConfigMap", name=_name(owner),
                    uid=owner.metadata.uid,
                )
            ]  # fmt: skip
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, owner_references=refs))
        return core.create_namespaced_config_map(namespace, body)

    owner_a, owner_b = configmap("owner-a"), configmap("owner-b")
    configmap("owned-by-a", owner_a)
    configmap("owned-by-b", owner_b)

    core.delete_namespaced_config_map("owner-a", namespace)
    wait_for(
        lambda: _gone(lambda: core.read_namespaced_config_map("owned-by-a", namespace)),
        timeout=120,
        message="the garbage collector to delete owned-by-a",
    )
    # the collector deletes only what the deleted owner owned
    assert _name(core.read_namespaced_config_map("owned-by-b", namespace)) == "owned-by-b"


# --------------------------------------------------------------------------- RBAC


def test_service_account_token_allows_only_what_its_role_grants(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="configmap-reader"),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""], resources=["configmaps"], verbs=["get", "list", "watch"]
                )
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-reader"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)
            ],
        ),
    )
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="visible"))
    )

    kubeconfig = control_plane.service_account_kubeconfig(namespace, "reader")
    whoami = control_plane.kubectl("auth", "whoami", "-o", "json", kubeconfig=kubeconfig)
    assert (
        json.loads(whoami.stdout)["status"]["userInfo"]["username"]
        == f"system:serviceaccount:{namespace}:reader"
    )

    sa_client = load_api_client(str(kubeconfig))
    try:
        sa_core = client.CoreV1Api(sa_client)
        listed = {_name(cm) for cm in sa_core.list_namespaced_config_map(namespace).items}
        assert "visible" in listed

        forbidden: list[Callable[[], object]] = [
            lambda: sa_core.list_namespaced_secret(namespace),
            lambda: sa_core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="nope"))
            ),
            lambda: sa_core.delete_namespaced_config_map("visible", namespace),
            lambda: sa_core.list_namespaced_config_map("default"),
        ]
        for call in forbidden:
            with pytest.raises(ApiException) as info:
                call()
            assert info.value.status == 403
    finally:
        sa_client.close()  # type: ignore[no-untyped-call]  # kubernetes: ApiClient.close is unannotated
    # and the refused delete really did nothing
    assert _name(core.read_namespaced_config_map("visible", namespace)) == "visible"


# --------------------------------------------------------------------------- Prometheus


class _Metrics:
    """A tiny /metrics endpoint on loopback whose value the test changes."""

    def __init__(self, value: float) -> None:
        self.value = value
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = (
                    f"# TYPE tierguard_testbed_probe gauge\ntierguard_testbed_probe {owner.value}\n"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Metrics:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def metrics_endpoint() -> Iterator[_Metrics]:
    with _Metrics(42.0) as endpoint:
        yield endpoint


@pytest.mark.timeout(120)
def test_prometheus_scrapes_the_targets_a_test_sets(
    prometheus: Prometheus, metrics_endpoint: _Metrics, wait_for: WaitFor
) -> None:
    prom = PrometheusConnect(url=prometheus.url, disable_ssl=True)
    query = f'tierguard_testbed_probe{{instance="{metrics_endpoint.target}"}}'
    assert prom.custom_query(query) == []  # not a target yet: an empty vector

    prometheus.set_targets([metrics_endpoint.target], labels={"scenario": "smoke"})

    def value() -> float | None:
        result = prom.custom_query(query)
        return float(result[0]["value"][1]) if result else None

    assert wait_for(value, timeout=60, message="the probe metric to be scraped") == 42.0
    labelled = prom.custom_query(f'up{{instance="{metrics_endpoint.target}",scenario="smoke"}}')
    assert [float(r["value"][1]) for r in labelled] == [1.0]

    metrics_endpoint.value = 43.0
    wait_for(lambda: value() == 43.0, timeout=60, message="the new probe value to be scraped")


# --------------------------------------------------------------------------- no orphans


def _group_pids(procs: list[Any]) -> list[int]:
    pids: list[int] = []
    for proc in procs:
        assert proc.pid is not None
        pids.extend(process_group_members(proc.pid))
    return pids


def test_stopping_leaves_no_processes_or_files(control_plane: ControlPlane) -> None:
    cp = ControlPlane(control_plane.binaries)
    prom = Prometheus()
    try:
        cp.start()
        prom.start()
        assert prom.process is not None
        pids = _group_pids([*cp.processes, prom.process])
        assert len(pids) >= 4  # etcd, kube-apiserver, kube-controller-manager, prometheus
        assert all(pid_running(pid) for pid in pids)
    finally:
        prom.stop()
        cp.stop()
    assert [pid for pid in pids if pid_running(pid)] == []
    assert not cp.workdir.exists()
    assert not prom.workdir.exists()


def test_a_server_that_fails_to_start_is_reported_with_its_log(
    control_plane: ControlPlane,
) -> None:
    cp = ControlPlane(control_plane.binaries, apiserver_args=["--no-such-flag=1"])
    with pytest.raises(ProcessExitedError) as info:
        cp.start()
    message = str(info.value)
    assert "kube-apiserver exited with code" in message
    assert "unknown flag: --no-such-flag" in message  # from the log tail
    assert str(cp.workdir) in message  # kept for inspection
    try:
        assert (cp.workdir / "logs" / "kube-apiserver.log").is_file()
        assert [p for p in cp.processes if p.running()] == []  # etcd was stopped too
    finally:
        shutil.rmtree(cp.workdir, ignore_errors=True)


# The child restores Python's Ctrl-C handler: a shell without job control starts
# background jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored.
_CHILD_SCRIPT = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from tierguard.lab.prometheus import Prometheus
prom = Prometheus().start()
print(prom.process.pid, prom.workdir, flush=True)
try:
    time.sleep(600)
finally:
    print("cleaned up", flush=True)
"""


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name
)
def test_a_dying_parent_takes_its_servers_along(sig: signal.Signals, wait_for: WaitFor) -> None:
    """Ctrl-C and SIGTERM stop the children through atexit; SIGKILL through the reaper."""
    src = str(Path(tierguard.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    parent = subprocess.Popen(
        [sys.executable, "-c", _CHILD_SCRIPT],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert parent.stdout is not None
        pid_text, workdir = parent.stdout.readline().split()
        prom_pid = int(pid_text)
        assert pid_running(prom_pid)
        parent.send_signal(sig)
        parent.wait(timeout=60)
        wait_for(lambda: not pid_running(prom_pid), timeout=30, message="prometheus to exit")
        wait_for(lambda: not Path(workdir).exists(), timeout=30, message="its workdir to go")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (e.g. a working directory)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline and pid_running(int(entry)):
            found.append(int(entry))
    return found


def test_up_cli_serves_until_ctrl_c(control_plane: ControlPlane) -> None:
    """``python -m tierguard.lab.controlplane up``: usable kubeconfig, clean Ctrl-C."""
    src = str(Path(tierguard.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    env["TIERGUARD_CONTROLPLANE_BIN"] = str(control_plane.binaries.etcd.parent)
    cli = subprocess.Popen(
        [sys.executable, "-m", "tierguard.lab.controlplane", "--no-build", "up", "--prometheus"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert cli.stdout is not None
        lines: dict[str, str] = {}
        for line in cli.stdout:
            key, _, value = line.partition(":")
            lines[key.strip()] = value.strip()
            if line.startswith("# Ctrl-C"):
                break
        kubeconfig = Path(lines["kubeconfig"])
        workdir = str(kubeconfig.parent)
        # "http://127.0.0.1:PORT  (targets file: /tmp/tierguard-prometheus-.../targets.json)"
        prom_dir = str(Path(lines["prometheus"].split()[-1].rstrip(")")).parent)
        assert f"export KUBECONFIG={kubeconfig}" in lines
        got = control_plane.kubectl(
            "get", "namespace", "default", "-o", "name", kubeconfig=kubeconfig
        )
        assert got.stdout.strip() == "namespace/default"
        assert len(_pids_mentioning(workdir)) == 3  # etcd, kube-apiserver, controller manager
        assert len(_pids_mentioning(prom_dir)) == 1

        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=60) == 0
        assert _pids_mentioning(workdir) == []
        assert _pids_mentioning(prom_dir) == []
        assert not Path(workdir).exists()
        assert not Path(prom_dir).exists()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


@pytest.mark.parametrize(
    ("env_var", "test_id", "expected"),
    [
        ("TIERGUARD_CONTROLPLANE_BIN", "test_built_kubectl_works", "How to get them"),
        (
            "TIERGUARD_PROMETHEUS",
            "test_prometheus_scrapes_the_targets_a_test_sets",
            "is not an executable file",
        ),
    ],
)
def test_missing_binaries_fail_the_tests_instead_of_skipping(
    tmp_path: Path, env_var: str, test_id: str, expected: str
) -> None:
    src = str(Path(tierguard.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    env[env_var] = str(tmp_path / "nothing-here")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"{__file__}::{test_id}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert res.returncode == 1, res.stdout[-2000:]
    assert "1 error" in res.stdout
    assert "skipped" not in res.stdout
    assert expected in res.stdout
