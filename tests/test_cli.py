"""The ``steerfair`` command: usage errors before any work (exit 2, naming the option), an interrupted run exits
130 without a traceback and leaves no results, and results written together land together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from steerfair import cli
from steerfair.evaluation.output import write_results


def _usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2, argv
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("junk.txt", "Bios files are parquet, jsonl or csv"),
        ("bad.csv", "lacks the fields"),
        ("bad.jsonl", "could not be read as jsonl"),
        ("emptydir", "holds no train file"),
        ("nosuch", "neither bug, bios nor an existing file"),
        ("bios", "HF_DATASETS_OFFLINE"),
    ],
)
def test_bios_data_is_checked_before_any_work(
    data: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (tmp_path / "junk.txt").write_text("hi\n")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    (tmp_path / "emptydir").mkdir()
    err = _usage(["bios", "--data", data, "--out", str(tmp_path / "out")], capsys)
    assert "--data" in err and message in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_readable_bios_file_passes_the_check(tmp_path: Path) -> None:
    from steerfair.datasets.bios import check_bios_source

    (tmp_path / "b.csv").write_text("text,p,g\nshe is a nurse,nurse,F\n")
    check_bios_source(str(tmp_path / "b.csv"))  # INLP's field names are accepted as the loader accepts them


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--out", ""], "--out is empty"),
        (["demo", "--synthetic", "--seeds", "3"], "leave --seeds out"),
        (["generation-bias", "--out", ""], "--out is empty"),
        (["bios", "--share-covariance", "2"], "--share-covariance must be a number in [0, 1]"),
    ],
)
def test_conflicting_or_empty_options_are_usage_errors(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    if "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path / "out")]
    assert message in _usage(argv, capsys)
    assert not (tmp_path / "adult").exists()


def test_an_interrupted_command_exits_130_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_demo", interrupted)
    assert cli.main(["demo", "--out", str(tmp_path / "out")]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from steerfair import __version__

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out


def test_extra_result_files_land_with_the_results_or_not_at_all(tmp_path: Path) -> None:
    """``write_results(extra=...)`` (generation-bias's continuations.md) writes them in the same atomic step: a
    failure before the step leaves none of them (before, continuations.md was written first and blocked the rerun)."""

    def broken(r: Any, p: Path) -> None:
        raise RuntimeError("killed while plotting")

    with pytest.raises(RuntimeError):
        write_results(tmp_path, "r", {"a": 1}, lambda r: "t", broken, extra={"continuations.md": b"c"})
    assert not any(tmp_path.iterdir())
    write_results(tmp_path, "r", {"a": 1}, lambda r: "t", lambda r, p: p.write_bytes(b"png"), extra={"c.md": b"c"})
    assert (tmp_path / "c.md").read_bytes() == b"c" and json.loads((tmp_path / "r.json").read_text())["a"] == 1
