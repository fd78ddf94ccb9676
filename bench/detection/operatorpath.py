"""Detection study on the operator's own path (issue 13, item 4(c)).

    PYTHONPATH=src .venv/bin/python bench/detection/operatorpath.py --seed 20261201

Every simulated rollout is driven by the operator's real state machine,
``tierguard.operator.rollout.reconcile`` (which calls ``gateupdates.update_gates`` /
``gates.evaluate_gates``, hence ``pairedgate`` for the pairwise judge and the two-arm
gates for errors), once a minute, with a :class:`RoutingPolicySpec` validated from a
manifest that sets nothing the study does not name: **the policy defaults** (steps
5/10/25/50/100, interval 1m, bake 5m, ``minSamplesPerArm`` 200, ``maxStepDuration`` 2h,
confidence 0.95, shadow ``sampleRate`` 0.1, default fail margins and judge limits).

System: four tiers (40/30/20/10 % of the eligible traffic), each with a candidate and two
SLOs: ShadowDisagreement judged by a **Pairwise** LLM judge (allowedDrop 0.03) and
ErrorRate (allowedDrop 0.02). Users are sticky (a user's hash bucket decides the arm at
every weight, the canary set a prefix of the bucket range; 16 user clusters = bucket mod
16, the label the routers export) and their outcomes are correlated: per user a
difficulty ``p_u ~ Beta`` with mean 10 % and intra-user correlation ``icc``; the pairwise
judge, asked about a shadowed canary request, finds the canary worse with probability
``0.2 p_u + loss`` and better with ``0.2 p_u`` (the two models fail mostly the same
queries), and 10 % of the judged pairs change verdict with the order (counted as ties),
1 % of judge calls fail. Errors: 2 % per request, per-user ``Beta`` with the same icc.

Writes ``bench/detection/operatorpath.json`` and the table between the ``operatorpath``
markers in ``docs/benchmarks.md``; ``tests/unit/test_detection_study.py`` checks the
table against the JSON and recomputes the fast cell.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tierguard.api import metrics as m
from tierguard.api.enums import Phase
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import preflight as pf
from tierguard.operator import rollout as r
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gatetypes import GateReading, GateSpec, Observations
from tierguard.operator.statistics import ArmReading

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "operatorpath.json"
DOC = HERE.parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- operatorpath:begin -->", "<!-- operatorpath:end -->"

TIERS: tuple[tuple[str, float], ...] = (("t40", 0.4), ("t30", 0.3), ("t20", 0.2), ("t10", 0.1))
CLUSTERS = 16
BASE_DIFFICULTY = 0.10  # mean per-user bad-answer rate of the baseline
SWAP = 0.2  # canary worse / better on a share SWAP * p_u of a user's requests each way
INCONSISTENT = 0.10  # judged pairs whose verdict changes with the order
JUDGE_ERRORS = 0.01
BASE_ERRORS = 0.02
#: What a mirrored pre-flight request costs (one candidate call, two judge calls), as
#: docs/statistics.md "Sizing maxSpendUSD": the spend counter the operator caps.
PAIR_USD = 0.0063
T0 = datetime(2026, 12, 1, tzinfo=UTC)
F64 = npt.NDArray[np.float64]


def manifest(sample_rate: float | None = None, sized: bool = False) -> dict[str, Any]:
    """The study's policy: defaults everywhere except the system it describes.
    ``sized``: pre-flight sized for the 10 % tier at low traffic (it mirrors all of that
    tier's requests, for up to 24 h), the one departure from the defaults, stated.
    Otherwise pre-flight sizes each tier's rate from its traffic (the default)."""
    shadow: dict[str, Any] = {"judge": {"type": "LLM", "model": "judge", "mode": "Pairwise"}}
    if sample_rate is not None:
        shadow["sampleRate"] = sample_rate
    doc: dict[str, Any] = {
        "models": [
            {"name": "big", "baseURL": "http://big/v1", "upstreamModel": "b"},
            {"name": "small", "baseURL": "http://small/v1", "upstreamModel": "s"},
            {"name": "judge", "baseURL": "http://judge/v1", "upstreamModel": "j"},
        ],
        "classifier": {
            "tiers": [{"name": n, "threshold": 0.5} for n, _ in TIERS[:-1]]
            + [{"name": TIERS[-1][0]}]
        },
        "routes": [{"tier": n, "baseline": "big", "candidate": "small"} for n, _ in TIERS],
        "analysis": {
            "slos": [
                slo
                for n, _ in TIERS
                for slo in (
                    {"tier": n, "signal": "ShadowDisagreement", "allowedDrop": 0.03},
                    {"tier": n, "signal": "ErrorRate", "allowedDrop": 0.02},
                )
            ]
        },
        "router": {"shadow": shadow},
    }
    if sized:
        doc["rollout"] = {
            "preflight": {
                "tiers": [{"tier": TIERS[-1][0], "sampleRate": 1.0}],
                "maxDuration": "24h",
            }
        }
    return doc


def policy(sample_rate: float | None = None, sized: bool = False) -> RoutingPolicySpec:
    return RoutingPolicySpec.model_validate(manifest(sample_rate, sized))


@dataclass(frozen=True)
class Cell:
    key: str
    kind: str  # "aa", "within" (1 pt worse in every tier), "drop" (5 pt in the 10 % tier)
    icc: float
    rpm: float  # eligible requests per minute, all tiers
    per_user_day: float = 20.0  # requests per user a day
    sample_rate: float | None = None  # None: the policy default (0.1)
    sized: bool = False  # pre-flight sized for the small tier (see manifest)

    def loss(self, tier: int) -> float:
        if self.kind == "within":
            return 0.01
        if self.kind == "drop" and tier == len(TIERS) - 1:
            return 0.05
        return 0.0


def _beta(rng: np.random.Generator, mean: float, icc: float, size: int) -> F64:
    if icc <= 0:
        return np.full(size, mean)
    a, b = mean * (1 - icc) / icc, (1 - mean) * (1 - icc) / icc
    return rng.beta(a, b, size)


class Traffic:
    """Sticky correlated users of one rollout; cumulative counters per cluster.

    Users sit in bucket slices between the step boundaries; per (tier, slice, cluster) the
    rates of requests, errors and pairwise verdicts are sums over its users, fixed for the
    rollout (Poisson superposition, as bench/detection/users.py)."""

    def __init__(self, cell: Cell, spec: RoutingPolicySpec, rng: np.random.Generator) -> None:
        self.cell, self.rng = cell, rng
        hold = spec.rollout.holdback_percent / 100.0
        bounds = sorted({0.0, 1.0, 1.0 - hold, *(w / 100.0 for w in spec.rollout.steps)})
        self.upper = np.array(bounds[1:])
        width = np.diff(np.array(bounds))
        rate = cell.per_user_day / 1440.0
        sr = spec.router.shadow.sample_rate
        k, j = len(TIERS), len(width)
        # per tier, slice, cluster: [requests, errors control, errors canary,
        #                            worse, better, ties (all canary, shadowed)]
        self.lam = np.zeros((6, k, j, CLUSTERS))
        self.rate = rate
        self.users: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], F64]] = []
        for i, (_, share) in enumerate(TIERS):
            users = cell.rpm * share * 1440.0 / cell.per_user_day
            n = rng.poisson(users * width[:, None] / CLUSTERS, (j, CLUSTERS))
            cell_of = np.repeat(np.arange(n.size), n.ravel())
            pu = _beta(rng, BASE_DIFFICULTY, cell.icc, cell_of.size)
            eu = _beta(rng, BASE_ERRORS, cell.icc, cell_of.size)
            self.users.append((cell_of, n, pu))
            self.lam[0, i] = rate * n
            self.lam[1, i] = rate * self._total(i, eu)
            self.lam[2, i] = rate * self._total(i, eu)
            self.set_loss(i, cell.loss(i))
        self.sample_rate = sr
        self.spend = np.zeros(k)  # cumulative pre-flight USD per tier
        # cumulative counters: arm -> (bad, total) per tier x cluster; verdicts per tier
        self.arms: dict[str, F64] = {}
        self.verdicts = np.zeros((len(m.PAIRWISE_VERDICTS), k, CLUSTERS))
        self.vindex = {v: n for n, v in enumerate(m.PAIRWISE_VERDICTS)}

    def _total(self, tier: int, x: F64) -> F64:
        cell_of, n, _ = self.users[tier]
        sums = np.bincount(cell_of, x, minlength=n.size).reshape(n.shape)
        return np.asarray(sums, dtype=float)

    def set_loss(self, tier: int, loss: float) -> None:
        """The canary's answers in ``tier`` are worse by ``loss`` from now on (the same
        users: a drift after promotion changes the model, not the population)."""
        pu = self.users[tier][2]
        worse = np.clip(SWAP * pu + loss, 0, 1)
        better = SWAP * pu
        self.lam[3, tier] = self.rate * self._total(tier, worse)
        self.lam[4, tier] = self.rate * self._total(tier, better)
        self.lam[5, tier] = self.rate * self._total(tier, np.clip(1 - worse - better, 0, 1))

    def tick(
        self, weight: float, control_arm: str, mirror: Mapping[str, float], minutes: int = 1
    ) -> None:
        """``minutes`` (one by default) at canary ``weight`` (percent); ``mirror``:
        pre-flight's mirror rate per tier (all of the tier's users, weight 0)."""
        on = (self.upper <= weight / 100.0 + 1e-9).astype(float)[None, :, None]
        lam_c = (self.lam[:3] * (1 - on)).sum(axis=2) * minutes
        lam_t = (self.lam * on).sum(axis=2) * minutes
        lam_t[3:] *= self.sample_rate
        if mirror:
            rates = np.array([mirror.get(n, 0.0) for n, _ in TIERS])[None, :, None]
            lam_t[3:] += self.lam[3:].sum(axis=2) * rates * minutes
        rng = self.rng
        for arm, req_lam, err_lam in (
            (control_arm, lam_c[0], lam_c[1]),
            ("canary", lam_t[0], lam_t[2]),
        ):
            if req_lam.sum() <= 0:
                continue
            bad = rng.poisson(err_lam)
            good = rng.poisson(np.maximum(req_lam - err_lam, 0.0))
            c = self.arms.setdefault(arm, np.zeros((2, len(TIERS), CLUSTERS)))
            c[0] += bad
            c[1] += bad + good
        if lam_t[3:].sum() > 0:
            w, b, t = (rng.poisson(x) for x in lam_t[3:])
            judged = w + b + t
            inconsistent = rng.binomial(judged, INCONSISTENT)
            # an inconsistent pair is a tie whatever it was; take it from w, b, t in turn
            take_w = rng.binomial(w, INCONSISTENT)
            take_b = rng.binomial(b, INCONSISTENT)
            v = self.verdicts
            v[self.vindex[m.VERDICT_WORSE]] += w - take_w
            v[self.vindex[m.VERDICT_BETTER]] += b - take_b
            v[self.vindex[m.VERDICT_TIE]] += np.maximum(t - (inconsistent - take_w - take_b), 0)
            v[self.vindex[m.VERDICT_INCONSISTENT]] += inconsistent
            errors = rng.poisson(JUDGE_ERRORS * (w + b + t) + 0.0)
            v[self.vindex[m.VERDICT_ERROR]] += errors
            if mirror:  # pre-flight: every judged pair is a mirrored request (weight 0)
                self.spend += (w + b + t + errors).sum(axis=1) * PAIR_USD

    def observe(self, gates: list[GateSpec], at: datetime) -> Observations:
        out: dict[str, GateReading] = {}
        tiers = {n: i for i, (n, _) in enumerate(TIERS)}
        for gs in gates:
            i = tiers[gs.tier]
            if gs.pairwise:
                verdicts: Mapping[str, Mapping[str, float]] = {
                    v: _series(self.verdicts[n, i]) for v, n in self.vindex.items()
                }
                out[gs.key] = GateReading(verdicts=verdicts, requests_flowing=True)
            else:
                arms = {
                    arm: ArmReading(bad=_series(c[0, i]), total=_series(c[1, i]))
                    for arm, c in self.arms.items()
                }
                out[gs.key] = GateReading(arms=arms, requests_flowing=True)
        traffic = {n: self.cell.rpm * share for n, share in TIERS}
        spend = {n: {"router-0": float(self.spend[i])} for i, (n, _) in enumerate(TIERS)}
        return Observations(at=at, gates=out, preflight_traffic=traffic, preflight_spend=spend)


