"""The generated Prometheus configuration and file-SD content (no Prometheus needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierguard.lab.prometheus import (
    PrometheusError,
    PrometheusSettings,
    render_config,
    target_groups,
)


def test_config_scrapes_file_sd_targets_at_the_chosen_interval(tmp_path: Path) -> None:
    targets = tmp_path / "targets.json"
    config = render_config(PrometheusSettings(scrape_interval="2s"), targets)
    assert config["global"]["scrape_interval"] == "2s"
    [job] = config["scrape_configs"]
    assert job["job_name"] == "tierguard"
    assert job["scrape_timeout"] == "2s"  # may not exceed the interval
    assert job["file_sd_configs"][0]["files"] == [str(targets)]
    assert "rule_files" not in config


def test_rule_files_and_extra_jobs_are_passed_through(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yaml"
    extra = {"job_name": "self", "static_configs": [{"targets": ["127.0.0.1:9090"]}]}
    config = render_config(
        PrometheusSettings(rule_files=(rules,), extra_scrape_configs=(extra,)), tmp_path / "t.json"
    )
    assert config["rule_files"] == [str(rules)]
    assert [j["job_name"] for j in config["scrape_configs"]] == ["tierguard", "self"]


def test_bad_interval_is_refused() -> None:
    with pytest.raises(PrometheusError, match="scrape_interval"):
        PrometheusSettings(scrape_interval="1 second")


def test_target_groups() -> None:
    assert target_groups([]) == []
    assert target_groups(["127.0.0.1:1", "127.0.0.1:2"], {"arm": "canary"}) == [
        {"targets": ["127.0.0.1:1", "127.0.0.1:2"], "labels": {"arm": "canary"}}
    ]


def test_targets_must_be_host_port() -> None:
    with pytest.raises(PrometheusError, match="host:port"):
        target_groups(["http://127.0.0.1:8080/metrics"])
