"""The simulated provider's configuration: per-model behaviour, read from a profile file.

A :class:`FakeProfile` maps upstream model ids to a :class:`ModelBehaviour`;
``tierguard fake-provider --profile profile.yaml`` reads one with :func:`load_profile`, and
``PUT``/``PATCH /admin/profile`` replace it at run time (:mod:`tierguard.lab.fakeprovider`).
The provider applies the timing, error and streaming knobs; ``quality`` and the judge
knobs decide the answer text in :mod:`tierguard.lab.fakeanswers`.

Knobs (per model, keyed by the upstream model id; ``"*"`` is the default)
------------------------------------------------------------------------
``latency_median_s``, ``latency_sigma``
    Time to the first byte: lognormal with this median and log-sd (0 = fixed).
``inter_chunk_s``
    Streaming: delay between content chunks after the first.
``error_rate`` / ``rate_limit_rate`` / ``hang_rate``
    Share of requests answered 500, 429, or never answered (the connection stays open
    until the client gives up: a timeout).
``stream_fail_rate``
    Streaming: share of streams cut off with a broken connection after the first chunk.
``stream_error_rate``, ``stream_error_after_words``
    Streaming: share of streams answered 200 whose stream then carries an OpenAI error
    event (``data: {"error": ...}``) after that many content words (0: before any
    content, right after the empty role chunk) and ends.
``stream_role_chunk``
    Streaming: start with an empty ``{"role": "assistant", "content": ""}`` chunk
    (default, as OpenAI does).
``stream_truncate_rate``
    Streaming: share of streams that end cleanly (a proper end of the body) after the
    first content word, with no ``finish_reason`` and no ``[DONE]``.
``stream_omit_done``
    Streaming: end after the finish chunk (and usage) without ``data: [DONE]``, as some
    OpenAI-compatible servers do.
``stream_vary_ids``
    Streaming: every chunk carries a different ``id`` (as some gateways do).
``big_word_bytes``
    The answer's second word is padded to this many bytes (streaming: one long SSE line).
``retry_after``
    ``Retry-After`` header value sent with simulated 429s.
``reject_params``
    Request parameters this model refuses with a 400 (a model that does not support,
    say, ``logprobs``).
``completion_words``
    Length of an answer in words (one chunk per word when streaming).
``accept_foreign_tool_calls``
    Accept tool results for calls another model issued (default: refuse with a 400
    ``invalid_tool_call_id``, as providers that check ids do).
``prompt_cache_ttl_s``
    How long the model's prefix cache keeps a prompt prefix (0 disables it); cached
    prefixes are reported as ``usage.prompt_tokens_details.cached_tokens``.
Conversations (tool calls only the issuing model accepts, the prefix cache)
    See :mod:`tierguard.lab.fakesession`.
``quality`` and ``default_quality``
    Probability that an answer is *good*, per query category. A query's category is
    ``metadata.category`` of the request (an OpenAI parameter the router passes through)
    or else the first ``#tag`` in the last user message, else ``default``.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tierguard.lab.fakejudge import JudgeKnobs

__all__ = ["FakeProfile", "ModelBehaviour", "load_profile"]


class ModelBehaviour(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_median_s: float = Field(default=0.02, ge=0)
    latency_sigma: float = Field(default=0.0, ge=0)
    inter_chunk_s: float = Field(default=0.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    hang_rate: float = Field(default=0.0, ge=0, le=1)
    stream_fail_rate: float = Field(default=0.0, ge=0, le=1)
    stream_error_rate: float = Field(default=0.0, ge=0, le=1)
    stream_error_after_words: int = Field(default=0, ge=0)
    stream_truncate_rate: float = Field(default=0.0, ge=0, le=1)
    stream_role_chunk: bool = True
    stream_vary_ids: bool = False
    stream_omit_done: bool = False
    big_word_bytes: int = Field(default=0, ge=0, le=64 << 20)
    retry_after: str | None = None
    completion_words: int = Field(default=24, ge=1, le=4096)
    reject_params: list[str] = Field(default_factory=list)
    prompt_cache_ttl_s: float = Field(default=300.0, ge=0)
    #: accept tool results for calls another model issued (as lenient providers do)
    accept_foreign_tool_calls: bool = False
    quality: dict[str, float] = Field(default_factory=dict)
    default_quality: float = Field(default=0.9, ge=0, le=1)
    #: judge mode (pairwise prompts), see tierguard.lab.fakejudge
    judge_position_bias: float = Field(default=0.0, ge=0, le=1)
    judge_length_bias: float = Field(default=0.0, ge=0, le=1)
    judge_noise: float = Field(default=0.0, ge=0, le=1)
    judge_unreadable_rate: float = Field(default=0.0, ge=0, le=1)

    def judge_knobs(self) -> JudgeKnobs:
        return JudgeKnobs(
            position_bias=self.judge_position_bias,
            length_bias=self.judge_length_bias,
            noise=self.judge_noise,
            unreadable_rate=self.judge_unreadable_rate,
        )


class FakeProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelBehaviour] = Field(default_factory=lambda: {"*": ModelBehaviour()})
    seed: int | None = None

    def behaviour(self, model: str) -> ModelBehaviour:
        return self.models.get(model) or self.models.get("*") or ModelBehaviour()


def load_profile(path: str | None) -> FakeProfile:
    if not path:
        return FakeProfile()
    return FakeProfile.model_validate(yaml.safe_load(Path(path).read_text()) or {})
