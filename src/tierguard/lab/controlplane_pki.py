"""The control plane's credentials: a throw-away CA with the API server's serving
certificate, the controller manager's client certificate and the ServiceAccount
signing key (openssl), and one-user kubeconfigs. Part of
:mod:`tierguard.lab.controlplane`, which re-exports the public names."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierguard.lab.controlplane_binaries import ControlPlaneError
from tierguard.lab.processes import BinaryUnavailableError

CLUSTER_NAME = "tierguard-testbed"


# --------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class Pki:
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


def make_pki(d: Path) -> Pki:
    """Create the certificates with the openssl CLI (no extra Python dependency)."""
    d.mkdir(parents=True, exist_ok=True)
    pki = Pki(
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


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a credential)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
