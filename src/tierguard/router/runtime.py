"""The router's process-lifetime resources and its configuration generations.

:class:`Runtime` holds what lives as long as the app (metrics, decision log, review
sample, background tasks) and the active :class:`~tierguard.router.state.RouterState`;
:func:`apply_config` / :func:`reload_text` swap generations; :func:`lifecycle` is the
app's ``cleanup_ctx`` (load the config, start the watcher and the flush loop, drain on
shutdown). No view and no request logic lives here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tierguard.api import metrics as mdefs
from tierguard.api.durations import parse_duration
from tierguard.api.routerconfig import RouterConfig
from tierguard.router.config_source import ConfigSource, parse_config
from tierguard.router.decision_log import DecisionLog
from tierguard.router.decisionshadow import init_cells
from tierguard.router.metrics import RouterMetrics
from tierguard.router.mirrorbudget import BudgetLedger
from tierguard.router.review import ReviewSample
from tierguard.router.state import RouterState, build_state
from tierguard.router.tracing import Tracing, build_tracing
from tierguard.router.upstream import UpstreamClient, close_clients

log = logging.getLogger("tierguard.router")


@dataclass
class RouterSettings:
    """How to start: an initial config and/or a source to load and watch."""

    config: RouterConfig | None = None
    source: ConfigSource | None = None
    review_flush_interval_s: float = 60.0
    #: an OpenTelemetry TracerProvider to trace with instead of the configured exporter
    #: (tests: an in-memory exporter); tracing is on whenever one is given
    tracer_provider: Any = None
    #: the file recording this process's pre-flight budget share, so a restarted
    #: container continues it (tierguard.router.mirrorbudget; None: no file)
    budget_ledger: Path | None = None


@dataclass
class Runtime:
    """Process-lifetime resources (one per app); the config generation is ``state``."""

    settings: RouterSettings
    metrics: RouterMetrics
    state: RouterState | None = None
    decision_log: DecisionLog = field(default_factory=lambda: DecisionLog(None))
    review: ReviewSample = field(default_factory=lambda: ReviewSample(0))
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    shadows_in_flight: int = 0
    mirrors_in_flight: int = 0  # pre-flight mirrors (tierguard.router.mirroring)
    #: pre-flight's budget epochs seen by this process (tierguard.router.mirrorbudget)
    mirror_budget: BudgetLedger = field(default_factory=BudgetLedger)
    #: OpenTelemetry tracing (None: off), set up once at start
    tracing: Tracing | None = None
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)


async def apply_config(rt: Runtime, config: RouterConfig) -> None:
    """Swap in a new generation. Raises on failure (the old one stays)."""
    async with rt.reload_lock:
        previous = rt.state
        state, retired = await build_state(config, previous)
        rt.state = state
        budget = config.mirror_budget
        rt.mirror_budget.apply(
            budget.epoch if budget else None, budget.usd_per_router if budget else 0.0
        )
        _sync_observability(rt, config, previous.config if previous else None)
        rt.metrics.classifier_info.replace(
            {(config.policy, state.classifier_digest, config.revision): 1.0}
        )
        if state.shadow is not None:
            init_cells(
                rt.metrics.classifier_transitions,
                config.policy,
                config.revision,
                [t.name for t in config.classifier.tiers],
            )
        rt.metrics.canary_weight.replace(
            {
                (config.policy, r.tier): config.weight(r.tier).weight if r.candidate else 0.0
                for r in config.routes
            }
        )
        if retired:  # let in-flight requests of the old generation finish first
            rt.spawn(_close_later(retired, state.deadline_s + 5))


async def _close_later(clients: list[UpstreamClient], delay: float) -> None:
    await asyncio.sleep(delay)
    await close_clients(clients)


def _sync_observability(rt: Runtime, new: RouterConfig, old: RouterConfig | None) -> None:
    obs = new.observability
    if old is None or old.observability.decision_log != obs.decision_log:
        rt.decision_log.close()
        rt.decision_log = DecisionLog(obs.decision_log)
    if old is None or old.observability.review_sample_size != obs.review_sample_size:
        rt.review = ReviewSample(obs.review_sample_size)
    if old is not None:
        new_b = {parse_duration(d) for d in obs.latency_objectives}
        old_b = {parse_duration(d) for d in old.observability.latency_objectives}
        if new_b != old_b:
            log.warning(
                "observability.latencyObjectives changed; histogram buckets only change on restart"
            )
        if (new.server.host, new.server.port) != (old.server.host, old.server.port):
            log.warning("server.host/port changed; takes effect on restart")
        if obs.tracing != old.observability.tracing:
            log.warning("observability.tracing changed; takes effect on restart")


async def reload_text(rt: Runtime, text: str) -> bool:
    """Apply new config text from a source; an invalid one is refused, counted and logged."""
    policy = rt.state.config.policy if rt.state else ""
    try:
        config = parse_config(text)
        await apply_config(rt, config)
    except Exception as exc:
        rt.metrics.config_reloads.labels(policy, mdefs.RELOAD_ERROR).inc()
        log.error("config reload refused, keeping the active config: %s", exc)
        return False
    rt.metrics.config_reloads.labels(config.policy, mdefs.RELOAD_OK).inc()
    log.info(
        "config reloaded: policy %s revision %r, split %s",
        config.policy,
        config.revision,
        [(s.tier, s.weight, str(s.control_arm)) for s in config.split],
    )
    return True


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The app's ``cleanup_ctx``: load the config, start the watcher and flush loop; on
    shutdown cancel them, write the review sample and close every session."""
    rt = app[RUNTIME]
    settings = rt.settings
    config = settings.config
    if config is None and settings.source is not None:
        config = parse_config(await settings.source.load())
    if config is None:
        raise ValueError("RouterSettings needs a config or a source")
    rt.metrics = RouterMetrics(parse_duration(d) for d in config.observability.latency_objectives)
    rt.tracing = build_tracing(config.observability.tracing, settings.tracer_provider)
    await apply_config(rt, config)
    rt.metrics.config_reloads.labels(config.policy, mdefs.RELOAD_OK).inc()
    if settings.source is not None:
        source = settings.source

        async def on_text(text: str) -> None:
            await reload_text(rt, text)

        rt.spawn(source.watch(on_text))
    rt.spawn(_flush_loop(rt))
    yield
    for task in list(rt.background):
        task.cancel()
    await asyncio.gather(*rt.background, return_exceptions=True)
    write_review(rt)
    rt.decision_log.close()
    if rt.state is not None:
        await rt.state.pool.close()
    if rt.tracing is not None:
        await asyncio.to_thread(rt.tracing.shutdown)  # flushes the exporter's last spans


def write_review(rt: Runtime) -> None:
    state = rt.state
    path = state.config.observability.review_sample_path if state else None
    if path:
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(rt.review.export_jsonl())
        except OSError as exc:
            log.warning("cannot write the review sample to %s: %s", path, exc)


async def _flush_loop(rt: Runtime) -> None:
    ticks = 0
    while True:
        await asyncio.sleep(1.0)
        rt.decision_log.flush()
        ticks += 1
        if ticks % max(1, int(rt.settings.review_flush_interval_s)) == 0:
            write_review(rt)
