"""How :class:`tierguard.lab.controlplane.ControlPlane` starts its three processes:
etcd, kube-apiserver (TLS, token and certificate authentication, RBAC, ServiceAccount
tokens, optional audit log) and kube-controller-manager, each on free loopback ports
(new ones when a port was taken meanwhile), and how it waits for them."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from tierguard.lab.controlplane_binaries import ControlPlaneBinaries, ensure_binaries
from tierguard.lab.controlplane_pki import Pki, kubeconfig_dict, write_private
from tierguard.lab.processes import ManagedProcess, ProcessExitedError, free_port, working_directory

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


def audit_policy_for(users: Sequence[str]) -> str:
    """A policy that logs only the requests of ``users`` (Metadata level, as
    :data:`AUDIT_POLICY`); everyone else's requests are not audited. For benchmarks that
    read one client's requests and want the rest of the API server's CPU undisturbed."""
    names = ", ".join(json.dumps(u) for u in users)
    return f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: [{names}]
- level: None
"""


PORT_RETRIES = 3


def http_get(
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


def address_in_use(proc: ManagedProcess) -> bool:
    return "address already in use" in proc.log_tail(200).lower()


class ControlPlaneProcesses:
    """The state of one control plane (binaries, workdir, ports, processes) and the
    starting of its processes; :class:`~tierguard.lab.controlplane.ControlPlane` is the
    public surface."""

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
        audit_policy: str = AUDIT_POLICY,
    ) -> None:
        self.binaries = binaries if binaries is not None else ensure_binaries()
        # extra flags, appended last so they win (feature gates, audit logging, ...)
        self.apiserver_args = list(apiserver_args)
        self.controller_manager_args = list(controller_manager_args)
        self.service_cidr = service_cidr
        self.audit = audit
        self.audit_policy = audit_policy
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
        self._pki: Pki | None = None

    # -- internals

    def _start_with_retries(
        self, make: Callable[[], ManagedProcess], ready: Callable[[ManagedProcess], None]
    ) -> ManagedProcess:
        """Start a server; on "address already in use" pick new ports and try again."""
        for attempt in range(PORT_RETRIES):
            proc = make().start()
            try:
                ready(proc)
                return proc
            except ProcessExitedError:
                proc.stop()
                if attempt + 1 < PORT_RETRIES and address_in_use(proc):
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
                status, body = http_get(f"{self.etcd_url}/health")
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
                status, _ = http_get(f"{self.server}/readyz", context=self._ssl)
                return status == 200

            proc.wait_ready(probe, self.start_timeout, what="ready (GET /readyz)")

        self.apiserver = self._start_with_retries(make, ready)

    def _audit_args(self) -> list[str]:
        if not self.audit:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(self.audit_policy)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
        ]

    def _write_kubeconfigs(self) -> None:
        pki = self._pki
        assert pki is not None
        ca_pem = pki.ca_crt.read_bytes()
        admin = kubeconfig_dict(self.server, ca_pem, user="admin", token=self._admin_token)
        write_private(self.kubeconfig, yaml.safe_dump(admin, sort_keys=False))
        kcm = kubeconfig_dict(
            self.server,
            ca_pem,
            user="system:kube-controller-manager",
            client_cert=pki.kcm_crt,
            client_key=pki.kcm_key,
        )
        write_private(self.workdir / "kube-controller-manager.kubeconfig", yaml.safe_dump(kcm))

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
                status, _ = http_get(
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
            status, _ = http_get(
                f"{self.server}/api/v1/namespaces/default/serviceaccounts/default",
                context=self._ssl,
                token=self._admin_token,
            )
            return status == 200

        proc.wait_ready(probe, timeout, what="running its controllers (no default ServiceAccount)")
