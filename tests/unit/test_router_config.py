"""Router config validation, sources and generation building."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from routerkit import router_config
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api.routerconfig import RouterConfig
from tierguard.classifier.runtime import ClassifierContractError
from tierguard.router.chat import parse_chat_request
from tierguard.router.config_source import ConfigError, FileSource, parse_config
from tierguard.router.errors import InvalidRequestError
from tierguard.router.metrics import RouterMetrics, latency_buckets
from tierguard.router.state import build_state
from tierguard.router.upstream import SecretError


def test_valid_config_parses() -> None:
    cfg = parse_config(yaml.safe_dump(router_config("/x.onnx", weight=5)))
    assert cfg.weight("simple").weight == 5 and cfg.weight("complex").weight == 0


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: c.update(routes=[{"tier": "simple", "baseline": "nope"}]), "unknown model"),
        (lambda c: c.update(split=[{"tier": "ghost", "weight": 5}]), "ghost"),
        (lambda c: c.update(split=[{"tier": "simple", "weight": 150}]), "split.0.weight"),
        (lambda c: c.update(split=[{"tier": "simple", "controlArm": "canary"}]), "controlArm"),
        (lambda c: c["routes"][0].update(latencyBudget="soon"), "latencyBudget"),
        (lambda c: c.pop("salt"), "salt"),
        (lambda c: c.update(surprise=1), "surprise"),
    ],
)
def test_invalid_configs_name_the_field(
    mutate: Callable[[dict[str, Any]], object], needle: str
) -> None:
    cfg = router_config("/x.onnx")
    mutate(cfg)
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(cfg))
    assert needle in str(info.value)


@pytest.mark.parametrize("text", ["{{{", "- a\n- b", "42", ""])
def test_not_a_mapping_or_not_yaml(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_config(text)


async def test_build_state_refuses_missing_secret_and_wrong_tiers(
    tiny_classifier: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TG_MISSING", raising=False)
    cfg = router_config(tiny_classifier, feedback={"signingKey": {"env": "TG_MISSING"}})
    with pytest.raises(SecretError, match="TG_MISSING"):
        await build_state(RouterConfig.model_validate(cfg), None)
    cfg = router_config(tiny_classifier)
    cfg["classifier"]["tiers"] = [{"name": "complex"}, {"name": "simple"}]
    with pytest.raises(ClassifierContractError):
        await build_state(RouterConfig.model_validate(cfg), None)


async def test_build_state_reuses_unchanged_clients(tiny_classifier: Path) -> None:
    first, _ = await build_state(RouterConfig.model_validate(router_config(tiny_classifier)), None)
    cfg = router_config(tiny_classifier, weight=50)
    cfg["models"][1]["baseURL"] = "http://127.0.0.1:2/v1"
    second, retired = await build_state(RouterConfig.model_validate(cfg), first)
    assert second.classifier is first.classifier
    assert second.pool.clients["big"].session is first.pool.clients["big"].session
    assert [c.model.name for c in retired] == ["small"]
    await first.pool.close()
    await second.pool.close()


async def test_file_source_sees_atomic_replacement(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n")
    src = FileSource(path, interval_s=0.01)
    assert await src.load() == "a: 1\n"
    seen: list[str] = []

    async def on_config(text: str) -> None:
        seen.append(text)

    task = asyncio.create_task(src.watch(on_config))
    new = tmp_path / "c.new"
    new.write_text("a: 2\n")
    new.replace(path)
    for _ in range(200):
        if seen:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert seen == ["a: 2\n"]


def test_latency_objectives_become_buckets() -> None:
    assert 1.2 in latency_buckets([1.2]) and latency_buckets([1.0]).count(1.0) == 1
    metrics = RouterMetrics([1.2])
    metrics.request_duration.labels("p", "t", "a", "m").observe(1.0)
    assert b'le="1.2"' in metrics.exposition()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries({"model": json_values, "messages": json_values}),
        st.fixed_dictionaries(
            {
                "model": st.just("auto"),
                "messages": st.lists(
                    st.dictionaries(
                        st.sampled_from(["role", "content", "tool_calls"]), json_values
                    ),
                    max_size=3,
                ),
            }
        ),
    )
)
def test_parser_never_crashes(body: object) -> None:
    """Any JSON either parses or raises the one error type the middleware renders."""
    with contextlib.suppress(InvalidRequestError):
        parse_chat_request(json.dumps(body).encode())


@given(st.binary(max_size=200))
def test_parser_never_crashes_on_bytes(raw: bytes) -> None:
    with contextlib.suppress(InvalidRequestError):
        parse_chat_request(raw)
