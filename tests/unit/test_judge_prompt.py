"""The pairwise judge's prompt template (issue 16 item 3): validation, rendering, the
content digest, the reference answer taken out of the request, and the router's judge
rendering its requests with a template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tierguard.api import judgeprompt as jp
from tierguard.router.chat import parse_chat_request, upstream_body
from tierguard.router.pairwise import PAIRWISE_PROMPT, PairwiseJudge, pairwise_prompt
from tierguard.router.state import JudgePromptLoadError, judge_prompt_ready, load_judge_template

GOOD = (
    "Reference: {reference}\nQ: {question}\nAnswer A:\n{answer_a}\nAnswer B:\n{answer_b}\n"
    'Reply [[A]], [[B]] or [[TIE]]. JSON stays: {"x": 1}'
)


def test_the_builtin_template_is_valid_and_renders_as_before() -> None:
    jp.check_template(jp.BUILTIN_TEMPLATE)
    text = pairwise_prompt("Why?", "first", "second")
    assert text.endswith("Question:\nWhy?\n\nAnswer A:\nfirst\n\nAnswer B:\nsecond")
    assert "[[TIE]]" in text and "{" not in text


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{question} {answer_a} {answer_b} {answr} [[A]] [[B]] [[TIE]]", "{answr}"),
        ("{question} {answer_a} [[A]] [[B]] [[TIE]]", "missing required placeholder(s) {answer_b}"),
        ("{question} {answer_a} {answer_b} [[A]] [[B]]", "verdict marker(s) [[TIE]]"),
        ("x" * (jp.MAX_TEMPLATE_CHARS + 1), "longer than"),
    ],
)
def test_an_unusable_template_is_refused_with_what_is_wrong(template: str, message: str) -> None:
    with pytest.raises(jp.TemplateError, match=r"^judge prompt template: ") as exc:
        jp.check_template(template)
    assert message in str(exc.value)


def test_rendering_fills_each_placeholder_once_and_the_reference_when_given() -> None:
    jp.check_template(GOOD)
    text = jp.render(GOOD, "q {answer_b}", "A-text", "B-text", "42 is right")
    assert text.startswith("Reference: 42 is right\nQ: q {answer_b}\n")  # not substituted again
    assert "Answer A:\nA-text\nAnswer B:\nB-text" in text and '{"x": 1}' in text
    assert jp.render(GOOD, "q", "a", "b", None).startswith(f"Reference: {jp.NO_REFERENCE}\n")
    long = jp.render(GOOD, "q" * 9000, "a", "b", "r" * 9000)
    for ch in "qr":
        assert ch * jp.FIELD_LIMIT in long and ch * (jp.FIELD_LIMIT + 1) not in long


def test_the_digest_follows_the_content() -> None:
    assert jp.template_digest(GOOD) == jp.template_digest(str(GOOD))
    assert jp.template_digest(GOOD) != jp.template_digest(GOOD + " ")
    assert len(jp.template_digest(GOOD)) == jp.DIGEST_LENGTH


def _raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def test_the_reference_never_reaches_an_upstream() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    req = parse_chat_request(
        _raw({"model": "auto", "messages": msgs, "metadata": {"tierguard_reference": "R!"}})
    )
    assert req.reference == "R!" and "metadata" not in req.body
    assert "R!" not in json.dumps(upstream_body(req, "m", "sys", add_usage=False))
    other = parse_chat_request(
        _raw(
            {
                "model": "auto",
                "messages": msgs,
                "metadata": {"tierguard_reference": "R!", "team": "a"},
            }
        )
    )
    assert other.reference == "R!" and other.body["metadata"] == {"team": "a"}
    odd = parse_chat_request(
        _raw({"model": "auto", "messages": msgs, "metadata": {"tierguard_reference": 3}})
    )
    assert odd.reference is None and "metadata" not in odd.body
    plain = parse_chat_request(_raw({"model": "auto", "messages": msgs, "metadata": {"a": "b"}}))
    assert plain.reference is None and plain.body["metadata"] == {"a": "b"}


async def test_the_judge_renders_both_orders_with_the_template_and_reference() -> None:
    prompts: list[str] = []

    async def complete(body: dict[str, Any]) -> dict[str, Any]:
        prompts.append(body["messages"][0]["content"])
        return {"choices": [{"message": {"content": "[[TIE]]"}}]}

    judge = PairwiseJudge(complete, GOOD)
    assert await judge.judge("q", "cand", "base", "ref-answer") == "tie"
    assert sorted(p.split("Answer A:\n")[1].split("\n")[0] for p in prompts) == ["base", "cand"]
    assert all(p.startswith("Reference: ref-answer\n") for p in prompts)
    prompts.clear()
    assert await PairwiseJudge(complete).judge("q", "cand", "base", "ref-answer") == "tie"
    assert all("ref-answer" not in p and p.startswith(PAIRWISE_PROMPT[:40]) for p in prompts)


def test_the_router_loads_a_checked_template_or_refuses_it(tmp_path: Path) -> None:
    assert load_judge_template(None) == jp.BUILTIN_TEMPLATE
    good = tmp_path / "prompt"
    good.write_text(GOOD, encoding="utf-8")
    assert load_judge_template(str(good)) == GOOD
    bad = tmp_path / "bad"
    bad.write_text("{question} {answer_a} {answer_b} {extra} [[A]] [[B]] [[TIE]]")
    with pytest.raises(JudgePromptLoadError, match=r"unknown placeholder\(s\) \{extra\}"):
        load_judge_template(str(bad))
    with pytest.raises(JudgePromptLoadError, match="cannot read the judge prompt"):
        load_judge_template(str(tmp_path / "missing"))


def test_a_replica_judges_only_with_the_template_rolled_out() -> None:
    digest = jp.template_digest(GOOD)
    assert judge_prompt_ready(None, jp.BUILTIN_TEMPLATE, "")
    assert judge_prompt_ready("/p", GOOD, digest)
    # a pod of the previous revision mounts the old copy while the config names the new
    assert not judge_prompt_ready("/p", GOOD, jp.template_digest(GOOD + "!"))
    assert not judge_prompt_ready("/p", GOOD, "")
