"""Who sends the next request (pure): a fixed pool of simulated users in sessions of a
few turns, each turn a query from seed 003's mix (:func:`query_pool`). Deterministic for
a given seed; the traffic generator (:mod:`tierguard.lab.traffic`) sends the turns."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from tierguard.classifier.dataset import Example, generate
from tierguard.lab.scenario_world import TrafficSpec

#: How many distinct queries the traffic cycles through (deterministic by seed).
POOL_SIZE: Final = 6000


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
