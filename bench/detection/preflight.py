"""Pre-flight detection study (issue 16): the real rollout state machine
(``tierguard.operator.rollout.reconcile``: ``rollout_preflight.on_preflight``, the pairwise
gate of ``pairedgate.py`` on the paired test of ``paired.py``, the caps and the spend) fed
with mirrored requests of sticky, correlated users, judged by the fake judge
(``tierguard.lab.fakejudge``, both orders, combined as the router does), with the mirror
budget the routers enforce (``tierguard.router.mirrorbudget``), at seed 003's traffic.

    PYTHONPATH=src .venv/bin/python bench/detection/preflight.py --runs 200

writes ``bench/detection/preflight.json`` and the table between the ``preflight``
markers in ``docs/benchmarks.md``.

Traffic: the trapped tier has 10 % of seed 003's 75 eligible requests a minute (7.5 a
minute), sent by sticky users (200 requests a day each, so ~54 users, each coming back
every ~7 minutes): the unit of assignment -- and of mirroring, by hash of the user's
bucket -- is the user. Each user has their own baseline bad rate ``p_u ~ Beta`` (mean
0.10, intra-user correlation ``icc``) and, for a losing candidate, their own extra loss
(``d_u ~ Beta``, mean the loss, same ``icc``: the candidate is bad at some users'
questions more than at others'), so the judged pairs of one user are correlated and the
gate's per-cluster design effect is exercised. The verdict counters are exported per
user cluster (``bucket mod 16``), as the routers do.

Not in this loop: the router process, Prometheus and the API server
(tests/integration/test_operator_preflight.py runs those).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tierguard.api import metrics as m
from tierguard.api.enums import Phase, PreFlightState
from tierguard.api.policy import RoutingPolicySpec
from tierguard.lab.fakejudge import JudgeKnobs, pairwise_reply
from tierguard.operator import preflight as pf
from tierguard.operator import rollout as r
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gatetypes import GateReading, Observations
from tierguard.router.mirrorbudget import MirrorBudget
from tierguard.router.mirroring import sampled
from tierguard.router.pairwise import combine, parse_pairwise
from tierguard.router.split import BUCKETS, cluster_label

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = HERE / "preflight.json"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- preflight:begin -->", "<!-- preflight:end -->"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
VERDICTS = m.PAIRWISE_VERDICTS

#: seed 003: 75 eligible requests a minute, the trapped tier has 10 % of them
TIER_PER_MIN = 7.5
REQUESTS_PER_USER_DAY = 200.0
INTERVAL_MIN = 5
HORIZON_MIN = 10 * 60
#: one pair: a cheap candidate call and two judge calls (~300-token answers), on
#: average; each call's real cost varies around it (uniform +-50 %) and the router
#: reserves the worst case (2x) before starting a mirror
PAIR_COST_USD = 0.0003 + 2 * 0.003
PAIR_WORST_USD = 2 * PAIR_COST_USD


@dataclass(frozen=True)
class Case:
    key: str
    what: str
    base_bad: float
    loss: float
    knobs: JudgeKnobs
    icc: float = 0.05
    max_spend: float = 25.0
    #: the tier judged by its ShadowDisagreement SLO alone (one gate: alpha 0.05)
    one_gate: bool = False


CASES = (
    Case("drop", "5-point loss, truthful judge", 0.10, 0.05, JudgeKnobs(), icc=0.02),
    Case("drop-icc05", "5-point loss, truthful judge", 0.10, 0.05, JudgeKnobs()),
    Case("drop-biased", "5-point loss, 30 % position bias", 0.10, 0.05, JudgeKnobs(0.3), 0.02),
    Case("aa-biased", "A/A, 30 % position bias", 0.10, 0.0, JudgeKnobs(position_bias=0.3)),
    Case("random", "A/A, judge answers at random", 0.10, 0.0, JudgeKnobs(noise=1.0)),
    Case("spend-cap", "A/A, truthful, cap $5", 0.10, 0.0, JudgeKnobs(), max_spend=5.0),
    Case(
        "drop-1gate",
        "5-point loss, truthful judge, ShadowDisagreement SLO only",
        0.10,
        0.05,
        JudgeKnobs(),
        icc=0.02,
        one_gate=True,
    ),
    Case(
        "aa-biased-1gate",
        "A/A, 30 % position bias, ShadowDisagreement SLO only",
        0.10,
        0.0,
        JudgeKnobs(position_bias=0.3),
        one_gate=True,
    ),
)

#: The policy the study runs: the defaults of ``rollout.preflight`` (maxDuration 8h,
#: maxSpendUSD 25, minPairs 200, the sample rate sized from the tier's traffic: all of
#: a tier with 7.5 requests a minute), and
#: the pre-flight SLO docs/statistics.md recommends (ShadowDisagreement allowedDrop 0.03,
#: failMargin 0.005), beside an ErrorRate SLO (two gates: alpha 0.025 each).
POLICY: dict[str, Any] = {
    "models": [
        {"name": "big", "baseURL": "http://big/v1", "upstreamModel": "b"},
        {"name": "small", "baseURL": "http://small/v1", "upstreamModel": "s"},
        {"name": "judge", "baseURL": "http://judge/v1", "upstreamModel": "j"},
    ],
    "routes": [
        {"tier": "trapped", "baseline": "big", "candidate": "small"},
        {"tier": "rest", "baseline": "big"},
    ],
    "classifier": {"tiers": [{"name": "trapped"}, {"name": "rest"}]},
    "rollout": {
        "interval": f"{INTERVAL_MIN}m",
        "noData": {"after": "30m"},
        "preflight": {},
    },
    "analysis": {
        "slos": [
            {
                "tier": "trapped",
                "signal": "ShadowDisagreement",
                "allowedDrop": 0.03,
                "failMargin": 0.005,
            },
            {"tier": "trapped", "signal": "ErrorRate", "allowedDrop": 0.02},
        ]
    },
    "router": {"shadow": {"judge": {"type": "LLM", "model": "judge", "mode": "Pairwise"}}},
}


def spec(max_spend: float, one_gate: bool = False) -> RoutingPolicySpec:
    data = json.loads(json.dumps(POLICY))
    data["rollout"]["preflight"]["maxSpendUSD"] = max_spend
    if one_gate:
        data["analysis"]["slos"] = data["analysis"]["slos"][:1]
    return RoutingPolicySpec.model_validate(data)


def _beta(rng: random.Random, mean: float, icc: float) -> float:
    if mean <= 0:
        return 0.0
    if icc <= 0:
        return mean
    return rng.betavariate(mean * (1 - icc) / icc, (1 - mean) * (1 - icc) / icc)


@dataclass(frozen=True)
class User:
    bucket: int
    base_bad: float
    cand_bad: float


def users(case: Case, rng: random.Random) -> list[User]:
    n = round(TIER_PER_MIN * 1440 / REQUESTS_PER_USER_DAY)
    out = []
    for _ in range(n):
        p = _beta(rng, case.base_bad, case.icc)
        d = _beta(rng, case.loss / (1 - case.base_bad), case.icc) if case.loss > 0 else 0.0
        out.append(User(rng.randrange(BUCKETS), p, p + d * (1 - p)))
    return out


def judged(u: User, case: Case, rng: random.Random) -> str:
    """One mirrored request of user ``u``: both answers, both orders, the router's verdict."""
    good, bad = "fine answer", "banana filler"
    c = bad if rng.random() < u.cand_bad else good
    b = bad if rng.random() < u.base_bad else good
    first = parse_pairwise(pairwise_reply(c, b, lambda t: "banana" in t, case.knobs, rng))
    second = parse_pairwise(pairwise_reply(b, c, lambda t: "banana" in t, case.knobs, rng))
    return combine(first, second)


