"""What a simulated user makes of a router's response (pure): which tier, arm and model
answered (headers, else the decision id), whether the answer was good (the fake
provider's ground truth) and whether this user rates it. Used by the traffic generator
(:mod:`tierguard.lab.traffic`)."""

from __future__ import annotations

import base64
import binascii
import json
import random
from collections.abc import Mapping
from typing import Any, Final

from tierguard.lab.fakeanswers import is_good
from tierguard.lab.scenario_world import UPSTREAM_MODEL, ProviderProfile
from tierguard.lab.tally import RouteInfo

#: Header names the router answers with (tier/arm/model); the decision id carries the same.
HEADER_TIER: Final = "x-tierguard-tier"
HEADER_ARM: Final = "x-tierguard-arm"
HEADER_MODEL: Final = "x-tierguard-model"


def is_good_answer(text: str, category: str, profile: ProviderProfile) -> bool:
    """Whether a fake provider with ``profile`` answers this query well.

    The fake provider's own rule (:func:`tierguard.lab.fakeanswers.is_good`) applied to
    the model id both lab providers serve, so the simulator's truth is the providers'
    truth: the same draw decides the answer text, the shadow judge and the user.
    """
    return is_good(UPSTREAM_MODEL, text, profile.quality[category])


def answer_quality(body: Mapping[str, Any]) -> bool | None:
    """The fake provider's hidden marker on a response (``tierguard_fake.quality``)."""
    marker = body.get("tierguard_fake")
    if isinstance(marker, Mapping) and marker.get("quality") in ("good", "bad"):
        return bool(marker["quality"] == "good")
    return None


def rating_for(satisfied: bool, rating_rate: float, rng: random.Random) -> str | None:
    """``"up"``, ``"down"`` or ``None`` (this user does not rate this answer).

    The rate of rating does not depend on satisfaction, so thumbs-down share among
    rated answers estimates the share of unsatisfied users without bias.
    """
    if rng.random() >= rating_rate:
        return None
    return "up" if satisfied else "down"


def decode_decision_id(decision_id: str) -> RouteInfo | None:
    """Read tier, arm and model from a signed decision id without verifying it.

    The payload is readable on purpose (the router's module docstring says so); only
    its integrity needs the key, and that is the router's business when feedback comes
    back. Returns None for anything that is not such an id.
    """
    text = decision_id.removeprefix("chatcmpl-")
    payload, sep, _ = text.partition(".")
    if not sep:
        return None
    try:
        fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(fields, list) or len(fields) < 5:
        return None
    return RouteInfo(tier=str(fields[2]), arm=str(fields[3]), model=str(fields[4]))


def route_info(headers: Mapping[str, str], body: Mapping[str, Any]) -> RouteInfo | None:
    """Route facts from response headers, else from the decision id in the body."""
    lower = {k.lower(): v for k, v in headers.items()}
    if HEADER_TIER in lower and HEADER_ARM in lower and HEADER_MODEL in lower:
        return RouteInfo(lower[HEADER_TIER], lower[HEADER_ARM], lower[HEADER_MODEL])
    rid = body.get("id")
    return decode_decision_id(rid) if isinstance(rid, str) else None
