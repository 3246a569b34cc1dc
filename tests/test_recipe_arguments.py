"""Every recipe and command refuses bad arguments and unusable output paths as a usage error (exit code 2, a message
naming the option) before any work, and keeps earlier results unless ``--overwrite``."""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _recipes import load_recipe

ROOT = Path(__file__).resolve().parents[1]


def _usage_error(main: Callable[[list[str]], Any], argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2, f"exit code {exc.value.code} for {argv}"
    return capsys.readouterr().err


def _recipe(name: str) -> Callable[[list[str]], Any]:
    return load_recipe(name).main  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _recipes_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))  # some recipes import others (bench_solver, steer_generation)


@pytest.fixture
def afile(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("")
    return path


CASES: list[tuple[str, list[str], str]] = [
    # (recipe, arguments after --out / before, text the message must hold); {out} is a fresh folder
    ("steer_generation", ["--shrinkage", "abc"], "--shrinkage"),
    ("steer_generation", ["--layer", "99"], "--layer 99 is out of range for smollm2"),
    ("steer_generation", ["--strength", "-1"], "--strength"),
    ("steer_generation", ["--max-texts", "0"], "--max-texts"),
    ("bench_hooks", ["--repeats", "0"], "--repeats"),
    ("bench_hooks", ["--hook-rounds", "0"], "--hook-rounds"),
    ("bench_solver", ["--dims", "0"], "--dims"),
    ("bench_solver", ["--dims", "2", "2"], "--dims lists 2 twice"),
    ("bench_solver", ["--groups", "1"], "--groups and --classes must be at least 2"),
    ("bench_solver", ["--fast-timeout", "-1"], "--fast-timeout"),
    ("bench_solver", ["--threads", "0"], "--threads"),
    ("compare_affine_revisions", ["--old", str(ROOT), "--dims", "2", "0"], "--dims"),
    ("compare_affine_revisions", ["--old", str(ROOT), "--shapes", "1x2"], "at least two groups and two classes"),
    ("compare_affine_revisions", ["--old", str(ROOT), "--repeats", "0"], "--repeats"),
    ("bios_leakage", ["--seeds", "-1"], "--seeds"),
    ("bios_leakage", ["--max-per-class", "10"], "--max-per-class must be 0 (no cap) or at least"),
    ("bios_leakage", ["--model", "./no/such/model"], "no model folder at './no/such/model'"),
    ("group_leakage", ["--seeds", "0", "-1"], "--seeds"),
    ("group_leakage", ["--seeds", "0", "0"], "--seeds lists 0 twice"),
    ("shared_target_ceiling", ["--seeds", "-2"], "--seeds"),
    ("shared_target_tables", ["--seeds", "0", "-1"], "--seeds"),
    ("pick_strength_cv", ["--seeds", "-1"], "--seeds"),
    ("pick_strength_cv", ["--models", "lr", "lr"], "--models lists 'lr' twice"),
    ("shared_target_gaussian", ["--n-train", "0"], "--n-train"),
    ("shared_target_gaussian", ["--dims", "2", "2"], "--dims lists 2 twice"),
    ("generation_bias", ["--layer-sets", "a"], "--layer-sets"),
    ("generation_bias", ["--layer-sets", "40"], "--layer-sets [40] out of range for smollm2"),
    ("generation_bias", ["--layer-sets", "1,-29"], "name one block twice"),
    ("generation_bias", ["--layer-sets", "1", "-29"], "--layer-sets lists [1] twice"),  # one block, two sets
    ("generation_bias", ["--templates", "0"], "--templates"),
    ("generation_bias", ["--batch-size", "0"], "--batch-size"),
    ("generation_bias", ["--strengths", "-3"], "--strengths must be finite and non-negative"),
    ("generation_bias", ["--model", "minilm"], "is an encoder"),
    ("pooling_match", ["--layer", "99"], "--layer 99 is out of range for smollm2"),
    ("probe_canonical_newton", ["--seed", "-1"], "--seed"),
    ("probe_canonical_newton", ["--max-steps", "0"], "--max-steps"),
    ("bios_postprocessing", ["--budgets", "inf"], "--budgets must be finite and non-negative"),
    ("bios_postprocessing", ["--max-per-class", "-3"], "--max-per-class"),
    ("bios_postprocessing", ["--model", "/no/such/model"], "no model folder at '/no/such/model'"),
    ("privacy_tradeoff", ["--epsilons", "-1"], "--epsilons"),
    ("privacy_tradeoff", ["--epsilons", "1", "1"], "--epsilons lists 1.0 twice"),
    ("privacy_tradeoff", ["--train-fraction", "0"], "--train-fraction"),
    ("privacy_tradeoff", ["--features", "/no/such/file.npz"], "no file at '/no/such/file.npz'"),
    ("privacy_tradeoff", ["--data", "bug", "--rank", "-1"], "--rank"),
    ("privacy_tradeoff", ["--data", "bug", "--rank", "999"], "exceeds MiniLM's dimension 384"),
    ("bench_ot", ["--decades", "9"], "--decades must lie in [0, 8]"),
    ("bench_ot", ["--repeats", "0"], "--repeats"),
    ("probe_two_cores", ["--dims", "256", "256"], "--dims lists 256 twice"),
    ("probe_two_cores", ["--timeout", "0"], "--timeout"),
    ("tabular_benchmark", ["--tasks", "german/sex", "german/sex"], "tasks lists 'german/sex' twice"),
    ("tabular_benchmark", ["--models", "lr", "logistic"], "lr and logistic are one model"),
]

_ENTRY = {  # recipes whose command line lives in the library
    "privacy_tradeoff": "steerfair.evaluation.privacy_tradeoff",
    "tabular_benchmark": "steerfair.evaluation.tabular_benchmark",
}


def _main(name: str) -> Callable[[list[str]], Any]:
    if name in _ENTRY:
        import importlib

        return importlib.import_module(_ENTRY[name]).main  # type: ignore[no-any-return]
    return _recipe(name)


def _out_option(name: str, out: Path) -> list[str]:
    single_file = name in ("bench_hooks", "bench_solver", "compare_affine_revisions", "probe_two_cores")
    return ["--out", str(out / "r.json" if single_file else out)]


@pytest.mark.parametrize(("name", "argv", "message"), CASES, ids=[f"{c[0]}:{' '.join(c[1])}" for c in CASES])
def test_recipes_refuse_bad_arguments_as_usage_errors(
    name: str, argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _usage_error(_main(name), [*_out_option(name, tmp_path / "out"), *argv], capsys)
    assert message in err, err
    assert not any((tmp_path / "out").glob("*.json")) if (tmp_path / "out").is_dir() else True


OUTPUT_RECIPES = [
    "steer_generation", "bench_hooks", "bench_solver", "bios_leakage", "group_leakage", "shared_target_tables",
    "pick_strength_cv", "shared_target_gaussian", "generation_bias", "pooling_match", "probe_canonical_newton",
    "bios_postprocessing", "privacy_tradeoff", "tabular_benchmark", "synthetic_gaussian", "bench_ot",
    "probe_two_cores",
]  # fmt: skip


@pytest.mark.parametrize("name", OUTPUT_RECIPES)
def test_recipes_refuse_an_output_path_they_cannot_use(
    name: str, afile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ``--out`` inside a file (its folder cannot be created) is a usage error before any work."""
    main = (
        _main(name)
        if name != "synthetic_gaussian"
        else __import__("steerfair.evaluation.case_study").evaluation.case_study.main
    )
    extra = ["--old", str(ROOT)] if name == "compare_affine_revisions" else []
    err = _usage_error(main, ["--out", str(afile / "x"), *extra], capsys)
    assert "afile" in err


def test_single_file_outputs_are_kept_unless_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    out.write_text("{}")
    for name in ("bench_solver", "bench_hooks", "probe_two_cores"):
        err = _usage_error(_recipe(name), ["--out", str(out)], capsys)
        assert "already holds results (bench.json); pass --overwrite" in err
        err = _usage_error(_recipe(name), ["--out", str(tmp_path)], capsys)
        assert "is a folder" in err
    (tmp_path / "sg").mkdir()
    (tmp_path / "sg" / "steer_generation.json").write_text("{}")
    err = _usage_error(_recipe("steer_generation"), ["--out", str(tmp_path / "sg")], capsys)
    assert "already holds results (steer_generation.json); pass --overwrite" in err
    assert (tmp_path / "sg" / "steer_generation.json").read_text() == "{}"


def test_bios_summary_checks_its_runs_and_its_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = _recipe("bios_summary")
    good = tmp_path / "run"
    good.mkdir()
    (good / "results.json").write_text(json.dumps({"methods": {}}))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"rows": []}))
    assert "does not exist" in _usage_error(main, [str(tmp_path / "nosuch"), "--out", str(tmp_path / "a.png")], capsys)
    assert "not readable JSON" in _usage_error(
        main, [str(tmp_path / "broken.json"), "--out", str(tmp_path / "a.png")], capsys
    )
    assert "no Bios protocol results" in _usage_error(
        main, [str(tmp_path / "other.json"), "--out", str(tmp_path / "a.png")], capsys
    )
    assert "must end in .png" in _usage_error(main, [str(good), "--out", str(tmp_path / "plot")], capsys)
    (tmp_path / "old.png").write_bytes(b"old")
    assert "pass --overwrite" in _usage_error(main, [str(good), "--out", str(tmp_path / "old.png")], capsys)
    assert (tmp_path / "old.png").read_bytes() == b"old"
    assert "own title" in _usage_error(main, [str(good), str(good), "--out", str(tmp_path / "b.png")], capsys)


def test_bios_postprocessing_replot_refuses_results_of_another_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bios_postprocessing.json").write_text("{broken")
    err = _usage_error(_recipe("bios_postprocessing"), ["--out", str(tmp_path), "--replot"], capsys)
    assert "is not this recipe's results" in err


def test_the_bios_script_reports_usage_errors_like_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["bios.py", "--seeds", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(ROOT / "recipes" / "bios.py"), run_name="__main__")
    assert exc.value.code == 2 and "--seeds must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bios", "--exclude", "notajob"], "--exclude names no occupation of BUG: ['notajob']"),
        (["bios", "--methods", "none", "none"], "--methods lists 'none' twice"),
        (["generation-bias", "--model", "minilm"], "is an encoder without a language-modelling head"),
        (["generation-bias", "--model", "tiny-gpt2", "--strengths", "1", "1"], "--strengths lists 1.0 twice"),
        (["generation-bias", "--model", "tiny-gpt2", "--layers", "1", "-2"], "name one block twice"),
        (["generation-bias", "--model", "tiny-gpt2", "--continuations", "mean_diff:nan"], "finite and non-negative"),
        (["generation-bias", "--model", "tiny-gpt2", "--continuations", "mean_diff:-5"], "finite and non-negative"),
    ],
)
def test_commands_refuse_repeated_or_unknown_values_before_any_work(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from steerfair.cli import main

    err = _usage_error(main, [*argv, "--out", str(tmp_path / "out")], capsys)
    assert message in err, err


def test_bench_ot_writes_its_comparison_and_steerfair_stays_exact_where_the_symmetric_formula_does_not(
    tmp_path: Path,
) -> None:
    out = tmp_path / "ot"
    argv = ["--dims", "8", "--repeats", "1", "--pairs", "4", "--decades", "0", "3", "--accuracy-d", "4"]
    _recipe("bench_ot")([*argv, "--out", str(out)])
    res = json.loads((out / "bench_ot.json").read_text())
    k0, k3 = res["accuracy"]
    assert k0["steerfair"]["max"] < 1e-12 and k3["steerfair"]["max"] < 1e-10
    assert k3["symmetric formula (previous)"]["max"] > 1e-6  # the comparison shows the difference it is about
    assert (out / "bench_ot.md").read_text().startswith("Accuracy") and (out / "bench_ot.png").stat().st_size > 0


def test_bios_leakage_counts_every_methods_plot_as_earlier_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plot of a method not run now is still an earlier result: refused without --overwrite (with it, the run
    removes it, so the folder does not mix two runs)."""
    (tmp_path / "bios_leakage_mimic.png").write_bytes(b"old")
    err = _usage_error(_recipe("bios_leakage"), ["--out", str(tmp_path), "--methods", "none"], capsys)
    assert "bios_leakage_mimic.png" in err and "--overwrite" in err


def test_probe_two_cores_measures_kernels_side_by_side(tmp_path: Path) -> None:
    """The kernels' part of the probe runs and writes its table (the solves are skipped: minutes)."""
    out = tmp_path / "probe.json"
    _recipe("probe_two_cores")(["--skip-solves", "--kernel-dim", "64", "--repeats", "1", "--out", str(out)])
    res = json.loads(out.read_text())
    assert {r["kernel"] for r in res["kernels"]} >= {"scipy dtrsm", "numpy matmul"} and res["solves"] == []
    assert all(r["speedup"] > 0 for r in res["kernels"])
