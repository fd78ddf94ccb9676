"""Pre-flight detection study (issue 16): the real rollout state machine
(``tierguard.operator.rollout.reconcile`` with the pairwise gate, the caps and the spend)
fed with mirrored pairs judged by the fake judge (``tierguard.lab.fakejudge``, both
orders, combined as the router does), at seed 003's traffic.

    PYTHONPATH=src .venv/bin/python bench/detection/preflight.py --runs 200

writes ``bench/detection/preflight.json`` and the table between the ``preflight``
markers in ``docs/benchmarks.md``. What is simulated and what is not: the verdict
counts per interval and the spend are drawn per mirrored request (binomial arrivals, one
pair per request, the judge's two replies from its knobs); the router, Prometheus and
the API server are not in the loop (tests/integration/test_preflight.py runs those).
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

from tierguard.api.enums import Phase, PreFlightState
from tierguard.api.policy import RoutingPolicySpec
from tierguard.lab.fakejudge import JudgeKnobs, pairwise_reply
from tierguard.operator import gates as g
from tierguard.operator import preflight as pf
from tierguard.operator import rollout as r
from tierguard.router.pairwise import combine, parse_pairwise

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = HERE / "preflight.json"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- preflight:begin -->", "<!-- preflight:end -->"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
VERDICTS = ("worse", "better", "tie", "inconsistent", "error")

#: seed 003: 75 eligible requests a minute, the trapped tier has 10 % of them
TIER_PER_MIN = 7.5
INTERVAL_MIN = 5
#: one pair: a cheap candidate call and two judge calls (~300-token answers)
PAIR_COST_USD = 0.0003 + 2 * 0.003


@dataclass(frozen=True)
class Case:
    key: str
    what: str
    base_bad: float
    cand_bad: float
    knobs: JudgeKnobs
    max_spend: float = 20.0


CASES = (
    Case("drop", "5-point loss, truthful judge", 0.10, 0.15, JudgeKnobs()),
    Case("drop-biased", "5-point loss, 30 % position bias", 0.10, 0.15, JudgeKnobs(0.3)),
    Case("aa-biased", "A/A, 30 % position bias", 0.10, 0.10, JudgeKnobs(position_bias=0.3)),
    Case("random", "A/A, judge answers at random", 0.10, 0.10, JudgeKnobs(noise=1.0)),
    Case("spend-cap", "A/A, truthful, cap $5", 0.10, 0.10, JudgeKnobs(), max_spend=5.0),
)


def spec(max_spend: float) -> RoutingPolicySpec:
    """The trapped tier with a candidate, gated by the pairwise judge (allowedDrop 0.03,
    as the lab) and ErrorRate; pre-flight at sampleRate 1.0, 6 h, minPairs 200."""
    return RoutingPolicySpec.model_validate(
        {
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
                "preflight": {
                    "sampleRate": 1.0,
                    "minPairs": 200,
                    "maxDuration": "6h",
                    "maxSpendUSD": max_spend,
                },
            },
            "analysis": {
                "slos": [
                    {"tier": "trapped", "signal": "ShadowDisagreement", "allowedDrop": 0.03},
                    {"tier": "trapped", "signal": "ErrorRate", "allowedDrop": 0.02},
                ]
            },
            "router": {"shadow": {"judge": {"type": "LLM", "model": "judge", "mode": "Pairwise"}}},
        }
    )


def one_pair(case: Case, rng: random.Random) -> str:
    good, bad = "fine answer", "banana filler"
    c = bad if rng.random() < case.cand_bad else good
    b = bad if rng.random() < case.base_bad else good
    first = parse_pairwise(pairwise_reply(c, b, lambda t: "banana" in t, case.knobs, rng))
    second = parse_pairwise(pairwise_reply(b, c, lambda t: "banana" in t, case.knobs, rng))
    return combine(first, second)


def _obs(now: datetime, total: dict[str, float], spent: float) -> g.Observations:
    return g.Observations(
        at=now,
        gates={
            "trapped/ShadowDisagreement": g.GateReading(
                verdicts={v: {"r1": total[v]} for v in VERDICTS}, requests_flowing=True
            ),
            "trapped/ErrorRate": g.GateReading(requests_flowing=True),
        },
        preflight_spend={"trapped": {"r1": spent}},
    )


def run_once(case: Case, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    sp = spec(case.max_spend)
    total = dict.fromkeys(VERDICTS, 0.0)
    spent = 0.0
    st = r.reconcile(sp, None, T0).status
    # the operator looks at once when a rollout starts (before any mirror): the baseline
    st = r.reconcile(sp, st, T0, observations=_obs(T0, total, spent)).status
    gates = g.gate_specs(sp)
    minute = 0
    while minute < 8 * 60:
        if pf.mirror_rates(sp, st, gates):
            lam = TIER_PER_MIN * INTERVAL_MIN
            n = sum(1 for _ in range(int(lam * 2)) if rng.random() < 0.5)  # ~Binomial mean lam
            for _ in range(n):
                total[one_pair(case, rng)] += 1
            spent += n * PAIR_COST_USD
        minute += INTERVAL_MIN
        now = T0 + timedelta(minutes=minute)
        st = r.reconcile(sp, st, now, observations=_obs(now, total, spent)).status
        pfs = st.preflight
        assert pfs is not None
        if pfs.state != PreFlightState.RUNNING or st.phase != Phase.PROGRESSING:
            break
    pfs = st.preflight
    assert pfs is not None
    exposed = any(h.weight > 0 for h in st.history if h.reason != "PreFlightPassed")
    return {
        "outcome": pfs.state.value,
        "phase": st.phase.value,
        "minutes": minute,
        "spent": round(spent, 4),
        "exposed_before_verdict": exposed,
    }


def summarise(case: Case, runs: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(runs)
    failed = [x for x in runs if x["outcome"] == "Failed"]
    return {
        "case": case.key,
        "what": case.what,
        "runs": n,
        "failed_at_preflight": len(failed) / n,
        "passed": sum(x["outcome"] == "Passed" for x in runs) / n,
        "held": sum(x["outcome"] == "Held" for x in runs) / n,
        "median_minutes_to_fail": statistics.median(x["minutes"] for x in failed)
        if failed
        else None,
        "max_spent_usd": max(x["spent"] for x in runs),
        "max_spend_usd_cap": case.max_spend,
        "users_exposed_before_verdict": sum(x["exposed_before_verdict"] for x in runs),
    }


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| case | runs | failed at pre-flight (0 users exposed) | passed | held at a cap "
        "| median time to fail | max spend / cap |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in rows:
        med = x["median_minutes_to_fail"]
        out.append(
            f"| {x['what']} | {x['runs']} | {x['failed_at_preflight']:.1%} | {x['passed']:.1%} "
            f"| {x['held']:.1%} | {'-' if med is None else f'{med / 60:.1f} h'} "
            f"| ${x['max_spent_usd']:.2f} / ${x['max_spend_usd_cap']:.0f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for i, case in enumerate(CASES):
        runs = [run_once(case, args.seed + 1000 * i + k) for k in range(args.runs)]
        rows.append(summarise(case, runs))
        print(json.dumps(rows[-1]), file=sys.stderr)
    if args.no_write:
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
