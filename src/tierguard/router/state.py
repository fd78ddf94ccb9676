"""One configuration generation, resolved for serving: the loaded classifier, upstream
pool, keys and lookup tables. Built off the hot path on (re)load, then swapped in one
assignment, so a request sees one consistent generation from start to end and a reload
never drops in-flight requests."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierguard.api import judgeprompt
from tierguard.api.classifierdigest import classifier_digest, model_sha256
from tierguard.api.durations import parse_duration
from tierguard.api.routerconfig import ClassifierConfig, Route, RouterConfig, UpstreamModel
from tierguard.classifier.runtime import (
    Classification,
    Classifier,
    ClassifierLoadError,
    default_model_path,
    load_classifier,
)
from tierguard.router.conversation import Planner
from tierguard.router.decisionshadow import DecisionShadow, picker
from tierguard.router.ladder import Ladder, build_ladder
from tierguard.router.pairwise import PairwiseJudge
from tierguard.router.records import usage_cost
from tierguard.router.shadow import Judge, LLMJudge, SimilarityJudge
from tierguard.router.slicing import classifier_slice_problems
from tierguard.router.tiering import TierCache
from tierguard.router.upstream import (
    JUDGE_HEADERS,
    JUDGE_SPEND,
    UpstreamClient,
    UpstreamPool,
    read_secret,
)
from tierguard.router.workers import EPHEMERAL_KEY_ENV

log = logging.getLogger(__name__)

ROUTED_MODEL = "auto"


@dataclass
class RouterState:
    config: RouterConfig
    classifier: Classifier
    pool: UpstreamPool
    models: dict[str, UpstreamModel]
    routes: dict[str, Route]
    budgets: dict[str, float]
    deadline_s: float
    signing_key: bytes = field(repr=False)
    feedback_ttl_s: float
    client_keys: frozenset[str] = field(repr=False)
    judge: Judge
    classifier_key: tuple[Any, ...]
    #: sha256 of the model bytes loaded (with the config's settings: the content digest)
    model_sha: str = ""
    #: per-message classifications (session tiering); kept across reloads that keep the
    #: classifier, since its answers would be the same
    tier_cache: TierCache = field(default_factory=lambda: TierCache(0))
    ladder: Ladder = field(default_factory=lambda: build_ladder(["-"], [], {}))
    #: the candidate classifier of a classifier change's decision shadow (None: no change
    #: in progress, and the request path runs nothing extra)
    shadow: DecisionShadow | None = None
    #: False while this replica mounts another judge prompt than the one rolled out (a
    #: pod of the previous revision, until the rolling restart replaces it): it then
    #: neither mirrors nor shadows, so no verdict of the old prompt counts for the new
    #: revision (see :func:`judge_prompt_ready`)
    judge_ready: bool = True

    def planner(
        self, classify: Callable[[list[str]], list[Classification]] | None = None
    ) -> Planner:
        """What planning needs from this generation; ``classify`` replaces the classifier's
        own batch call (the router wraps it to time it)."""
        return Planner(
            config=self.config,
            routes=self.routes,
            budgets=self.budgets,
            ladder=self.ladder,
            cache=self.tier_cache,
            classify=classify or self.classifier.classify_batch,
            signing_key=self.signing_key,
            no_text_tier=self.config.classifier.no_text_tier,
            pick=(
                picker(self.shadow, self.config.salt, self.config.classifier_canary_weight)
                if self.shadow is not None
                else None
            ),
        )

    @property
    def classifier_digest(self) -> str:
        """The content digest of the classifier this generation runs (what
        ``tierguard_classifier_info`` reports): the loaded bytes and this config's
        tier-deciding settings, by the operator's own function."""
        return classifier_digest(self.model_sha, self.config.classifier)

    @property
    def routed_names(self) -> frozenset[str]:
        return frozenset({ROUTED_MODEL, self.config.policy})


