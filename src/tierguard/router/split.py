"""The canary split: pure, stateless, identical on every replica.

``bucket = int(sha256(salt + key)) mod 10000`` where the salt is the policy's (the same
on every replica) and the key is the stickiness key (the session, the request's ``user``,
a header or the request id: :mod:`tierguard.router.session`). A tier under canary sends
buckets ``< weight * 100`` (weight in percent, so 0.01 % resolution) to the candidate
and the rest to the baseline. Consequences, each
a property test in ``tests/unit/test_split.py``:

* the same key gets the same arm at a given weight on any replica (no shared state);
* raising the weight only moves users from the baseline to the candidate, never back
  (the canary set at weight w is a prefix of the bucket range, growing with w);
* the share of keys on the canary matches the weight (sha256 is uniform).

After promotion the operator sets ``weight = 100 - holdback`` and ``controlArm =
holdback``: the users who were on the canary stay there and the last few buckets keep a
permanent control.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from tierguard.api.enums import Arm
from tierguard.api.metrics import CLUSTER_NONE, CLUSTERS, TIER_PINNED
from tierguard.api.routerconfig import Route, TierSplit

BUCKETS: Final = 10_000


def bucket(salt: str, key: str) -> int:
    """The key's bucket in ``[0, BUCKETS)``."""
    # surrogatepass: a header value with bytes that are not UTF-8 reaches us as
    # surrogate escapes; it still hashes (identically to before for any valid text)
    digest = hashlib.sha256((salt + key).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def cluster_label(key_bucket: int | None) -> str:
    """The ``cluster`` metrics label of a bucket: whole users, 16 values (low cardinality)."""
    return CLUSTER_NONE if key_bucket is None else str(key_bucket % CLUSTERS)


def canary_buckets(weight_percent: float) -> int:
    """How many buckets (from 0 up) a weight sends to the candidate."""
    return max(0, min(BUCKETS, round(weight_percent * BUCKETS / 100.0)))


def arm_for(route: Route, split: TierSplit, key_bucket: int) -> tuple[Arm, str]:
    """The arm and the serving model for a bucket of a routed (classified) tier."""
    if route.candidate is None:
        return Arm.STABLE, route.baseline
    if key_bucket < canary_buckets(split.weight):
        return Arm.CANARY, route.candidate
    return split.control_arm, route.baseline


@dataclass(frozen=True)
class RoutePlan:
    """Where one request goes: its tier and arm, and the models to try in order."""

    tier: str
    arm: Arm
    chain: tuple[str, ...]
    latency_budget_s: float
    bucket: int | None = None
    baseline: str | None = None  # the control model (for shadow evaluation)

    @property
    def model(self) -> str:
        return self.chain[0]


def build_chain(first: str, fallbacks: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The serving model followed by the route's fallbacks, without repeats (a canary's
    fallback list usually names the baseline, which the control arm already serves)."""
    out = [first]
    out += [m for m in fallbacks if m not in out]
    return tuple(out)


def plan_routed(
    route: Route, split: TierSplit, key_bucket: int, latency_budget_s: float
) -> RoutePlan:
    arm, model = arm_for(route, split, key_bucket)
    return RoutePlan(
        tier=route.tier,
        arm=arm,
        chain=build_chain(model, route.fallbacks),
        latency_budget_s=latency_budget_s,
        bucket=key_bucket,
        baseline=route.baseline,
    )


def plan_pinned(model: str, latency_budget_s: float) -> RoutePlan:
    """A client that names a model gets that model only: no fallback to another model
    it did not ask for."""
    return RoutePlan(
        tier=TIER_PINNED, arm=Arm.PINNED, chain=(model,), latency_budget_s=latency_budget_s
    )
