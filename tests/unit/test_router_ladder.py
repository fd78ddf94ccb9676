"""The tier ladder: fallbacks only upward; prompts that do not fit climb."""

from __future__ import annotations

from tierguard.router.ladder import build_ladder, estimate_tokens, fit_context, upward_chain

LADDER = build_ladder(
    ["simple", "complex"],
    [
        ("simple", "big", "small", ["big", "backup"]),
        ("complex", "big", None, ["small", "huge", "backup"]),
    ],
    {"small": 1000, "big": 8000, "huge": None, "backup": 4000},
)


def test_ranks() -> None:
    assert LADDER.ranks == {"small": 0, "big": 1}
    assert LADDER.tier_of_model("backup") is None


def test_fallbacks_never_go_down() -> None:
    assert upward_chain(LADDER, "complex", ("big", "small", "huge", "backup")) == (
        "big",
        "huge",
        "backup",
    )
    assert upward_chain(LADDER, "simple", ("small", "big", "backup")) == ("small", "big", "backup")


def test_a_prompt_that_fits_keeps_its_chain() -> None:
    fit = fit_context(LADDER, "simple", ("small", "big"), 900)
    assert fit.chain == ("small", "big") and fit.escalated is None and not fit.overflow


def test_too_long_for_the_cheap_model_climbs_the_chain() -> None:
    fit = fit_context(LADDER, "simple", ("small", "big", "backup"), 3000)
    # the chain's models that fit first, then the higher tiers' (huge), never smaller ones
    assert fit.chain == ("big", "backup", "huge") and fit.escalated == ("small", "big")


def test_climbs_to_a_higher_tier_when_the_chain_has_nothing_that_fits() -> None:
    fit = fit_context(LADDER, "simple", ("small", "big", "backup"), 20000)
    assert fit.chain == ("huge",) and fit.escalated == ("small", "huge")


def test_climbing_never_lands_below_the_tier() -> None:
    ladder = build_ladder(
        ["simple", "medium", "complex"],
        [
            ("simple", "s", None, []),
            ("medium", "m", None, []),
            ("complex", "c", None, ["s"]),
        ],
        {"s": 100000, "m": 10, "c": 10},
    )
    fit = fit_context(ladder, "medium", ("m",), 50)
    assert fit.overflow and fit.chain == ("m",)


def test_nothing_fits_keeps_the_chain_and_says_so() -> None:
    ladder = build_ladder(["simple"], [("simple", "small", None, [])], {"small": 10})
    fit = fit_context(ladder, "simple", ("small",), 50)
    assert fit.chain == ("small",) and fit.overflow and fit.escalated is None


def test_estimate_grows_with_the_prompt() -> None:
    short = estimate_tokens([{"role": "user", "content": "hi"}])
    long = estimate_tokens([{"role": "user", "content": "word " * 400}])
    assert short < 20 and 400 <= long <= 600
    assert estimate_tokens([], extra=[{"type": "function"}]) > estimate_tokens([])
