"""ManagedProcess with throw-away shell processes: stop kills the whole group, readiness
failures carry the log tail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tierguard.lab.processes import (
    BinaryUnavailableError,
    ManagedProcess,
    ProcessExitedError,
    ReadinessTimeoutError,
    free_port,
    pid_running,
    process_group_members,
)


def test_stop_terminates_the_process_and_its_children(tmp_path: Path) -> None:
    # the shell forks two sleeps: stop() must take the whole group down
    proc = ManagedProcess(
        "sleeper", ["sh", "-c", "sleep 300 & sleep 300 & wait"], tmp_path / "s.log"
    ).start()
    assert proc.pid is not None
    pgid = proc.pid
    try:
        proc.wait_ready(lambda: len(process_group_members(pgid)) == 3, timeout=10)
        members = process_group_members(pgid)
    finally:
        proc.stop(timeout=5)
    assert not proc.running()
    assert [pid for pid in members if pid_running(pid)] == []
    proc.stop()  # idempotent


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "stubborn", ["sh", "-c", "trap '' TERM; echo started; while :; do sleep 1; done"],
        tmp_path / "x.log",
    ).start()  # fmt: skip
    proc.wait_ready(lambda: "started" in proc.log_tail(), timeout=10)
    proc.stop(timeout=0.5)
    assert proc.returncode is not None
    assert proc.pid is not None and process_group_members(proc.pid) == []


def test_exit_before_ready_reports_code_and_log_tail(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "failing", ["sh", "-c", "echo 'bind: address already in use' >&2; exit 3"],
        tmp_path / "f.log",
    ).start()  # fmt: skip
    with pytest.raises(ProcessExitedError) as info:
        proc.wait_ready(lambda: False, timeout=10)
    proc.stop()
    message = str(info.value)
    assert "failing exited with code 3" in message
    assert "address already in use" in message


def test_readiness_timeout_reports_log_tail_and_last_probe_error(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "slow", ["sh", "-c", "echo still warming up; sleep 300"], tmp_path / "w.log"
    ).start()
    try:

        def probe() -> bool:
            raise ConnectionRefusedError("nobody listens")

        with pytest.raises(ReadinessTimeoutError) as info:
            proc.wait_ready(probe, timeout=0.5, what="listening")
    finally:
        proc.stop()
    message = str(info.value)
    assert "slow was not listening after" in message
    assert "nobody listens" in message
    assert "still warming up" in message


def test_missing_program_is_a_binary_error(tmp_path: Path) -> None:
    with pytest.raises(BinaryUnavailableError, match="cannot start ghost"):
        ManagedProcess("ghost", [str(tmp_path / "no-such-binary")], tmp_path / "g.log").start()


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    assert 0 < port < 65536


def test_pid_running_for_self_and_for_nothing() -> None:
    assert pid_running(os.getpid())
    assert not pid_running(2**22 + 12345)  # above the default pid_max
