"""tierguard.router.jsonlib: orjson's speed where it reads and writes the same JSON as the
standard library, the standard library wherever it would not."""

from __future__ import annotations

import json
import math

import pytest

from tierguard.router import jsonlib

SAMPLES = [
    b'{"model":"auto","messages":[{"role":"user","content":"where is my order"}]}',
    b'{"a":[1,2.5,-3e-7,true,false,null],"b":{"c":"d"},"e":""}',
    '{"text":"caf\\u00e9 \\ud83d\\ude00 \u00fc"}'.encode(),
    b'{"a":9223372036854775807,"b":-9223372036854775808}',
    b"[]",
]


@pytest.mark.parametrize("raw", SAMPLES)
def test_loads_reads_what_json_reads(raw: bytes) -> None:
    assert jsonlib.loads(raw) == json.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":123456789012345678901234567890}',  # orjson would make this a float
        b'{"a":-18446744073709551616}',
        b'"\\ud83d"',  # a lone surrogate: orjson refuses, json reads it
        b'{"a":NaN}',
        b'{"a":1e400}',
        '{"a":"b"}'.encode("utf-16"),
    ],
)
def test_loads_falls_back_to_json_for_what_orjson_reads_differently(raw: bytes) -> None:
    got, want = jsonlib.loads(raw), json.loads(raw)
    assert repr(got) == repr(want)  # repr: NaN != NaN, and int vs float must match
    assert type(got) is type(want)


@pytest.mark.parametrize("raw", [b"{", b'{"a":}', b"\xff\xfe\x00", b"[1,]"])
def test_loads_raises_what_json_raises(raw: bytes) -> None:
    with pytest.raises(ValueError) as got:
        jsonlib.loads(raw)
    with pytest.raises(ValueError) as want:
        json.loads(raw)
    assert type(got.value) is type(want.value)
    assert str(got.value) == str(want.value)


def test_deep_nesting_raises_recursion_error_as_before() -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(RecursionError):
        jsonlib.loads(raw)


@pytest.mark.parametrize(
    "obj",
    [
        {"id": "tg-1", "model": "auto", "choices": [{"index": 0, "message": {"content": "hi"}}]},
        {"text": "café 😀", "n": [1, 2.5, -3e-07, 1e20, None, True]},
        {"big": 1 << 70},  # past orjson's 64 bits: the standard library writes it
        {"lone": "\ud83d"},  # a lone surrogate read by the fallback is written back escaped
    ],
)
def test_dumps_is_compact_json_of_the_same_value(obj: object) -> None:
    out = jsonlib.dumps(obj)
    assert isinstance(out, bytes)
    assert b", " not in out and b": " not in out
    assert json.loads(out) == obj


def test_dumps_falls_back_with_the_old_bytes_for_what_orjson_refuses() -> None:
    obj = {"big": 1 << 70, "lone": "\ud83d"}
    assert jsonlib.dumps(obj) == json.dumps(obj, separators=(",", ":")).encode()


def test_dumps_default_and_str() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert jsonlib.dumps_str({"x": Odd()}, default=str) == '{"x":"odd"}'


def test_upstream_nan_is_written_as_null() -> None:
    """The one documented difference: NaN is not JSON; it goes out as null."""
    value = jsonlib.loads(b'{"a":NaN}')
    assert math.isnan(value["a"])
    assert json.loads(jsonlib.dumps(value)) == {"a": None}


@pytest.mark.parametrize(
    "raw",
    [
        '{"a":123456789012345678901234567890}',
        b'{"x":"phone 0123456789012345678901","n":1}',
        b'{"a":1234567890123456789}',  # 19 digits: checked with json too
    ],
)
def test_long_digit_runs_are_read_by_json(raw: bytes | str) -> None:
    got = jsonlib.loads(raw)
    assert repr(got) == repr(json.loads(raw))
