"""The pairwise shadow judge: strict reply parsing, both orders, inconsistency as a tie,
failures as missing data."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tierguard.router.pairwise import PairwiseJudge, combine, parse_pairwise


@pytest.mark.parametrize(
    ("reply", "parsed"),
    [
        ("[[A]]", "A"),
        ("Verdict: [[b]]", "B"),
        ("[[ TIE ]]\nBoth are equally wrong.", "TIE"),
        ("[[A]] ... on reflection still [[A]]", "A"),
        ("[[A]] or maybe [[B]]", None),  # two different verdicts: unreadable
        ("A is better", None),
        ("", None),
        ("[[C]]", None),
    ],
)
def test_parse_is_strict(reply: str, parsed: str | None) -> None:
    assert parse_pairwise(reply) == parsed


@pytest.mark.parametrize(
    ("first", "second", "verdict"),
    [
        ("A", "B", "better"),  # canary as A wins, canary as B wins
        ("B", "A", "worse"),
        ("TIE", "TIE", "tie"),
        ("A", "A", "inconsistent"),  # the first position wins both times
        ("B", "B", "inconsistent"),
        ("A", "TIE", "inconsistent"),
        (None, "A", "error"),
        ("B", None, "error"),
    ],
)
def test_combine_from_the_canary_side(first: str | None, second: str | None, verdict: str) -> None:
    assert combine(first, second) == verdict


def _content(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


def _answer(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


async def test_both_orders_are_asked_and_a_fair_judge_is_consistent() -> None:
    seen: list[str] = []

    async def fair(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(_content(body))
        a_part = _content(body).split("Answer A:")[1].split("Answer B:")[0]
        return _answer("[[A]]" if "GOOD" in a_part else "[[B]]")

    judge = PairwiseJudge(fair)
    assert await judge.judge("q?", "GOOD answer", "BAD answer") == "better"
    assert await judge.judge("q?", "BAD answer", "GOOD answer") == "worse"
    assert len(seen) == 4
    first, second = seen[0], seen[1]
    assert "Answer A:\nGOOD answer" in first and "Answer B:\nBAD answer" in first
    assert "Answer A:\nBAD answer" in second and "Answer B:\nGOOD answer" in second
    assert "[[TIE]]" in first and "Question:\nq?" in first


async def test_a_position_biased_judge_gives_ties_not_wins() -> None:
    async def first_always(body: dict[str, Any]) -> dict[str, Any]:
        return _answer("[[A]]")

    assert await PairwiseJudge(first_always).judge("q", "x", "y") == "inconsistent"


async def test_failures_are_missing_data() -> None:
    async def broken(body: dict[str, Any]) -> dict[str, Any]:
        raise TimeoutError("judge stalled")

    async def rambling(body: dict[str, Any]) -> dict[str, Any]:
        return _answer("Both answers have merit.")

    async def no_choices(body: dict[str, Any]) -> dict[str, Any]:
        return {"oops": True}

    for complete in (broken, rambling, no_choices):
        assert await PairwiseJudge(complete).judge("q", "x", "y") == "error"


async def test_cancellation_propagates() -> None:
    started = asyncio.Event()

    async def stalled(body: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(3600)
        return _answer("[[A]]")

    task = asyncio.create_task(PairwiseJudge(stalled).judge("q", "x", "y"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
