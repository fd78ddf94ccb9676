"""The request path's pure records: pricing an upstream usage object (the one place
cost is computed) and the decision-log line."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tierguard.api.policy import Pricing
from tierguard.router.decision_log import DecisionRecord
from tierguard.router.records import Usage, usage_cost

PRICING = Pricing.model_validate({"inputPerMillionTokens": 10, "outputPerMillionTokens": 30})


def test_usage_is_priced_per_million_tokens() -> None:
    u = usage_cost(PRICING, {"prompt_tokens": 1000, "completion_tokens": 2000})
    assert (u.prompt_tokens, u.completion_tokens) == (1000, 2000)
    assert math.isclose(u.cost_usd, (1000 * 10 + 2000 * 30) / 1e6)


def test_no_usage_costs_nothing() -> None:
    assert usage_cost(PRICING, None) == Usage()
    assert usage_cost(PRICING, {}) == Usage()


@given(
    st.dictionaries(
        st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens"]),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=5)
        | st.lists(st.integers(), max_size=2),
    )
)
def test_garbage_usage_never_raises_nor_goes_negative(usage: dict[str, Any]) -> None:
    u = usage_cost(PRICING, usage)
    assert u.prompt_tokens >= 0 and u.completion_tokens >= 0
    assert math.isfinite(u.cost_usd) and u.cost_usd >= 0


def _record(**extra: Any) -> DecisionRecord:
    return DecisionRecord(
        ts=1.0,
        request_id="r",
        user_hash=None,
        policy="p",
        revision="r1",
        tier="simple",
        probabilities=None,
        tier_source="classifier",
        bucket=3,
        arm="control",
        stream=False,
        model=None,
        outcome="error",
        status=502,
        latency_s=0.1,
        chain=["big:server_error"],
        escalations=[],
        **extra,
    )


def test_decision_record_leaves_out_unset_optional_fields() -> None:
    out = _record(error="upstream_failed").to_json()
    assert out["error"] == "upstream_failed" and out["model"] is None
    assert not {"decision_id", "ttft_s", "tokens", "cost_usd", "prompt"} & set(out)
    served = _record(decision_id="chatcmpl-x", cost_usd=0.0, tokens={"prompt": 0}).to_json()
    assert served["decision_id"] == "chatcmpl-x" and served["cost_usd"] == 0.0


def test_cached_prompt_tokens_are_priced_at_the_cached_price() -> None:
    pricing = Pricing(
        input_per_million_tokens=10, output_per_million_tokens=30, cached_input_per_million_tokens=1
    )
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 800},
    }
    assert usage_cost(pricing, usage).cost_usd == (200 * 10 + 800 * 1 + 100 * 30) / 1e6
    no_cached_price = Pricing(input_per_million_tokens=10, output_per_million_tokens=30)
    assert usage_cost(no_cached_price, usage).cost_usd == (1000 * 10 + 100 * 30) / 1e6
    garbage = {**usage, "prompt_tokens_details": {"cached_tokens": 10**9}}
    assert usage_cost(pricing, garbage).cost_usd == (1000 * 1 + 100 * 30) / 1e6
