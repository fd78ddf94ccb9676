"""Session tiers: max over user messages, monotone, each message classified once."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tierguard.classifier.runtime import Classification
from tierguard.router.tiering import TierCache, has_new_user_text, session_tier, user_texts

TIERS = ("simple", "medium", "complex")


class Counting:
    """A keyword classifier that counts how many texts it scored."""

    def __init__(self) -> None:
        self.scored = 0

    def __call__(self, texts: list[str]) -> list[Classification]:
        self.scored += len(texts)
        out = []
        for t in texts:
            tier = "complex" if "legal" in t else "medium" if "compare" in t else "simple"
            out.append(Classification(tier, {x: float(x == tier) for x in TIERS}))
        return out


def tier_of(texts: list[str], cache: TierCache | None = None, *, last_n: int = 0) -> str:
    return session_tier(texts, TIERS, Counting(), cache or TierCache(100), last_n=last_n).tier


def test_a_simple_follow_up_keeps_the_complex_tier() -> None:
    texts = ["legal analysis of my refund dispute", "ok thanks, and where is my order?"]
    assert tier_of(texts) == "complex"
    assert tier_of(texts[1:]) == "simple"  # what per-request tiering would have done


def test_previous_tier_reports_the_change() -> None:
    st_ = session_tier(
        ["where is my order", "legal analysis please"], TIERS, Counting(), TierCache(9)
    )
    assert (st_.previous, st_.tier) == ("simple", "complex")
    first = session_tier(["where is my order"], TIERS, Counting(), TierCache(9))
    assert first.previous is None


def test_each_message_is_classified_once() -> None:
    clf, cache = Counting(), TierCache(100)
    convo: list[str] = []
    for i in range(30):
        convo.append(f"question number {i}")
        result = session_tier(convo, TIERS, clf, cache)
        assert result.classified == 1  # only the new message
    assert clf.scored == 30


def test_without_cache_cost_grows_with_the_conversation() -> None:
    clf = Counting()
    convo = [f"q{i}" for i in range(10)]
    for n in range(1, 11):
        session_tier(convo[:n], TIERS, clf, TierCache(0))
    assert clf.scored == sum(range(1, 11))  # every message again on every turn


def test_cache_is_bounded_lru() -> None:
    cache = TierCache(2)
    clf = Counting()
    session_tier(["a"], TIERS, clf, cache)
    session_tier(["b"], TIERS, clf, cache)
    session_tier(["a"], TIERS, clf, cache)  # a is now the most recent
    session_tier(["c"], TIERS, clf, cache)  # evicts b
    assert len(cache) == 2
    before = clf.scored
    session_tier(["a"], TIERS, clf, cache)
    assert clf.scored == before
    session_tier(["b"], TIERS, clf, cache)
    assert clf.scored == before + 1


def test_last_n_bounds_the_window() -> None:
    texts = ["legal analysis", "where is my order", "reset password"]
    assert tier_of(texts) == "complex"
    assert tier_of(texts, last_n=2) == "simple"
    assert tier_of(texts, last_n=3) == "complex"


def test_no_user_text_gets_the_empty_tier() -> None:
    assert tier_of([]) == "simple"
    assert session_tier([], TIERS, Counting(), TierCache(1), empty_tier="complex").tier == "complex"


def test_the_same_answer_with_a_cold_cache() -> None:
    """Another replica (empty cache) reaches the same tier as the one that saw it all."""
    warm = TierCache(100)
    convo = ["where is my order", "compare plans", "thanks"]
    for n in range(1, 4):
        session_tier(convo[:n], TIERS, Counting(), warm)
    assert tier_of(convo, warm) == tier_of(convo, TierCache(100))


words = st.sampled_from(["legal", "compare", "order", "thanks", "where"])


@given(st.lists(st.lists(words, min_size=1, max_size=3).map(" ".join), min_size=1, max_size=12))
def test_tiers_are_monotone_over_a_conversation(texts: list[str]) -> None:
    cache = TierCache(50)
    ranks = [TIERS.index(tier_of(texts[:n], cache)) for n in range(1, len(texts) + 1)]
    assert ranks == sorted(ranks)


def test_user_texts_and_new_text() -> None:
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": "long text"},
    ]
    assert user_texts(msgs, 4) == ["hi", "long"]
    assert has_new_user_text(msgs)
    assert not has_new_user_text([*msgs, {"role": "tool", "tool_call_id": "1", "content": "r"}])
