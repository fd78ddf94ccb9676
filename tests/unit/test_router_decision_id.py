"""Signed decision ids: round trip, forgery, expiry, tampering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierguard.router.decision_id import (
    CLOCK_SKEW_S,
    PREFIX,
    Decision,
    DecisionIdError,
    sign,
    verify,
)

KEY = b"k" * 32
D = Decision("support", "simple", "canary", "small", 1_700_000_000, "req-1")


def test_round_trip_and_prefix() -> None:
    did = sign(D, KEY)
    assert did.startswith(PREFIX)
    assert verify(did, KEY, now=D.issued_at + 10, ttl_s=3600) == D
    assert verify(did.removeprefix(PREFIX), KEY, now=D.issued_at, ttl_s=3600) == D


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_round_trip_any_names(policy: str, rid: str) -> None:
    d = Decision(policy, "t", "control", "m", 100, rid)
    assert verify(sign(d, KEY), KEY, now=100, ttl_s=1) == d


def _reason(did: str, key: bytes = KEY, now: float = D.issued_at, ttl: float = 3600) -> str:
    with pytest.raises(DecisionIdError) as info:
        verify(did, key, now=now, ttl_s=ttl)
    return info.value.reason


def test_other_key_is_a_bad_signature() -> None:
    assert _reason(sign(D, b"other")) == "bad_signature"


def test_tampered_payload_is_refused() -> None:
    did = sign(D, KEY)
    forged = sign(Decision("support", "simple", "control", "big", D.issued_at, "req-1"), b"x")
    payload = forged.removeprefix(PREFIX).split(".")[0]
    tag = did.split(".")[1]
    assert _reason(f"{PREFIX}{payload}.{tag}") == "bad_signature"


def test_expired_and_future() -> None:
    did = sign(D, KEY)
    assert _reason(did, now=D.issued_at + 3601) == "expired"
    assert _reason(did, now=D.issued_at - CLOCK_SKEW_S - 1) == "malformed"


@pytest.mark.parametrize("garbage", ["", "chatcmpl-", "abc", "chatcmpl-a.b", "x" * 5000, "a.b.c"])
def test_garbage_is_malformed_or_unsigned(garbage: str) -> None:
    assert _reason(garbage) in ("malformed", "bad_signature")


def test_the_user_cluster_rides_in_the_id_and_version_1_ids_still_verify() -> None:
    """Feedback is counted per user cluster (issue 13.2): the id carries it; ids issued
    before the upgrade (version 1, no cluster) are still attributed, cluster ""."""
    import base64
    import hashlib
    import hmac
    import json

    d = Decision("support", "simple", "canary", "small", 1_700_000_000, "req-1", "7")
    assert verify(sign(d, KEY), KEY, now=d.issued_at, ttl_s=60).cluster == "7"
    payload = (
        base64.urlsafe_b64encode(
            json.dumps([1, "support", "simple", "canary", "small", d.issued_at, "req-1"]).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    tag = base64.urlsafe_b64encode(
        hmac.new(KEY, payload.encode(), hashlib.sha256).digest()[:16]
    ).rstrip(b"=")
    old = verify(f"chatcmpl-{payload}.{tag.decode()}", KEY, now=d.issued_at, ttl_s=60)
    assert old.cluster == "" and old.request_id == "req-1"
