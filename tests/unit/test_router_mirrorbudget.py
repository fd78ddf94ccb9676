"""Pre-flight's per-process budget (router/mirrorbudget.py): worst-case cost bounds,
reservations that never let committed spend exceed the share, and the epoch rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from tierguard.api.policy import Pricing
from tierguard.router.mirrorbudget import (
    MIRROR_MAX_OUTPUT_TOKENS,
    BudgetLedger,
    MirrorBudget,
    candidate_bound,
    judge_bound,
    output_limit,
)
from tierguard.router.pairwise import JUDGE_MAX_TOKENS, pairwise_prompt

PRICE = Pricing(input_per_million_tokens=3.0, output_per_million_tokens=15.0)


def test_the_candidate_bound_covers_any_bill_the_call_can_produce() -> None:
    body = {"messages": [{"role": "user", "content": "héllo wörld " * 50}], "max_tokens": 300}
    bound = candidate_bound(PRICE, body)
    # a prompt of at most one token per byte plus the template, and 300 output tokens
    text_bytes = len(("héllo wörld " * 50).encode())
    worst = ((text_bytes + 100) * 3.0 + 300 * 15.0) / 1e6
    assert bound >= worst * 0.99 and bound < 2 * worst
    assert output_limit({}) == MIRROR_MAX_OUTPUT_TOKENS
    assert output_limit({"max_tokens": 10**6}) == MIRROR_MAX_OUTPUT_TOKENS
    assert output_limit({"max_completion_tokens": 50, "max_tokens": 70}) == 50
    cached = Pricing(
        input_per_million_tokens=1.0,
        output_per_million_tokens=0.0,
        cached_input_per_million_tokens=2.0,
    )
    assert candidate_bound(cached, body) > candidate_bound(
        Pricing(input_per_million_tokens=1.0), body
    )


def test_the_judge_bound_counts_both_orders_and_their_output_limit() -> None:
    prompts = [pairwise_prompt("q?", "a", "b"), pairwise_prompt("q?", "b", "a")]
    one = judge_bound(PRICE, prompts[:1])
    assert judge_bound(PRICE, prompts) == pytest.approx(2 * one)
    assert one > JUDGE_MAX_TOKENS * 15.0 / 1e6


def test_a_reservation_that_does_not_fit_is_refused() -> None:
    b = MirrorBudget(1.0)
    assert b.try_reserve(0.6) and not b.try_reserve(0.6) and b.refused == 1
    b.settle(0.6, 0.1)
    assert b.committed == pytest.approx(0.1) and b.try_reserve(0.6)
    assert b.left == pytest.approx(0.3)
    with pytest.raises(ValueError):
        b.try_reserve(-1.0)


@given(
    hs.lists(
        hs.tuples(hs.floats(0.0, 0.5), hs.floats(0.0, 1.0), hs.booleans()),
        min_size=1,
        max_size=60,
    )
)
def test_committed_spend_never_exceeds_the_share_in_flight_included(
    calls: list[tuple[float, float, bool]],
) -> None:
    """Calls reserve their bound, some end (billing a share of it) while others are
    still in flight: the committed total and the billed total stay within the share."""
    b = MirrorBudget(1.0)
    running: list[float] = []
    billed = 0.0
    for bound, used, ends_one in calls:
        if b.try_reserve(bound):
            running.append(bound)
        if ends_one and running:
            reserved = running.pop(0)
            billed += reserved * used
            b.settle(reserved, reserved * used)
        assert b.committed <= 1.0 + 1e-9
        assert billed + sum(running) <= 1.0 + 1e-9


def test_a_process_never_uses_the_epoch_of_its_first_configuration() -> None:
    late = BudgetLedger()
    late.apply("rev/0/1", 5.0)  # started after the epoch was issued: not counted in it
    assert late.skipped and late.budget is not None and late.budget.allowance == 0.0
    late.apply("rev/0/1", 5.0)  # a reload of the same epoch changes nothing
    assert late.budget.allowance == 0.0
    late.apply("rev/0/2", 2.0)  # the next epoch is its own
    assert not late.skipped and late.budget.allowance == 2.0

    early = BudgetLedger()
    early.apply(None, 0.0)  # no pre-flight yet: no budget, nothing mirrored by the operator
    assert early.budget is None
    early.apply("rev/0/1", 5.0)
    budget = early.budget
    assert budget is not None and budget.allowance == 5.0
    assert budget.try_reserve(4.0)
    early.apply("rev/0/1", 5.0)
    assert early.budget is budget and budget.left == pytest.approx(1.0)
