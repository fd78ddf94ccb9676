"""The router and fake-provider examples are valid."""

from __future__ import annotations

from pathlib import Path

from tierguard.lab.fakeanswers import is_good
from tierguard.lab.fakeprofile import load_profile
from tierguard.router.config_source import parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_router_example_is_a_valid_config() -> None:
    cfg = parse_config((ROOT / "examples/config/router/router.yaml").read_text())
    assert cfg.weight("simple").weight == 10
    assert cfg.feedback.signing_key is not None and cfg.feedback.signing_key.file


def test_fake_provider_profile_example() -> None:
    profile = load_profile(str(ROOT / "examples/config/lab/fake-provider-profile.yaml"))
    cheap = profile.behaviour("cheap-mini-2026")
    assert cheap.quality["billing"] == 0.6
    assert profile.behaviour("unknown").latency_median_s == 0.05
    good = sum(is_good("cheap-mini-2026", f"#billing q{i}", 0.6) for i in range(2000))
    assert 1100 < good < 1300  # the hash draw matches the configured quality
