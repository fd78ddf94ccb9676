"""The stratified review sample: one reservoir per (tier, arm).

Seed 003's team reviewed 200 answers a day without splitting them by tier and missed a
loss confined to one slice of "simple" traffic. Here every (tier, arm) stratum keeps its
own uniform sample (Algorithm R) of up to ``size`` requests, so the canary's simple-tier
answers are always reviewable next to the control's, however small their share of
traffic. Exported as JSON lines (``GET /admin/review-sample`` and, if configured, a file
written at shutdown and every minute). Prompt and answer text are included only when
``observability.logPrompts`` is on; otherwise reviewers join on ``request_id``.
"""

from __future__ import annotations

import json
import random
from typing import Any


class ReviewSample:
    def __init__(self, size: int, seed: int | None = None) -> None:
        self.size = size
        self._rng = random.Random(seed)
        self._seen: dict[tuple[str, str], int] = {}
        self._items: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def offer(self, tier: str, arm: str, item: dict[str, Any]) -> None:
        if self.size <= 0:
            return
        key = (tier, arm)
        n = self._seen.get(key, 0) + 1
        self._seen[key] = n
        items = self._items.setdefault(key, [])
        if len(items) < self.size:
            items.append(item)
        else:
            j = self._rng.randrange(n)
            if j < self.size:
                items[j] = item

    def seen(self, tier: str, arm: str) -> int:
        return self._seen.get((tier, arm), 0)

    def items(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for (tier, arm), items in sorted(self._items.items()):
            out += [
                {"stratum": {"tier": tier, "arm": arm, "seen": self._seen[(tier, arm)]}, **i}
                for i in items
            ]
        return out

    def export_jsonl(self) -> str:
        return "".join(json.dumps(i, separators=(",", ":")) + "\n" for i in self.items())
