"""What the simulated provider answers: pure functions of the request (no I/O).

Answers are deterministic per (model, prompt): whether an answer is good is drawn from a
hash of (model, prompt) against the category's quality. In a conversation the prompt is
the first and the last user message (:func:`question_of`), so a stock follow-up is a new
question in every conversation. A good answer is the prompt's
*reference text* (the same for every model, so a similarity judge finds good answers of
two models agree) behind a short model-specific preamble; a bad answer is unrelated
filler. Every response carries the hidden marker ``tierguard_fake`` ({"quality": "good" |
"bad", "category", "model"}) as an extra top-level field (and on every stream chunk),
which simulated judges and users read; real clients ignore unknown fields.

Simulated LLM judge
-------------------
A request whose last user message holds ``Answer A:`` and ``Answer B:`` (the router's
LLM-judge prompt) is answered ``AGREE`` when neither answer is a bad one (no filler
words) and ``DISAGREE`` otherwise, so ``shadow.judge.type: LLM`` works against the fake.
The pairwise prompt (it offers ``[[TIE]]``) is answered ``[[A]]``, ``[[B]]`` or
``[[TIE]]`` from the same truth, with the judge imperfections ``judge_position_bias``,
``judge_length_bias``, ``judge_noise`` and ``judge_unreadable_rate`` of the judge model
(:mod:`tierguard.lab.fakejudge`); its errors and stalls are ``error_rate``/``hang_rate``.

The HTTP side (streaming, errors, latency, the admin API) is :mod:`tierguard.lab.fakeprovider`;
the per-model knobs are :mod:`tierguard.lab.fakeprofile`.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from tierguard.lab.fakejudge import JudgeKnobs, pairwise_reply, split_pairwise

__all__ = [
    "answer_words",
    "category_of",
    "is_good",
    "judge_reply",
    "last_user_text",
    "question_of",
    "reads_as_bad",
    "reference_answer",
    "stable_hash",
]

_TAG = re.compile(r"#([a-z0-9_-]+)", re.IGNORECASE)
_WORDS = (
    "the",
    "account",
    "order",
    "refund",
    "delivery",
    "password",
    "settings",
    "invoice",
    "plan",
    "support",
    "team",
    "update",
    "status",
    "shipping",
    "address",
    "payment",
    "card",
    "window",
    "browser",
    "device",
    "restart",
    "help",
    "check",
    "confirm",
    "option",
    "menu",
    "profile",
    "email",
    "message",
    "screen",
    "button",
    "link",
    "page",
)
_FILLER = (
    "perhaps",
    "banana",
    "weather",
    "guitar",
    "mountain",
    "painting",
    "elephant",
    "orchestra",
    "volcano",
    "lantern",
    "marathon",
    "origami",
    "saxophone",
    "glacier",
    "tapestry",
)


def stable_hash(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")


def last_user_text(messages: list[Any]) -> str:
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _user_texts(messages: list[Any]) -> list[str]:
    out = []
    for msg in messages:
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                out.append(content)
            elif isinstance(content, list):
                out.append(" ".join(str(p.get("text", "")) for p in content if isinstance(p, dict)))
    return out


def question_of(messages: list[Any]) -> str:
    """What an answer's quality is drawn for: the last user message, and in a conversation
    the first one before it (a follow-up such as "thanks, and where is my order?" is a
    different question in every conversation, not one draw shared by all of them)."""
    texts = _user_texts(messages)
    if not texts:
        return ""
    if len(texts) == 1 or texts[0] == texts[-1]:
        return texts[-1]
    return texts[0] + "\n" + texts[-1]


def category_of(body: dict[str, Any], prompt: str) -> str:
    meta = body.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("category"), str):
        return str(meta["category"])
    tag = _TAG.search(prompt)
    return tag.group(1).lower() if tag else "default"


def is_good(model: str, prompt: str, quality: float) -> bool:
    return (stable_hash("quality", model, prompt) % 10_000) / 10_000 < quality


def reference_answer(prompt: str, words: int) -> list[str]:
    """The prompt's reference text: the same for every model."""
    rng = random.Random(stable_hash("ref", prompt))
    return [rng.choice(_WORDS) for _ in range(words)]


def answer_words(model: str, prompt: str, good: bool, words: int) -> list[str]:
    preamble = (
        ["Sure,", "here", "you", "go:"] if stable_hash("style", model) % 2 else ["Certainly."]
    )
    if good:
        return preamble + reference_answer(prompt, words)
    rng = random.Random(stable_hash("bad", model, prompt))
    return preamble + [rng.choice(_FILLER) for _ in range(words)]


_FILLER_SET = frozenset(_FILLER)


def reads_as_bad(text: str) -> bool:
    """Whether a reader of this answer (a simulated user or judge) sees a bad answer: bad
    answers are made of filler words, good ones never contain any."""
    return any(w.strip(".,:").lower() in _FILLER_SET for w in text.split())


def judge_reply(
    prompt: str, knobs: JudgeKnobs | None = None, rng: random.Random | None = None
) -> str | None:
    """The simulated judge's verdict for a judge prompt (pairwise or agreement), else
    None."""
    pair = split_pairwise(prompt)
    if pair is not None:
        return pairwise_reply(*pair, reads_as_bad, knobs or JudgeKnobs(), rng or random.Random())
    _, sep_a, rest = prompt.partition("Answer A:")
    answer_a, sep_b, answer_b = rest.partition("Answer B:")
    if not (sep_a and sep_b):
        return None
    return "DISAGREE" if reads_as_bad(answer_a + " " + answer_b) else "AGREE"
