"""scripts/build-controlplane.sh tells a person what it is doing during the 20-30 minute
first build: which binary, step n of m, packages compiled, elapsed time; keeps the full
go output in a log file whose path it prints; and on a failed build names the step,
shows the log's end and exits non-zero.

A real build takes half an hour, so these tests put a stand-in ``go`` first on PATH that
behaves like ``go list -deps`` / ``go get`` / ``go build -v`` (package names on stderr,
then a binary or a compile error). What is tested is the script's reporting; the real
build is exercised by every test using the control plane (tests/conftest.py)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-controlplane.sh"

FAKE_GO = r"""#!/usr/bin/env bash
case "$1" in
  version) echo "go version go1.26.0 linux/amd64" ;;
  list) for i in 1 2 3 4 5; do echo "example.com/pkg$i"; done ;;
  get|mod) echo "go: fake $*" >&2 ;;
  build)
    out=""; pkg=""
    while [ $# -gt 0 ]; do
      case "$1" in -o) out=$2; shift ;; -ldflags) shift ;; *) pkg=$1 ;; esac
      shift
    done
    for i in 1 2 3; do echo "example.com/pkg$i" >&2; sleep 0.6; done
    if [ -n "${FAKE_GO_FAIL:-}" ] && [[ "$pkg" == *"$FAKE_GO_FAIL"* ]]; then
      echo "$pkg: undefined: fakeSymbol" >&2; exit 1
    fi
    echo binary > "$out"; chmod +x "$out" ;;
esac
"""


def run_build(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "fakebin"
    fake.mkdir(exist_ok=True)
    (fake / "go").write_text(FAKE_GO)
    (fake / "go").chmod(0o755)
    full_env = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "TIERGUARD_CACHE": str(tmp_path / "cache"),
        "PROGRESS_EVERY": "1",
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=full_env, timeout=120
    )


def _log_path(stderr: str) -> Path:
    m = re.search(r"full build log: (\S+)", stderr)
    assert m, stderr
    return Path(m.group(1))


def test_progress_names_binary_step_and_packages_and_keeps_a_log(tmp_path: Path) -> None:
    proc = run_build(tmp_path)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    for i, name in enumerate(["etcd", "kube-apiserver", "kube-controller-manager", "kubectl"]):
        assert f"[{i + 1}/4] compiling {name} (5 packages in its import graph)" in err
        assert f"[{i + 1}/4] built {name} in " in err
    # A heartbeat while compiling: packages so far and the elapsed time.
    assert re.search(r"\[1/4\] etcd: [123]/5 packages compiled \(0m0\ds for this binary", err)
    # Every line carries the total elapsed time.
    assert all(re.match(r"\[build-controlplane \d+m\d\ds\] ", ln) for ln in err.splitlines())
    log = _log_path(err)
    assert log.is_file()
    text = log.read_text()
    assert "### go build k8s.io/kubernetes/cmd/kube-apiserver" in text
    assert text.count("example.com/pkg3") == 4  # the go output is in the log, not the terminal
    assert "example.com/pkg3" not in err
    assert proc.stdout.strip().endswith("/bin")


def test_failed_build_names_the_step_shows_the_error_and_the_log(tmp_path: Path) -> None:
    proc = run_build(tmp_path, FAKE_GO_FAIL="kube-apiserver")
    assert proc.returncode != 0
    err = proc.stderr
    assert "FAILED: compiling kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver)" in err
    assert "undefined: fakeSymbol" in err  # the end of the log is shown
    log = _log_path(err)
    assert f"full log: {log}" in err
    assert "undefined: fakeSymbol" in log.read_text()
    bin_dir = log.parent / "bin"
    assert (bin_dir / "etcd").exists()
    assert not (bin_dir / "kube-apiserver").exists()
    assert not list(bin_dir.glob("*.tmp"))


def test_a_second_run_finds_the_binaries_at_once(tmp_path: Path) -> None:
    assert run_build(tmp_path).returncode == 0
    again = run_build(tmp_path, FAKE_GO_FAIL="kube")  # would fail if it built anything
    assert again.returncode == 0
    assert again.stderr == ""


def test_setup_reports_a_failed_control_plane_build() -> None:
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert "scripts/build-controlplane.sh >/dev/null" in text  # stdout is the bin dir only
    assert "2>/dev/null" not in text.split("build-controlplane.sh", 1)[1].splitlines()[0]
    assert "the control-plane build failed" in text
