"""The control plane's binaries (etcd, kube-apiserver, kube-controller-manager, kubectl):
found in ``$TIERGUARD_CONTROLPLANE_BIN`` or the version-keyed cache, else built by
scripts/build-controlplane.sh; and the errors the control plane raises. Part of
:mod:`tierguard.lab.controlplane`, which re-exports the public names."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tierguard.lab.processes import BinaryUnavailableError, LabError

K8S_VERSION = "1.36.3"
# kube-apiserver 1.36 is built against the etcd 3.6 client; run a matching server.
ETCD_VERSION = "3.6.16"

BINARY_NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
ENV_BIN_DIR = "TIERGUARD_CONTROLPLANE_BIN"
ENV_CACHE = "TIERGUARD_CACHE"


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
