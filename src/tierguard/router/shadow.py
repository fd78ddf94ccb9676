"""Shadow evaluation: a sample of canary answers is compared with what the baseline
would have said, by a pluggable judge, in the background (the client never waits).

Judges:

* :class:`SimilarityJudge` (``type: Similarity``, built in): Jaccard similarity of the two
  answers' word sets; at or above ``threshold`` the answers agree. A **smoke signal**,
  not a quality measure: two correct answers from different LLMs often share few words
  and a wrong answer can reuse the question's words, so its disagreement rate mostly
  measures style. It catches a candidate that answers something else entirely (wrong
  language, empty or truncated answers, a broken prompt); gate quality on an LLM judge
  or on ThumbsDown.
* :class:`LLMJudge` (``type: LLM``, ``mode: Agreement``, the default): asks one of the
  policy's models whether the two answers agree in substance; it must reply AGREE or
  DISAGREE.
* :class:`~tierguard.router.pairwise.PairwiseJudge` (``type: LLM``, ``mode: Pairwise``):
  which answer is better, asked in both orders (:mod:`tierguard.router.pairwise`).

A failed shadow call or judge gives verdict ``error``, which the operator does not count
as quality (only agree/disagree are).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol

from tierguard.api.metrics import VERDICT_AGREE, VERDICT_DISAGREE, VERDICT_ERROR
from tierguard.router.split import BUCKETS, bucket

_WORD = re.compile(r"\w+")


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of lower-cased word sets, in [0, 1] (two empty answers: 1)."""
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not wa and not wb:
        return 1.0
    return len(wa & wb) / len(wa | wb)


def should_shadow(request_id: str, sample_rate: float) -> bool:
    """Deterministic sampling by request id (reproducible in tests and the lab). A rate
    of 0 (or 1) needs no hash: no bucket is below 0, every bucket is below ``BUCKETS``."""
    cut = round(sample_rate * BUCKETS)
    if cut <= 0:
        return False
    return cut >= BUCKETS or bucket("shadow:", request_id) < cut


class Judge(Protocol):
    #: verdicts are worse/better/tie/inconsistent/error (shadow_pairwise_total), not
    #: agree/disagree/error (shadow_judgements_total)
    pairwise: ClassVar[bool]

    async def judge(
        self, question: str, candidate: str, baseline: str, reference: str | None = None
    ) -> str:
        """The verdict: a label value of the judge's metric. ``reference``: the
        request's reference answer (only a pairwise judge's template may use it)."""
        ...


class SimilarityJudge:
    pairwise: ClassVar[bool] = False

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    async def judge(
        self, question: str, candidate: str, baseline: str, reference: str | None = None
    ) -> str:
        return (
            VERDICT_AGREE
            if similarity(candidate, baseline) >= self.threshold
            else (VERDICT_DISAGREE)
        )


JUDGE_PROMPT = (
    "You compare two answers to the same question. Reply with exactly one word: AGREE if "
    "they say the same thing in substance and are equally correct and helpful, DISAGREE "
    "otherwise.\n\nQuestion:\n{question}\n\nAnswer A:\n{a}\n\nAnswer B:\n{b}"
)


def parse_llm_verdict(text: str) -> str:
    """AGREE / DISAGREE anywhere at the start of the reply; anything else is an error."""
    words = _WORD.findall(text.upper())
    if words and words[0] == "DISAGREE":
        return VERDICT_DISAGREE
    if words and words[0] == "AGREE":
        return VERDICT_AGREE
    return VERDICT_ERROR


class LLMJudge:
    """``complete`` sends a chat body to the judge model and returns its JSON answer."""

    pairwise: ClassVar[bool] = False

    def __init__(self, complete: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> None:
        self._complete = complete

    async def judge(
        self, question: str, candidate: str, baseline: str, reference: str | None = None
    ) -> str:
        prompt = JUDGE_PROMPT.format(
            question=question[:4000], a=candidate[:4000], b=baseline[:4000]
        )
        try:
            payload = await self._complete(
                {"messages": [{"role": "user", "content": prompt}], "temperature": 0}
            )
            return parse_llm_verdict(answer_text(payload))
        except Exception:  # a judge failure is a verdict of its own, never a crash
            return VERDICT_ERROR


def answer_text(payload: dict[str, Any]) -> str:
    """The first choice's message content of a chat completion ('' when absent)."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""
