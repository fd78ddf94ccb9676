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

The two calls run concurrently; the judge sees what the prompt template puts in front of
it: the question, the two answers and, when the template asks for it and the request
carried one, the reference answer (:mod:`tierguard.api.judgeprompt`; the template is the
built-in one unless ``judge.promptConfigMapRef`` names one, frozen per revision).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from tierguard.api import judgeprompt as jp
from tierguard.api.metrics import (
    VERDICT_BETTER,
    VERDICT_ERROR,
    VERDICT_INCONSISTENT,
    VERDICT_TIE,
    VERDICT_WORSE,
)
from tierguard.router.shadow import answer_text

#: Markers the prompt uses and the reply must carry (the fake judge keys on them too).
A_BETTER: str = jp.A_BETTER
B_BETTER: str = jp.B_BETTER
TIE: str = jp.TIE

#: The built-in template (``judge.promptConfigMapRef`` unset).
PAIRWISE_PROMPT = jp.BUILTIN_TEMPLATE

_TOKEN = re.compile(r"\[\[\s*(A|B|TIE)\s*\]\]", re.IGNORECASE)
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


def pairwise_prompt(
    question: str,
    a: str,
    b: str,
    reference: str | None = None,
    template: str = PAIRWISE_PROMPT,
) -> str:
    """The judge request's text for one order (``a`` shown first)."""
    return jp.render(template, question, a, b, reference)


class PairwiseJudge:
    """``complete`` sends a chat body to the judge model and returns its JSON answer
    (raising on failure or timeout). ``template``: a checked prompt template
    (:func:`tierguard.api.judgeprompt.check_template`)."""

    pairwise: ClassVar[bool] = True

    def __init__(
        self,
        complete: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
        template: str = PAIRWISE_PROMPT,
    ) -> None:
        self._complete = complete
        self.template = template

    async def _ask(self, question: str, a: str, b: str, reference: str | None) -> str | None:
        prompt = pairwise_prompt(question, a, b, reference, self.template)
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

    async def judge(
        self, question: str, candidate: str, baseline: str, reference: str | None = None
    ) -> str:
        first, second = await asyncio.gather(
            self._ask(question, candidate, baseline, reference),
            self._ask(question, baseline, candidate, reference),
        )
        return combine(first, second)
