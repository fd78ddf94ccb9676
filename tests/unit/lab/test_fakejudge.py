"""The fake provider's judge mode: truthful from the hidden correctness, with the
configured imperfections, and readable by the router's pairwise judge."""

from __future__ import annotations

import random
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tierguard.lab.fakeanswers import answer_words, judge_reply, reads_as_bad
from tierguard.lab.fakejudge import JudgeKnobs, pairwise_reply, split_pairwise
from tierguard.lab.fakeprofile import FakeProfile, ModelBehaviour
from tierguard.lab.fakeprovider import create_fake_app
from tierguard.router.pairwise import PairwiseJudge, pairwise_prompt, parse_pairwise

GOOD = " ".join(answer_words("m1", "where is my order?", True, 12))
BAD = " ".join(answer_words("m2", "where is my order?", False, 12))


def _parsed(a: str, b: str, knobs: JudgeKnobs, seed: int = 1) -> str | None:
    reply = pairwise_reply(a, b, reads_as_bad, knobs, random.Random(seed))
    return parse_pairwise(reply)


def test_the_prompt_the_router_sends_is_recognised() -> None:
    assert split_pairwise(pairwise_prompt("q", GOOD, BAD)) == (GOOD, BAD)
    # the agreement prompt is not a pairwise one
    assert split_pairwise("Answer A:\nx\n\nAnswer B:\ny") is None
    assert judge_reply("Answer A:\nx\n\nAnswer B:\ny") == "AGREE"


def test_a_truthful_judge_reads_the_hidden_correctness() -> None:
    k = JudgeKnobs()
    assert not reads_as_bad(GOOD) and reads_as_bad(BAD)
    assert _parsed(GOOD, BAD, k) == "A"
    assert _parsed(BAD, GOOD, k) == "B"
    assert _parsed(GOOD, GOOD, k) == "TIE"
    assert _parsed(BAD, BAD, k) == "TIE"


@pytest.mark.parametrize(
    ("knobs", "expected"),
    [
        (JudgeKnobs(position_bias=0.3), {"A": 0.3, "TIE": 0.7}),
        (JudgeKnobs(noise=1.0), {"A": 1 / 3, "B": 1 / 3, "TIE": 1 / 3}),
        (JudgeKnobs(unreadable_rate=0.2), {None: 0.2, "TIE": 0.8}),
    ],
)
def test_imperfections_have_the_configured_rates(
    knobs: JudgeKnobs, expected: dict[str | None, float]
) -> None:
    rng = random.Random(7)
    n = 6000
    counts: dict[str | None, int] = {}
    for _ in range(n):  # two good answers: the truth is a tie
        v = parse_pairwise(pairwise_reply(GOOD, GOOD, reads_as_bad, knobs, rng))
        counts[v] = counts.get(v, 0) + 1
    assert set(counts) == set(expected)
    for key, share in expected.items():
        assert abs(counts[key] / n - share) < 0.03, (key, counts)


def test_length_bias_names_the_longer_answer() -> None:
    longer = GOOD + " and a few more words"
    assert _parsed(GOOD, longer, JudgeKnobs(length_bias=1.0)) == "B"
    assert _parsed(longer, GOOD, JudgeKnobs(length_bias=1.0)) == "A"


async def _judge_through_the_fake(
    **behaviour: Any,
) -> tuple[list[str], TestClient[web.Request, web.Application]]:
    app = create_fake_app(
        FakeProfile(models={"*": ModelBehaviour(latency_median_s=0.0, **behaviour)}, seed=3)
    )
    client = TestClient(TestServer(app))
    await client.start_server()

    async def complete(body: dict[str, Any]) -> dict[str, Any]:
        r = await client.post("/v1/chat/completions", json={**body, "model": "judge-1"})
        if r.status != 200:
            raise RuntimeError(f"judge answered {r.status}")
        return dict(await r.json())

    judge = PairwiseJudge(complete)
    verdicts = [
        await judge.judge("q", GOOD, BAD),
        await judge.judge("q", BAD, GOOD),
        await judge.judge("q", GOOD, GOOD),
    ]
    return verdicts, client


async def test_the_router_judge_and_the_fake_judge_speak_the_same_format() -> None:
    verdicts, client = await _judge_through_the_fake()
    await client.close()
    assert verdicts == ["better", "worse", "tie"]
    verdicts, client = await _judge_through_the_fake(judge_position_bias=1.0)
    await client.close()
    assert verdicts == ["inconsistent", "inconsistent", "inconsistent"]
    verdicts, client = await _judge_through_the_fake(error_rate=1.0)
    await client.close()
    assert verdicts == ["error", "error", "error"]
