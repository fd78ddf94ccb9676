"""The pairwise judge's prompt template (``router.shadow.judge.promptConfigMapRef``).

Shared by the operator (which reads the referenced ConfigMap, validates the template,
hashes it into the revision and freezes a copy named by its digest) and the router
(which loads the frozen copy it mounts and renders each judge request with it). Pure.

A template is text with placeholders in braces, replaced verbatim (not ``str.format``:
JSON braces in a template stay as they are; only ``{name}`` with a letter-or-underscore
name is a placeholder):

``{question}`` (required)
    The user's last message (cut to :data:`FIELD_LIMIT` characters).
``{answer_a}``, ``{answer_b}`` (required)
    The two answers; each pair is judged twice, once in each order.
``{reference}`` (optional)
    The request's reference answer (``metadata.tierguard_reference``, see
    :func:`take_reference`), or :data:`NO_REFERENCE` when the request carries none.

Any other ``{name}`` is refused, and so is a template that does not ask for the three
verdict markers ``[[A]]``, ``[[B]]`` and ``[[TIE]]`` (the reply is parsed for exactly one
of them; a template without them yields unreadable replies, i.e. a judge that never
counts). Unset reference: :data:`BUILTIN_TEMPLATE`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from tierguard.api.policy_base import ApiModel, Name

#: Verdict markers the prompt must ask for (router/pairwise.py parses the reply for them).
A_BETTER = "[[A]]"
B_BETTER = "[[B]]"
TIE = "[[TIE]]"
MARKERS = (A_BETTER, B_BETTER, TIE)

REQUIRED = ("question", "answer_a", "answer_b")
OPTIONAL = ("reference",)
PLACEHOLDERS = REQUIRED + OPTIONAL

#: What ``{reference}`` becomes when the request carries no reference answer.
NO_REFERENCE = "(no reference answer was given)"
#: Each substituted field is cut to this many characters.
FIELD_LIMIT = 4000
#: Largest template accepted (characters).
MAX_TEMPLATE_CHARS = 32_000
#: Hex characters kept of the template's sha256.
DIGEST_LENGTH = 16

#: The request field carrying a reference answer: ``metadata.<REFERENCE_KEY>``.
REFERENCE_KEY = "tierguard_reference"

BUILTIN_TEMPLATE = (
    "You are an impartial judge. Compare two answers to the same question and decide "
    "which one is better: more correct, more complete and more helpful. Do not let the "
    "order of the answers or their length influence you. Reply with exactly one verdict: "
    f"{A_BETTER} if Answer A is better, {B_BETTER} if Answer B is better, {TIE} if they are "
    "equally good or equally bad.\n\nQuestion:\n{question}\n\nAnswer A:\n{answer_a}\n\n"
    "Answer B:\n{answer_b}"
)

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class JudgePromptRef(ApiModel):
    """A judge prompt template in a ConfigMap of the policy's namespace."""

    name: Name = Field(description="ConfigMap name.")
    key: str = Field(
        default="prompt",
        min_length=1,
        max_length=253,
        description="Key holding the template (data, UTF-8 text).",
    )


class TemplateError(ValueError):
    """The template cannot be used (the message lists every problem)."""


def check_template(text: str) -> None:
    """Raise :class:`TemplateError` naming every problem of ``text`` as a template."""
    problems: list[str] = []
    if len(text) > MAX_TEMPLATE_CHARS:
        problems.append(f"longer than {MAX_TEMPLATE_CHARS} characters ({len(text)})")
    found = set(_PLACEHOLDER.findall(text))
    unknown = sorted(found - set(PLACEHOLDERS))
    if unknown:
        names = ", ".join("{" + u + "}" for u in unknown)
        allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        problems.append(f"unknown placeholder(s) {names} (allowed: {allowed})")
    missing = [p for p in REQUIRED if p not in found]
    if missing:
        problems.append(
            "missing required placeholder(s) " + ", ".join("{" + m + "}" for m in missing)
        )
    absent = [m for m in MARKERS if m not in text]
    if absent:
        problems.append(
            "does not ask for the verdict marker(s) "
            + ", ".join(absent)
            + " (the reply is parsed for exactly one of [[A]], [[B]], [[TIE]])"
        )
    if problems:
        raise TemplateError("judge prompt template: " + "; ".join(problems))


def render(
    template: str, question: str, answer_a: str, answer_b: str, reference: str | None
) -> str:
    """The judge request's text: each placeholder of ``template`` replaced once (the
    substituted text is never scanned again, so an answer containing ``{question}``
    stays as written)."""
    values = {
        "question": question[:FIELD_LIMIT],
        "answer_a": answer_a[:FIELD_LIMIT],
        "answer_b": answer_b[:FIELD_LIMIT],
        "reference": reference[:FIELD_LIMIT] if reference else NO_REFERENCE,
    }
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def template_digest(text: str) -> str:
    """Short, stable digest of the template's content (its UTF-8 bytes)."""
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]


def take_reference(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``(body without the reference, the reference)``: ``metadata.tierguard_reference``
    removed from a chat request body (``metadata`` itself dropped when nothing else is
    left in it), so the reference never reaches an upstream model, a log or a trace.
    A reference that is not a non-empty string is dropped too and counts as none."""
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping) or REFERENCE_KEY not in metadata:
        return body, None
    value = metadata[REFERENCE_KEY]
    rest = {k: v for k, v in metadata.items() if k != REFERENCE_KEY}
    out = dict(body)
    if rest:
        out["metadata"] = rest
    else:
        del out["metadata"]
    return out, value if isinstance(value, str) and value else None
