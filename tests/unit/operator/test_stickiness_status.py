"""status.stickiness (issue 15): which session key the split uses, after defaults, with
the sources in the order the router really tries them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rolloutsim import T0, make_spec

from tierguard.api import stickiness as stk
from tierguard.api.enums import KeySource, StickinessKey
from tierguard.api.policy_rollout import StickinessSpec
from tierguard.api.routerconfig import Stickiness
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import kubectl_plugin as kp
from tierguard.operator import rollout as r
from tierguard.router.session import session_key

CONVERSATION = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}]


@pytest.mark.parametrize("mode", list(StickinessKey))
def test_the_sources_are_the_order_the_router_tries(mode: StickinessKey) -> None:
    """Offer every source, take away the one that won, again: the winners in turn are
    :func:`key_sources`."""
    offered: dict[str, Any] = {
        "session_header": "s-1",
        "user_header": "u-h",
        "body": {"prompt_cache_key": "pck"},
        "user": "alice",
        "messages": CONVERSATION,
    }
    takes: dict[KeySource, list[str]] = {
        KeySource.HEADER: ["session_header", "user_header"],
        KeySource.PROMPT_CACHE_KEY: ["body"],
        KeySource.USER: ["user"],
        KeySource.FINGERPRINT: ["messages"],
    }
    empty: dict[str, Any] = {"body": {}, "messages": []}
    won = []
    while True:
        got = session_key(Stickiness(key=mode), request_id="rid", **offered).source
        won.append(got)
        if got is KeySource.REQUEST_ID:
            break
        for field in takes[got]:
            offered[field] = empty.get(field)
    assert tuple(won) == stk.key_sources(mode)


def test_the_header_is_the_one_the_key_reads() -> None:
    assert stk.key_header(StickinessSpec()) == "x-session-id"
    spec = StickinessSpec(key=StickinessKey.USER, session_header="x-conv", header="x-uid")
    assert stk.key_header(spec) == "x-uid"
    assert stk.key_header(spec.model_copy(update={"key": StickinessKey.HEADER})) == "x-uid"
    assert stk.key_header(spec.model_copy(update={"key": StickinessKey.REQUEST_ID})) == ""


def test_since_stays_while_key_and_header_do() -> None:
    first = stk.observed(StickinessSpec(), None, T0)
    assert (first.key, first.header, first.since) == (StickinessKey.SESSION, "x-session-id", T0)
    later = T0 + timedelta(hours=1)
    assert stk.observed(StickinessSpec(), first, later) == first
    # another header for the same key is another key: users are hashed anew
    moved = stk.observed(StickinessSpec(session_header="x-conv"), first, later)
    assert (moved.header, moved.since) == ("x-conv", later)
    # the user header does not matter to key: session
    assert stk.observed(StickinessSpec(header="x-other"), first, later).since == T0


def test_reconcile_reports_the_key_a_stored_user_default_keeps() -> None:
    """A policy created before `session` became the default has `key: user` stored: the
    status says so, with the sources the routers try."""
    spec = make_spec(stickiness={"key": "user"})
    d = r.reconcile(spec, None, T0, generation=1)
    st = d.status.stickiness
    assert st is not None
    assert (st.key, st.header, st.since) == (StickinessKey.USER, "x-tierguard-user", T0)
    assert st.sources == [KeySource.USER, KeySource.HEADER, KeySource.REQUEST_ID]
    wire = d.status.to_k8s()["stickiness"]
    assert wire["sources"] == ["user", "header", "request_id"]
    # the next reconcile changes nothing (no status write for an idle policy)
    again = r.reconcile(spec, d.status, T0 + timedelta(minutes=5), generation=1)
    assert again.status.stickiness == st


def test_kubectl_status_names_the_session_key() -> None:
    d = r.reconcile(make_spec(), RoutingPolicyStatus(), T0, generation=1)
    body = {"metadata": {"name": "shop", "namespace": "a"}, "status": d.status.to_k8s()}
    out = kp.format_status("shop", body, now=T0 + timedelta(minutes=3))
    line = next(x for x in out.splitlines() if "session key" in x)
    assert line.strip() == (
        "session key session: header x-session-id > prompt_cache_key > user > fingerprint"
        " > request_id (since 3m ago)"
    )
