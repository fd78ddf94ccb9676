"""Pre-flight (``rollout.preflight``): the stage at 0 % exposure before the first
weighted step. Pure functions; :mod:`rollout` calls them.

While pre-flight runs, no user is served by the candidate: the routers serve every
request from the baseline and mirror a sample of the stateless ones to the candidate
(``TierSplit.mirrorRate``), the pairwise judge compares the two answers and counts the
verdict as ``shadow_pairwise_total{arm="mirror"}``. The tier's pairwise
ShadowDisagreement gate (:mod:`pairedgate`) reads those counts -- the same gate, the same
alpha share and the same e-process that judges the weighted steps afterwards, so the
evidence carries over (docs/statistics.md, Pre-flight). Pre-flight passes when every
pre-flight tier's gate is Pass with ``minPairs`` judged pairs; any Fail rolls back with
0 users exposed; at ``maxSpendUSD`` or ``maxDuration`` without a verdict it pauses, and
only a person moves it on (resume after raising a cap, promote, or abort).

Which tiers run it (:func:`plan`): with ``enabled`` unset, the tiers with a candidate
and a pairwise ShadowDisagreement gate, when the policy's judge is Pairwise; pre-flight
is skipped (status and an Event say why) when the judge is not Pairwise (a Similarity or
agreement judge cannot say which answer is better), when no tier has such a gate, or
when ``enabled`` is false. Tiers with a candidate but no pairwise gate are judged from
the first weighted step only (the status message names them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tierguard.api.enums import Phase, PreFlightState, Verdict
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import (
    JudgeHealthStatus,
    PreFlightStatus,
    PreFlightTierStatus,
    RoutingPolicyStatus,
)
from tierguard.operator.gatestatus import judge_status
from tierguard.operator.gatetypes import GateOutcome, GateSpec
from tierguard.operator.statistics import series_delta

#: Where the spend readings live in ``status.gateState``.
SPEND_KEY = "preflightSpend"
#: Where the issued mirror budget lives in ``status.gateState`` (router/mirrorbudget.py).
BUDGET_KEY = "preflightBudget"
#: Router processes that can be alive at once beyond ``router.replicas``: the rolling
#: update's surge (render.py: maxSurge 1).
ROUTER_SURGE = 1


@dataclass(frozen=True)
class PreFlightPlan:
    """Which tiers run pre-flight at which mirror rate; or why it is skipped."""

    rates: Mapping[str, float] = field(default_factory=dict)
    skipped: str | None = None
    #: tiers whose rate is sized from their traffic (``sampleRate`` unset); 0 until sized
    sized: tuple[str, ...] = ()
    #: tiers with a candidate that are judged from the first weighted step only
    unjudged: tuple[str, ...] = ()


def plan(
    spec: RoutingPolicySpec,
    gates: Sequence[GateSpec],
    sized: Mapping[str, float] | None = None,
) -> PreFlightPlan:
    """The pre-flight of this spec (``gates``: :func:`gatespecs.gate_specs`; ``sized``: the
    rates :func:`size_rates` chose for tiers without an explicit one, from status)."""
    pf = spec.rollout.preflight
    judge = spec.router.shadow.judge
    if pf.enabled is False:
        return PreFlightPlan(skipped="rollout.preflight.enabled is false")
    if not (judge.type == "LLM" and judge.mode == "Pairwise"):
        return PreFlightPlan(
            skipped=(
                "pre-flight needs a pairwise LLM judge (router.shadow.judge.mode Pairwise) "
                "and the policy has none; set rollout.preflight.enabled: false to say so"
            )
        )
    candidates = [r.tier for r in spec.routes if r.candidate is not None]
    judged = [t for t in candidates if any(g.pairwise and g.tier == t for g in gates)]
    if not judged:
        return PreFlightPlan(
            skipped="no tier with a candidate has a ShadowDisagreement SLO to judge it with"
        )
    auto = tuple(t for t in judged if pf.rate(t) is None)
    rates = {t: pf.rate(t) for t in judged}
    return PreFlightPlan(
        rates={t: (sized or {}).get(t, 0.0) if r is None else r for t, r in rates.items()},
        unjudged=tuple(t for t in candidates if t not in judged),
        sized=auto,
    )


#: Where the rates sized from traffic live in ``status.gateState``.
RATES_KEY = "preflightRates"
#: A sized rate is changed only when the traffic moved it by more than this (relative):
#: fewer router configuration writes, the same pairs an hour within that much.
RESIZE_TOLERANCE = 0.25


def sized_rates(gate_state: Mapping[str, Any]) -> dict[str, float]:
    raw = gate_state.get(RATES_KEY)
    return {str(k): float(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def rate_for(requests_per_minute: float, target_pairs_per_hour: int) -> float:
    """The share of a tier's requests that yields ``target_pairs_per_hour`` (at most all;
    all of a tier without traffic yet: mirroring it costs nothing until requests come,
    and the next look sizes it)."""
    per_hour = max(0.0, requests_per_minute) * 60.0
    if per_hour <= target_pairs_per_hour:
        return 1.0
    return max(1e-4, round(target_pairs_per_hour / per_hour, 4))


def size_rates(
    gate_state: Mapping[str, Any],
    spec: RoutingPolicySpec,
    gates: Sequence[GateSpec],
    traffic: Mapping[str, float] | None,
) -> dict[str, Any]:
    """``gate_state`` with the sample rates of the tiers without an explicit one sized
    from their request rate (``traffic``: tier -> requests a minute; None: not read, the
    rates stay as they are). A rate moves only beyond :data:`RESIZE_TOLERANCE`."""
    p = plan(spec, gates)
    if traffic is None or not p.sized:
        return dict(gate_state)
    target = spec.rollout.preflight.target_pairs_per_hour
    old = sized_rates(gate_state)
    new = dict(old)
    for t in p.sized:
        want = rate_for(traffic.get(t, 0.0), target)
        have = old.get(t)
        if have is None or abs(want - have) > RESIZE_TOLERANCE * have:
            new[t] = want
    return {**gate_state, RATES_KEY: new}


def describe_rates(p: PreFlightPlan, target_pairs_per_hour: int) -> str:
    """``simple 20%, rare sized from traffic (~450 pairs/h)``."""
    return ", ".join(
        f"{t} sized from traffic (~{target_pairs_per_hour} pairs/h)"
        if t in p.sized
        else f"{t} {r:.0%}"
        for t, r in p.rates.items()
    )


def running(status: RoutingPolicyStatus) -> bool:
    """Whether the rollout is in its pre-flight stage (running, or held at a cap, or
    passed and waiting for a manual promote): weight 0, nothing served by the candidate."""
    pf = status.preflight
    return (
        bool(status.revision)
        and pf is not None
        and status.phase in (Phase.PROGRESSING, Phase.PAUSED)
        and (
            pf.state in (PreFlightState.RUNNING, PreFlightState.HELD)
            or (pf.state == PreFlightState.PASSED and status.canary_weight == 0.0)
        )
    )


def mirror_rates(
    spec: RoutingPolicySpec, status: RoutingPolicyStatus, gates: Sequence[GateSpec]
) -> dict[str, float]:
    """The mirror sample rate per tier the routers apply now (empty: no mirroring).
    Only while pre-flight runs and the phase is Progressing, and once a budget epoch was
    issued (:func:`issue_budget`, at the first look with every router on target): a pause
    (a cap, no data, a person) stops mirrored spend at once."""
    pf = status.preflight
    if (
        status.phase != Phase.PROGRESSING
        or not status.revision
        or pf is None
        or pf.state != PreFlightState.RUNNING
        or budget_of(status.gate_state) is None
    ):
        return {}
    rates = plan(spec, gates, sized_rates(status.gate_state)).rates
    return {t: r for t, r in rates.items() if r > 0}


def router_processes(spec: RoutingPolicySpec) -> int:
    """The most router processes that can hold one budget epoch at once: every pod
    (replicas plus the surge) runs ``router.workers`` processes, each with a ledger of
    its own (router/workers.py: nothing but metric files is shared between them)."""
    return max(1, (spec.router.replicas + ROUTER_SURGE) * spec.router.workers)


def router_allowance(remaining_usd: float, processes: int) -> float:
    """Each process's share of what is left of the budget (rounded down to 1e-9 USD, so
    the shares never add up to more than the rest)."""
    share = max(0.0, remaining_usd) / max(1, processes)
    return float(int(share * 1e9) / 1e9)


@dataclass(frozen=True)
class MirrorBudget:
    """The budget epoch the routers enforce (``RouterConfig.mirrorBudget``)."""

    epoch: str
    usd_per_router: float
    cap: float
    #: what every epoch issued so far may have committed at most, in total
    committed: float

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "usdPerRouter": self.usd_per_router,
            "cap": self.cap,
            "committed": self.committed,
        }


def budget_of(gate_state: Mapping[str, Any]) -> MirrorBudget | None:
    raw = gate_state.get(BUDGET_KEY)
    if not isinstance(raw, Mapping):
        return None
    return MirrorBudget(
        epoch=str(raw["epoch"]),
        usd_per_router=float(raw["usdPerRouter"]),
        cap=float(raw["cap"]),
        committed=float(raw["committed"]),
    )


def issue_budget(
    gate_state: Mapping[str, Any],
    spec: RoutingPolicySpec,
    status: RoutingPolicyStatus,
    spent: float,
) -> dict[str, Any]:
    """A new budget epoch when none was issued for this cap (pre-flight starts, or a
    person raised ``maxSpendUSD``); otherwise ``gate_state`` unchanged. The new epoch
    shares ``cap - max(spent, committed before)`` among the router processes: an earlier
    epoch's unused shares are not re-issued (a process may still be spending them), so
    the total stays within the cap whatever the earlier epochs' calls still in flight."""
    cap = spec.rollout.preflight.max_spend_usd
    prev = budget_of(gate_state)
    if prev is not None and prev.cap == cap:
        return dict(gate_state)
    base = max(spent, prev.committed if prev is not None else 0.0)
    n = router_processes(spec)
    share = router_allowance(cap - base, n)
    count = int(prev.epoch.rpartition("/")[2]) + 1 if prev is not None else 1
    fresh = MirrorBudget(
        epoch=f"{status.revision}/{status.attempt}/{count}",
        usd_per_router=share,
        cap=cap,
        committed=max(base, base + n * share),
    )
    return {**gate_state, BUDGET_KEY: fresh.to_json()}


