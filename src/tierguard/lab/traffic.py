"""Simulated users: sessions, seed 003's query mix, satisfaction and feedback.

Why sessions and not independent requests: the router's split is sticky by user, so a
realistic load must come from a population of users who each send a few requests in a
row, and the lab checks that nobody is moved between arms within a stage (the tally
counts every switch). Why the classifier's own generator: the lab's traffic must have
the same categories and hard cases as the classifier's training data and seed 003's
mix (about 65 % simple, 35 % complex), so there is exactly one list of categories.

Split in two layers, as everywhere in tierguard:

* pure: :class:`Population` (who sends the next request), :func:`is_good_answer`,
  :func:`rating_for` (does this user rate, and how), :func:`decode_decision_id` and
  :class:`Tally` (what the users experienced, per tier, arm, model and category);
* I/O: :class:`TrafficGenerator`, an asyncio loop that sends OpenAI-style requests to
  the routers at a Poisson rate and posts feedback to ``/v1/feedback``.

Ground truth. Whether an answer was good is what the fake provider that wrote it says
(its hidden ``tierguard_fake`` marker, see :mod:`tierguard.lab.fakeanswers`), so the
users agree with the shadow judge about which answers were bad; the counterfactual
"would the baseline have satisfied this user" uses the provider's own rule
(:func:`is_good_answer`). The lab therefore knows
each request's true satisfaction -- which the report uses for "cost per satisfied
request" and per-category tables, clearly labelled as the simulator's ground truth. The
rollout's verdicts never come from here: they come from the operator, through status.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from tierguard.classifier.dataset import CATEGORIES, Example, generate
from tierguard.lab.conversations import (
    AGENT_SHARE,
    AGENT_TOOL_ROUNDS,
    SESSION_HEADER,
    Conversation,
    ConversationTally,
)
from tierguard.lab.fakeanswers import is_good, question_of
from tierguard.lab.scenario_world import UPSTREAM_MODEL, ProviderProfile, TrafficSpec
from tierguard.lab.tally import STAGE_SETTLING, Outcome, RouteInfo, Tally

__all__ = [
    "STAGE_SETTLING",
    "Outcome",
    "Population",
    "RouteInfo",
    "Tally",
    "TrafficGenerator",
    "answer_quality",
    "decode_decision_id",
    "is_good_answer",
    "query_pool",
    "rating_for",
    "route_info",
]

#: How many distinct queries the traffic cycles through (deterministic by seed).
POOL_SIZE: Final = 6000
#: Header names the router answers with (tier/arm/model); the decision id carries the same.
HEADER_TIER: Final = "x-tierguard-tier"
HEADER_ARM: Final = "x-tierguard-arm"
HEADER_MODEL: Final = "x-tierguard-model"
#: Model name clients send: the router classifies and routes (pinning is not tested here).
ROUTED_MODEL: Final = "auto"


# --------------------------------------------------------------------------- ground truth


def is_good_answer(text: str, category: str, profile: ProviderProfile) -> bool:
    """Whether a fake provider with ``profile`` answers this query well.

    The fake provider's own rule (:func:`tierguard.lab.fakeanswers.is_good`) applied to
    the model id both lab providers serve, so the simulator's truth is the providers'
    truth: the same draw decides the answer text, the shadow judge and the user.
    """
    return is_good(UPSTREAM_MODEL, text, profile.quality[category])


def answer_quality(body: Mapping[str, Any]) -> bool | None:
    """The fake provider's hidden marker on a response (``tierguard_fake.quality``)."""
    marker = body.get("tierguard_fake")
    if isinstance(marker, Mapping) and marker.get("quality") in ("good", "bad"):
        return bool(marker["quality"] == "good")
    return None


def rating_for(satisfied: bool, rating_rate: float, rng: random.Random) -> str | None:
    """``"up"``, ``"down"`` or ``None`` (this user does not rate this answer).

    The rate of rating does not depend on satisfaction, so thumbs-down share among
    rated answers estimates the share of unsatisfied users without bias.
    """
    if rng.random() >= rating_rate:
        return None
    return "up" if satisfied else "down"


