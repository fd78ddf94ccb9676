"""Session keys: the order of sources, stable across turns, the key never the label."""

from __future__ import annotations

from typing import Any

import pytest

from tierguard.api.enums import KeySource, StickinessKey
from tierguard.api.routerconfig import Stickiness
from tierguard.router.session import fingerprint, session_key

SYSTEM = {"role": "system", "content": "You are Acme's support assistant."}


def conv(*turns: str) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [SYSTEM]
    for i, t in enumerate(turns):
        msgs.append({"role": "user", "content": t})
        if i < len(turns) - 1:
            msgs.append({"role": "assistant", "content": f"answer {i}"})
    return msgs


def key(
    *,
    mode: StickinessKey = StickinessKey.SESSION,
    session_header: str | None = None,
    user_header: str | None = None,
    body: dict[str, Any] | None = None,
    user: str | None = None,
    messages: list[dict[str, Any]] | None = None,
) -> tuple[str, KeySource]:
    k = session_key(
        Stickiness(key=mode),
        session_header=session_header,
        user_header=user_header,
        body=body or {},
        user=user,
        messages=messages if messages is not None else conv("hello"),
        request_id="rid-1",
    )
    return k.key, k.source


def test_session_sources_in_order() -> None:
    body = {"prompt_cache_key": "pck"}
    assert key(session_header="s1", body=body, user="u")[1] is KeySource.HEADER
    assert key(body=body, user="u")[1] is KeySource.PROMPT_CACHE_KEY
    assert key(user="u") == ("u", KeySource.USER)
    assert key()[1] is KeySource.FINGERPRINT
    assert key(messages=[SYSTEM])[1] is KeySource.REQUEST_ID


def test_user_key_is_unchanged_from_user_mode() -> None:
    """Switching a policy from user to session keeps users who send `user` in their arm."""
    assert key(user="alice")[0] == key(mode=StickinessKey.USER, user="alice")[0]


def test_header_and_cache_key_do_not_collide_with_users() -> None:
    assert key(session_header="alice")[0] != key(user="alice")[0]
    assert key(body={"prompt_cache_key": "alice"})[0] != key(user="alice")[0]


def test_fingerprint_is_the_same_for_every_turn_of_a_conversation() -> None:
    first = conv("my refund was refused, the contract says otherwise")
    later = conv("my refund was refused, the contract says otherwise", "ok thanks", "where?")
    later.append({"role": "assistant", "tool_calls": [{"id": "x"}], "content": None})
    later.append({"role": "tool", "tool_call_id": "x", "content": "{}"})
    assert fingerprint(first) == fingerprint(later)
    assert key(messages=first) == key(messages=later)


def test_fingerprint_differs_between_conversations() -> None:
    assert fingerprint(conv("where is my order")) != fingerprint(conv("reset my password"))
    other_system = [{"role": "system", "content": "Another product."}, *conv("hi")[1:]]
    assert fingerprint(other_system) != fingerprint(conv("hi"))


def test_fingerprint_holds_no_text() -> None:
    fp = fingerprint(conv("my secret account number is 12345"))
    assert fp is not None and "12345" not in fp and fp.startswith("fp:")


def test_fingerprint_reads_text_parts() -> None:
    parts: list[dict[str, Any]] = [
        SYSTEM,
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
    ]
    assert fingerprint(parts) == fingerprint(conv("hello"))


@pytest.mark.parametrize("bad", ["", "x" * 600, 17, None])
def test_unusable_header_or_cache_key_falls_through(bad: Any) -> None:
    assert key(session_header=bad if isinstance(bad, str) else None, user="u")[1] is KeySource.USER
    assert key(body={"prompt_cache_key": bad}, user="u")[1] is KeySource.USER


@pytest.mark.parametrize(
    ("mode", "user", "header", "expected"),
    [
        (StickinessKey.USER, "u1", "h1", ("u1", KeySource.USER)),
        (StickinessKey.USER, None, "h1", ("h1", KeySource.HEADER)),
        (StickinessKey.USER, None, None, ("rid-1", KeySource.REQUEST_ID)),
        (StickinessKey.HEADER, "u1", "h1", ("h1", KeySource.HEADER)),
        (StickinessKey.HEADER, "u1", None, ("rid-1", KeySource.REQUEST_ID)),
        (StickinessKey.REQUEST_ID, "u1", "h1", ("rid-1", KeySource.REQUEST_ID)),
    ],
)
def test_earlier_modes_keep_their_behaviour(
    mode: StickinessKey, user: str | None, header: str | None, expected: tuple[str, KeySource]
) -> None:
    assert key(mode=mode, user=user, user_header=header) == expected
