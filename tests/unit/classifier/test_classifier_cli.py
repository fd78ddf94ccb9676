"""`tierguard train` and `tierguard calibrate` end to end through the CLI dispatcher."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from tierguard import cli
from tierguard.classifier import runtime as rt
from tierguard.classifier.dataset import generate, write_jsonl
from tierguard.classifier.train import read_metadata


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model.onnx"
    data = repo_root / "examples" / "classifier" / "sample-queries.jsonl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["train", "--data", str(data), "--out", str(out)]) == 0
    return out


def test_train_writes_a_loadable_model(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clf = rt.load_classifier(trained)
    assert clf.tiers == ("simple", "complex")
    assert trained.stat().st_size < 1024 * 1024


def test_train_reports_bad_data_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi", "tier": "simple"}\n{"text": "x", "tier": "premium"}\n')
    assert cli.main(["train", "--data", str(bad), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2: unknown tier 'premium'" in err
    assert not (tmp_path / "m.onnx").exists()


def test_calibrate_writes_threshold_and_report(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = tmp_path / "held.jsonl"
    write_jsonl(generate(400, seed=31, split="all"), held)
    out = tmp_path / "calibrated.onnx"
    code = cli.main(
        ["calibrate", "--model", str(trained), "--data", str(held),
         "--target-cheap-share", "0.55", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "confusion (rows: label, columns: routed)" in printed
    assert "refund_dispute" in printed  # per-category misroute rates are printed
    clf = rt.load_classifier(out)
    cal = clf.metadata.calibration
    assert cal is not None and cal["method"] == "target_cheap_share"
    assert clf.thresholds["simple"] == cal["threshold"]
    assert abs(cal["cheap_share"] - 0.55) <= 1 / 400
    assert "per_category" in cal["report"]
    # the original model is untouched when --out is given
    assert rt.META_CALIBRATION not in read_metadata(trained.read_bytes())


def test_calibrate_dry_run_and_in_place(trained: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(trained.read_bytes())
    held = tmp_path / "held.jsonl"
    write_jsonl(generate(400, seed=32, split="all"), held)
    before = model.read_bytes()
    args = ["calibrate", "--model", str(model), "--data", str(held), "--max-under-route", "0.05"]
    assert cli.main([*args, "--dry-run"]) == 0
    assert model.read_bytes() == before
    report = tmp_path / "cal.json"
    assert cli.main([*args, "--json", str(report)]) == 0
    assert model.read_bytes() != before
    assert json.loads(report.read_text())["method"] == "max_under_route"
    assert rt.load_classifier(model).metadata.calibration is not None


def test_calibrate_refuses_a_non_tierguard_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"nope")
    held = tmp_path / "held.jsonl"
    write_jsonl(generate(10, seed=1), held)
    code = cli.main(
        ["calibrate", "--model", str(fake), "--data", str(held), "--target-cheap-share", "0.5"]
    )
    assert code == 2
    assert "cannot load ONNX model" in capsys.readouterr().err


def test_train_on_too_little_data_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = tmp_path / "tiny.jsonl"
    tiny.write_text(
        '{"text": "a", "tier": "simple"}\n{"text": "b", "tier": "complex"}\n'
        '{"text": "c", "tier": "complex"}\n'
    )
    assert cli.main(["train", "--data", str(tiny), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "cannot train on" in capsys.readouterr().err


def test_train_builtin_refuses_unknown_names_and_out_with_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["train", "--builtin", "nope"]) == 2
    assert "known: all, default, billing-trap" in capsys.readouterr().err
    assert cli.main(["train", "--builtin", "all", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "drop --out" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
