"""A deterministic generator of realistic customer-support queries, labelled by tier.

Why a generator and not a downloaded corpus: tierguard fetches nothing at run time and
ships no third-party data, yet the router and the lab must work out of the box with a
classifier trained on something that looks like seed 003's traffic. The same generator
drives the lab's simulated users, so the categories below are the one shared list.

The taxonomy is seed 003's. Simple (cheap tier): account lookups, billing status,
password resets, order tracking, opening hours. Complex (capable tier): refund disputes,
plan-change trade-offs, integration troubleshooting, billing-cycle anomalies. The mix is
about 65 % simple / 35 % complex, as in the seed's representative week.

The hard cases are the point. Seed 003's loss hid in queries that *looked* simple: a
balance question whose real content is a double charge, an order-status question that
is really a refund dispute, a password reset that is really an SSO integration fault.
About 30 % of complex examples are generated that way (``hard=True``, ``looks_like`` =
the simple category they imitate): they open like a simple query and the complexity sits
in one clause. Conversely some simple queries carry "scary" words (refund, charged,
integration) in a harmless clause, so a keyword router fails both ways.

Splits: every template list (plain queries, hard clauses, simple openings) reserves
every fourth template for ``split="holdout"``; ``split="train"`` never uses them and
``split="all"`` (the lab's traffic) uses everything. Evaluating on the holdout split
therefore measures what matters in production, phrasing the classifier has never seen,
instead of re-scoring memorised templates (an iid split of templated data scores 100 %
and says nothing).

Layout: this module holds the taxonomy, the labelled ``Example`` and the generator (which
template kind to draw for which category, the split rule, the labels); the text lives in
:mod:`~tierguard.classifier.querytemplates` (ordinary phrasings) and
:mod:`~tierguard.classifier.querytraps` (hard cases and decoys), and
:mod:`~tierguard.classifier.surfaceform` fills slots and varies the surface form.

Everything is driven by one ``random.Random(seed)``: the same ``(n, seed)`` always yields
the same examples, in the same order, on every platform and Python version >= 3.11.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from tierguard.classifier.querytemplates import ASKS, INDIRECT, PLAIN, PREFIXES, PROBLEMS
from tierguard.classifier.querytraps import DECOY_CLAUSES, HARD_CLAUSES, SIMPLE_OPENINGS
from tierguard.classifier.surfaceform import surface

T = TypeVar("T")

__all__ = [
    "CATEGORIES",
    "CATEGORY_WEIGHTS",
    "COMPLEX_CATEGORIES",
    "DEFAULT_TIERS",
    "HARD_SHARE",
    "SIMPLE_CATEGORIES",
    "SPLITS",
    "Example",
    "generate",
    "main",
    "write_jsonl",
]

DEFAULT_TIERS: tuple[str, str] = ("simple", "complex")

#: category -> tier. Ordered: simple categories first, as in seed 003.
CATEGORIES: dict[str, str] = {
    "account_lookup": "simple",
    "billing_status": "simple",
    "password_reset": "simple",
    "order_tracking": "simple",
    "opening_hours": "simple",
    "refund_dispute": "complex",
    "plan_change": "complex",
    "integration_troubleshooting": "complex",
    "billing_anomaly": "complex",
}
SIMPLE_CATEGORIES: tuple[str, ...] = tuple(c for c, t in CATEGORIES.items() if t == "simple")
COMPLEX_CATEGORIES: tuple[str, ...] = tuple(c for c, t in CATEGORIES.items() if t == "complex")

#: share of traffic per category (sums to 1; simple 0.65, complex 0.35).
CATEGORY_WEIGHTS: dict[str, float] = {
    "account_lookup": 0.15,
    "billing_status": 0.14,
    "password_reset": 0.13,
    "order_tracking": 0.15,
    "opening_hours": 0.08,
    "refund_dispute": 0.10,
    "plan_change": 0.08,
    "integration_troubleshooting": 0.09,
    "billing_anomaly": 0.08,
}

#: share of complex examples that are written to look simple.
HARD_SHARE = 0.30
#: share of simple examples that carry a harmless clause with "complex" vocabulary.
DECOY_SHARE = 0.12


@dataclass(frozen=True)
class Example:
    """One labelled query. ``looks_like`` is set only for hard examples."""

    text: str
    tier: str
    category: str
    hard: bool = False
    looks_like: str | None = None

    def to_json(self) -> str:
        """One JSON line in the training-file format (``tierguard train`` reads it back)."""
        d = asdict(self)
        if d["looks_like"] is None:
            del d["looks_like"]
        return json.dumps(d, ensure_ascii=False)


SPLITS: tuple[str, ...] = ("all", "train", "holdout")
_HELD_PERIOD = 4
_HELD_OFFSET = 2


def _subset(options: Sequence[T], split: str) -> Sequence[T]:
    """The templates a split may use (lists shorter than 3 are shared by all splits)."""
    if split == "all" or len(options) < 3:
        return options
    held = [x for i, x in enumerate(options) if i % _HELD_PERIOD == _HELD_OFFSET]
    if split == "holdout":
        return held
    return [x for i, x in enumerate(options) if i % _HELD_PERIOD != _HELD_OFFSET]


def _weighted_category(r: random.Random) -> str:
    x = r.random()
    acc = 0.0
    for cat, w in CATEGORY_WEIGHTS.items():
        acc += w
        if x < acc:
            return cat
    return next(reversed(CATEGORY_WEIGHTS))


def _one(r: random.Random, split: str) -> Example:
    category = _weighted_category(r)
    tier = CATEGORIES[category]
    if tier == "complex" and r.random() < HARD_SHARE:
        looks_like, clause = r.choice(_subset(HARD_CLAUSES[category], split))
        opening = r.choice(_subset(SIMPLE_OPENINGS[looks_like], split))
        text = f"{opening} {clause}"
        return Example(surface(text, r), tier, category, hard=True, looks_like=looks_like)
    roll = r.random()
    if tier == "simple" and roll < 0.4:
        core = r.choice(_subset(INDIRECT[category], split))
        text = f"{r.choice(PREFIXES)} {core}?"
    elif tier == "complex" and roll < 0.5:
        problem = r.choice(_subset(PROBLEMS[category], split))
        text = f"{problem[0].upper()}{problem[1:]}. {r.choice(ASKS)}"
    else:
        text = r.choice(_subset(PLAIN[category], split))
    if tier == "simple" and r.random() < DECOY_SHARE:
        text = f"{text} {r.choice(DECOY_CLAUSES[category])}"
    return Example(surface(text, r), tier, category)


def generate(n: int, seed: int = 0, split: str = "all") -> list[Example]:
    """``n`` examples drawn from seed 003's traffic mix; identical for identical arguments.

    ``split`` is ``"all"`` (every template: simulated traffic), ``"train"`` or
    ``"holdout"`` (disjoint template sets, see the module docstring).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    r = random.Random(seed)
    return [_one(r, split) for _ in range(n)]


def write_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    """Write examples as JSON lines (the ``tierguard train`` input format); return the count."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(ex.to_json() + "\n")
            count += 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tierguard.classifier.dataset --n 300 --seed 7 --out sample.jsonl``."""
    import argparse

    p = argparse.ArgumentParser(description="write a synthetic support-query dataset")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=SPLITS, default="all")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    write_jsonl(generate(args.n, args.seed, args.split), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