def _poisson(rng: random.Random, lam: float) -> int:
    k, p, limit = 0, 1.0, 2.718281828459045**-lam
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def _obs(now: datetime, counts: dict[str, dict[str, float]], spent: float) -> Observations:
    return Observations(
        at=now,
        gates={
            "trapped/ShadowDisagreement": GateReading(
                verdicts={v: dict(counts[v]) for v in VERDICTS}, requests_flowing=True
            ),
            "trapped/ErrorRate": GateReading(requests_flowing=True),
        },
        preflight_spend={"trapped": {"r1": spent}},
        # the tiers' request rates the routers report: the sample rate is sized from it
        preflight_traffic={"trapped": TIER_PER_MIN, "rest": 75.0 - TIER_PER_MIN},
    )


def run_once(case: Case, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    sp = spec(case.max_spend, case.one_gate)
    people = users(case, rng)
    per_user = REQUESTS_PER_USER_DAY / 1440 * INTERVAL_MIN
    counts: dict[str, dict[str, float]] = {v: {} for v in VERDICTS}
    spent = 0.0
    st = r.reconcile(sp, None, T0).status
    # the operator looks at once when a rollout starts (before any mirror): the baseline
    st = r.reconcile(sp, st, T0, observations=_obs(T0, counts, spent)).status
    gates = gate_specs(sp)
    # every router process (router.replicas 2 + a rolling update's surge) enforces its
    # share of the issued budget, reserving each mirror's worst case before starting it;
    # the traffic is spread evenly over them
    issued = pf.budget_of(st.gate_state)
    assert issued is not None  # the first look issues the routers' budget epoch
    procs = pf.router_processes(sp)
    budgets = [MirrorBudget(issued.usd_per_router) for _ in range(procs)]
    minute = 0
    while minute < HORIZON_MIN:
        rates = pf.mirror_rates(sp, st, gates)
        rate = rates.get("trapped", 0.0)
        if rate > 0:
            for u in people:
                if not sampled(u.bucket, rate):
                    continue
                for _ in range(_poisson(rng, per_user)):
                    budget = budgets[rng.randrange(procs)]
                    if not budget.try_reserve(PAIR_WORST_USD):
                        continue  # shed: this process's share of the budget is used up
                    cost = PAIR_COST_USD * rng.uniform(0.5, 1.5)
                    budget.settle(PAIR_WORST_USD, cost)
                    spent += cost
                    series = f"r1#{cluster_label(u.bucket)}"
                    verdict = judged(u, case, rng)
                    counts[verdict][series] = counts[verdict].get(series, 0.0) + 1
        minute += INTERVAL_MIN
        now = T0 + timedelta(minutes=minute)
        st = r.reconcile(sp, st, now, observations=_obs(now, counts, spent)).status
        pfs = st.preflight
        assert pfs is not None
        if pfs.state != PreFlightState.RUNNING or st.phase != Phase.PROGRESSING:
            break
    pfs = st.preflight
    assert pfs is not None
    exposed = any(h.weight > 0 for h in st.history if h.reason != "PreFlightPassed")
    tiers = {t.tier: t for t in pfs.tiers}
    return {
        "outcome": pfs.state.value,
        "phase": st.phase.value,
        "minutes": minute,
        "spent": round(spent, 4),
        "exposed_before_verdict": exposed,
        "pairs": tiers["trapped"].judge.judged,
    }


def summarise(case: Case, runs: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(runs)
    failed = [x for x in runs if x["outcome"] == "Failed"]
    return {
        "case": case.key,
        "what": case.what,
        "icc": case.icc,
        "runs": n,
        "failed_at_preflight": len(failed) / n,
        "passed": sum(x["outcome"] == "Passed" for x in runs) / n,
        "held": sum(x["outcome"] == "Held" for x in runs) / n,
        "median_minutes_to_fail": statistics.median(x["minutes"] for x in failed)
        if failed
        else None,
        "median_pairs_to_fail": statistics.median(x["pairs"] for x in failed) if failed else None,
        "max_spent_usd": max(x["spent"] for x in runs),
        "max_spend_usd_cap": case.max_spend,
        "users_exposed_before_verdict": sum(x["exposed_before_verdict"] for x in runs),
    }


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| case | intra-user correlation | runs | failed at pre-flight (0 users exposed) "
        "| passed | held at a cap | median time (pairs) to fail | max spend / cap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in rows:
        med = x["median_minutes_to_fail"]
        when = "-" if med is None else f"{med / 60:.2f} h ({x['median_pairs_to_fail']:.0f})"
        out.append(
            f"| {x['what']} | {x['icc']:g} | {x['runs']} | {x['failed_at_preflight']:.1%} "
            f"| {x['passed']:.1%} | {x['held']:.1%} | {when} "
            f"| ${x['max_spent_usd']:.2f} / ${x['max_spend_usd_cap']:.0f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--only", default=None, help="run one case (no write)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for i, case in enumerate(CASES):
        if args.only and case.key != args.only:
            continue
        runs = [run_once(case, args.seed + 1000 * i + k) for k in range(args.runs)]
        rows.append(summarise(case, runs))
        print(json.dumps(rows[-1]), file=sys.stderr)
    if args.no_write or args.only:
        print(table(rows))
        return 0
    RESULTS.write_text(json.dumps({"seed": args.seed, "rows": rows}, indent=1) + "\n")
    doc = DOC.read_text()
    block = f"{BEGIN}\n{table(rows)}\n{END}"
    if BEGIN in doc:
        head, _, rest = doc.partition(BEGIN)
        _, _, tail = rest.partition(END)
        doc = head + block + tail
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(doc)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
