"""Child processes that never outlive us: etcd, kube-apiserver, Prometheus, routers.

The lab and the integration tests start real servers as child processes. A test run
that leaves a kube-apiserver behind holds ports and memory until someone notices, so
every process started here is protected four ways:

1. it runs in its own process group (``start_new_session``), so a stop signal reaches
   the process *and* anything it forked, and a Ctrl-C in the terminal reaches only our
   Python process, which then shuts the children down in order;
2. :meth:`ManagedProcess.stop` sends SIGTERM to the group, waits, then SIGKILL, and
   returns only when the group is empty;
3. an ``atexit`` hook stops whatever is still running when Python exits normally
   (including after KeyboardInterrupt, and after SIGTERM/SIGHUP once
   :func:`install_signal_handlers` turned those into ``SystemExit``);
4. a tiny *reaper* process (``_reaper.py``), started once per Python process, holds the
   read end of a pipe. When our process dies in any way -- even SIGKILL or a segfault,
   where no Python code runs -- the pipe closes and the reaper kills the remaining
   groups.

Nothing here imports a test framework: the lab reuses it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "BinaryUnavailableError",
    "LabError",
    "ManagedProcess",
    "ProcessExitedError",
    "ReadinessTimeoutError",
    "free_port",
    "install_signal_handlers",
    "keep_dir_if_we_die",
    "pid_running",
    "process_group_members",
    "remove_dir_if_we_die",
    "stop_all",
]

LOG_TAIL_LINES = 40


class LabError(Exception):
    """Base class of everything the lab and the testbed raise on purpose."""


class BinaryUnavailableError(LabError):
    """A program we need is missing and could not be built or installed.

    The message always says how to get it; callers (tests included) must fail, not skip.
    """


class ProcessExitedError(LabError):
    """A child exited while we were waiting for it to become ready."""


class ReadinessTimeoutError(LabError):
    """A child did not become ready in time; the message carries its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now.

    There is a small window before the child binds it; callers that start several
    servers pick all ports first and retry on "address already in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pid_running(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie.

    Zombies count as gone: in containers PID 1 often does not reap orphans, so a
    killed process can linger as ``Z`` forever without holding any resource.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # the state letter follows the parenthesised command name, which may hold spaces
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def process_group_members(pgid: int) -> list[int]:
    """PIDs of live (non-zombie) processes whose process group is ``pgid``."""
    members: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # fields after the name: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


# --------------------------------------------------------------------------- reaper


class _Reaper:
    """The parent side of the reaper pipe (one per Python process, started lazily)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid_owner = 0
        self._lock = threading.Lock()

    def _ensure(self) -> subprocess.Popen[bytes] | None:
        if self._proc is not None and self._pid_owner == os.getpid() and self._proc.poll() is None:
            return self._proc
        script = Path(__file__).with_name("_reaper.py")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", str(script)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError:  # pragma: no cover - only when the interpreter cannot fork
            self._proc = None
            return None
        self._pid_owner = os.getpid()
        return self._proc

    def _send(self, line: str) -> None:
        with self._lock:
            proc = self._ensure()
            if proc is None or proc.stdin is None:
                return
            try:
                proc.stdin.write(line.encode("ascii"))
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self._proc = None

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def watch_dir(self, path: Path) -> None:
        self._send(f"d{path.resolve()}\n")

    def forget_dir(self, path: Path) -> None:
        self._send(f"D{path.resolve()}\n")


_REAPER = _Reaper()
_LIVE: list[ManagedProcess] = []
_LIVE_LOCK = threading.Lock()


def stop_all(timeout: float = 10.0) -> None:
    """Stop every live :class:`ManagedProcess`, newest first (clients before servers)."""
    with _LIVE_LOCK:
        procs = list(reversed(_LIVE))
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.stop(timeout=timeout)


atexit.register(stop_all)


def remove_dir_if_we_die(path: Path) -> None:
    """Have the reaper delete ``path`` if this Python process dies without cleaning up.

    For temporary working directories (etcd data, Prometheus TSDB): after a SIGKILL
    they would otherwise pile up in /tmp. Call :func:`keep_dir_if_we_die` when the
    directory is removed normally or must be kept for inspection.
    """
    _REAPER.watch_dir(path)


def keep_dir_if_we_die(path: Path) -> None:
    """Undo :func:`remove_dir_if_we_die`."""
    _REAPER.forget_dir(path)


def _raise_system_exit(signum: int, frame: types.FrameType | None) -> None:
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGHUP into ``SystemExit`` so ``finally`` blocks and atexit run.

    Only handlers still at their default are replaced (a host like pytest or kopf may
    have its own), and only from the main thread, where Python allows it. The reaper
    covers the cases this cannot (SIGKILL).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _raise_system_exit)


# --------------------------------------------------------------------------- process


class ManagedProcess:
    """One child process with its own process group and a log file.

    ``name`` is used in messages ("kube-apiserver exited with code 1 ..."), the log
    file receives stdout and stderr, and :meth:`log_tail` is what error messages show.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # -- lifecycle

    def start(self) -> ManagedProcess:
        """Start the process (non-blocking); see :meth:`wait_ready` for readiness."""
        if self._popen is not None:
            raise LabError(f"{self.name} was already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            self._log_file.close()
            self._log_file = None
            raise BinaryUnavailableError(
                f"cannot start {self.name} ({self.argv[0]}): {exc}"
            ) from exc
        _REAPER.watch(self._popen.pid)
        with _LIVE_LOCK:
            _LIVE.append(self)
        return self

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole group, wait up to ``timeout``, then SIGKILL; idempotent.

        Returns when no process of the group is left, so a caller can rely on ports
        and files being released.
        """
        popen = self._popen
        if popen is None:
            return
        pgid = popen.pid
        if popen.poll() is None or process_group_members(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                popen.poll()
                if popen.returncode is not None and not process_group_members(pgid):
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=5)
                kill_deadline = time.monotonic() + 5
                while process_group_members(pgid) and time.monotonic() < kill_deadline:
                    time.sleep(0.05)
        popen.wait()
        _REAPER.forget(pgid)
        with _LIVE_LOCK:
            if self in _LIVE:
                _LIVE.remove(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # -- diagnostics

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                data = f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(data.splitlines()[-lines:]) or "(log is empty)"

    def _failure(self, what: str) -> str:
        return (
            f"{self.name} {what}\n"
            f"command: {' '.join(self.argv)}\n"
            f"log: {self.log_path}\n"
            f"--- last {LOG_TAIL_LINES} log lines ---\n{self.log_tail()}"
        )

    def wait_ready(
        self,
        probe: Callable[[], bool],
        timeout: float,
        *,
        what: str = "ready",
        interval: float = 0.2,
    ) -> None:
        """Poll ``probe`` until it returns True; raise with the log tail otherwise.

        ``probe`` may raise any exception to mean "not yet" (connection refused, a
        503 from /readyz); the last one is quoted in the timeout message.
        """
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            if not self.running():
                raise ProcessExitedError(
                    self._failure(f"exited with code {self.returncode} before it was {what}")
                )
            try:
                if probe():
                    return
            except Exception as exc:  # any failure of the probe means "not yet"
                last_error = exc
            if time.monotonic() >= deadline:
                detail = f" (last probe error: {last_error!r})" if last_error else ""
                raise ReadinessTimeoutError(
                    self._failure(f"was not {what} after {timeout:.0f}s{detail}")
                )
            time.sleep(interval)

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} rc={self.returncode}>"

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
