"""Readiness (the API server answers the policy list, recently) is not liveness."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from routerkit import free_port
from tierguard.operator.readiness import (
    FRESH_SECONDS,
    Readiness,
    ReadinessState,
    serve,
    watch_api,
)


def test_not_ready_until_the_first_answer() -> None:
    ok, why = ReadinessState().verdict(now=100.0)
    assert not ok and "not synced" in why
    ok, why = ReadinessState(last_error="Forbidden").verdict(now=100.0)
    assert not ok and "Forbidden" in why


def test_ready_while_answers_are_fresh_then_not() -> None:
    st = ReadinessState(last_ok_at=100.0, policies_seen=3)
    assert st.verdict(now=100.0 + FRESH_SECONDS) == (True, st.verdict(now=101.0)[1])
    assert "3 RoutingPolicies" in st.verdict(now=101.0)[1]
    st.last_error = "connection refused"
    ok, why = st.verdict(now=100.0 + FRESH_SECONDS + 1)
    assert not ok and "has not answered for 31s" in why and "connection refused" in why


def test_an_error_after_success_keeps_ready_until_stale() -> None:
    t = [0.0]
    r = Readiness(clock=lambda: t[0])
    r.record_ok(2)
    t[0] = 10.0
    r.record_error("timeout")
    assert r.verdict()[0] is True
    t[0] = 10.0 + FRESH_SECONDS
    assert r.verdict()[0] is False


@pytest.mark.asyncio
async def test_endpoint_answers_200_or_503_from_the_api_checks() -> None:
    answers: list[int | Exception] = [PermissionError("403 Forbidden"), 4]

    def list_policies() -> int:
        a = answers.pop(0) if answers else 4
        if isinstance(a, Exception):
            raise a
        return a

    readiness = Readiness()
    port = free_port()
    runner = await serve(f"http://127.0.0.1:{port}/readyz", readiness)
    task = asyncio.create_task(watch_api(readiness, list_policies, interval=0.05))
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/readyz"
            for _ in range(100):
                async with http.get(url) as resp:
                    body = await resp.text()
                    if resp.status == 200:
                        break
                    assert resp.status == 503
                await asyncio.sleep(0.02)
            assert resp.status == 200 and "4 RoutingPolicies" in body
    finally:
        task.cancel()
        await runner.cleanup()


@pytest.mark.asyncio
async def test_bad_endpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="http://HOST:PORT/PATH"):
        await serve("tcp://0.0.0.0", Readiness())