def gates_of(gates: Sequence[GateSpec], rates: Mapping[str, float]) -> list[GateSpec]:
    """The gates pre-flight judges: the pairwise gates of its tiers."""
    return [g for g in gates if g.pairwise and g.tier in rates]


def update_spend(
    gate_state: Mapping[str, Any], readings: Mapping[str, Mapping[str, float]] | None
) -> tuple[dict[str, Any], float]:
    """Fold the spend counters (``tier -> {series: cumulative USD}``; None: not read)
    into ``gate_state`` and return it with the total spent since pre-flight started. As
    for the gates, the first reading is the baseline (a counter may still hold an earlier
    attempt's spend); a series born after it counts from 0, resets are per series."""
    prev = gate_state.get(SPEND_KEY)
    total = float(prev.get("total", 0.0)) if prev is not None else 0.0
    if readings is None:
        return dict(gate_state), total
    cur = {tier: dict(series) for tier, series in readings.items()}
    if prev is not None:
        last: Mapping[str, Mapping[str, float]] = prev.get("last", {})
        for tier, before in last.items():
            merged = {**before, **cur.get(tier, {})}
            cur[tier] = merged
        total += sum(series_delta(last.get(t), s) for t, s in cur.items())
    return {**gate_state, SPEND_KEY: {"last": cur, "total": total}}, total


