"""Bad training data fails with a message that names the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierguard.classifier.data import DataError, load_jsonl, parse_jsonl

TIERS = ("simple", "complex")
GOOD = (
    '{"text": "where is my order", "tier": "simple"}\n'
    '{"text": "charged twice", "tier": "complex"}\n'
)


def test_good_file_parses_with_optional_fields_and_extra_keys() -> None:
    content = (
        GOOD + '{"text": "x y", "tier": "simple", "category": "c", "hard": true, '
        '"quality": 0.5, "source": "ignored"}\n\n'
    )
    data = parse_jsonl(content.encode(), TIERS, "q.jsonl")
    assert [q.tier for q in data.queries] == ["simple", "complex", "simple"]
    assert data.queries[2].category == "c"
    assert data.queries[2].hard is True
    assert data.queries[2].quality == 0.5
    assert data.queries[2].line == 3
    assert len(data.sha256) == 64


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"q\.jsonl: no examples \(the file is empty"),
        ("\n  \n", r"q\.jsonl: no examples"),
        (GOOD + "{not json}\n", r"q\.jsonl:3: invalid JSON"),
        (GOOD + '["text", "tier"]\n', r"q\.jsonl:3: expected a JSON object"),
        (GOOD + '{"text": "hi"}\n', r"q\.jsonl:3: missing field 'tier'"),
        ('{"tier": "simple"}\n' + GOOD, r"q\.jsonl:1: missing field 'text'"),
        (GOOD + '{"text": "hi", "tier": "Simple"}\n', r"q\.jsonl:3: unknown tier 'Simple'"),
        (GOOD + '{"text": "   ", "tier": "simple"}\n', r"q\.jsonl:3: field 'text' must be"),
        (GOOD + '{"text": "a", "tier": "simple", "quality": 2}\n', r"q\.jsonl:3: field 'quality'"),
        (GOOD + '{"text": "a", "tier": "simple", "hard": "yes"}\n', r"q\.jsonl:3: field 'hard'"),
        ('{"text": "a", "tier": "simple"}\n' * 3, r"tiers \['complex'\] have none"),
    ],
)
def test_bad_data_names_the_line(content: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_jsonl(content.encode(), TIERS, "q.jsonl")


def test_invalid_utf8_names_the_line() -> None:
    with pytest.raises(DataError, match=r"q\.jsonl:2: not valid UTF-8"):
        parse_jsonl(GOOD.encode().split(b"\n")[0] + b'\n{"text": "\xff"}\n', TIERS, "q.jsonl")


def test_one_tier_allowed_for_calibration_slices() -> None:
    data = parse_jsonl(b'{"text": "a", "tier": "simple"}\n', TIERS, require_all_tiers=False)
    assert len(data.queries) == 1


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        load_jsonl(tmp_path / "missing.jsonl", TIERS)
