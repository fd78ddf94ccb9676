"""Setting up tracing (tierguard.router.tracing.build_tracing): off unless configured,
a clear log line when configured without the otel extra, an OTLP exporter when on."""

from __future__ import annotations

import logging

import pytest

from tierguard.api.policy import TracingSpec
from tierguard.api.routerconfig import RouterConfig
from tierguard.router import tracing


def test_off_by_default() -> None:
    assert TracingSpec().endpoint is None
    assert TracingSpec().capture_content is False
    assert tracing.build_tracing(TracingSpec()) is None


def test_configured_without_the_extra_logs_and_stays_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tracing, "otel", None)
    spec = TracingSpec(endpoint="http://collector:4318/v1/traces")
    with caplog.at_level(logging.WARNING, logger="tierguard.router"):
        assert tracing.build_tracing(spec) is None
    assert "tierguard[otel]" in caplog.text
    assert "tracing is off" in caplog.text


def test_configured_builds_an_otlp_exporter_and_logs_no_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = TracingSpec(
        endpoint="http://user:hunter2@collector:4318/v1/traces",
        sample_ratio=0.25,
        service_name="router-a",
    )
    with caplog.at_level(logging.INFO, logger="tierguard.router"):
        t = tracing.build_tracing(spec)
    assert t is not None
    try:
        assert t.owns_provider and not t.capture_content
        assert t.provider.resource.attributes["service.name"] == "router-a"
        assert "0.25" in t.provider.sampler.get_description()
        assert "collector" in caplog.text and "hunter2" not in caplog.text
    finally:
        t.shutdown()


def test_recent_decisions_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    monkeypatch.setattr(tracing, "RECENT_DECISIONS", 3)
    t = tracing.Tracing(TracerProvider(), capture_content=False, owns_provider=False)
    for i in range(5):
        t.remember(f"r{i}", i)
    assert [t.recall(f"r{i}") for i in range(5)] == [None, None, 2, 3, 4]


def test_router_config_takes_the_tracing_block() -> None:
    cfg = RouterConfig.model_validate(
        {
            "policy": "p",
            "salt": "s",
            "classifier": {"tiers": [{"name": "simple"}]},
            "models": [{"name": "m", "baseURL": "http://m/v1", "upstreamModel": "m-1"}],
            "routes": [{"tier": "simple", "baseline": "m"}],
            "observability": {
                "tracing": {"endpoint": "https://otel:4318/v1/traces", "captureContent": True}
            },
        }
    )
    assert cfg.observability.tracing.endpoint == "https://otel:4318/v1/traces"
    assert cfg.observability.tracing.capture_content is True
    with pytest.raises(ValueError, match="endpoint"):
        TracingSpec.model_validate({"endpoint": "collector:4318"})