def _series(per_cluster: F64) -> dict[str, float]:
    return {f"router-0#{c}": float(x) for c, x in enumerate(per_cluster) if x > 0}


@dataclass(frozen=True)
class RunResult:
    phase: str
    step: int  # the step the rollout ended at (0 = first)
    minutes: int
    first_stage_fail: bool  # rolled back at its first stage (pre-flight, else step 1)
    in_preflight: bool  # ended during pre-flight
    preflight_usd: float = 0.0  # what pre-flight's mirrored requests cost


def run_one(cell: Cell, seed: int, spec: RoutingPolicySpec, horizon: int) -> RunResult:
    """One rollout through ``rollout.reconcile`` until it is promoted, rolled back or
    paused (maxStepDuration), or ``horizon`` minutes pass."""
    rng = np.random.default_rng(seed)
    traffic = Traffic(cell, spec, rng)
    gates = gate_specs(spec)
    st = RoutingPolicyStatus()
    saw_preflight = False
    for i in range(horizon):
        now = T0 + timedelta(minutes=i)
        weight, arm = r.serving_split(spec, st)
        traffic.tick(weight, arm.value, pf.mirror_rates(spec, st, gates))
        obs = traffic.observe(gates, now) if r.evaluation_due(spec, st, now) else None
        st = r.reconcile(spec, st, now, generation=1, observations=obs).status
        saw_preflight = saw_preflight or pf.running(st)
        if st.phase in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.PAUSED):
            break
    early = st.step == 0 and st.canary_weight == 0.0
    first = st.phase == Phase.ROLLED_BACK and (early or (st.step == 0 and not saw_preflight))
    return RunResult(
        st.phase.value,
        st.step,
        i + 1,
        first,
        early and saw_preflight,
        float(traffic.spend.sum()),
    )


