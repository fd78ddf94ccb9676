"""A pod's volumes for a local process: Secret/ConfigMap keys and emptyDirs materialised
as files, and the shell script that mounts them at the container's ``mountPath`` inside a
private mount namespace (``unshare``); part of the lab's pod translation
(:mod:`tierguard.lab.pods`, whose docstring says what differs from a Pod and why)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierguard.lab.podenv import PodTranslationError


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
