"""The fake provider's judge mode: answers the router's pairwise judge prompt
(:mod:`tierguard.router.pairwise`) from the fake models' hidden correctness.

A fake model's good answer is the prompt's reference text and a bad one is filler
(:func:`tierguard.lab.fakeanswers.reads_as_bad` sees which), so the judge knows the
truth: the good answer of a (good, bad) pair is better, two good or two bad answers are
a tie. Imperfections, per judge model (:class:`JudgeKnobs`, fields of the model's
behaviour in the fake profile), drawn per call so the two orders of one pair can differ:

``judge_position_bias``
    Share of replies that name the first answer (``[[A]]``) whatever the answers are.
``judge_length_bias``
    Share of replies that name the longer answer (by words; a tie when equally long).
``judge_noise``
    Share of replies drawn uniformly from ``[[A]]``, ``[[B]]``, ``[[TIE]]`` (1.0: a judge
    answering at random).
``judge_unreadable_rate``
    Share of replies without any verdict marker (the router counts them as errors).

Judge errors and timeouts are the fake's usual ``error_rate`` and ``hang_rate`` of the
judge model (a hang stalls until the router's per-call timeout).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

A_BETTER = "[[A]]"
B_BETTER = "[[B]]"
TIE = "[[TIE]]"


@dataclass(frozen=True)
class JudgeKnobs:
    position_bias: float = 0.0
    length_bias: float = 0.0
    noise: float = 0.0
    unreadable_rate: float = 0.0


def split_pairwise(prompt: str) -> tuple[str, str] | None:
    """The two answers of a pairwise judge prompt (it offers ``[[TIE]]`` and holds
    ``Answer A:`` then ``Answer B:``), else None."""
    if TIE not in prompt:
        return None
    _, sep_a, rest = prompt.partition("Answer A:")
    answer_a, sep_b, answer_b = rest.partition("Answer B:")
    if not (sep_a and sep_b):
        return None
    return answer_a.strip(), answer_b.strip()


def truthful_verdict(a_bad: bool, b_bad: bool) -> str:
    if a_bad == b_bad:
        return TIE
    return B_BETTER if a_bad else A_BETTER


def pairwise_reply(
    answer_a: str,
    answer_b: str,
    is_bad: Callable[[str], bool],
    knobs: JudgeKnobs,
    rng: random.Random,
) -> str:
    """The fake judge's reply text to one pairwise prompt."""
    roll = rng.random()
    if roll < knobs.unreadable_rate:
        return "Both answers have their merits."
    roll -= knobs.unreadable_rate
    if roll < knobs.noise:
        return f"Verdict: {rng.choice((A_BETTER, B_BETTER, TIE))}"
    roll -= knobs.noise
    if roll < knobs.position_bias:
        return f"Verdict: {A_BETTER}"
    roll -= knobs.position_bias
    if roll < knobs.length_bias:
        la, lb = len(answer_a.split()), len(answer_b.split())
        return f"Verdict: {A_BETTER if la > lb else B_BETTER if lb > la else TIE}"
    return f"Verdict: {truthful_verdict(is_bad(answer_a), is_bad(answer_b))}"
