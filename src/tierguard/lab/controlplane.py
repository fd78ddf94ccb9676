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

Parts: :mod:`~tierguard.lab.controlplane_binaries` (finding or building the binaries),
:mod:`~tierguard.lab.controlplane_pki` (certificates, kubeconfigs),
:mod:`~tierguard.lab.controlplane_processes` (starting the three processes); this
module is the public surface and re-exports their public names.

CLI (:mod:`~tierguard.lab.controlplane_cli`): ``python -m tierguard.lab.controlplane
build`` (find or build the binaries, print versions) and ``python -m
tierguard.lab.controlplane up`` (start, print the kubeconfig path and ``export`` lines,
stay up until Ctrl-C).
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tierguard.lab.controlplane_binaries import (
    BINARY_NAMES,
    ENV_BIN_DIR,
    ENV_CACHE,
    ETCD_VERSION,
    K8S_VERSION,
    BuildFailedError,
    ControlPlaneBinaries,
    ControlPlaneError,
    cache_bin_dir,
    cache_root,
    ensure_binaries,
    find_binaries,
    find_build_script,
)
from tierguard.lab.controlplane_pki import CLUSTER_NAME, kubeconfig_dict, make_pki, write_private
from tierguard.lab.controlplane_processes import (
    AUDIT_POLICY,
    LARGE_SERVICE_CIDR,
    SERVICE_CIDR,
    ControlPlaneProcesses,
    audit_policy_for,
)
from tierguard.lab.processes import (
    LabError,
    ManagedProcess,
    install_signal_handlers,
    keep_dir_if_we_die,
)

__all__ = [
    "AUDIT_POLICY",
    "BINARY_NAMES",
    "CLUSTER_NAME",
    "ENV_BIN_DIR",
    "ENV_CACHE",
    "ETCD_VERSION",
    "K8S_VERSION",
    "LARGE_SERVICE_CIDR",
    "SERVICE_CIDR",
    "BuildFailedError",
    "ControlPlane",
    "ControlPlaneBinaries",
    "ControlPlaneError",
    "audit_policy_for",
    "cache_bin_dir",
    "cache_root",
    "ensure_binaries",
    "find_binaries",
    "find_build_script",
    "kubeconfig_dict",
    "main",
]


class ControlPlane(ControlPlaneProcesses):
    """etcd + kube-apiserver + kube-controller-manager as local processes.

    Use as a context manager or call :meth:`start` / :meth:`stop`. After start:
    :attr:`kubeconfig` (admin, cluster-admin rights), :attr:`server`,
    :attr:`ca_file`, :meth:`kubectl`, :meth:`service_account_kubeconfig`.
    The working directory (certificates, etcd data, logs) is removed by
    :meth:`stop` unless ``keep_workdir`` is set or starting failed (then its path is
    in the error message, so the logs can be read).
    """

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
            self._pki = make_pki(self.workdir / "pki")
            self._ssl = ssl.create_default_context(cafile=str(self._pki.ca_crt))
            self._admin_token = secrets.token_urlsafe(32)
            write_private(
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
        write_private(target, yaml.safe_dump(config, sort_keys=False))
        return target

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


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI (:mod:`tierguard.lab.controlplane_cli`, imported when called)."""
    from tierguard.lab.controlplane_cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
