"""The pairwise shadow judge (``router.shadow.judge.mode: Pairwise``).

For one shadowed request the judge model is asked twice which of two answers is better,
once with the canary's answer as A and the baseline's as B, once swapped, on a 3-way
scale with a strict reply format: ``[[A]]``, ``[[B]]`` or ``[[TIE]]`` (exactly one of
them anywhere in the reply; none, or more than one different, is unreadable). From the
canary's side:

* both orders say the same (canary better, worse, or tie): that verdict;
* the verdict changes with the order: ``inconsistent``, a tie for the gate and a judge
  health figure (a judge that prefers a position, or answers at random, changes often);
* a call failed, timed out (the judge model's ``timeout``) or its reply is unreadable:
  ``error``, missing data -- never a loss for either side.

The two calls run concurrently; the judge sees the question and the two answers only.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from tierguard.api.metrics import (
    VERDICT_BETTER,
    VERDICT_ERROR,
    VERDICT_INCONSISTENT,
    VERDICT_TIE,
    VERDICT_WORSE,
)
from tierguard.router.shadow import answer_text

#: Markers the prompt uses and the reply must carry (the fake judge keys on them too).
A_BETTER: str = "[[A]]"
B_BETTER: str = "[[B]]"
TIE: str = "[[TIE]]"

PAIRWISE_PROMPT = (
    "You are an impartial judge. Compare two answers to the same question and decide "
    "which one is better: more correct, more complete and more helpful. Do not let the "
    "order of the answers or their length influence you. Reply with exactly one verdict: "
    f"{A_BETTER} if Answer A is better, {B_BETTER} if Answer B is better, {TIE} if they are "
    "equally good or equally bad.\n\nQuestion:\n{question}\n\nAnswer A:\n{a}\n\nAnswer B:\n{b}"
)

_TOKEN = re.compile(r"\[\[\s*(A|B|TIE)\s*\]\]", re.IGNORECASE)
_LIMIT = 4000
#: output tokens of one judge call: a verdict marker with room for a short reason (a
#: bound on its cost: pre-flight reserves it before calling, router/mirrorbudget.py)
JUDGE_MAX_TOKENS = 512


def parse_pairwise(text: str) -> str | None:
    """``A``, ``B`` or ``TIE`` when the reply carries exactly one distinct verdict
    marker; None (unreadable) otherwise."""
    found = {m.upper() for m in _TOKEN.findall(text)}
    return found.pop() if len(found) == 1 else None


#: from the canary's side, per order: canary as A (first) or as B (second)
_AS_A = {"A": VERDICT_BETTER, "B": VERDICT_WORSE, "TIE": VERDICT_TIE}
_AS_B = {"A": VERDICT_WORSE, "B": VERDICT_BETTER, "TIE": VERDICT_TIE}


def combine(canary_first: str | None, canary_second: str | None) -> str:
    """The pair's verdict from the two parsed replies (``canary_first``: the canary's
    answer was A; ``canary_second``: it was B)."""
    if canary_first is None or canary_second is None:
        return VERDICT_ERROR
    v1, v2 = _AS_A[canary_first], _AS_B[canary_second]
    return v1 if v1 == v2 else VERDICT_INCONSISTENT


def pairwise_prompt(question: str, a: str, b: str) -> str:
    return PAIRWISE_PROMPT.format(question=question[:_LIMIT], a=a[:_LIMIT], b=b[:_LIMIT])


class PairwiseJudge:
    """``complete`` sends a chat body to the judge model and returns its JSON answer
    (raising on failure or timeout)."""

    pairwise: ClassVar[bool] = True

    def __init__(self, complete: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> None:
        self._complete = complete

    async def _ask(self, question: str, a: str, b: str) -> str | None:
        prompt = pairwise_prompt(question, a, b)
        try:
            payload = await self._complete(
                {
                    "messages": [{"role": "user", "content": prompt}],
                    "temperature": 0,
                    "max_tokens": JUDGE_MAX_TOKENS,
                }
            )
        except asyncio.CancelledError:
            raise
        except Exception:  # a judge failure is missing data, never a crash or a loss
            return None
        return parse_pairwise(answer_text(payload))

    async def judge(self, question: str, candidate: str, baseline: str) -> str:
        first, second = await asyncio.gather(
            self._ask(question, candidate, baseline), self._ask(question, baseline, candidate)
        )
        return combine(first, second)
