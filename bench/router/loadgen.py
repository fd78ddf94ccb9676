"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams.

Why not aiohttp's client: on this 2-core machine the load generator shares a core with
the fake provider, and aiohttp's client costs several times more CPU per request than
the router under test would; a pre-built request on a keep-alive socket and a minimal
response parser (Content-Length or chunked) keep the generator out of the measurement.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


def build_request(
    host: str, port: int, path: str, body: dict[str, object], headers: dict[str, str] | None = None
) -> bytes:
    raw = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(raw)}",
        "Connection: keep-alive",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    idx = lower.find(b"content-length:")
    if idx >= 0:
        end = lower.index(b"\r\n", idx)
        await reader.readexactly(int(lower[idx + 15 : end]))
        return status
    if b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readline()
                return status
            await reader.readexactly(size + 2)
    await reader.read()  # connection: close
    return status


async def run(
    host: str,
    port: int,
    requests: list[bytes],
    concurrency: int,
    duration_s: float,
    warmup_s: float = 1.0,
) -> Result:
    """``concurrency`` connections send requests back to back for ``duration_s`` (after
    ``warmup_s`` not measured); request ``i`` of a connection is ``requests[i % len]``."""
    result = Result()
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s

    async def worker(w: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = w
        try:
            while True:
                t0 = loop.time()
                if t0 >= stop_at:
                    return
                writer.write(requests[i % len(requests)])
                i += concurrency
                status = await _read_response(reader)
                t1 = loop.time()
                if t0 >= measure_from:
                    if status == 200:
                        result.latencies.append(t1 - t0)
                    else:
                        result.errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.elapsed = min(loop.time(), stop_at) - measure_from
    return result


def run_sync(*args: object, **kwargs: object) -> Result:
    return asyncio.run(run(*args, **kwargs))  # type: ignore[arg-type]


if __name__ == "__main__":  # quick manual use: python loadgen.py HOST PORT
    import sys

    h, p = sys.argv[1], int(sys.argv[2])
    req = build_request(
        h,
        p,
        "/v1/chat/completions",
        {"model": "auto", "messages": [{"role": "user", "content": "where is my order"}]},
    )
    r = run_sync(h, p, [req], 1, 3.0)
    print(
        f"n={len(r.latencies)} p50={r.pct(0.5) * 1e3:.3f}ms rps={r.rps:.0f} "
        f"errors={r.errors} t={time.time():.0f}"
    )
