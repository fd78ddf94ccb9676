"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Why real binaries and not a fake API server: the operator's correctness depends on
behaviour only the real thing has -- RBAC refusals, ownerReference garbage collection,
namespace finalization, CRD schema and CEL validation, watch semantics, the status
subresource. The binaries are built from the Go module proxy by
``scripts/build-controlplane.sh`` (no Docker engine and no release downloads here) and
cached by version, so only the first run pays for the build (see docs/testbed.md).

What :class:`ControlPlane` starts, each in its own process group and temporary
directory, on free ports of 127.0.0.1:

* **etcd** -- the version kube-apiserver's client is built for (3.6.x for 1.36).
* **kube-apiserver** -- TLS with a throw-away CA; admin authentication by a static
  bearer token (``--token-auth-file``; the token lives only in the 0600 kubeconfig
  file); client certificates signed by the same CA are accepted too (the controller
  manager uses one); RBAC authorization; a ServiceAccount issuer and signing key so
  ``kubectl create token`` / TokenRequest work and tests can run the operator as a
  least-privilege ServiceAccount instead of cluster-admin.
* **kube-controller-manager** -- garbage collection of owned objects, namespace
  deletion, the ``default`` ServiceAccount in every namespace, the
  ``kube-root-ca.crt`` ConfigMap, Deployments → ReplicaSets → Pods (pods stay Pending:
  there is no scheduler or kubelet).

