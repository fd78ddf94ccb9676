"""One scenario run of a lab session: apply the policy, start the routers, drive the
simulated users and monitor the rollout (status, cost, events, samples) until it ends.
Part of :class:`tierguard.lab.supervisor.Lab`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tierguard.api import constants as c
from tierguard.api.enums import Phase
from tierguard.lab import lab_policy as lp
from tierguard.lab import scenario_world as sw
from tierguard.lab.lab_routers import LabRouters
from tierguard.lab.lab_state import LabRunError
from tierguard.lab.live import CostFigures, Snapshot
from tierguard.lab.processes import ManagedProcess
from tierguard.lab.runrecord import RunRecord, Sample
from tierguard.lab.tally import STAGE_SETTLING
from tierguard.lab.traffic import TrafficGenerator

TERMINAL_PHASES = {Phase.PROMOTED.value, Phase.ROLLED_BACK.value, Phase.FAILED.value}
#: after a terminal phase, keep traffic flowing this long so the last weights show
SETTLE_S = 4.0
#: a Paused phase that lasts this long ends the run (a person would have to act)
PAUSED_GIVE_UP_S = 45.0
SAMPLE_EVERY_S = 2.0
#: seconds after a weight change during which arm moves are the rollout, not a stickiness bug
STAGE_SETTLE_S = 4.0
#: after promotion, keep measuring this long so the report has the steady-state saving
PROMOTED_MEASURE_S = 15.0


@dataclass
class _Clock:
    started: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return time.monotonic() - self.started


def due_events(
    events: Sequence[sw.Event], reached: Mapping[int, float], fired: set[int], now: float
) -> list[int]:
    """Indexes of the scenario events to fire now (pure): each fires once, ``after_s``
    after the rollout first reached its step."""
    return [
        i
        for i, ev in enumerate(events)
        if i not in fired and ev.at_step in reached and now >= reached[ev.at_step] + ev.after_s
    ]


class LabRun(LabRouters):
    """One rollout, from applying its policy to the record of it."""

    def run(self, scenario: sw.Scenario, *, policy: str | None = None) -> RunRecord:
        """Apply the scenario's policy, drive traffic and record until the rollout ends."""
        name = policy or (lp.POLICY_NAME + ("-naive" if scenario.naive else ""))
        self.start_providers(scenario)
        self.start_operator()
        manifest = self.policy_manifest(scenario, name)
        self._say(f"applying RoutingPolicy {self.settings.namespace}/{name}")
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        self.start_routers(name)
        traffic = scenario.traffic
        if self.settings.requests_per_second:
            from dataclasses import replace

            traffic = replace(traffic, requests_per_second=self.settings.requests_per_second)
        stage = [0]
        gen = TrafficGenerator(
            traffic,
            [f"http://127.0.0.1:{pod.port}" for pod, _ in self.routers],
            {sw.CHEAP: scenario.cheap, sw.CAPABLE: scenario.capable},
            stage=lambda: stage[0],
            baseline=sw.CAPABLE,
            tier_of_text=_bundled_tier_of_text(),
        )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(gen.run(),), daemon=True)
        record = RunRecord(
            scenario=scenario.name,
            title=scenario.title,
            story=scenario.story,
            expected_phase=scenario.expect.phase.value,
            expected_tier=scenario.expect.failed_tier,
            expected_preflight=scenario.expect.preflight,
            expected_slice=scenario.expect.failed_slice,
            expected_cell=scenario.expect.failed_cell,
            policy=manifest,
            steps=lp.scenario_steps(scenario),
        )
        self._say(
            f"traffic: {traffic.users} simulated users, about {traffic.requests_per_second:g} "
            f"requests/s, {traffic.rating_rate:.0%} of answers rated"
        )
        thread.start()
        try:
            self._monitor(scenario, name, gen, stage, record)
        finally:
            loop.call_soon_threadsafe(gen.stop)
            thread.join(timeout=40)
            with contextlib.suppress(Exception):
                loop.close()
        record.final_status = dict(self.policy_body(name).get("status") or {})
        record.kubectl_line = self.cp.kubectl(
            "get", c.PLURAL, "-n", self.settings.namespace, "-o", "wide", check=False
        ).stdout
        record.tally = {**gen.tally.summary(), "conversations": gen.conversations.summary()}
        record.notes = list(self.notes)
        return record

    def _monitor(
        self,
        scenario: sw.Scenario,
        name: str,
        gen: TrafficGenerator,
        stage: list[int],
        record: RunRecord,
    ) -> None:
        clock = _Clock()
        cost = CostFigures()
        last_key: tuple[Any, ...] | None = None
        reached: dict[int, float] = {}
        fired: set[int] = set()
        terminal_at: float | None = None
        paused_at: float | None = None
        next_sample = 0.0
        status: Mapping[str, Any] = {}
        stage_no = 0
        stage_changed_at = 0.0
        last_weight = 0.0
        while True:
            now = clock()
            with contextlib.suppress(Exception):
                status = self.policy_body(name).get("status") or {}
            phase = str(status.get("phase") or "")
            step = int(status.get("step") or 0)
            key = (phase, step, status.get("canaryWeight"))
            if key != last_key:
                weight = float(status.get("canaryWeight") or 0.0)
                if weight < last_weight:
                    stage_no += 1  # a rollback: canary users legitimately go back
                last_weight = weight
                stage_changed_at = now
                last_key = key
            # routers pick a new weight up within a second or two of the status change
            settling = now - stage_changed_at < STAGE_SETTLE_S
            stage[0] = STAGE_SETTLING if settling else stage_no
            if phase == Phase.PROGRESSING.value:
                for s in range(step + 1):
                    reached.setdefault(s, now)
            self._fire_events(scenario, name, reached, fired, now, record)
            self._check_processes()
            cost = self.cost_figures(name, cost)
            tally = gen.tally
            snap = Snapshot(
                scenario=scenario.name,
                elapsed_s=now,
                policy=name,
                status=status,
                steps=lp.scenario_steps(scenario),
                requests=tally.requests,
                rate=tally.requests / now if now > 0 else 0.0,
                failed=tally.failed,
                rated=tally.rated(),
                p95_s=tally.latency_quantile(0.95),
                cost=cost,
                routers=sum(1 for _, p in self.routers if p.running()),
                events=[label for _, label in record.events],
            )
            self.view.show(snap)
            if now >= next_sample:
                next_sample = now + SAMPLE_EVERY_S
                record.samples.append(self._sample(now, status, cost, gen))
            if phase in TERMINAL_PHASES:
                terminal_at = terminal_at if terminal_at is not None else now
                linger = PROMOTED_MEASURE_S if phase == Phase.PROMOTED.value else SETTLE_S
                if now - terminal_at >= linger:
                    break
            paused_at = (paused_at or now) if phase == Phase.PAUSED.value else None
            if paused_at is not None and now - paused_at > PAUSED_GIVE_UP_S:
                record.notes.append(f"the rollout stayed Paused for {PAUSED_GIVE_UP_S:.0f}s")
                break
            if now > scenario.deadline_s:
                record.notes.append(
                    f"the rollout had not finished after {scenario.deadline_s:.0f}s "
                    f"(phase {phase or 'none'})"
                )
                break
            time.sleep(1.0)
        record.samples.append(self._sample(clock(), status, cost, gen))
        record.duration_s = clock()

    def _sample(
        self, t: float, status: Mapping[str, Any], cost: CostFigures, gen: TrafficGenerator
    ) -> Sample:
        tally = gen.tally
        down = sum(v for (_, _, r), v in tally.ratings.items() if r == "down")
        return Sample(
            t=t,
            status=json.loads(json.dumps(status)),
            spent_usd=cost.spent_usd,
            all_capable_usd=cost.all_capable_usd,
            requests=tally.served_total(),
            satisfied=tally.satisfied_total(),
            satisfied_if_baseline=tally.satisfied_if_baseline,
            arms={
                f"{t_}/{a}": (n, tally.satisfied[(t_, a)]) for (t_, a), n in tally.served.items()
            },
            thumbs=(down, tally.rated()),
        )

    def _fire_events(
        self,
        scenario: sw.Scenario,
        policy: str,
        reached: Mapping[int, float],
        fired: set[int],
        now: float,
        record: RunRecord,
    ) -> None:
        for i in due_events(scenario.events, reached, fired, now):
            ev = scenario.events[i]
            fired.add(i)
            record.events.append((now, ev.label))
            self._say(f"event: {ev.label}")
            if ev.kind == "prometheus_stop":
                self.stop_prometheus()
            elif ev.kind == "prometheus_start":
                self.start_prometheus_again()
            elif ev.kind == "provider_profile" and ev.provider and ev.profile:
                self.set_provider_profile(ev.provider, ev.profile)
            elif ev.kind == "classifier_threshold" and ev.threshold is not None:
                self.set_classifier_threshold(policy, ev.threshold)

    def _check_processes(self) -> None:
        """A part that died mid-run ends the run with its log tail."""
        parts: list[ManagedProcess] = [p for _, p in self.routers]
        parts += list(self.providers.values())
        if self.operator is not None:
            parts.append(self.operator)
        for proc in parts:
            if not proc.running():
                raise LabRunError(
                    f"{proc.name} exited with code {proc.returncode} during the run\n"
                    f"--- last lines of {proc.log_path} ---\n{proc.log_tail()}"
                )


def _bundled_tier_of_text() -> Callable[[str], str]:
    """The lab policy's classifier (the bundled default) on one text: what per-request
    tiering would have made of a request, for the report's before/after line."""
    from tierguard.classifier.runtime import default_model_path, load_classifier

    classifier = load_classifier(default_model_path())
    return lambda text: classifier.classify(text).tier