#: Heavy users (an API key, a power user): 200 requests a day, as the clustering study.
HEAVY = 200.0
#: Traffic (eligible requests/min) at which the default policy's gates can pass every
#: step within maxStepDuration: the 10 % tier's 200 judged pairs per step at a 5 % canary
#: share and a 0.1 shadow rate need ~3,500 req/min (``first_step_pairs``), the pass
#: side's bound for a canary 1 point worse about ten times as many pairs.
FULL_RPM = 30000.0
MID_RPM = 3000.0
SIZED_RPM = 8000.0
SEED_RPM = 75.0

CELLS: tuple[Cell, ...] = (
    Cell("aa-0", "aa", 0.0, FULL_RPM),
    Cell("aa-0.02", "aa", 0.02, FULL_RPM),
    Cell("aa-0.05", "aa", 0.05, FULL_RPM),
    Cell("aa-0.05-heavy", "aa", 0.05, FULL_RPM, HEAVY),
    Cell("within-0.02", "within", 0.02, FULL_RPM),
    Cell("within-0.02-heavy", "within", 0.02, FULL_RPM, HEAVY),
    Cell("within-0.02-3000", "within", 0.02, MID_RPM),
    Cell("within-0.02-8000", "within", 0.02, SIZED_RPM),
    Cell("drop-seed", "drop", 0.02, SEED_RPM),
    Cell("drop-seed-sized", "drop", 0.02, SEED_RPM, sized=True),
    Cell("drop-0.02", "drop", 0.02, FULL_RPM),
)
#: Cells the unit test recomputes (they end within the first stage or two).
QUICK = ("drop-0.02",)
HORIZON = 24 * 60 + 5 * 120 + 10  # pre-flight (default 8 h, sized 24 h), five 2 h steps


