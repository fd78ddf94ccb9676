"""Simulated users: sessions, seed 003's query mix, satisfaction and feedback.

Why sessions and not independent requests: the router's split is sticky by user, so a
realistic load must come from a population of users who each send a few requests in a
row, and the lab checks that nobody is moved between arms within a stage (the tally
counts every switch). Why the classifier's own generator: the lab's traffic must have
the same categories and hard cases as the classifier's training data and seed 003's
mix (about 65 % simple, 35 % complex), so there is exactly one list of categories.

Split in two layers, as everywhere in tierguard:

* pure: :class:`~tierguard.lab.population.Population` (who sends the next request), in
  :mod:`tierguard.lab.responses` :func:`~tierguard.lab.responses.is_good_answer`,
  :func:`~tierguard.lab.responses.rating_for` (does this user rate, and how) and
  :func:`~tierguard.lab.responses.route_info` (which tier, arm and model answered), and
  :class:`~tierguard.lab.tally.Tally` (what the users experienced, per tier, arm, model
  and category);
* I/O: :class:`TrafficGenerator` (this module), an asyncio loop that sends OpenAI-style
  requests to the routers at a Poisson rate and posts feedback to ``/v1/feedback``.

Ground truth. Whether an answer was good is what the fake provider that wrote it says
(its hidden ``tierguard_fake`` marker, see :mod:`tierguard.lab.fakeanswers`), so the
users agree with the shadow judge about which answers were bad; the counterfactual
"would the baseline have satisfied this user" uses the provider's own rule
(:func:`~tierguard.lab.responses.is_good_answer`). The lab therefore knows
each request's true satisfaction -- which the report uses for "cost per satisfied
request" and per-category tables, clearly labelled as the simulator's ground truth. The
rollout's verdicts never come from here: they come from the operator, through status.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import aiohttp

from tierguard.classifier.dataset import CATEGORIES, Example
from tierguard.lab.conversations import (
    AGENT_SHARE,
    AGENT_TOOL_ROUNDS,
    SESSION_HEADER,
    Conversation,
    ConversationTally,
)
from tierguard.lab.fakeanswers import question_of
from tierguard.lab.population import Population, Turn
from tierguard.lab.responses import answer_quality, is_good_answer, rating_for, route_info
from tierguard.lab.scenario_world import ProviderProfile, TrafficSpec
from tierguard.lab.tally import Outcome, RouteInfo, Tally

#: Model name clients send: the router classifies and routes (pinning is not tested here).
ROUTED_MODEL: Final = "auto"


class TrafficGenerator:
    """Sends the simulated users' requests and feedback to the routers.

    ``routers`` are base URLs (``http://127.0.0.1:PORT``); each request goes to a random
    one, as a Service would spread them, so stickiness is exercised across replicas.
    ``profiles`` maps the policy's model names to the providers' profiles (ground truth
    of satisfaction). ``stage`` is read at send time (the supervisor updates it from
    status) so the tally can check stickiness per stage.
    """

    def __init__(
        self,
        spec: TrafficSpec,
        routers: Sequence[str],
        profiles: Mapping[str, ProviderProfile],
        *,
        api_key: str | None = None,
        stage: Callable[[], int] = lambda: 0,
        on_outcome: Callable[[Outcome], None] | None = None,
        baseline: str | None = None,
        tier_of_text: Callable[[str], str] | None = None,
    ) -> None:
        if not routers:
            raise ValueError("no router to send traffic to")
        self.spec = spec
        self.routers = list(routers)
        self.profiles = dict(profiles)
        self.api_key = api_key
        self.stage = stage
        self.on_outcome = on_outcome
        self.baseline = self.profiles.get(baseline) if baseline else None
        #: the router's classifier on one text (the per-request counterfactual), if given
        self.tier_of_text = tier_of_text
        self.population = Population(spec)
        self.tally = Tally()
        self.conversations = ConversationTally()
        self._open: dict[str, tuple[Conversation, asyncio.Lock]] = {}
        self.rng = random.Random(spec.seed + 1)
        self._stop = asyncio.Event()
        self._started = 0.0
        self.rate = spec.requests_per_second

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Send until :meth:`stop`; in-flight requests are awaited before returning."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=self.spec.max_in_flight)
        sem = asyncio.Semaphore(self.spec.max_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()
        async with aiohttp.ClientSession(
            headers=headers, timeout=timeout, connector=connector
        ) as session:
            next_at = time.monotonic()
            while not self._stop.is_set():
                next_at += self.rng.expovariate(self.rate)
                delay = next_at - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), timeout=delay)
                    if self._stop.is_set():
                        break
                elif delay < -1.0:  # overloaded: do not build an ever-growing backlog
                    next_at = time.monotonic()
                if sem.locked():
                    continue  # the machine cannot keep up; drop this arrival
                await sem.acquire()
                turn = self.population.next_turn()
                if self.spec.conversations:
                    task = asyncio.create_task(self._turn(session, turn, sem))
                else:
                    task = asyncio.create_task(self._one(session, turn.user, turn.example, sem))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(
        self,
        session: aiohttp.ClientSession,
        user: str,
        example: Example,
        sem: asyncio.Semaphore,
    ) -> None:
        base = self.rng.choice(self.routers)
        stage = self.stage()
        body = {
            "model": ROUTED_MODEL,
            "user": user,
            "messages": [{"role": "user", "content": example.text}],
            # read by the fake providers only (the router forwards unknown fields)
            "metadata": {"category": example.category},
        }
        started = time.monotonic()
        status = 0
        route: RouteInfo | None = None
        satisfied: bool | None = None
        rating: str | None = None
        counterfactual: bool | None = None
        try:
            async with session.post(f"{base}/v1/chat/completions", json=body) as resp:
                status = resp.status
                payload = await resp.json(content_type=None) if status == 200 else {}
                if status == 200 and isinstance(payload, dict):
                    route = route_info(dict(resp.headers), payload)
                    satisfied = answer_quality(payload)
            latency = time.monotonic() - started
            if route is not None:
                profile = self.profiles.get(route.model)
                if satisfied is None and profile is not None:
                    satisfied = is_good_answer(example.text, example.category, profile)
                if satisfied is not None:
                    rating = rating_for(satisfied, self.spec.rating_rate, self.rng)
                if self.baseline is not None:
                    counterfactual = is_good_answer(example.text, example.category, self.baseline)
                if rating is not None:
                    await self._feedback(session, base, payload["id"], rating)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            latency = time.monotonic() - started
        finally:
            sem.release()
        outcome = Outcome(
            t=started - self._started,
            user=user,
            category=example.category,
            true_tier=CATEGORIES[example.category],
            route=route,
            status=status,
            latency_s=latency,
            satisfied=satisfied,
            rating=rating,
            stage=stage,
            satisfied_if_baseline=counterfactual,
        )
        self.tally.record(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    async def _turn(
        self, session: aiohttp.ClientSession, turn: Turn, sem: asyncio.Semaphore
    ) -> None:
        """One user turn of a conversation: the whole history is sent again; an agent
        turn goes on with the tool results until the model answers in text. Turns of one
        conversation wait for each other, as a person waits for the answer."""
        opened = self._open.get(turn.session)
        if opened is None:
            conv = Conversation(
                id=turn.session,
                user=turn.user,
                category=turn.example.category,
                agent=self.rng.random() < AGENT_SHARE,
            )
            opened = self._open[turn.session] = (conv, asyncio.Lock())
        conv, lock = opened
        base = self.rng.choice(self.routers)
        stage = self.stage()
        started = time.monotonic()
        status = 0
        route: RouteInfo | None = None
        satisfied: bool | None = None
        rating: str | None = None
        counterfactual: bool | None = None
        payload: Any = {}
        category = conv.category
        try:
            async with lock:
                text = conv.add_user_turn(turn.example.text, self.rng, turn.example.category)
                category = conv.category  # this turn's (tool rounds keep it)
                question = question_of(conv.messages)  # what the providers' draw is for
                request_tier = self.tier_of_text(text) if self.tier_of_text else None
                started = time.monotonic()
                for round_ in range(AGENT_TOOL_ROUNDS + 1):
                    status, payload, headers = await self._post(session, base, conv)
                    route = route_info(headers, payload) if status == 200 else None
                    error = payload.get("error") if isinstance(payload, dict) else None
                    self.conversations.record(
                        conv,
                        status=status,
                        error_code=error.get("code") if isinstance(error, dict) else None,
                        model=route.model if route else None,
                        tier=route.tier if route else None,
                        usage=payload.get("usage") if isinstance(payload, dict) else None,
                        tool_result=round_ > 0,
                        arm=route.arm if route else None,
                        request_tier=request_tier,
                    )
                    if status != 200 or not conv.add_answer(payload):
                        break
                latency = time.monotonic() - started
                if route is not None:
                    satisfied = answer_quality(payload)
                    profile = self.profiles.get(route.model)
                    if satisfied is None and profile is not None:
                        satisfied = is_good_answer(question, category, profile)
                    if satisfied is not None:
                        rating = rating_for(satisfied, self.spec.rating_rate, self.rng)
                    if self.baseline is not None:
                        counterfactual = is_good_answer(question, category, self.baseline)
                    if rating is not None:
                        await self._feedback(session, base, payload["id"], rating)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            latency = time.monotonic() - started
            route = None
        finally:
            sem.release()
            if turn.last:
                self._open.pop(turn.session, None)
        outcome = Outcome(
            t=started - self._started,
            user=turn.user,
            category=category,
            true_tier=CATEGORIES.get(category, "simple"),
            route=route,
            status=status,
            latency_s=latency,
            satisfied=satisfied,
            rating=rating,
            stage=stage,
            satisfied_if_baseline=counterfactual,
            unit=conv.id,
        )
        self.tally.record(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    async def _post(
        self, session: aiohttp.ClientSession, base: str, conv: Conversation
    ) -> tuple[int, Any, dict[str, str]]:
        async with session.post(
            f"{base}/v1/chat/completions",
            json=conv.request_body(ROUTED_MODEL),
            headers={SESSION_HEADER: conv.id},
        ) as resp:
            payload = await resp.json(content_type=None)
            return resp.status, payload if isinstance(payload, dict) else {}, dict(resp.headers)

    async def _feedback(
        self, session: aiohttp.ClientSession, base: str, response_id: str, rating: str
    ) -> None:
        """Thumbs up/down for one response, attributed by its signed id."""
        body = {"id": response_id, "rating": rating}
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with session.post(f"{base}/v1/feedback", json=body) as resp:
                await resp.read()
