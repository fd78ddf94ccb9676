"""From the operator's router Deployment to local processes (there is no kubelet here).

The lab's control plane is real but has no kubelet and no container runtime, so the Pods
of the router Deployment the operator renders stay Pending. The lab does the kubelet's
job for them, as literally as it can: for each replica it takes the Deployment's pod
template and runs the container's ``command`` + ``args`` as a local process with the
container's environment, resolving ``valueFrom`` and ``envFrom`` from the real Secrets
and ConfigMaps in the API (a wrong secretKeyRef therefore fails here as it would in a
cluster). :func:`local_pods` is the pure part of that translation and is unit-tested.

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

import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierguard.lab.processes import LabError

#: Environment a container would get from its image; everything else comes from the spec.
BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "TMPDIR", "TIERGUARD_CACHE")
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class PodTranslationError(LabError):
    """The Deployment cannot be run locally as written (the message says which field)."""


@dataclass(frozen=True)
class VolumeMount:
    """One volumeMount of the container with its volume's content.

    ``files`` maps relative paths to bytes (Secret/ConfigMap keys); None is an emptyDir.
    """

    volume: str
    mount_path: str
    read_only: bool
    files: dict[str, bytes] | None
    sub_path: str = ""


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


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined variables are replaced, others kept,
    ``$$`` escapes a dollar."""

    def sub(m: re.Match[str]) -> str:
        return env.get(m.group(1), m.group(0))

    parts = value.split("$$")
    return "$".join(_VAR_REF.sub(sub, p) for p in parts)


def _decode_secret(secret: Mapping[str, Any]) -> dict[str, str]:
    import base64

    out = {k: base64.b64decode(v).decode("utf-8") for k, v in (secret.get("data") or {}).items()}
    out.update(secret.get("stringData") or {})
    return out