def tier_status(tier: str, rate: float, outcome: GateOutcome | None) -> PreFlightTierStatus:
    if outcome is None:
        return PreFlightTierStatus(
            tier=tier, verdict=Verdict.NO_DATA, sample_rate=rate, message="not evaluated yet"
        )
    judge = (
        judge_status(outcome.judge, outcome.canary_bad, outcome.control_bad)
        if outcome.judge is not None
        else JudgeHealthStatus()
    )
    return PreFlightTierStatus(
        tier=tier,
        verdict=outcome.verdict,
        sample_rate=rate,
        judge=judge,
        message=outcome.message[:2048],
    )


def summary(tiers: Sequence[PreFlightTierStatus]) -> str:
    """One line: per tier verdict and win/tie/loss from the candidate's side."""
    return ", ".join(
        f"{t.tier}={t.verdict.value} ({t.judge.judged} judged: {t.judge.better} better, "
        f"{t.judge.ties} tie, {t.judge.worse} worse)"
        for t in tiers
    )


def fresh(spec: RoutingPolicySpec, p: PreFlightPlan, now: datetime) -> PreFlightStatus:
    """The status of a pre-flight that starts (or is skipped) now."""
    if p.skipped is not None:
        out = PreFlightStatus(
            state=PreFlightState.SKIPPED,
            finished_at=now,
            message=f"pre-flight skipped: {p.skipped}"[:2048],
        )
    else:
        out = PreFlightStatus(
            state=PreFlightState.RUNNING,
            started_at=now,
            tiers=[tier_status(t, r, None) for t, r in p.rates.items()],
            message="pre-flight running: 0 users exposed",
        )
    out.max_spend_usd = spec.rollout.preflight.max_spend_usd
    return out


def fmt_usd(x: float) -> str:
    return f"${x:.2f}"