It is ready when /readyz answers and the ``default`` ServiceAccount of the ``default``
namespace exists (proof that the controller manager's controllers run). Any failure
raises an error holding the tail of the failing process's log.

CLI: ``python -m tierguard.lab.controlplane build`` (find or build the binaries,
print versions) and ``python -m tierguard.lab.controlplane up`` (start, print the
kubeconfig path and ``export`` lines, stay up until Ctrl-C).
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from tierguard.lab.processes import (
    BinaryUnavailableError,
    LabError,
    ManagedProcess,
    ProcessExitedError,
    free_port,
    install_signal_handlers,
    keep_dir_if_we_die,
    working_directory,
)

__all__ = [
    "ETCD_VERSION",
    "K8S_VERSION",
    "BuildFailedError",
    "ControlPlane",
    "ControlPlaneBinaries",
    "ControlPlaneError",
    "cache_root",
    "ensure_binaries",
    "find_binaries",
]

K8S_VERSION = "1.36.3"
# kube-apiserver 1.36 is built against the etcd 3.6 client; run a matching server.
ETCD_VERSION = "3.6.16"

BINARY_NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
ENV_BIN_DIR = "TIERGUARD_CONTROLPLANE_BIN"
ENV_CACHE = "TIERGUARD_CACHE"
SERVICE_CIDR = "10.0.0.0/24"
#: For many Services (the scale benchmark: one per policy); kube-apiserver's limit is /12.
LARGE_SERVICE_CIDR = "10.0.0.0/16"
#: Every request at Metadata level (who, verb, resource, namespace, code; never bodies,
#: so no Secret value reaches the log), written when the response is sent.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
"""
CLUSTER_NAME = "tierguard-testbed"
_PORT_RETRIES = 3


class ControlPlaneError(LabError):
    """The control plane could not be started or used."""


class BuildFailedError(BinaryUnavailableError):
    """The build script ran and failed; the message holds the end of its output."""


# --------------------------------------------------------------------------- binaries


def cache_root() -> Path:
    """``$TIERGUARD_CACHE``, else ``$XDG_CACHE_HOME/tierguard``, else ``~/.cache/tierguard``.

    Must agree with scripts/build-controlplane.sh, which computes the same path.
    """
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "tierguard"


def cache_bin_dir(k8s_version: str = K8S_VERSION, etcd_version: str = ETCD_VERSION) -> Path:
    """Where the build script puts binaries for this pair of versions."""
    return cache_root() / "controlplane" / f"k8s-{k8s_version}-etcd-{etcd_version}" / "bin"


@dataclass(frozen=True)
class ControlPlaneBinaries:
    """Paths of the four programs the testbed runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path

    @classmethod
    def in_dir(cls, directory: Path) -> ControlPlaneBinaries:
        return cls(
            etcd=directory / "etcd",
            kube_apiserver=directory / "kube-apiserver",
            kube_controller_manager=directory / "kube-controller-manager",
            kubectl=directory / "kubectl",
        )

    def missing(self) -> list[Path]:
        return [p for p in self.all() if not (p.is_file() and os.access(p, os.X_OK))]

    def all(self) -> list[Path]:
        return [self.etcd, self.kube_apiserver, self.kube_controller_manager, self.kubectl]

    def versions(self) -> dict[str, str]:
        """``{"etcd": "3.6.16", "kube-apiserver": "v1.36.3", ...}`` as the binaries report."""

        def first_line(argv: list[str]) -> str:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
            return (
                (out.stdout or out.stderr).strip().splitlines()[0]
                if out.stdout or out.stderr
                else ""
            )

        etcd = first_line([str(self.etcd), "--version"])  # "etcd Version: 3.6.16"
        apiserver = first_line([str(self.kube_apiserver), "--version"])  # "Kubernetes v1.36.3"
        kcm = first_line([str(self.kube_controller_manager), "--version"])
        kubectl_out = subprocess.run(
            [str(self.kubectl), "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        try:
            kubectl = json.loads(kubectl_out.stdout)["clientVersion"]["gitVersion"]
        except (ValueError, KeyError):
            kubectl = kubectl_out.stdout.strip() or kubectl_out.stderr.strip()
        return {
            "etcd": etcd.split()[-1] if etcd else "?",
            "kube-apiserver": apiserver.split()[-1] if apiserver else "?",
            "kube-controller-manager": kcm.split()[-1] if kcm else "?",
            "kubectl": kubectl,
        }


def find_build_script() -> Path | None:
    """scripts/build-controlplane.sh of the source checkout this module runs from, if any."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "scripts" / "build-controlplane.sh"
        if candidate.is_file():
            return candidate
    return None


def find_binaries(
    k8s_version: str = K8S_VERSION, etcd_version: str = ETCD_VERSION
) -> ControlPlaneBinaries:
    """The binaries to use, without building: ``$TIERGUARD_CONTROLPLANE_BIN`` or the cache."""
    override = os.environ.get(ENV_BIN_DIR)
    directory = Path(override) if override else cache_bin_dir(k8s_version, etcd_version)
    return ControlPlaneBinaries.in_dir(directory)


def _how_to_get(k8s_version: str, etcd_version: str) -> str:
    return (
        "How to get them: run scripts/build-controlplane.sh from a tierguard checkout "
        f"(K8S_VERSION={k8s_version} ETCD_VERSION={etcd_version}; needs Go >= 1.26 and "
        "access to proxy.golang.org; about 25 minutes on 2 cores the first time), or "
        f"point {ENV_BIN_DIR} at a directory holding etcd, kube-apiserver, "
        "kube-controller-manager and kubectl of those versions. See docs/testbed.md."
    )


def ensure_binaries(
    k8s_version: str = K8S_VERSION,
    etcd_version: str = ETCD_VERSION,
    *,
    build: bool = True,
    progress: IO[str] | None = None,
) -> ControlPlaneBinaries:
    """Return the control-plane binaries, building them first when they are missing.

    The build prints its progress (elapsed time, packages compiled) to ``progress``
    (default: stderr) line by line, so a 25-minute cold build is visibly alive.
    Raises :class:`BinaryUnavailableError` with instructions when the binaries are
    missing and cannot be built -- callers must treat that as a failure, not a skip.
    """
    binaries = find_binaries(k8s_version, etcd_version)
    missing = binaries.missing()
    if not missing:
        return binaries
    how = _how_to_get(k8s_version, etcd_version)
    if os.environ.get(ENV_BIN_DIR):
        raise BinaryUnavailableError(
            f"{ENV_BIN_DIR}={os.environ[ENV_BIN_DIR]} lacks {', '.join(p.name for p in missing)}. "
            + how
        )
    script = find_build_script()
    if not build or script is None:
        reason = "building is disabled" if not build else "the build script is not available"
        raise BinaryUnavailableError(
            f"missing control-plane binaries: {', '.join(str(p) for p in missing)} "
            f"({reason}). " + how
        )
    out = progress if progress is not None else sys.stderr
    env = dict(os.environ, K8S_VERSION=k8s_version, ETCD_VERSION=etcd_version)
    env[ENV_CACHE] = str(cache_root())
    tail: collections.deque[str] = collections.deque(maxlen=40)
    print(
        f"[tierguard] building the control plane (k8s {k8s_version}, etcd {etcd_version}) "
        f"into {binaries.etcd.parent}; the first build takes about 25 minutes",
        file=out,
        flush=True,
    )
    proc = subprocess.Popen(
        ["bash", str(script)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail.append(line.rstrip("\n"))
            out.write(line)
            out.flush()
        rc = proc.wait()
    except BaseException:
        proc.terminate()
        proc.wait()
        raise
    if rc != 0:
        raise BuildFailedError(
            f"{script} failed with exit code {rc}. Last output:\n" + "\n".join(tail) + "\n" + how
        )
    missing = binaries.missing()
    if missing:
        raise BuildFailedError(
            f"{script} succeeded but {', '.join(map(str, missing))} are still missing. " + how
        )
    return binaries


# --------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class _Pki:
    """A throw-away CA, the API server's serving cert, a client cert and the SA key."""

    ca_crt: Path
    ca_key: Path
    serving_crt: Path
    serving_key: Path
    kcm_crt: Path
    kcm_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BinaryUnavailableError(
            "openssl is needed to make the testbed's certificates: apt-get install openssl"
        )
    res = subprocess.run(
        [openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if res.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args[:2])} failed: {res.stderr.strip()}")


# ECDSA P-256 everywhere (CA, serving and client certs, ServiceAccount signing key,
# which kube-apiserver accepts as ES256): generating RSA keys costs seconds on a busy
# 2-core machine, EC keys milliseconds.
_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def _make_pki(d: Path) -> _Pki:
    """Create the certificates with the openssl CLI (no extra Python dependency)."""
    d.mkdir(parents=True, exist_ok=True)
    pki = _Pki(
        ca_crt=d / "ca.crt",
        ca_key=d / "ca.key",
        serving_crt=d / "apiserver.crt",
        serving_key=d / "apiserver.key",
        kcm_crt=d / "kube-controller-manager.crt",
        kcm_key=d / "kube-controller-manager.key",
        sa_key=d / "sa.key",
        sa_pub=d / "sa.pub",
    )
    _openssl(
        "req", "-x509", *_EC_KEY, "-nodes", "-days", "3650",
        "-keyout", pki.ca_key.name, "-out", pki.ca_crt.name,
        "-subj", "/CN=tierguard-testbed-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=d,
    )  # fmt: skip

    def leaf(crt: Path, key: Path, subj: str, ext: str) -> None:
        csr = key.with_suffix(".csr")
        extfile = key.with_suffix(".ext")
        extfile.write_text(ext)
        _openssl(
            "req", *_EC_KEY, "-nodes", "-keyout", key.name,
            "-out", csr.name, "-subj", subj, cwd=d,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", csr.name, "-CA", pki.ca_crt.name, "-CAkey", pki.ca_key.name,
            "-CAcreateserial", "-days", "3650", "-out", crt.name, "-extfile", extfile.name,
            cwd=d,
        )  # fmt: skip
        csr.unlink()
        extfile.unlink()

    leaf(
        pki.serving_crt,
        pki.serving_key,
        "/CN=kube-apiserver",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,IP:10.0.0.1\n",
    )
    # The controller manager needs broad rights (it deletes whole namespaces); in
    # this single-user testbed it simply is a member of system:masters.
    leaf(
        pki.kcm_crt,
        pki.kcm_key,
        "/O=system:masters/CN=system:kube-controller-manager",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\n",
    )
    _openssl("genpkey", "-algorithm", "ec", *_EC_KEY[2:], "-out", pki.sa_key.name, cwd=d)
    _openssl("pkey", "-in", pki.sa_key.name, "-pubout", "-out", pki.sa_pub.name, cwd=d)
    for p in (pki.ca_key, pki.serving_key, pki.kcm_key, pki.sa_key):
        p.chmod(0o600)
    return pki


# --------------------------------------------------------------------------- kubeconfig


def kubeconfig_dict(
    server: str,
    ca_pem: bytes,
    *,
    user: str,
    token: str | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """A one-cluster, one-user kubeconfig (pure; the caller writes it with mode 0600)."""
    user_entry: dict[str, str] = {}
    if token is not None:
        user_entry["token"] = token
    if client_cert is not None and client_key is not None:
        user_entry["client-certificate"] = str(client_cert)
        user_entry["client-key"] = str(client_key)
    context: dict[str, str] = {"cluster": CLUSTER_NAME, "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
                },
            }
        ],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": f"{user}@{CLUSTER_NAME}", "context": context}],
        "current-context": f"{user}@{CLUSTER_NAME}",
    }


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a credential)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