def resolve_env(
    container: Mapping[str, Any],
    *,
    pod_name: str,
    namespace: str,
    secrets: Mapping[str, Mapping[str, Any]],
    configmaps: Mapping[str, Mapping[str, Any]],
    service_account: str,
) -> dict[str, str]:
    """The container's environment, as the kubelet would build it (pure).

    ``secrets`` and ``configmaps`` are API objects by name (Secrets with base64 ``data``).
    A missing optional reference is skipped; a missing required one raises.
    """
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        prefix = str(src.get("prefix") or "")
        if "secretRef" in src:
            ref = src["secretRef"]
            obj = secrets.get(ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise PodTranslationError(f"envFrom: Secret {ref['name']!r} not found")
            env.update({prefix + k: v for k, v in _decode_secret(obj).items()})
        elif "configMapRef" in src:
            ref = src["configMapRef"]
            cm = configmaps.get(ref["name"])
            if cm is None:
                if ref.get("optional"):
                    continue
                raise PodTranslationError(f"envFrom: ConfigMap {ref['name']!r} not found")
            env.update({prefix + k: str(v) for k, v in (cm.get("data") or {}).items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = expand(str(item["value"]), env)
            continue
        vf = item.get("valueFrom") or {}
        if "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            obj = secrets.get(ref["name"])
            data = _decode_secret(obj) if obj is not None else {}
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise PodTranslationError(
                    f"env {name}: secretKeyRef {ref['name']}/{ref['key']} not found in "
                    f"namespace {namespace}"
                )
            env[name] = data[ref["key"]]
        elif "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            cm = configmaps.get(ref["name"]) or {}
            cm_data = cm.get("data") or {}
            if ref["key"] not in cm_data:
                if ref.get("optional"):
                    continue
                raise PodTranslationError(
                    f"env {name}: configMapKeyRef {ref['name']}/{ref['key']} not found"
                )
            env[name] = str(cm_data[ref["key"]])
        elif "fieldRef" in vf:
            path = vf["fieldRef"].get("fieldPath", "")
            fields = {
                "metadata.name": pod_name,
                "metadata.namespace": namespace,
                "spec.serviceAccountName": service_account,
                "status.podIP": "127.0.0.1",
                "status.hostIP": "127.0.0.1",
                "spec.nodeName": "lab",
            }
            if path not in fields:
                raise PodTranslationError(f"env {name}: fieldRef {path!r} is not supported here")
            env[name] = fields[path]
        elif "resourceFieldRef" in vf:
            continue  # limits are not enforced on local processes
        else:
            raise PodTranslationError(f"env {name}: unsupported valueFrom {sorted(vf)}")
    return env


def volume_files(
    volume: Mapping[str, Any],
    *,
    secrets: Mapping[str, Mapping[str, Any]],
    configmaps: Mapping[str, Mapping[str, Any]],
) -> dict[str, bytes] | None:
    """A volume's files as the kubelet would project them (pure); None for emptyDir."""
    import base64

    name = volume.get("name")
    if "emptyDir" in volume:
        return None
    if "secret" in volume:
        src = volume["secret"]
        obj = secrets.get(src.get("secretName", ""))
        if obj is None:
            if src.get("optional"):
                return {}
            raise PodTranslationError(f"volume {name}: Secret {src.get('secretName')!r} not found")
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
    elif "configMap" in volume:
        src = volume["configMap"]
        cm = configmaps.get(src.get("name", ""))
        if cm is None:
            if src.get("optional"):
                return {}
            raise PodTranslationError(f"volume {name}: ConfigMap {src.get('name')!r} not found")
        data = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    else:
        raise PodTranslationError(
            f"volume {name}: only secret, configMap and emptyDir volumes can be emulated here"
        )
    items = src.get("items")
    if items:
        missing = [i["key"] for i in items if i["key"] not in data and not src.get("optional")]
        if missing:
            raise PodTranslationError(f"volume {name}: keys {missing} not found")
        return {i["path"]: data[i["key"]] for i in items if i["key"] in data}
    return data


def pod_mounts(
    pod_spec: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    secrets: Mapping[str, Mapping[str, Any]],
    configmaps: Mapping[str, Mapping[str, Any]],
) -> list[VolumeMount]:
    """The container's volumeMounts with their content (pure)."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    out: list[VolumeMount] = []
    for m in container.get("volumeMounts") or []:
        vol = volumes.get(m["name"])
        if vol is None:
            raise PodTranslationError(f"volumeMount {m['name']}: no such volume in the pod spec")
        out.append(
            VolumeMount(
                volume=m["name"],
                mount_path=str(m["mountPath"]),
                read_only=bool(m.get("readOnly", False)),
                files=volume_files(vol, secrets=secrets, configmaps=configmaps),
                sub_path=str(m.get("subPath") or ""),
            )
        )
    return out


def nearest_existing(path: str, exists: Any = os.path.lexists) -> str:
    """The longest existing prefix directory of ``path`` (pure given ``exists``)."""
    p = Path(path)
    for parent in [p, *p.parents]:
        if exists(str(parent)):
            return str(parent)
    return "/"


def mount_script(
    mounts: Sequence[tuple[VolumeMount, Path]],
    scratch: Path,
    *,
    exists: Any = os.path.lexists,
    realpath: Any = os.path.realpath,
) -> tuple[str, list[str]]:
    """A POSIX shell script that mounts each materialised volume at its mountPath inside
    a private mount namespace, then execs the container command (``"$@"``).

    Returns the script and notes on what was not mounted. Pure given ``exists`` and
    ``realpath`` (the host's filesystem), so it is unit-tested.
    """
    lines = ["set -e"]
    notes: list[str] = []
    overlays: list[str] = []
    binds: list[str] = []
    for vm, source in mounts:
        target = vm.mount_path
        if exists(target):
            if vm.files is None:
                notes.append(
                    f"emptyDir {vm.volume} at {target}: the host's {target} (in a Pod it only "
                    "makes that path writable under a read-only root filesystem)"
                )
                continue
        else:
            anchor = realpath(nearest_existing(target, exists))
            if anchor == "/":
                raise PodTranslationError(
                    f"volumeMount {vm.volume}: cannot emulate a mount at {target} (no parent)"
                )
            if anchor not in overlays:
                overlays.append(anchor)
        src = source / vm.sub_path if vm.sub_path else source
        q_src, q_target = shlex.quote(str(src)), shlex.quote(target)
        kind = "touch" if vm.sub_path and vm.files is not None else "mkdir -p"
        binds.append(f"[ -e {q_target} ] || {kind} {q_target}")
        binds.append(f"mount --bind {q_src} {q_target}")
        if vm.read_only:
            binds.append(f"mount -o remount,bind,ro {q_target}")
    for i, anchor in enumerate(sorted(overlays, key=len)):
        upper, work = scratch / f"overlay-{i}" / "upper", scratch / f"overlay-{i}" / "work"
        lines.append(f"mkdir -p {shlex.quote(str(upper))} {shlex.quote(str(work))}")
        opts = f"lowerdir={anchor},upperdir={upper},workdir={work}"
        lines.append(f"mount -t overlay tierguard-lab -o {shlex.quote(opts)} {shlex.quote(anchor)}")
    lines += binds
    lines.append('exec "$@"')
    return "\n".join(lines) + "\n", notes


def unshare_prefix(euid: int) -> list[str]:
    """How to enter a private mount namespace (``--user`` when not root)."""
    base = ["unshare", "--mount", "--propagation", "private"]
    return base if euid == 0 else [*base, "--user", "--map-root-user"]


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
