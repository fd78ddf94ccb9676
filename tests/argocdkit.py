"""The chart's Argo CD health check on a real object, under Argo CD's own Lua runtime
(tools/argocd-lua, gopher-lua set up as Argo CD sets it up; built and cached by
scripts/build-go-tool.sh). Integration tests use it to judge what the operator wrote."""

from __future__ import annotations

import json
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tierguard.api import constants as c

ROOT = Path(__file__).resolve().parents[1]
HEALTH_LUA = ROOT / "charts" / "tierguard" / "argocd" / c.GROUP / c.KIND / "health.lua"


@cache
def argocd_lua() -> str:
    """Path of the built tools/argocd-lua binary (a missing Go toolchain fails, clearly)."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "build-go-tool.sh"), "argocd-lua"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            "tools/argocd-lua could not be built (it needs the Go toolchain and the Go "
            f"module proxy; scripts/setup.sh builds it):\n{proc.stderr[-4000:]}"
        )
    return proc.stdout.strip().splitlines()[-1]


def argocd_health(obj: dict[str, Any]) -> dict[str, Any]:
    """The chart's health.lua on one RoutingPolicy object: ``{"status", "message"}``."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(obj, f)
        path = f.name
    try:
        proc = subprocess.run(
            [argocd_lua(), "health", str(HEALTH_LUA), path],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        Path(path).unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out
