"""From the operator's router Deployment to local processes (there is no kubelet here).

The lab's control plane is real but has no kubelet and no container runtime, so the Pods
of the router Deployment the operator renders stay Pending. The lab does the kubelet's
job for them, as literally as it can: for each replica it takes the Deployment's pod
template and runs the container's ``command`` + ``args`` as a local process with the
container's environment, resolving ``valueFrom`` and ``envFrom`` from the real Secrets
and ConfigMaps in the API (a wrong secretKeyRef therefore fails here as it would in a
cluster). :func:`local_pods` is the pure part of that translation and is unit-tested;
the environment is built in :mod:`~tierguard.lab.podenv`, the volumes and their mount
namespace in :mod:`~tierguard.lab.podvolumes`.

What differs from a Pod, and why (the lab prints this, and docs/lab.md says it too):

* ``--host 127.0.0.1 --port N``: the replicas share one loopback interface, and servers
  here must not listen beyond it;
* ``--kubeconfig FILE`` for the Pod's ServiceAccount: the kubelet would mount that
  account's token; the lab writes a kubeconfig holding a token for the same account, so
  the router has exactly the Role the operator gave it;
* the ``tierguard`` executable is this Python environment's, not an image's;
* volumes are materialised into a private temporary directory (Secret and ConfigMap
  keys as files, emptyDir as an empty directory) and mounted at the container's
  ``mountPath`` inside a private mount namespace (``unshare --mount``; plus ``--user``
  when the lab does not run as root): the mount paths the router reads from its config
  (``/var/run/secrets/tierguard/signing/...``) then hold exactly what a Pod would see,
  without touching the host's filesystem. Missing parent directories are provided by an
  overlay over the nearest existing ancestor, visible only to that process. An emptyDir
  at a path the host already has (``/tmp``) is the host's directory: in a Pod it only
  makes that path writable under a read-only root filesystem.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierguard.lab.podenv import PodTranslationError, expand, resolve_env
from tierguard.lab.podvolumes import VolumeMount, pod_mounts

#: Environment a container would get from its image; everything else comes from the spec.
BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "TMPDIR", "TIERGUARD_CACHE")


@dataclass(frozen=True)
class LocalPod:
    """One router replica as a local process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    service_account: str
    #: what was changed from the pod spec, for the plain statement in the output
    changes: list[str] = field(default_factory=list)
    mounts: list[VolumeMount] = field(default_factory=list)


def _set_flag(argv: list[str], flag: str, value: str) -> tuple[list[str], bool]:
    """Replace ``flag VALUE`` / ``flag=VALUE`` in argv, or append it; report a change."""
    out: list[str] = []
    skip = False
    found = False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == flag and i + 1 < len(argv):
            out += [flag, value]
            skip = True
            found = True
        elif a.startswith(flag + "="):
            out.append(f"{flag}={value}")
            found = True
        else:
            out.append(a)
    if not found:
        out += [flag, value]
    return out, True


def executable(command: str, python: str = sys.executable) -> list[str]:
    """This environment's way to run a container's entry point (``tierguard`` ...)."""
    if Path(command).name in ("tierguard", "tierguard-router"):
        return [python, "-m", "tierguard.cli"]
    if Path(command).name.startswith("python"):
        return [python]
    raise PodTranslationError(
        f"the router container runs {command!r}; the lab can only run tierguard's own entry "
        "point locally"
    )


def local_pods(
    deployment: Mapping[str, Any],
    *,
    secrets: Mapping[str, Mapping[str, Any]],
    configmaps: Mapping[str, Mapping[str, Any]],
    ports: Sequence[int],
    kubeconfig: Path,
    base_env: Mapping[str, str],
    python: str = sys.executable,
) -> list[LocalPod]:
    """One :class:`LocalPod` per replica of the Deployment (pure).

    ``ports`` gives each replica its own loopback port (their length is the number of
    replicas the caller wants to run; normally ``spec.replicas``).
    """
    meta = deployment.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    spec = deployment.get("spec") or {}
    pod_spec = ((spec.get("template") or {}).get("spec")) or {}
    containers = pod_spec.get("containers") or []
    if not containers:
        raise PodTranslationError(f"Deployment {meta.get('name')}: no containers")
    container = containers[0]
    service_account = str(pod_spec.get("serviceAccountName") or "default")
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if not command:
        # an image's ENTRYPOINT: tierguard's image runs `tierguard`
        command = ["tierguard"]
    mounts = pod_mounts(pod_spec, container, secrets=secrets, configmaps=configmaps)
    pods: list[LocalPod] = []
    for i, port in enumerate(ports):
        pod_name = f"{meta.get('name')}-lab-{i}"
        env = resolve_env(
            container,
            pod_name=pod_name,
            namespace=namespace,
            secrets=secrets,
            configmaps=configmaps,
            service_account=service_account,
        )
        argv = [expand(a, env) for a in command[1:] + args]
        changes = [f"listens on 127.0.0.1:{port} (replicas share one loopback)"]
        argv, _ = _set_flag(argv, "--host", "127.0.0.1")
        argv, _ = _set_flag(argv, "--port", str(port))
        if "--configmap" in argv or any(a.startswith("--configmap=") for a in argv):
            argv, _ = _set_flag(argv, "--kubeconfig", str(kubeconfig))
            changes.append(
                f"--kubeconfig for ServiceAccount {service_account} (the kubelet would mount "
                "its token)"
            )
        if not any(a == "--namespace" or a.startswith("--namespace=") for a in argv):
            env.setdefault("POD_NAMESPACE", namespace)
        full_env = {k: v for k, v in base_env.items() if k in BASE_ENV_KEYS}
        full_env.update(env)
        pods.append(
            LocalPod(
                name=pod_name,
                argv=executable(command[0], python) + argv,
                env=full_env,
                port=port,
                service_account=service_account,
                changes=changes,
                mounts=mounts,
            )
        )
    return pods


def container_port(deployment: Mapping[str, Any]) -> int | None:
    """The first container port of the pod template, if any (for the report)."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    for c in containers:
        for p in c.get("ports") or []:
            if "containerPort" in p:
                return int(p["containerPort"])
    return None
