"""Kills our children's process groups when the Python process that started them dies.

Run as ``python -I _reaper.py`` by :mod:`tierguard.lab.processes`, in its own session
(so Ctrl-C in the terminal does not reach it). It reads lines from stdin:
``+PGID`` (watch this group), ``-PGID`` (stopped cleanly, forget it), ``d/PATH``
(a temporary directory to delete if we die) and ``D/PATH`` (forget that directory).
When stdin reaches end of file -- which the kernel guarantees when the parent dies,
however it dies, because the parent holds the only write end -- it sends SIGTERM to
every group still watched, waits a few seconds, SIGKILLs what is left, and removes
the remembered directories.

Standard library only, and no imports from tierguard, so it works with ``-I``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time

GRACE_SECONDS = 5.0


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watched: set[int] = set()
    dirs: set[str] = set()
    for raw in sys.stdin:
        line = raw.rstrip("\n")
        if line[:1] == "d" and line[1:2] == "/":
            dirs.add(line[1:])
            continue
        if line[:1] == "D":
            dirs.discard(line[1:])
            continue
        if len(line) < 2 or not line[1:].isdigit():
            continue
        pgid = int(line[1:])
        if line[0] == "+":
            watched.add(pgid)
        elif line[0] == "-":
            watched.discard(pgid)
    if not watched and not dirs:
        return 0
    for pgid in watched:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(_alive(p) for p in watched):
        time.sleep(0.1)
    for pgid in watched:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    if watched:
        time.sleep(0.2)  # let the kernel close the killed processes' files
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
