"""Pre-flight mirror sampling (tierguard.router.mirroring): by session bucket, at the
tier's rate, nested in the rate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as hs

from tierguard.router.mirroring import sampled
from tierguard.router.split import BUCKETS


def test_the_share_of_sessions_mirrored_matches_the_rate() -> None:
    for rate in (0.0, 0.05, 0.2, 1.0):
        share = sum(sampled(b, rate) for b in range(BUCKETS)) / BUCKETS
        assert abs(share - rate) < 0.015, (rate, share)


@given(hs.integers(0, BUCKETS - 1), hs.floats(0, 1), hs.floats(0, 1))
def test_a_session_mirrored_at_a_rate_is_mirrored_at_any_higher_rate(
    b: int, r1: float, r2: float
) -> None:
    lo, hi = sorted((r1, r2))
    assert not sampled(b, lo) or sampled(b, hi)
