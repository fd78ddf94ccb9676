"""Signed decision ids: the response ``id`` that makes feedback attributable.

An id carries (policy, tier, arm, model, issue time, request id, user cluster, slice
labels, classifier cell) and an
HMAC-SHA256 tag
with a key from a Secret, so any replica can attribute a thumbs-up to the route that
served the answer without shared state, and a client cannot forge feedback for a route
it was not served by. Layout (URL-safe, no padding)::

    chatcmpl-<base64url(json payload)>.<base64url(hmac[:16])>

The ``chatcmpl-`` prefix keeps the id looking like OpenAI's; verification accepts the id
with or without it. The payload is readable (it is not a secret: the same facts are in
the response headers); only its integrity matters. Pure: no clock, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Final

PREFIX: Final = "chatcmpl-"
#: 2 added the user cluster, 3 the slice labels, 4 the classifier cell; older ids still accepted
_VERSION: Final = 4
_VERSIONS: Final = (1, 2, 3, 4)
_TAG_BYTES: Final = 16
_MAX_ID_CHARS: Final = 2048
#: issue times up to this far in the future are accepted (clock skew between replicas).
CLOCK_SKEW_S: Final = 300


class DecisionIdError(ValueError):
    """A decision id is refused; ``reason`` is a metrics label value."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Decision:
    policy: str
    tier: str
    arm: str
    model: str
    issued_at: int  # unix seconds
    request_id: str
    cluster: str = ""  # metrics label ``cluster`` of the answer ("" in version-1 ids)
    #: ((slice, value), ...) of the request (analysis.slices; () before version 3)
    slices: tuple[tuple[str, str], ...] = ()
    #: (stable tier, candidate tier, decider) during a classifier canary; () otherwise
    #: (and before version 4)
    cell: tuple[str, ...] = ()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()[:_TAG_BYTES])


def sign(decision: Decision, key: bytes) -> str:
    """The id for a decision."""
    payload = _b64(
        json.dumps(
            [
                _VERSION,
                decision.policy,
                decision.tier,
                decision.arm,
                decision.model,
                decision.issued_at,
                decision.request_id,
                decision.cluster,
                [list(pair) for pair in decision.slices],
                list(decision.cell),
            ],
            separators=(",", ":"),
        ).encode("utf-8")
    )
    return f"{PREFIX}{payload}.{_tag(key, payload)}"


def verify(decision_id: str, key: bytes, *, now: float, ttl_s: float) -> Decision:
    """The decision an id carries, or :class:`DecisionIdError` (reason ``malformed``,
    ``bad_signature`` or ``expired``)."""
    if not isinstance(decision_id, str) or len(decision_id) > _MAX_ID_CHARS:
        raise DecisionIdError("malformed", "the id is not a decision id issued by this router")
    text = decision_id.removeprefix(PREFIX)
    payload, sep, tag = text.partition(".")
    if not sep or not payload or not tag:
        raise DecisionIdError("malformed", "the id is not a decision id issued by this router")
    if not hmac.compare_digest(tag, _tag(key, payload)):
        raise DecisionIdError("bad_signature", "the id's signature does not match")
    try:
        fields = json.loads(_unb64(payload))
        version, policy, tier, arm, model, issued_at, request_id, *rest = fields
        cluster = str(rest[0]) if version >= 2 and rest else ""
        slices = _slices(rest[1]) if version >= 3 and len(rest) >= 2 else ()
        cell = _cell(rest[2]) if version >= 4 and len(rest) == 3 else ()
    except (binascii.Error, ValueError, TypeError):
        raise DecisionIdError("malformed", "the id's payload cannot be read") from None
    if version not in _VERSIONS or len(fields) != 6 + version or not isinstance(issued_at, int):
        raise DecisionIdError("malformed", "the id's payload has an unknown layout")
    if issued_at > now + CLOCK_SKEW_S:
        raise DecisionIdError("malformed", "the id was issued in the future")
    if now - issued_at > ttl_s:
        raise DecisionIdError("expired", f"the id expired (older than {ttl_s:.0f}s)")
    return Decision(
        str(policy),
        str(tier),
        str(arm),
        str(model),
        issued_at,
        str(request_id),
        cluster,
        slices,
        cell,
    )


def _cell(raw: object) -> tuple[str, ...]:
    if (
        not isinstance(raw, list)
        or len(raw) not in (0, 3)
        or not all(isinstance(x, str) for x in raw)
    ):
        raise ValueError("the classifier cell is not [from, to, decider]")
    return tuple(raw)


def _slices(raw: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in raw
    ):
        raise ValueError("slice labels are not a list of [name, value] pairs")
    return tuple((p[0], p[1]) for p in raw)
