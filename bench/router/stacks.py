"""Folding py-spy's raw stacks into the router's components (bench/router/profile.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

#: (bucket, substrings of a frame "function (file:line)"); first match wins, checked from
#: the leaf up, so a sample counts once, in the innermost bucket it reaches
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("classifier (ONNX)", ("onnxruntime", "classifier/runtime.py")),
    ("JSON encode/decode", ("json/", "orjson", "json_response", "jsonlib.py")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("decision log", ("decision_log.py",)),
    ("decision id / HMAC", ("decision_id.py", "hmac.py")),
    ("SSE decode + rewrite", ("sse.py",)),
    ("tracing / overhead", ("tracing.py", "overhead.py", "spanattrs.py")),
    ("aiohttp client (upstream call)", ("aiohttp/client", "aiohttp/connector", "upstream.py")),
    ("aiohttp server (parse, write)", ("aiohttp/web", "aiohttp/http", "aiohttp/streams")),
    ("event loop (uvloop, C: sockets, callbacks)", ("Runner.run (asyncio/runners.py",)),
    ("router logic (plan, chain, account)", ("tierguard/router/",)),
    ("asyncio / other", ("",)),
]


def bucket_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        if "router/cli.py" in frame or "tierguard/cli.py" in frame:
            continue
        for name, keys in BUCKETS[:-1]:
            if any(k in frame for k in keys):
                return name
    return BUCKETS[-1][0]


def fold(path: Path) -> tuple[Counter[str], int]:
    """Samples per bucket (idle samples dropped: py-spy's --idle is off)."""
    shares: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        shares[bucket_of(frames)] += n
    return shares, total


#: the frame of a JSON answer's bookkeeping, run after the answer is written
#: (``accounting.account_soon``): off the request's latency, still on its CPU
AFTER_ANSWER = "_account_deferred (tierguard/router/accounting.py"


def after_answer(path: Path) -> int:
    """Samples taken in the bookkeeping that runs after a JSON answer was written."""
    n = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if AFTER_ANSWER in stack:
            n += int(count)
    return n
