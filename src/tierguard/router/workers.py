"""``tierguard router --workers N``: N router processes sharing one port.

The supervisor (the process the container starts) runs no event loop and serves nothing:
it points ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory, starts N workers (the same
command with ``--workers 1`` semantics and ``TIERGUARD_ROUTER_WORKER`` set), and waits.
Each worker is a complete router (its own config watch, classifier, upstream pools and
decision-log buffer) listening on the same address with ``SO_REUSEPORT``, so the kernel
spreads new connections over them. Nothing is shared between workers but the metric
files: the split, the session key and the decision id are all computed from the request
(:mod:`~tierguard.router.session`), and the classifier cache only saves work.

Shutdown: SIGTERM or SIGINT is passed on to every worker, each drains as a single router
does (the listener closes, in-flight requests get up to the request deadline), and the
supervisor exits when the last one has; a second signal kills them. If a worker exits on
its own (a crash, or a config error at startup) the supervisor stops the others and exits
with the worker's status, so the pod restarts whole rather than running short-handed.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

from tierguard.router.metrics import MULTIPROC_ENV

log = logging.getLogger("tierguard.router")

#: set (to the worker's index) in each worker's environment
WORKER_ENV = "TIERGUARD_ROUTER_WORKER"
#: the random decision-id key (hex) the workers share when the config names none, so an
#: id signed by one worker verifies on the others (tierguard.router.state)
EPHEMERAL_KEY_ENV = "TIERGUARD_ROUTER_EPHEMERAL_KEY"


def is_worker() -> bool:
    return bool(os.environ.get(WORKER_ENV))


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The ``tierguard`` arguments a worker runs with: the supervisor's own, one worker."""
    argv = ["router"]
    argv += ["--config", args.config] if args.config else ["--configmap", args.configmap]
    for flag, value in (
        ("--namespace", args.namespace),
        ("--kubeconfig", args.kubeconfig),
        ("--host", args.host),
        ("--port", args.port),
        ("--poll-interval", args.poll_interval),
        ("--event-loop", args.event_loop),
        ("--log-level", args.log_level),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def metrics_dir() -> tuple[str, bool]:
    """``$PROMETHEUS_MULTIPROC_DIR`` emptied (a restarted container starts from zero, as
    a single router does), or a new temporary directory (True: remove it at the end)."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return tempfile.mkdtemp(prefix="tierguard-metrics-"), True
    os.makedirs(path, exist_ok=True)
    for f in glob.glob(os.path.join(path, "*.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f)
    return path, False


def supervise(args: argparse.Namespace) -> int:
    """Start ``args.workers`` workers and wait for them (see the module docstring)."""
    shared, temporary = metrics_dir()
    try:
        return _run_workers(args, shared)
    finally:
        if temporary:
            shutil.rmtree(shared, ignore_errors=True)


def _run_workers(args: argparse.Namespace, shared: str) -> int:
    cmd = [sys.executable, "-m", "tierguard.cli", *worker_argv(args)]
    signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    env = {
        **os.environ,
        MULTIPROC_ENV: shared,
        # without feedback.signingKey each process would sign with a key of its own
        EPHEMERAL_KEY_ENV: os.environ.get(EPHEMERAL_KEY_ENV) or secrets.token_hex(32),
    }
    procs = [
        subprocess.Popen(cmd, env={**env, WORKER_ENV: str(i + 1)}) for i in range(args.workers)
    ]
    log.info("started %d router workers (metrics in %s)", len(procs), shared)
    status: int | None = None  # set when a worker ended by itself
    stopping = False
    killed = False
    while any(p.poll() is None for p in procs):
        exited = [p for p in procs if p.returncode is not None]
        if not stopping and (signals or exited):
            stopping = True
            if exited and not signals:
                status = exit_status(exited[0].returncode)
                log.error("a router worker exited (status %d); stopping the others", status)
            else:
                log.info("shutting down: draining %d workers", len(procs))
            for p in procs:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.send_signal(signal.SIGTERM)
        elif stopping and not killed and len(signals) > 1:
            killed = True
            log.warning("second signal: killing the workers")
            for p in procs:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
        time.sleep(0.1)
    if status is not None:
        return status
    failed = [p.returncode for p in procs if p.returncode not in (0, -signal.SIGTERM)]
    return exit_status(failed[0]) if failed and not killed else 0


def exit_status(returncode: int | None) -> int:
    """A worker's status as the supervisor's: its own, 1 for a signal or for 0 (a worker
    that stops unasked is a failure of the pod)."""
    return returncode if returncode is not None and returncode > 0 else 1
