"""Split properties: stickiness across replicas, monotone weights, shares match weights."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tierguard.api.enums import Arm
from tierguard.api.routerconfig import Route, TierSplit
from tierguard.router.split import (
    BUCKETS,
    arm_for,
    bucket,
    build_chain,
    canary_buckets,
    plan_pinned,
    plan_routed,
)

ROUTE = Route(tier="simple", baseline="big", candidate="small", fallbacks=["big"])
weights = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
keys = st.text(min_size=1, max_size=40)
salts = st.text(max_size=20)


@given(salts, keys, weights)
def test_same_key_same_arm_on_any_replica(salt: str, key: str, w: float) -> None:
    # two "replicas" share nothing but the config: recompute from scratch
    split = TierSplit(tier="simple", weight=w)
    a = arm_for(ROUTE, split, bucket(salt, key))
    b = arm_for(ROUTE.model_copy(), TierSplit(tier="simple", weight=w), bucket(salt, key))
    assert a == b
    assert 0 <= bucket(salt, key) < BUCKETS


@given(salts, keys, weights, weights)
def test_raising_weight_only_moves_control_to_canary(
    salt: str, key: str, w1: float, w2: float
) -> None:
    lo, hi = sorted((w1, w2))
    b = bucket(salt, key)
    arm_lo, _ = arm_for(ROUTE, TierSplit(tier="simple", weight=lo), b)
    arm_hi, _ = arm_for(ROUTE, TierSplit(tier="simple", weight=hi), b)
    if arm_lo is Arm.CANARY:
        assert arm_hi is Arm.CANARY  # never back to control


@settings(max_examples=10, deadline=None)
@given(st.sampled_from([0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 95.0, 100.0]), salts)
def test_observed_shares_match_weights(w: float, salt: str) -> None:
    n = 10_000
    split = TierSplit(tier="simple", weight=w)
    canary = sum(
        arm_for(ROUTE, split, bucket(salt, f"user-{i}"))[0] is Arm.CANARY for i in range(n)
    )
    share = canary / n
    # binomial sd at n=10000 is <= 0.005; 5 sd: fails only on a real bias
    assert abs(share - w / 100) <= 0.025


def test_weight_edges() -> None:
    assert canary_buckets(0) == 0 and canary_buckets(100) == BUCKETS
    assert canary_buckets(5) == 500 and canary_buckets(0.01) == 1
    assert arm_for(ROUTE, TierSplit(tier="simple", weight=100), BUCKETS - 1) == (
        Arm.CANARY,
        "small",
    )
    assert arm_for(ROUTE, TierSplit(tier="simple", weight=0), 0) == (Arm.CONTROL, "big")


def test_holdback_after_promotion_and_stable_without_candidate() -> None:
    split = TierSplit(tier="simple", weight=95, control_arm=Arm.HOLDBACK)
    assert arm_for(ROUTE, split, 9_600) == (Arm.HOLDBACK, "big")
    assert arm_for(ROUTE, split, 10) == (Arm.CANARY, "small")
    lone = Route(tier="complex", baseline="big")
    assert arm_for(lone, TierSplit(tier="complex", weight=50), 0) == (Arm.STABLE, "big")


def test_chain_puts_serving_model_first_without_repeats() -> None:
    assert build_chain("small", ["big"]) == ("small", "big")
    assert build_chain("big", ["big", "other"]) == ("big", "other")
    canary = plan_routed(ROUTE, TierSplit(tier="simple", weight=100), 5, 1.5)
    assert canary.chain == ("small", "big") and canary.baseline == "big"
    pinned = plan_pinned("small", 60)
    assert (pinned.tier, pinned.arm, pinned.chain) == ("pinned", Arm.PINNED, ("small",))


def test_bucket_is_sha256_of_salt_and_key() -> None:
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"saltkey").digest(), "big") % BUCKETS
    assert bucket("salt", "key") == expected