def _classifier_key(config: RouterConfig) -> tuple[Any, ...]:
    """What decides whether a reload must load the classifier again: the path, the
    file's identity (a ConfigMap-mounted model replaced under the same path), the tiers
    and thresholds."""
    return _settings_key(config.classifier)


def _settings_key(c: ClassifierConfig) -> tuple[Any, ...]:
    try:
        st = os.stat(c.path or default_model_path())
        identity: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        identity = None
    return (c.path, identity, tuple((t.name, t.threshold) for t in c.tiers))


def load_config_classifier(config: RouterConfig) -> tuple[Classifier, str]:
    """The classifier and the sha256 of the very bytes it was loaded from."""
    return load_classifier_config(config.classifier)


def load_classifier_config(c: ClassifierConfig) -> tuple[Classifier, str]:
    """:func:`load_config_classifier` for one classifier section."""
    path = Path(c.path or default_model_path())
    if not path.is_file():
        raise ClassifierLoadError(f"classifier model {str(path)!r} does not exist or is not a file")
    try:
        model = path.read_bytes()
    except OSError as exc:
        raise ClassifierLoadError(f"cannot read classifier model {str(path)!r}: {exc}") from exc
    overrides = {t.name: t.threshold for t in c.tiers if t.threshold is not None}
    classifier = load_classifier(model, overrides or None, expected_tiers=[t.name for t in c.tiers])
    return classifier, model_sha256(model)


class JudgePromptLoadError(ValueError):
    """The judge prompt template file cannot be read or is not a usable template."""


def load_judge_template(path: str | None) -> str:
    """The pairwise judge's template: the file the operator mounts (checked, so a bad
    template refuses the config with the template's own error), or the built-in one."""
    if path is None:
        return judgeprompt.BUILTIN_TEMPLATE
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JudgePromptLoadError(f"cannot read the judge prompt {path!r}: {exc}") from exc
    try:
        judgeprompt.check_template(text)
    except judgeprompt.TemplateError as exc:
        raise JudgePromptLoadError(f"{path}: {exc}") from exc
    return text


def judge_prompt_ready(path: str | None, template: str, expected_digest: str) -> bool:
    """Whether the template loaded from ``path`` is the one the config rolls out (its
    content digest is ``expected_digest``, from the operator's status). The built-in
    template (no path) always is."""
    if path is None:
        return True
    return bool(expected_digest) and judgeprompt.template_digest(template) == expected_digest


def _ephemeral_key() -> bytes:
    """A random key, shared by the workers of one ``--workers N`` supervisor."""
    shared = os.environ.get(EPHEMERAL_KEY_ENV, "")
    try:
        return bytes.fromhex(shared) if len(shared) >= 64 else secrets.token_bytes(32)
    except ValueError:
        return secrets.token_bytes(32)


_EPHEMERAL_KEY = _ephemeral_key()


