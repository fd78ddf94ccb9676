"""CPU per streamed event: what the router's stream path costs per SSE chunk.

    PYTHONPATH=src python bench/router/chunks.py            # full (about 20 seconds)
    PYTHONPATH=src python bench/router/chunks.py --quick    # a second or two (tests)

One process, one core, the router's own pure code on a realistic upstream stream (the
fake provider's chunk shape, OpenAI's separators, 200 content chunks then a finish chunk
and ``[DONE]``, delivered in 1,400-byte reads as a network would): for each path, the
microseconds per event, best of several rounds, and the ratio to the byte-level path.

* ``decode``: :class:`~tierguard.router.sse.SSEDecoder` alone (splitting reads into
  events; no line limit below ``server.maxResponseBytes``).
* ``relay``: decode + :class:`~tierguard.router.sse.ChunkRewriter` on its byte-level
  path (the signed id and the model name put on every chunk), as for most streams.
* ``relay_parsed``: decode + the rewriter's parse path (``collect``: every chunk parsed
  and re-serialised, as for a stream sampled for shadow evaluation or logged prompts).
* ``json_roundtrip``: ``json.loads`` + ``json.dumps`` per event, the naive reference.
* ``relay_varying_ids``: the byte-level path on an upstream that changes its ``id`` on
  every chunk (each chunk is parsed once to learn the new id).

Results go to bench/router/chunks.json and a Markdown table on stdout (copied into
docs/benchmarks.md, section "Streaming: CPU per event").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src")]

from tierguard.router.sse import ChunkRewriter, SSEDecoder  # noqa: E402

EVENTS = 200
READ = 1400
DID = "chatcmpl-" + "x" * 120  # about the length of a signed decision id


def stream(vary_ids: bool = False) -> bytes:
    """One upstream stream as the fake provider (json.dumps defaults) sends it."""

    def chunk(i: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = {
            "id": f"chatcmpl-fake123456-{i}" if vary_ids else "chatcmpl-fake123456",
            "object": "chat.completion.chunk",
            "created": 1764547200,
            "model": "small-1",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    parts = [chunk(0, {"role": "assistant", "content": ""})]
    parts += [chunk(i, {"content": f" word{i}"}) for i in range(1, EVENTS)]
    parts += [chunk(EVENTS, {}, "stop"), b"data: [DONE]\n\n"]
    return b"".join(parts)


def reads(body: bytes) -> list[bytes]:
    return [body[i : i + READ] for i in range(0, len(body), READ)]


def decode_only(pieces: list[bytes]) -> int:
    d = SSEDecoder(32 << 20)
    n = 0
    for p in pieces:
        n += len(d.feed(p))
    return n + len(d.close())


def relay(pieces: list[bytes], collect: bool) -> int:
    d = SSEDecoder(32 << 20)
    rw = ChunkRewriter(DID, "auto", include_usage=False, collect=collect)
    n = 0
    for p in pieces:
        for data in d.feed(p):
            rw.rewrite(data)
            n += 1
    assert rw.finished()
    return n


def json_roundtrip(pieces: list[bytes]) -> int:
    d = SSEDecoder(32 << 20)
    n = 0
    for p in pieces:
        for data in d.feed(p):
            if data != b"[DONE]":
                obj = json.loads(data)
                obj["id"] = DID
                json.dumps(obj, separators=(",", ":"))
            n += 1
    return n


def timed(fn: Callable[[], int], rounds: int, repeat: int) -> float:
    """Best microseconds per event over ``rounds`` rounds of ``repeat`` streams."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        events = 0
        for _ in range(repeat):
            events += fn()
        best = min(best, (time.perf_counter() - t0) / events * 1e6)
    return best


def run(quick: bool = False) -> dict[str, Any]:
    rounds, repeat = (2, 5) if quick else (9, 60)
    same, varying = reads(stream()), reads(stream(vary_ids=True))
    paths: dict[str, Callable[[], int]] = {
        "decode": lambda: decode_only(same),
        "relay": lambda: relay(same, collect=False),
        "relay_parsed": lambda: relay(same, collect=True),
        "json_roundtrip": lambda: json_roundtrip(same),
        "relay_varying_ids": lambda: relay(varying, collect=False),
    }
    us = {name: timed(fn, rounds, repeat) for name, fn in paths.items()}
    return {
        "events_per_stream": EVENTS + 2,
        "read_bytes": READ,
        "quick": quick,
        "python": sys.version.split()[0],
        "load_average_1m": round(os.getloadavg()[0], 1),
        "us_per_event": {k: round(v, 3) for k, v in us.items()},
        "ratio_to_relay": {k: round(v / us["relay"], 2) for k, v in us.items()},
    }


def table(result: dict[str, Any]) -> str:
    rows = ["| path | µs per event | × relay |", "|---|---|---|"]
    for name, v in result["us_per_event"].items():
        rows.append(f"| {name} | {v:.2f} | {result['ratio_to_relay'][name]:.2f} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "chunks.json")
    args = ap.parse_args()
    result = run(quick=args.quick)
    if not args.quick:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
