"""The router's garbage-collector settings (tierguard.router.heap) and the shadow
sampler's shortcut at rates 0 and 1 (tierguard.router.shadow.should_shadow)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from tierguard.router import heap
from tierguard.router.shadow import should_shadow
from tierguard.router.split import BUCKETS, bucket


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_freezes_the_start_up_heap_and_raises_the_threshold(restore_gc: None) -> None:
    start_up = [{"i": i} for i in range(1000)]  # tracked objects alive at start-up
    settled = heap.settle()
    assert settled.thresholds == gc.get_threshold() == (heap.GEN0_THRESHOLD, 10, 10)
    assert heap.GEN0_THRESHOLD > 700  # fewer young collections than CPython's default
    assert settled.frozen == gc.get_freeze_count() >= len(start_up)
    # frozen objects are out of every generation the collector walks
    assert not any(o is start_up for o in gc.get_objects())
    assert start_up[999] == {"i": 999}


def test_settle_collects_start_up_garbage_before_freezing(restore_gc: None) -> None:
    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle only the collector can free
    ref = weakref.ref(a)
    del a, b
    heap.settle()
    assert ref() is None  # freed, not frozen for the life of the process


@pytest.mark.parametrize("rate", [0.0, 0.00001, 0.3, 0.5, 0.99999, 1.0])
def test_should_shadow_matches_the_bucket_rule(rate: float) -> None:
    cut = round(rate * BUCKETS)
    ids = [f"req-{i}" for i in range(2000)]
    assert [should_shadow(i, rate) for i in ids] == [bucket("shadow:", i) < cut for i in ids]
    if rate == 0.0:
        assert not any(should_shadow(i, rate) for i in ids)
    if rate == 1.0:
        assert all(should_shadow(i, rate) for i in ids)
