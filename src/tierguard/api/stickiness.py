"""Where the routers read the session (stickiness) key, as the operator reports it in
``status.stickiness`` (issue 15): the key a split hashes users by is otherwise visible
only in the spec as the API server stored it, and a policy created before ``session``
became the default keeps the ``user`` the server stored for it, so an SRE reading
``kubectl get -o yaml`` cannot tell which key the split used. Pure.

:func:`key_sources` is the order the router tries the sources in
(:func:`tierguard.router.session.session_key`; a unit test checks the two agree). Its
values are the ``key_source`` label of ``tierguard_session_keys_total``, so the status
names the same sources the metric counts (which of them requests actually carried).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pydantic import Field

from tierguard.api.enums import KeySource, StickinessKey
from tierguard.api.policy_base import ApiModel
from tierguard.api.policy_rollout import StickinessSpec

_SOURCES: Final[dict[StickinessKey, tuple[KeySource, ...]]] = {
    StickinessKey.SESSION: (
        KeySource.HEADER,
        KeySource.PROMPT_CACHE_KEY,
        KeySource.USER,
        KeySource.FINGERPRINT,
        KeySource.REQUEST_ID,
    ),
    StickinessKey.USER: (KeySource.USER, KeySource.HEADER, KeySource.REQUEST_ID),
    StickinessKey.HEADER: (KeySource.HEADER, KeySource.REQUEST_ID),
    StickinessKey.REQUEST_ID: (KeySource.REQUEST_ID,),
}


def key_sources(key: StickinessKey) -> tuple[KeySource, ...]:
    """The sources the router reads a request's key from, first usable one wins (the last,
    ``request_id``, is no stickiness: the request is drawn afresh)."""
    return _SOURCES[key]


def key_header(spec: StickinessSpec) -> str:
    """The header the ``header`` source reads ("": none)."""
    if spec.key is StickinessKey.SESSION:
        return spec.session_header
    if spec.key is StickinessKey.REQUEST_ID:
        return ""
    return spec.header


class StickinessStatus(ApiModel):
    """The session key the routers split users into arms by, after defaults."""

    key: StickinessKey = Field(
        description=(
            "The effective rollout.stickiness.key (a policy created before session became "
            "the default keeps the user the API server stored for it)."
        )
    )
    header: str = Field(
        default="",
        description="The request header the header source reads (empty: none).",
    )
    sources: list[KeySource] = Field(
        default_factory=list,
        description=(
            "Where the routers read a request's key, first usable one wins; the values of "
            "the key_source label of tierguard_session_keys_total, which counts the "
            "requests each source keyed. request_id: no stickiness (drawn afresh)."
        ),
    )
    since: datetime | None = Field(
        default=None,
        description=(
            "When the operator first handed the routers this key and header. Changing them "
            "mid-stage hashes users into arms by another key: evidence before this time "
            "was split by the previous one."
        ),
    )


def observed(
    spec: StickinessSpec, before: StickinessStatus | None, now: datetime
) -> StickinessStatus:
    """``status.stickiness`` for ``spec`` (``before``: the one status holds; its ``since``
    stays while key and header do)."""
    out = StickinessStatus(
        key=spec.key, header=key_header(spec), sources=list(key_sources(spec.key)), since=now
    )
    if before is not None and (before.key, before.header) == (out.key, out.header):
        out.since = before.since or now
    return out


def describe(st: StickinessStatus) -> str:
    """One line for ``kubectl tierguard status``: the key and its sources in order, e.g.
    ``session: header x-session-id > prompt_cache_key > user > fingerprint > request_id``."""
    parts = [
        f"{s.value} {st.header}" if s is KeySource.HEADER and st.header else s.value
        for s in st.sources
    ]
    return f"{st.key.value}: {' > '.join(parts)}"