def first_step_pairs(spec: RoutingPolicySpec) -> float:
    """Judged pairs the smallest tier collects per eligible request/min during the first
    step (before its ``maxStepDuration``): share x weight x sampleRate x minutes."""
    minutes = 120.0
    return TIERS[-1][1] * spec.rollout.steps[0] / 100.0 * spec.router.shadow.sample_rate * minutes


def compute(
    runs: int, seed: int, keys: tuple[str, ...] | None = None, runs_aa: int | None = None
) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for cell in CELLS:
        if keys is not None and cell.key not in keys:
            continue
        spec = policy(cell.sample_rate, cell.sized)
        n = runs_aa if cell.kind == "aa" and runs_aa is not None else runs
        started = time.time()
        base = seed + zlib.crc32(cell.key.encode()) % 1_000_000
        res = [run_one(cell, base + k, spec, HORIZON) for k in range(n)]
        phases = [x.phase for x in res]
        rb_minutes = [x.minutes for x in res if x.phase == Phase.ROLLED_BACK.value]
        out.append(
            {
                "cell": cell.key,
                "scenario": cell.kind,
                "icc": cell.icc,
                "requests_per_minute": cell.rpm,
                "requests_per_user_day": cell.per_user_day,
                "sample_rate": spec.router.shadow.sample_rate,
                "sized": cell.sized,
                "runs": n,
                "rolled_back": phases.count(Phase.ROLLED_BACK.value) / n,
                "promoted": phases.count(Phase.PROMOTED.value) / n,
                "paused": phases.count(Phase.PAUSED.value) / n,
                "rolled_back_first_stage": sum(x.first_stage_fail for x in res) / n,
                "paused_at_step": [
                    sum(1 for x in res if x.phase == Phase.PAUSED.value and x.step == s) / n
                    for s in range(len(spec.rollout.steps))
                ],
                "median_minutes_to_rollback": float(np.median(rb_minutes)) if rb_minutes else None,
                "median_preflight_usd": round(float(np.median([x.preflight_usd for x in res])), 2),
                "max_preflight_usd": round(max(x.preflight_usd for x in res), 2),
                "seconds": round(time.time() - started, 1),
            }
        )
        sys.stderr.write(f"{cell.key}: {out[-1]}\n")
    return {"seed": seed, "runs": runs, "runs_aa": runs_aa or runs, "results": out}


