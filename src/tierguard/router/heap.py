"""The router process's garbage collector, set once it has started serving.

By the time the router listens, its heap holds everything loaded at start-up: the
modules (aiohttp, pydantic, the Kubernetes client, onnxruntime's bindings), the parsed
config and the classifier, some 60-70 thousand tracked objects that live as long as the
process. CPython's collector keeps walking them: every full collection traverses all of
them (measured: up to ~150 ms on a loaded 2-core machine, a request-latency outlier),
and the young collections, triggered every 700 net container allocations, run every few
requests.

:func:`settle` therefore (1) collects once and moves every object then alive into the
permanent generation (``gc.freeze()``: never traversed again; what start-up left as
garbage is freed first, so nothing is pinned that would otherwise go), and (2) raises the
young-generation threshold, so collections run an order of magnitude less often; each
then finds about as few live young objects as before (a request's objects are freed by
reference counting as it ends), so the total time in the collector falls with the
count. Reference cycles are still collected, only later; memory is bounded by the
threshold (a few MiB at most). Config reloads after this point are ordinary garbage.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

#: net container allocations between two young collections (CPython's default: 700)
GEN0_THRESHOLD = 10_000
#: young collections per middle one, middle per full one (CPython's defaults: 10, 10)
GEN1_THRESHOLD = 10
GEN2_THRESHOLD = 10


@dataclass(frozen=True)
class HeapSettled:
    """What :func:`settle` did: objects moved to the permanent generation, thresholds."""

    frozen: int
    thresholds: tuple[int, int, int]


def settle(
    thresholds: tuple[int, int, int] = (GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD),
) -> HeapSettled:
    """Collect, freeze what survives, and set ``thresholds`` (see the module docstring).
    Call once, when start-up is over."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    return HeapSettled(gc.get_freeze_count(), gc.get_threshold())