# --------------------------------------------------------------------------- control plane


def _http_get(
    url: str,
    *,
    context: ssl.SSLContext | None = None,
    token: str | None = None,
    timeout: float = 5.0,
) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return int(resp.status), resp.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8", errors="replace")


def _address_in_use(proc: ManagedProcess) -> bool:
    return "address already in use" in proc.log_tail(200).lower()


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager as local processes.

    Use as a context manager or call :meth:`start` / :meth:`stop`. After start:
    :attr:`kubeconfig` (admin, cluster-admin rights), :attr:`server`,
    :attr:`ca_file`, :meth:`kubectl`, :meth:`service_account_kubeconfig`.
    The working directory (certificates, etcd data, logs) is removed by
    :meth:`stop` unless ``keep_workdir`` is set or starting failed (then its path is
    in the error message, so the logs can be read).
    """

    def __init__(
        self,
        binaries: ControlPlaneBinaries | None = None,
        *,
        workdir: Path | None = None,
        start_timeout: float = 180.0,
        keep_workdir: bool = False,
        apiserver_args: Sequence[str] = (),
        controller_manager_args: Sequence[str] = (),
        service_cidr: str = SERVICE_CIDR,
        audit: bool = False,
    ) -> None:
        self.binaries = binaries if binaries is not None else ensure_binaries()
        # extra flags, appended last so they win (feature gates, audit logging, ...)
        self.apiserver_args = list(apiserver_args)
        self.controller_manager_args = list(controller_manager_args)
        self.service_cidr = service_cidr
        self.audit = audit
        self.workdir, self._own_workdir = working_directory(workdir, "tierguard-controlplane-")
        self.start_timeout = start_timeout
        self.keep_workdir = keep_workdir
        self.logs_dir = self.workdir / "logs"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.ca_file = self.workdir / "pki" / "ca.crt"
        #: The API server's audit log (JSON lines) when started with ``audit=True``.
        self.audit_log = self.logs_dir / "audit.log"
        self.etcd: ManagedProcess | None = None
        self.apiserver: ManagedProcess | None = None
        self.controller_manager: ManagedProcess | None = None
        self.server = ""
        self.etcd_url = ""
        self._admin_token = ""
        self._ssl: ssl.SSLContext | None = None
        self._pki: _Pki | None = None

    # -- public surface

    @property
    def admin_token(self) -> str:
        """The admin bearer token (system:masters). Never log it."""
        return self._admin_token

    @property
    def processes(self) -> list[ManagedProcess]:
        return [p for p in (self.etcd, self.apiserver, self.controller_manager) if p is not None]

    def env(self) -> dict[str, str]:
        """Environment variables that point clients (kubectl, kopf) at this cluster."""
        return {"KUBECONFIG": str(self.kubeconfig)}

    def start(self) -> ControlPlane:
        """Start all three processes and wait until the cluster works end to end."""
        install_signal_handlers()
        started = time.monotonic()
        try:
            self._pki = _make_pki(self.workdir / "pki")
            self._ssl = ssl.create_default_context(cafile=str(self._pki.ca_crt))
            self._admin_token = secrets.token_urlsafe(32)
            _write_private(
                self.workdir / "tokens.csv", f'{self._admin_token},admin,admin,"system:masters"\n'
            )
            self._start_etcd()
            self._start_apiserver()
            self._write_kubeconfigs()
            self._start_controller_manager()
            self._wait_controllers(max(30.0, self.start_timeout - (time.monotonic() - started)))
        except BaseException as exc:
            self.stop(keep=True)
            if isinstance(exc, LabError):
                raise type(exc)(f"{exc}\n(workdir kept for inspection: {self.workdir})") from exc
            raise
        return self

    def stop(self, *, keep: bool = False) -> None:
        """Stop controller manager, API server, etcd (in that order); remove the workdir."""
        for proc in (self.controller_manager, self.apiserver, self.etcd):
            if proc is not None:
                proc.stop()
        if self._own_workdir:
            if not (keep or self.keep_workdir):
                shutil.rmtree(self.workdir, ignore_errors=True)
            keep_dir_if_we_die(self.workdir)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster (admin unless ``kubeconfig`` given).

        With ``check`` a non-zero exit raises :class:`ControlPlaneError` quoting stderr.
        """
        argv = [str(self.binaries.kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        res = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and res.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} exited with {res.returncode}: {res.stderr.strip()}"
            )
        return res

    def wait_established(self, *crds: str, timeout: float = 60.0) -> None:
        """Wait until every named CRD (``crd/<name>`` or ``<name>``) is Established.

        Right after an apply a CRD may have no ``status.conditions`` yet, and ``kubectl
        wait`` then fails at once ("accessor error: <nil>") instead of waiting: it is
        asked again until ``timeout``, and the last error is raised after that.
        """
        refs = [ref if ref.startswith("crd/") else f"crd/{ref}" for ref in crds]
        deadline = time.monotonic() + timeout
        while True:
            left = max(1, int(deadline - time.monotonic()))
            res = self.kubectl(
                "wait", "--for=condition=Established", f"--timeout={left}s", *refs, check=False
            )
            if res.returncode == 0:
                return
            if time.monotonic() >= deadline:
                raise ControlPlaneError(
                    f"CRDs {', '.join(refs)} not Established after {timeout:.0f}s: "
                    f"{res.stderr.strip()}"
                )
            time.sleep(0.5)

    def service_account_token(
        self, namespace: str, name: str, *, duration: str = "1h", audience: str | None = None
    ) -> str:
        """A bound token for ServiceAccount ``namespace/name`` (TokenRequest via kubectl)."""
        args = ["create", "token", name, "-n", namespace, f"--duration={duration}"]
        if audience:
            args.append(f"--audience={audience}")
        return self.kubectl(*args).stdout.strip()

    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        *,
        path: Path | None = None,
        duration: str = "1h",
    ) -> Path:
        """Write a kubeconfig that authenticates as ServiceAccount ``namespace/name``.

        This is how tests run the operator with its least-privilege RBAC instead of
        cluster-admin: a missing permission then shows up as a 403 in the test.
        """
        token = self.service_account_token(namespace, name, duration=duration)
        target = path or self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        config = kubeconfig_dict(
            self.server,
            self.ca_file.read_bytes(),
            user=f"system:serviceaccount:{namespace}:{name}",
            token=token,
            namespace=namespace,
        )
        _write_private(target, yaml.safe_dump(config, sort_keys=False))
        return target

    # -- internals

    def _start_with_retries(
        self, make: Callable[[], ManagedProcess], ready: Callable[[ManagedProcess], None]
    ) -> ManagedProcess:
        """Start a server; on "address already in use" pick new ports and try again."""
        for attempt in range(_PORT_RETRIES):
            proc = make().start()
            try:
                ready(proc)
                return proc
            except ProcessExitedError:
                proc.stop()
                if attempt + 1 < _PORT_RETRIES and _address_in_use(proc):
                    continue
                raise
            except BaseException:
                proc.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_etcd(self) -> None:
        def make() -> ManagedProcess:
            client, peer = free_port(), free_port()
            self.etcd_url = f"http://127.0.0.1:{client}"
            return ManagedProcess(
                "etcd",
                [
                    str(self.binaries.etcd),
                    "--name=testbed",
                    f"--data-dir={self.workdir / 'etcd'}",
                    f"--listen-client-urls={self.etcd_url}",
                    f"--advertise-client-urls={self.etcd_url}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-cluster=testbed=http://127.0.0.1:{peer}",
                    # a test cluster: speed over durability
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
                self.logs_dir / "etcd.log",
            )

        def ready(proc: ManagedProcess) -> None:
            def probe() -> bool:
                status, body = _http_get(f"{self.etcd_url}/health")
                return status == 200 and json.loads(body).get("health") == "true"

            proc.wait_ready(probe, self.start_timeout, what="healthy (GET /health)")

        self.etcd = self._start_with_retries(make, ready)

    def _start_apiserver(self) -> None:
        pki = self._pki
        assert pki is not None

        def make() -> ManagedProcess:
            port = free_port()
            self.server = f"https://127.0.0.1:{port}"
            return ManagedProcess(
                "kube-apiserver",
                [
                    str(self.binaries.kube_apiserver),
                    f"--etcd-servers={self.etcd_url}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={port}",
                    f"--cert-dir={self.workdir / 'apiserver-certs'}",
                    f"--tls-cert-file={pki.serving_crt}",
                    f"--tls-private-key-file={pki.serving_key}",
                    f"--client-ca-file={pki.ca_crt}",
                    f"--token-auth-file={self.workdir / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    f"--service-cluster-ip-range={self.service_cidr}",
                    f"--service-account-issuer={self.server}",
                    f"--service-account-key-file={pki.sa_pub}",
                    f"--service-account-signing-key-file={pki.sa_key}",
                    "--allow-privileged=true",
                    # no kubelet and loopback only: nothing to reconcile endpoints for
                    "--endpoint-reconciler-type=none",
                    "--profiling=false",
                    *self._audit_args(),
                    *self.apiserver_args,
                ],
                self.logs_dir / "kube-apiserver.log",
            )

        def ready(proc: ManagedProcess) -> None:
            def probe() -> bool:
                status, _ = _http_get(f"{self.server}/readyz", context=self._ssl)
                return status == 200

            proc.wait_ready(probe, self.start_timeout, what="ready (GET /readyz)")

        self.apiserver = self._start_with_retries(make, ready)

    def _audit_args(self) -> list[str]:
        if not self.audit:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
        ]

    def audit_events(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Audit events logged since byte ``offset`` of the log, and the new offset
        (needs ``audit=True``). Only complete lines are read."""
        if not self.audit:
            raise ControlPlaneError("the control plane was started without audit=True")
        if not self.audit_log.exists():
            return [], offset
        with self.audit_log.open("rb") as f:
            f.seek(offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        events = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
        return events, offset + end

    def _write_kubeconfigs(self) -> None:
        pki = self._pki
        assert pki is not None
        ca_pem = pki.ca_crt.read_bytes()
        admin = kubeconfig_dict(self.server, ca_pem, user="admin", token=self._admin_token)
        _write_private(self.kubeconfig, yaml.safe_dump(admin, sort_keys=False))
        kcm = kubeconfig_dict(
            self.server,
            ca_pem,
            user="system:kube-controller-manager",
            client_cert=pki.kcm_crt,
            client_key=pki.kcm_key,
        )
        _write_private(self.workdir / "kube-controller-manager.kubeconfig", yaml.safe_dump(kcm))

    def _start_controller_manager(self) -> None:
        pki = self._pki
        assert pki is not None
        self._kcm_port = 0

        def make() -> ManagedProcess:
            self._kcm_port = free_port()
            return ManagedProcess(
                "kube-controller-manager",
                [
                    str(self.binaries.kube_controller_manager),
                    f"--kubeconfig={self.workdir / 'kube-controller-manager.kubeconfig'}",
                    "--leader-elect=false",
                    "--controllers=*",
                    "--use-service-account-credentials=false",
                    f"--service-account-private-key-file={pki.sa_key}",
                    f"--root-ca-file={pki.ca_crt}",
                    f"--cluster-signing-cert-file={pki.ca_crt}",
                    f"--cluster-signing-key-file={pki.ca_key}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={self._kcm_port}",
                    f"--cert-dir={self.workdir / 'kcm-certs'}",
                    "--profiling=false",
                    *self.controller_manager_args,
                ],
                self.logs_dir / "kube-controller-manager.log",
            )

        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its serving cert is self-signed, loopback only

        def ready(proc: ManagedProcess) -> None:
            def probe() -> bool:
                status, _ = _http_get(
                    f"https://127.0.0.1:{self._kcm_port}/healthz", context=insecure
                )
                return status == 200

            proc.wait_ready(probe, self.start_timeout, what="healthy (GET /healthz)")

        self.controller_manager = self._start_with_retries(make, ready)

    def _wait_controllers(self, timeout: float) -> None:
        """Wait for the ``default`` ServiceAccount: the controllers really run."""
        proc = self.controller_manager
        assert proc is not None

        def probe() -> bool:
            status, _ = _http_get(
                f"{self.server}/api/v1/namespaces/default/serviceaccounts/default",
                context=self._ssl,
                token=self._admin_token,
            )
            return status == 200

        proc.wait_ready(probe, timeout, what="running its controllers (no default ServiceAccount)")


# --------------------------------------------------------------------------- CLI


@contextlib.contextmanager
def _timed(label: str, out: IO[str]) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    print(f"[tierguard] {label} in {time.monotonic() - t0:.1f}s", file=out, flush=True)


def _cmd_build(args: argparse.Namespace) -> int:
    with _timed("control-plane binaries ready", sys.stderr):
        binaries = ensure_binaries(args.k8s_version, args.etcd_version, build=not args.no_build)
    print(f"bin directory: {binaries.etcd.parent}")
    for name, version in binaries.versions().items():
        print(f"  {name:<24} {version}")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from tierguard.lab.prometheus import Prometheus  # the control plane works without it

    # Ctrl-C must stop us even when a shell started us in the background with SIGINT
    # ignored (non-interactive shells do that for `cmd &`); SIGTERM/SIGHUP become
    # SystemExit in ControlPlane.start(). Either way the finally block below cleans up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    binaries = ensure_binaries(args.k8s_version, args.etcd_version, build=not args.no_build)
    workdir = Path(args.workdir) if args.workdir else None
    prom: Prometheus | None = None
    with _timed("control plane up", sys.stderr):
        cp = ControlPlane(
            binaries,
            workdir=workdir,
            keep_workdir=args.keep,
            service_cidr=args.service_cidr,
            audit=args.audit,
        ).start()
    try:
        print(f"kubeconfig: {cp.kubeconfig}")
        print(f"server:     {cp.server}")
        print(f"logs:       {cp.logs_dir}")
        if cp.audit:
            print(f"audit log:  {cp.audit_log}")
        if args.prometheus:
            prom = Prometheus(scrape_interval=args.scrape_interval).start()
            print(f"prometheus: {prom.url}  (targets file: {prom.targets_file})")
        print("# paste into another shell:")
        print(f"export KUBECONFIG={cp.kubeconfig}")
        if prom is not None:
            print(f"export PROMETHEUS_URL={prom.url}")
        print("# Ctrl-C stops everything", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        print("[tierguard] stopping", file=sys.stderr, flush=True)
        if prom is not None:
            prom.stop()
        cp.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tierguard.lab.controlplane",
        description="Build and run a real Kubernetes control plane on loopback.",
    )
    parser.add_argument("--k8s-version", default=K8S_VERSION)
    parser.add_argument("--etcd-version", default=ETCD_VERSION)
    parser.add_argument(
        "--no-build", action="store_true", help="fail instead of building missing binaries"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="find or build the binaries and print their versions")
    up = sub.add_parser("up", help="start the control plane and keep it up until Ctrl-C")
    up.add_argument("--workdir", help="directory for certs, etcd data and logs (default: temp)")
    up.add_argument("--keep", action="store_true", help="keep the workdir after stopping")
    up.add_argument("--prometheus", action="store_true", help="also start a Prometheus")
    up.add_argument("--scrape-interval", default="1s", help="Prometheus scrape interval")
    up.add_argument(
        "--service-cidr",
        default=SERVICE_CIDR,
        help=f"Service ClusterIP range (a /24 holds ~250 Services; {LARGE_SERVICE_CIDR} "
        "for the scale benchmark)",
    )
    up.add_argument("--audit", action="store_true", help="write the API server's audit log")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            return _cmd_build(args)
        return _cmd_up(args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while building or starting; cleanup already ran
        return 130


if __name__ == "__main__":
    sys.exit(main())
