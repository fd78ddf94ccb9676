"""bench/router/sessions.py --quick: the properties its figures stand for (no timing is
asserted: per-request message counts, switches, drops and refusals are counts)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "router" / "sessions.py"
_SPEC = importlib.util.spec_from_file_location("bench_router_sessions", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
sessions = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(sessions)

pytestmark = pytest.mark.timeout(300)


def test_quick_bench_shows_flat_classification_and_stable_sessions() -> None:
    result = sessions.run(quick=True)
    for row in result["classification"]:
        assert row["cached_messages"] == 1  # flat: only the new message
        assert row["uncached_messages"] == row["length"]
    by = {r["tiering"]: r for r in result["mix"]}
    session, request = by["Session"], by["Request"]
    assert session["tier_drops"] == 0 and request["tier_drops"] > 0
    assert session["unsafe_switches"] == 0 == request["unsafe_switches"]
    assert session["model_switches_per_conversation"] < request["model_switches_per_conversation"]
    assert session["cache_hit_ratio"] > request["cache_hit_ratio"]
    assert "| Session |" in sessions.render(result)