def decode_decision_id(decision_id: str) -> RouteInfo | None:
    """Read tier, arm and model from a signed decision id without verifying it.

    The payload is readable on purpose (the router's module docstring says so); only
    its integrity needs the key, and that is the router's business when feedback comes
    back. Returns None for anything that is not such an id.
    """
    text = decision_id.removeprefix("chatcmpl-")
    payload, sep, _ = text.partition(".")
    if not sep:
        return None
    try:
        fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(fields, list) or len(fields) < 5:
        return None
    return RouteInfo(tier=str(fields[2]), arm=str(fields[3]), model=str(fields[4]))


def route_info(headers: Mapping[str, str], body: Mapping[str, Any]) -> RouteInfo | None:
    """Route facts from response headers, else from the decision id in the body."""
    lower = {k.lower(): v for k, v in headers.items()}
    if HEADER_TIER in lower and HEADER_ARM in lower and HEADER_MODEL in lower:
        return RouteInfo(lower[HEADER_TIER], lower[HEADER_ARM], lower[HEADER_MODEL])
    rid = body.get("id")
    return decode_decision_id(rid) if isinstance(rid, str) else None


# --------------------------------------------------------------------------- population


@dataclass
class _Session:
    user: str
    remaining: int
    id: str = ""


@dataclass(frozen=True)
class Turn:
    """The next request of the population: who, which conversation, which query."""

    user: str
    session: str  # the conversation's id (unique per run)
    last: bool  # the conversation ends with this turn
    example: Example


def query_pool(spec: TrafficSpec) -> list[Example]:
    """The generator's traffic mix for ``spec`` (deterministic by its seed), with the
    categories of ``spec.category_keep`` thinned to that share of their queries."""
    pool = generate(POOL_SIZE, seed=spec.seed, split="all")
    if not spec.category_keep:
        return pool
    rng = random.Random(f"thin-{spec.seed}")
    return [e for e in pool if rng.random() < spec.category_keep.get(e.category, 1.0)]


class Population:
    """Who sends the next request: users in sessions of a few turns.

    A fixed pool of ``users`` ids (``user-0000`` ...) so the same people come back in
    later stages; each arrival either continues an open session or opens a new one for
    a random user. Deterministic for a given seed.
    """

    def __init__(self, spec: TrafficSpec, pool: Sequence[Example] | None = None) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.pool: Sequence[Example] = pool if pool is not None else query_pool(spec)
        if not self.pool:
            raise ValueError("the query pool is empty")
        self._next = 0
        self._open: list[_Session] = []
        self._sessions = 0
        self.width = max(4, len(str(spec.users - 1)))

    def _session_length(self) -> int:
        # geometric with the requested mean (>= 1): most sessions are short, a few long
        p = 1.0 / self.spec.session_length
        return 1 + int(math.log(1.0 - self.rng.random()) / math.log(1.0 - p)) if p < 1 else 1

    def next_request(self) -> tuple[str, Example]:
        """The next (user id, query)."""
        turn = self.next_turn()
        return turn.user, turn.example

    def next_turn(self) -> Turn:
        """The next turn: its user, conversation and query."""
        # keep about sqrt(users) sessions open at a time
        target_open = max(1, int(math.sqrt(self.spec.users)))
        if self._open and (len(self._open) >= target_open or self.rng.random() < 0.5):
            i = self.rng.randrange(len(self._open))
            session = self._open[i]
        else:
            user = f"user-{self.rng.randrange(self.spec.users):0{self.width}d}"
            self._sessions += 1
            session = _Session(user, self._session_length(), f"s{self.spec.seed}-{self._sessions}")
            self._open.append(session)
            i = len(self._open) - 1
        session.remaining -= 1
        if session.remaining <= 0:
            self._open.pop(i)
        example = self.pool[self._next % len(self.pool)]
        self._next += 1
        return Turn(session.user, session.id, session.remaining <= 0, example)


# --------------------------------------------------------------------------- I/O


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
