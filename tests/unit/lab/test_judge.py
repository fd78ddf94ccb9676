"""The lab's pairwise judge: its fake provider profile, its policy parts and the
report's verdict table."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tierguard.api.resource import RoutingPolicy
from tierguard.lab import judge as lj
from tierguard.lab import lab_policy as lp
from tierguard.lab import scenarios as sc
from tierguard.lab.fakeanswers import answer_words
from tierguard.lab.fakeprofile import FakeProfile
from tierguard.lab.fakeprovider import create_fake_app
from tierguard.operator.gatespecs import gate_specs
from tierguard.router.pairwise import PairwiseJudge

GOOD = " ".join(answer_words("m1", "where is my invoice?", True, 12))
BAD = " ".join(answer_words("m2", "where is my invoice?", False, 12))


def test_judge_profile_is_a_valid_fake_profile_with_the_lab_knobs() -> None:
    profile = FakeProfile.model_validate(lj.judge_fake_profile(seed=3))
    behaviour = profile.behaviour(lj.JUDGE_UPSTREAM_MODEL)
    assert behaviour.judge_knobs() == lj.JUDGE_KNOBS
    assert behaviour.latency_median_s == lj.JUDGE_LATENCY_MS / 1000.0
    assert behaviour.error_rate == 0 and behaviour.hang_rate == 0


async def test_the_lab_judge_provider_judges_the_routers_pairs_mostly_truthfully() -> None:
    """The judge provider with the lab's profile, asked by the router's pairwise judge:
    a bad canary answer is mostly 'worse', two good answers never a loss."""
    client = TestClient(TestServer(create_fake_app(FakeProfile.model_validate(
        lj.judge_fake_profile() | {"models": {"*": {
            **lj.judge_fake_profile()["models"]["*"], "latency_median_s": 0.0}}}
    ))))  # fmt: skip
    await client.start_server()

    async def complete(body: dict[str, Any]) -> dict[str, Any]:
        r = await client.post(
            "/v1/chat/completions", json={**body, "model": lj.JUDGE_UPSTREAM_MODEL}
        )
        assert r.status == 200
        return dict(await r.json())

    judge = PairwiseJudge(complete)
    try:
        bad_canary = [await judge.judge("q", BAD, GOOD) for _ in range(60)]
        both_good = [await judge.judge("q", GOOD, GOOD) for _ in range(60)]
    finally:
        await client.close()
    assert bad_canary.count("worse") >= 45 and "better" not in bad_canary
    assert "error" not in bad_canary + both_good
    assert both_good.count("tie") >= 45


def _policy() -> dict[str, Any]:
    return lp.lab_policy(
        sc.get("pareto-trap"),
        cheap_url="http://127.0.0.1:1/v1",
        capable_url="http://127.0.0.1:2/v1",
        judge_url="http://127.0.0.1:4/v1",
        prometheus_url="http://127.0.0.1:3",
    )


def test_lab_policy_judges_the_simple_tier_pairwise_with_its_own_judge_model() -> None:
    body = _policy()
    policy = RoutingPolicy.from_k8s(body)
    judge = policy.spec.router.shadow.judge
    assert (judge.type, judge.mode, judge.model) == ("LLM", "Pairwise", lj.JUDGE)
    models = {m.name: m for m in policy.spec.models}
    jm = models[lj.JUDGE]
    assert jm.base_url == "http://127.0.0.1:4/v1"
    assert jm.upstream_model == lj.JUDGE_UPSTREAM_MODEL
    assert jm.api_key_secret_ref is not None and jm.api_key_secret_ref.key == lj.JUDGE
    assert jm.pricing is not None and jm.pricing.input_per_million_tokens > 0
    # never a model of the route it judges
    route = policy.spec.route("simple")
    assert lj.JUDGE not in {route.baseline, route.candidate, *route.fallbacks}
    # the operator makes the ShadowDisagreement SLO a paired gate at allowedDrop, FAIL
    # beyond half of it
    pw = [g for g in gate_specs(policy.spec) if g.pairwise]
    assert [(g.tier, g.signal.value) for g in pw] == [("simple", "ShadowDisagreement")]
    assert pw[0].allowed == lj.PAIRWISE_ALLOWED_DROP
    assert pw[0].fail_margin == lj.PAIRWISE_ALLOWED_DROP / 2
    signals = {g.signal.value for g in gate_specs(policy.spec)}
    assert {"ErrorRate", "Latency"} <= signals


def test_verdict_table_lists_pairwise_gates_only() -> None:
    status = {
        "tiers": [
            {
                "tier": "simple",
                "signals": [
                    {"signal": "ErrorRate", "verdict": "Pass"},
                    {
                        "signal": "ShadowDisagreement",
                        "verdict": "Fail",
                        "judge": {
                            "judged": 300,
                            "worse": 31,
                            "better": 2,
                            "ties": 267,
                            "inconsistent": 12,
                            "errors": 1,
                            "healthy": True,
                        },
                    },
                ],
            }
        ]
    }
    rows = lj.verdict_table(status)
    assert len(rows) == 3
    assert rows[2] == "| simple | ShadowDisagreement | 300 | 31 | 2 | 267 | 12 | 1 | healthy |"
    assert lj.verdict_table({"tiers": [{"tier": "simple", "signals": []}]}) == []
