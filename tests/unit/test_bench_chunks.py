"""bench/router/chunks.py --quick runs and measures every path on whole streams (no
timing is asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "bench" / "router" / "chunks.py"
_SPEC = importlib.util.spec_from_file_location("bench_router_chunks", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
chunks = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(chunks)


def test_quick_bench_covers_every_path() -> None:
    result = chunks.run(quick=True)
    assert set(result["us_per_event"]) == {
        "decode",
        "relay",
        "relay_parsed",
        "json_roundtrip",
        "relay_varying_ids",
    }
    assert all(v > 0 for v in result["us_per_event"].values())
    assert result["ratio_to_relay"]["relay"] == 1.0


def test_streams_relay_whole() -> None:
    pieces = chunks.reads(chunks.stream(vary_ids=True))
    assert chunks.decode_only(pieces) == chunks.EVENTS + 2
    assert chunks.relay(pieces, collect=False) == chunks.EVENTS + 2  # and it finished
