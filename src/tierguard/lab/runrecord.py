"""What a lab run records: a :class:`Sample` every couple of seconds, in a :class:`RunRecord`.

The supervisor (:mod:`tierguard.lab.lab_run`) fills a record while the scenario runs: the
RoutingPolicy's status as read from the API server, Prometheus' cost counters and the
simulated users' tally. The report (:mod:`tierguard.lab.report`) reads only this record,
so it can be rendered, and unit-tested, from a synthetic one; ``record_to_json`` is the
``run.json`` written beside it for re-plotting or auditing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunRecord", "Sample", "record_to_json"]


@dataclass(frozen=True)
class Sample:
    """One observation of the running system (every ~2 s)."""

    t: float  # seconds since the rollout started
    status: Mapping[str, Any]  # RoutingPolicy .status as the API server returned it
    spent_usd: float = 0.0  # sum(tierguard_cost_usd_total), from Prometheus
    all_capable_usd: float = 0.0  # the same tokens priced at the baseline model
    requests: int = 0  # simulator: requests answered so far
    satisfied: int = 0  # simulator: satisfied users so far
    satisfied_if_baseline: int = 0  # simulator: satisfied had the baseline served all
    #: simulator: (tier, arm) -> (served, satisfied) so far
    arms: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: product-wide thumbs (down, rated) so far -- what an aggregate-only gate reads
    thumbs: tuple[int, int] = (0, 0)


@dataclass
class RunRecord:
    """A whole run, as the report needs it."""

    scenario: str
    title: str
    story: str
    expected_phase: str
    expected_tier: str | None
    #: how pre-flight must end ("Passed", "Failed"; None: not asserted)
    expected_preflight: str | None = None
    #: the slice gate that must fail ("topic=opening_hours"; None: not asserted)
    expected_slice: str | None = None
    #: the classifier canary's cell that must fail ("complex→simple"; None: not asserted)
    expected_cell: str | None = None
    samples: list[Sample] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    kubectl_line: str = ""
    final_status: Mapping[str, Any] = field(default_factory=dict)
    policy: Mapping[str, Any] = field(default_factory=dict)
    tally: Mapping[str, Any] = field(default_factory=dict)
    steps: Sequence[float] = (5, 10, 25, 50, 100)
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    naive: RunRecord | None = None


def record_to_json(record: RunRecord) -> dict[str, Any]:
    """The raw record (samples, events, status, tally) for re-plotting or auditing."""
    out = dataclasses.asdict(record)
    return out