KINDS = {
    "aa": "identical models (A/A)",
    "within": "canary 1 pt worse in every tier, 3 pt allowed",
    "drop": "5-point loss in the 10 % tier",
}


def render(data: dict[str, Any]) -> str:
    rows = [
        f"Seed {data['seed']}; `rollout.reconcile` once a minute with the policy defaults "
        "(8 gates: 4 pairwise ShadowDisagreement, 4 two-arm ErrorRate), 16 user clusters; "
        "pre-flight spend in US dollars at $0.0063 a mirrored request.",
        "",
        "| scenario | eligible req/min | policy | requests per user a day "
        "| intra-user correlation | rollouts | rolled back | at the first stage | promoted "
        "| paused | median time to rollback | pre-flight spend, median / max |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in data["results"]:
        t = x["median_minutes_to_rollback"]
        rows.append(
            f"| {KINDS[x['scenario']]} | {x['requests_per_minute']:g} "
            f"| {_policy_label(x)} "
            f"| {x['requests_per_user_day']:g} | {x['icc']:g} | {x['runs']} "
            f"| {x['rolled_back']:.1%} | {x['rolled_back_first_stage']:.1%} "
            f"| {x['promoted']:.1%} | {x['paused']:.1%} | {'–' if t is None else f'{t:.0f} min'} "
            f"| {_spend(x)} |"
        )
    return "\n".join(rows)


def _spend(x: Mapping[str, Any]) -> str:
    if "max_preflight_usd" not in x:  # a row recorded before spend was simulated
        return "not simulated"
    return f"${x['median_preflight_usd']:.0f} / ${x['max_preflight_usd']:.0f}"


def _policy_label(x: Mapping[str, Any]) -> str:
    if x.get("sized"):
        return "defaults, but pre-flight mirrors all of the 10 % tier, up to 24 h"
    return "defaults"


def write_doc(data: dict[str, Any]) -> None:
    sys.path.insert(0, str(HERE))
    import sim

    sim.replace_block(DOC, BEGIN, END, render(data))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--runs-aa", type=int, default=300)
    parser.add_argument("--cells", default="", help="comma-separated cell keys (default all)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--part", type=Path, help="write this subset's JSON here only (parallel runs)"
    )
    parser.add_argument(
        "--merge", default="", help="comma-separated --part files: merged into the JSON and doc"
    )
    args = parser.parse_args()
    if args.merge:
        for part in args.merge.split(","):
            merge(json.loads(Path(part).read_text()))
        return 0
    keys = tuple(args.cells.split(",")) if args.cells else None
    started = time.time()
    data = compute(args.runs, args.seed, keys, args.runs_aa)
    data["wall_seconds"] = round(time.time() - started)
    print(render(data))
    if args.part is not None:
        args.part.write_text(json.dumps(data, indent=1) + "\n")
    elif not args.no_write:
        merge(data) if keys is not None else _write(data)
    return 0


def merged_results(path: Path, order: list[str], data: dict[str, Any]) -> dict[str, Any]:
    """A subset's rows merged into the rows recorded in ``path`` (a row per cell, in the
    cells' ``order``); ``wall_seconds`` is the cells' seconds summed."""
    rows = {r["cell"]: r for r in json.loads(path.read_text())["results"]} if path.exists() else {}
    rows.update({r["cell"]: r for r in data["results"]})
    results = [rows[key] for key in order if key in rows]
    return {**data, "results": results, "wall_seconds": round(sum(r["seconds"] for r in results))}


def merge(data: dict[str, Any]) -> None:
    """A subset's rows merged into the recorded ones (and the doc rewritten)."""
    _write(merged_results(RESULTS, [c.key for c in CELLS], data))


def _write(data: dict[str, Any]) -> None:
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")
    write_doc(data)


if __name__ == "__main__":
    sys.exit(main())
