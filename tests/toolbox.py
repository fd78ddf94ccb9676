"""The third-party tools the tests run, found or built by the project's own scripts
(the same ones scripts/setup.sh runs), never skipped: a tool that cannot be had fails
the test with how to get it.

* helm, tools/argocd-lua, kubeconform: built from the Go module proxy and cached under
  ~/.cache/tierguard (scripts/build-helm.sh, scripts/build-go-tool.sh);
* promtool: Debian's ``prometheus`` package (scripts/setup.sh installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _built(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        pytest.fail(
            f"{what} could not be built by {' '.join(cmd)} (it needs the Go toolchain and "
            f"the Go module proxy; scripts/setup.sh builds it):\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return proc.stdout.strip().splitlines()[-1]


def helm() -> str:
    return _built([str(ROOT / "scripts" / "build-helm.sh")], "helm")


def go_tool(name: str) -> str:
    """A Go tool from scripts/build-go-tool.sh (argocd-lua, kubeconform, ...)."""
    return _built([str(ROOT / "scripts" / "build-go-tool.sh"), name], name)


def promtool() -> str:
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )
    if found is None:
        pytest.fail(
            "promtool is missing: it comes with Prometheus (Debian/Ubuntu: "
            "`apt-get install prometheus`, which scripts/setup.sh runs)",
            pytrace=False,
        )
    return found