async def build_state(
    config: RouterConfig, previous: RouterState | None
) -> tuple[RouterState, list[UpstreamClient]]:
    """A new generation (and the previous generation's clients to retire). Raises the
    loader's errors (classifier, secrets) for the caller to refuse the config."""
    key = _classifier_key(config)
    if previous is not None and previous.classifier_key == key:
        classifier, model_sha = previous.classifier, previous.model_sha
    else:
        classifier, model_sha = await asyncio.to_thread(load_config_classifier, config)
    for problem in classifier_slice_problems(config.slices, classifier.categories):
        log.warning("%s", problem)
    pool, retired = UpstreamPool.build(
        config.models,
        previous.pool if previous else None,
        max_response_bytes=config.server.max_response_bytes,
    )
    try:
        if config.feedback.signing_key is not None:
            signing_key = read_secret(config.feedback.signing_key).encode()
        else:
            log.warning(
                "feedback.signingKey unset: decision ids are signed with a random "
                "key of this process (or of this replica's workers); feedback only works on "
                "the replica that answered"
            )
            signing_key = _EPHEMERAL_KEY
        client_keys: frozenset[str] = frozenset()
        if config.server.client_api_keys is not None:
            client_keys = frozenset(
                k.strip()
                for k in read_secret(config.server.client_api_keys).splitlines()
                if k.strip()
            )
        template = load_judge_template(config.shadow.judge_prompt_path)
    except Exception:
        await _close_new(pool, previous)
        raise
    judge_ready = judge_prompt_ready(
        config.shadow.judge_prompt_path, template, config.shadow.judge_prompt_digest
    )
    if not judge_ready:
        log.warning(
            "the judge prompt this replica mounts (%s, digest %s) is not the one rolled out "
            "(digest %s): no mirroring or shadow judging here until the replica is replaced",
            config.shadow.judge_prompt_path,
            judgeprompt.template_digest(template),
            config.shadow.judge_prompt_digest or "-",
        )
    judge_spec = config.shadow.judge
    judge: Judge
    if judge_spec.type == "LLM" and judge_spec.model is not None:
        judge_client = pool.clients[judge_spec.model]
        upstream_id = judge_client.model.upstream_model

        async def complete(body: dict[str, Any]) -> dict[str, Any]:
            # JUDGE_HEADERS: the traceparent of the judge's span (tierguard.router.tracing)
            body = {**body, "model": upstream_id}
            payload = (await judge_client.complete(body, JUDGE_HEADERS.get())).payload
            sink = JUDGE_SPEND.get()
            if sink is not None:  # a pre-flight mirror counts what the judge costs
                usage = payload.get("usage")
                pricing = judge_client.model.pricing
                sink.append(
                    usage_cost(pricing, usage if isinstance(usage, dict) else None).cost_usd
                )
            return payload

        judge = (
            PairwiseJudge(complete, template)
            if judge_spec.mode == "Pairwise"
            else LLMJudge(complete)
        )
    else:
        judge = SimilarityJudge(judge_spec.threshold)
    cache_size = config.classifier.cache_size
    if (
        previous is not None
        and previous.classifier_key == key
        and previous.tier_cache.size == cache_size
    ):
        tier_cache = previous.tier_cache
    else:
        tier_cache = TierCache(cache_size)
    shadow = await _decision_shadow(config, previous)
    ladder = build_ladder(
        [t.name for t in config.classifier.tiers],
        [(r.tier, r.baseline, r.candidate, r.fallbacks) for r in config.routes],
        {m.name: m.context_window for m in config.models},
    )
    state = RouterState(
        config=config,
        classifier=classifier,
        pool=pool,
        models={m.name: m for m in config.models},
        routes={r.tier: r for r in config.routes},
        budgets={r.tier: parse_duration(r.latency_budget) for r in config.routes},
        deadline_s=parse_duration(config.server.request_deadline),
        signing_key=signing_key,
        feedback_ttl_s=parse_duration(config.feedback.ttl),
        client_keys=client_keys,
        judge=judge,
        judge_ready=judge_ready,
        classifier_key=key,
        model_sha=model_sha,
        tier_cache=tier_cache,
        ladder=ladder,
        shadow=shadow,
    )
    return state, retired


async def _decision_shadow(
    config: RouterConfig, previous: RouterState | None
) -> DecisionShadow | None:
    """The candidate classifier of the config's decision shadow (kept from the previous
    generation when it is the same file and settings)."""
    c = config.shadow_classifier
    if c is None:
        return None
    key = _settings_key(c)
    old = previous.shadow if previous is not None else None
    if old is not None and old.key == key:
        return DecisionShadow(c, old.classifier, old.cache, key)
    classifier, _ = await asyncio.to_thread(load_classifier_config, c)
    return DecisionShadow(c, classifier, TierCache(c.cache_size), key)


async def _close_new(pool: UpstreamPool, previous: RouterState | None) -> None:
    """Close the sessions a refused generation opened (not the ones it borrowed)."""
    kept = {id(c.session) for c in previous.pool.clients.values()} if previous else set()
    for c in pool.clients.values():
        if id(c.session) not in kept:
            await c.session.close()
