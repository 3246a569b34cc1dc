"""Issue 17 (core and commands): no silent wrong answers, no lost result files, errors that say what to do."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from steerfair import FairSteerer
from steerfair.cli import main as cli_main
from steerfair.evaluation import bios_run, case_study, tabular_benchmark
from steerfair.evaluation.bios_protocol import ProtocolConfig
from steerfair.evaluation.output import check_output, write_results
from steerfair.families.gaussian import Gaussian
from steerfair.maps import AffineMap
from steerfair.maps.gaussian_maps import bures_barycenter
from steerfair.model import GroupConditionalModel
from steerfair.privacy import posterior_group_proba


def _table(seed: int = 0, n: int = 1500, d: int = 3) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < np.where(g == 1, 0.5, 0.3)).astype(int)
    shift = rng.normal(size=(2, 2, d)) * 1.5
    scale = rng.uniform(0.5, 2.0, size=(2, d))
    X = rng.normal(size=(n, d)) * scale[g] + shift[g, y]
    return pd.DataFrame(X, columns=[f"f{j}" for j in range(d)]), y, np.where(g == 1, "b", "a")


def _never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the command started its work before refusing its arguments")


# ---------------------------------------------------------------------------------------------------- finding 3
@pytest.mark.parametrize("column", ["f0", "f1", "f2"])
def test_finding_3_fairsteerer_output_does_not_depend_on_one_columns_units(column: str) -> None:
    """One column times 1e5: every steered column (in its own units) moves by < 1e-6 of its spread, and no
    'near-singular' ridge is added (the covariance is well conditioned once standardised)."""
    df, y, g = _table()
    ref = FairSteerer().fit_transform(df, y, groups=g)
    scaled = df.copy()
    scaled[column] *= 1e5
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fs = FairSteerer()
        out = fs.fit_transform(scaled, y, groups=g)
        test = fs.transform(scaled, groups=g)
    out[column] /= 1e5
    test[column] /= 1e5
    ref_test = FairSteerer().fit(df, y, groups=g).transform(df, groups=g)
    spread = ref.std().to_numpy()
    assert np.max(np.abs(out - ref).to_numpy() / spread) < 1e-6
    assert np.max(np.abs(test - ref_test).to_numpy() / spread) < 1e-6


def test_finding_3_auto_ridge_of_a_singular_covariance_is_scale_free() -> None:
    """An exactly collinear column makes every cell singular: the automatic ridge is decided and added in
    standardised units, so rescaling one column still leaves every steered column unchanged."""
    df, y, g = _table()
    df["f3"] = df["f0"] + 2.0 * df["f1"]
    scaled = df.copy()
    scaled["f1"] *= 1e5
    with pytest.warns(RuntimeWarning, match="near-singular"):
        ref = FairSteerer().fit_transform(df, y, groups=g)
    with pytest.warns(RuntimeWarning, match="near-singular"):
        out = FairSteerer().fit_transform(scaled, y, groups=g)
    out["f1"] /= 1e5
    assert np.max(np.abs(out - ref).to_numpy() / ref.std().to_numpy()) < 1e-6


# ---------------------------------------------------------------------------------------------------- finding 6
@pytest.mark.parametrize("seeds", ["0", "-1"])
def test_finding_6_demo_rejects_fewer_than_one_seed_before_any_work(
    seeds: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="seeds"):
        tabular_benchmark.run(None, seeds=[])
    monkeypatch.setattr(tabular_benchmark, "run", _never)
    with pytest.raises(SystemExit) as exc:
        cli_main(["demo", "--seeds", seeds, "--out", str(tmp_path / "demo")])
    assert exc.value.code == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_finding_6_results_json_is_strict(tmp_path: Path) -> None:
    """NaN / inf become null: the JSON parses under a strict reader."""
    results = {"mean": float("nan"), "values": np.array([1.0, np.inf]), "n": np.int64(3)}
    write_results(tmp_path, "r", results, lambda r: "table", lambda r, p: p.write_bytes(b"png"))
    text = (tmp_path / "r.json").read_text()

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    data = json.loads(text, parse_constant=refuse)
    assert data["mean"] is None and data["values"] == [1.0, None] and data["n"] == 3


# ---------------------------------------------------------------------------------------------------- finding 7
@pytest.mark.parametrize(
    ("group_priors", "class_priors", "name"),
    [
        ([math.nan, 1.0], [[0.5, 0.5], [0.5, 0.5]], "group_priors"),
        ([math.inf, 1.0], [[0.5, 0.5], [0.5, 0.5]], "group_priors"),
        ([0.5, 0.5], [[math.nan, 0.5], [0.5, 0.5]], "class_priors"),
        ([0.5, 0.5], [[0.5, 0.5], [-math.inf, 0.5]], "class_priors"),
    ],
)
def test_finding_7_group_conditional_model_rejects_non_finite_priors(
    group_priors: list[float], class_priors: list[list[float]], name: str
) -> None:
    c = Gaussian(np.zeros(1), np.eye(1))
    with pytest.raises(ValueError, match=name):
        GroupConditionalModel([0, 1], [0, 1], np.asarray(group_priors), np.asarray(class_priors), ((c, c), (c, c)))


# ---------------------------------------------------------------------------------------------------- finding 9
def test_finding_9_demo_checks_its_output_folder_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tabular_benchmark, "run", _never)
    monkeypatch.setattr(case_study, "run", _never)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for extra in ([], ["--synthetic"]):
        with pytest.raises(SystemExit) as exc:
            cli_main(["demo", "--out", str(blocker), *extra])
        assert exc.value.code == 2
        assert "pass another --out" in capsys.readouterr().err
    # earlier results are never replaced without --overwrite
    earlier = tmp_path / "demo" / "adult"
    earlier.mkdir(parents=True)
    (earlier / "tabular_benchmark.json").write_text('{"old": 1}')
    with pytest.raises(SystemExit):
        cli_main(["demo", "--out", str(tmp_path / "demo")])
    assert "--overwrite" in capsys.readouterr().err
    assert (earlier / "tabular_benchmark.json").read_text() == '{"old": 1}'


def test_finding_9_demo_records_its_run_and_overwrites_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run(out: Any, tasks: Any, **kw: Any) -> dict[str, Any]:
        calls.append(kw)
        return {"tasks": {}}

    monkeypatch.setattr(tabular_benchmark, "run", fake_run)
    monkeypatch.setattr(tabular_benchmark, "markdown", lambda r: "")
    with pytest.raises(KeyError):  # the fake results have no summary; only the arguments matter here
        cli_main(["demo", "--out", str(tmp_path), "--seeds", "2", "--overwrite"])
    assert calls[0]["overwrite"] is True and list(calls[0]["seeds"]) == [0, 1]
    # the shared writer: configuration, version and UTC time in the JSON; no overwrite unless asked
    write_results(tmp_path, "r", {"a": 1}, lambda r: "t", lambda r, p: p.write_bytes(b"png"), config={"seeds": 2})
    run = json.loads((tmp_path / "r.json").read_text())["run"]
    assert run["config"] == {"seeds": 2} and run["steerfair_version"] and run["utc_time"].endswith("+00:00")
    with pytest.raises(ValueError, match="overwrite"):
        write_results(tmp_path, "r", {"a": 2}, lambda r: "t", lambda r, p: p.write_bytes(b"png"))
    assert json.loads((tmp_path / "r.json").read_text())["a"] == 1
    write_results(tmp_path, "r", {"a": 2}, lambda r: "t", lambda r, p: p.write_bytes(b"png"), overwrite=True)
    assert json.loads((tmp_path / "r.json").read_text())["a"] == 2


def test_demo_reports_the_strongest_alternative_beside_steerfair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The main job runs fairlearn's ThresholdOptimizer in the same run and prints its figures beside steerfair's."""
    calls: list[dict[str, Any]] = []

    def summary(acc: float, eo: float) -> dict[str, Any]:
        return {"accuracy": {"mean": acc}, "eo_gap": {"mean": eo}}

    def fake_run(out: Any, tasks: Any, **kw: Any) -> dict[str, Any]:
        calls.append(kw)
        by_method = {"raw": summary(0.84, 0.1), "steerfair": summary(0.83, 0.05),
                     "threshold_optimizer": summary(0.82, 0.02)}  # fmt: skip
        return {"tasks": {"adult/sex": {"summary": {"lr": by_method}}}, "seconds": 1.0}

    monkeypatch.setattr(tabular_benchmark, "run", fake_run)
    monkeypatch.setattr(tabular_benchmark, "markdown", lambda r: "")
    assert cli_main(["demo", "--out", str(tmp_path), "--seeds", "1"]) == 0
    assert "threshold_optimizer" in calls[0]["methods"] and "steerfair" in calls[0]["methods"]
    out = capsys.readouterr().out
    assert "steerfair: EO gap 0.100 -> 0.050 (0.50x), accuracy 0.8400 -> 0.8300 (-1.00 pt)" in out
    assert "ThresholdOptimizer: EO gap 0.100 -> 0.020 (0.20x), accuracy 0.8400 -> 0.8200 (-2.00 pt)" in out


def test_finding_9_failed_write_keeps_earlier_results(tmp_path: Path) -> None:
    """A failure while writing (here: the plot) leaves the earlier files intact and no temporary file behind."""
    write_results(tmp_path, "r", {"a": 1}, lambda r: "old", lambda r, p: p.write_bytes(b"old"))

    def broken(r: Any, p: Path) -> None:
        p.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_results(tmp_path, "r", {"a": 2}, lambda r: "new", broken, overwrite=True)
    assert json.loads((tmp_path / "r.json").read_text())["a"] == 1
    assert (tmp_path / "r.png").read_bytes() == b"old"
    assert (tmp_path / "r.md").read_text() == "old\n"  # nothing is renamed before every file is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md", "r.png"]


def test_atomic_writes_keep_permissions(tmp_path: Path) -> None:
    """Atomically written files get the umask's mode (not mkstemp's 0600); a replaced file keeps its own."""
    import os
    import stat

    umask = os.umask(0o022)
    os.umask(umask)
    write_results(tmp_path, "r", {"a": 1}, lambda r: "t", lambda r, p: p.write_bytes(b"png"))
    for name in ("r.json", "r.md", "r.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
    (tmp_path / "r.md").chmod(0o640)
    write_results(tmp_path, "r", {"a": 2}, lambda r: "t", lambda r, p: p.write_bytes(b"png"), overwrite=True)
    assert stat.S_IMODE((tmp_path / "r.md").stat().st_mode) == 0o640


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-length", "0"], "--max-length must be at least 1"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--rank", "385"], "exceeds minilm's dimension 384"),
        (["--rank", "-1"], "--rank must be non-negative"),
        (["--max-per-class", "-2"], "--max-per-class"),
        (["--max-per-class", "5"], "--max-per-class must be 0 (no cap) or at least 200"),
        (["--data", "nosuch"], "--data: 'nosuch' is neither bug, bios nor an existing file or folder"),
        (["--cache-dir", "/etc/passwd/x"], "--cache-dir '/etc/passwd/x' cannot be created"),
        (["--layer", "6"], "--layer 6 is out of range for minilm (6 blocks: use -6..5)"),
        (["--layer", "-7"], "--layer -7 is out of range for minilm"),
        (["--model", "smollm2", "--layer", "30"], "--layer 30 is out of range for smollm2 (30 blocks"),
        (["--model", "./no/such/folder"], "--model: no model folder at './no/such/folder'"),
        (["--model", "nosuch-model-id"], "--model: model 'nosuch-model-id' is neither an alias"),
    ],
)
def test_finding_9_bios_rejects_bad_arguments_before_any_work(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(bios_run, "run_bios", _never)
    with pytest.raises(SystemExit) as exc:
        cli_main(["bios", "--out", str(tmp_path / "bios"), *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_finding_9_bios_rejects_unknown_exclude_and_large_rank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = bios_run.TextDataset(("a", "b", "c", "d"), ["nurse", "nurse", "pilot", "pilot"], ["female", "male"] * 2)
    monkeypatch.setattr(bios_run, "_encode", _never)
    with pytest.raises(ValueError, match=r"exclude .*'nurses'"):
        bios_run.run_bios(dataset=ds, out=tmp_path / "a", config=ProtocolConfig(exclude=("nurses",)))
    with pytest.raises(ValueError, match="max_length"):
        bios_run.run_bios(dataset=ds, out=tmp_path / "b", max_length=0)
    monkeypatch.setattr(bios_run, "_encode", lambda *a, **k: (np.zeros((4, 8)), 0))
    monkeypatch.setattr(bios_run, "run_protocol", _never)
    with pytest.raises(ValueError, match="rank 16 exceeds the encoding dimension 8"):
        bios_run.run_bios(dataset=ds, out=tmp_path / "c", config=ProtocolConfig(rank=16))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "results.json").write_text("{}")
    monkeypatch.setattr(bios_run, "_encode", _never)
    with pytest.raises(ValueError, match="overwrite"):
        bios_run.run_bios(dataset=ds, out=tmp_path / "d")
    check_output(tmp_path / "d", ["results.json"], overwrite=True)


# ---------------------------------------------------------------------------------------------------- finding 10
def test_finding_10_posterior_group_proba_rejects_out_of_range_reports() -> None:
    for reports in (np.array([0, 1, 5]), np.array([0.0, 1.0, 5.0]), np.array([0, -1, 1])):
        with pytest.raises(ValueError, match="reports"):
            posterior_group_proba(reports, 1.0, n_categories=3)
    with pytest.raises(ValueError, match="reports"):
        posterior_group_proba(np.array(["a", "z"]), 1.0, categories=["a", "b"])
    # in-range float codes are codes
    np.testing.assert_allclose(
        posterior_group_proba(np.array([0.0, 2.0]), 1.0, n_categories=3),
        posterior_group_proba(np.array([0, 2]), 1.0, n_categories=3),
    )


@pytest.mark.parametrize("epsilon", ["1", b"1", None, True, [1.0], complex(1, 0)])
def test_finding_10_epsilon_must_be_a_number(epsilon: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="epsilon"):
        posterior_group_proba(np.array([0, 1]), epsilon, n_categories=2)


@pytest.mark.parametrize("rank", [-1, 0, 1.5, True, "2"])
def test_finding_10_to_low_rank_rejects_bad_rank(rank: Any) -> None:
    T = AffineMap(2.0 * np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match="rank"):
        T.to_low_rank(rank=rank)
    assert T.to_low_rank(rank=3).rank == 3


@pytest.mark.parametrize("weights", [[math.nan, 1.0], [math.inf, 1.0], [-1.0, 2.0], [0.0, 0.0], [1.0]])
def test_finding_10_bures_barycenter_rejects_bad_weights(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="weights"):
        bures_barycenter([np.eye(2), 2 * np.eye(2)], weights=weights)


def test_math_core_bad_input_gets_a_clear_error_naming_the_argument(tmp_path: Path) -> None:
    """Found by a new-user pass: each of these crashed deep inside the library or numpy, or was silently accepted."""
    from safetensors.numpy import save_file

    import steerfair as sf
    from steerfair.maps import gaussian_ot_map, mean_shift_map

    cells = ((Gaussian([0.0, 0.0], np.eye(2)), Gaussian([1.0, 0.0], np.eye(2))),) * 2
    model = GroupConditionalModel([0, 1], [0, 1], [0.5, 0.5], [[0.5, 0.5]] * 2, cells)
    with pytest.raises(ValueError, match="components must be Gaussians"):  # was AttributeError: no attribute 'dim'
        GroupConditionalModel([0, 1], [0, 1], [0.5, 0.5], [[0.5, 0.5]] * 2, (([0, 0], [1, 0]), ([0, 1], [1, 1])))
    covs = np.tile(np.eye(2), (2, 2, 1, 1))
    covs[0, 0, 0, 1] = 0.5  # was averaged with its transpose without a word
    with pytest.raises(ValueError, match=r"covs\[0, 0\] is not symmetric"):
        GroupConditionalModel.from_moments([0, 1], [0, 1], np.full((2, 2), 10), np.zeros((2, 2, 2)), covs)
    with pytest.raises(ValueError, match="y and groups must have the same length"):  # was IndexError
        sf.solve_nearest_ideal(model).sample_weights(np.array([0, 1, 1]), np.array([0, 0]))
    save_file({"A": np.eye(2)}, str(tmp_path / "m.safetensors"), metadata={"format": "steerfair.AffineMap"})
    with pytest.raises(ValueError, match=r"lacks the tensor\(s\) \['b'\]"):  # was KeyError: 'b'
        AffineMap.load(tmp_path / "m.safetensors")
    lognormal = sf.LogNormal(np.zeros(2), np.eye(2))
    for make in (gaussian_ot_map, mean_shift_map):  # a map from log-space to linear space was returned
        with pytest.raises(ValueError, match="same family"):
            make(lognormal, Gaussian(np.zeros(2), np.eye(2)))
    with pytest.raises(TypeError, match="amap must be an AffineMap"):  # was AttributeError: no attribute 'A'
        Gaussian(np.zeros(2), np.eye(2)).pushforward(np.eye(2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cost must be a number"):  # was "could not convert string to float"
        sf.bayes_error(model, "a")  # type: ignore[arg-type]
    for bad in (0, 2.7):  # 0 named an argument the user never passed, 2.7 was truncated to 2
        with pytest.raises((ValueError, TypeError), match="n_costs"):
            sf.transfer_bounds(model, model, n_costs=bad)  # type: ignore[arg-type]


def test_a_vanishing_class_prior_does_not_break_the_affine_solver() -> None:
    """A class prior of 1e-300 made a trust-region block vanish: ZeroDivisionError inside the CG boundary step."""
    import steerfair as sf

    rng = np.random.default_rng(5)

    def spd() -> np.ndarray:
        A = rng.standard_normal((2, 2))
        return A @ A.T / 2 + np.eye(2)

    cells = tuple(tuple(Gaussian(2 * rng.standard_normal(2), spd()) for _ in range(2)) for _ in range(2))
    model = GroupConditionalModel([0, 1], [0, 1], [0.5, 0.5], [[1 - 1e-300, 1e-300], [0.5, 0.5]], cells)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iso = sf.solve_nearest_ideal(model, intervention="all")
        affine = sf.solve_nearest_ideal(model, intervention="all", family="affine")
    assert np.isfinite(affine.kl) and affine.kl <= iso.kl * (1 + 1e-9)


def test_a_solver_losing_precision_says_which_input_and_what_to_do() -> None:
    """Three groups whose cell covariances have condition 1e8: the all-subgroup solvers' factorisations fail in
    floating point. The error named internal matrices and keywords the solver does not take; it now names the
    model's conditioning and the remedy."""
    import steerfair as sf

    rng = np.random.default_rng(7)

    def cov() -> np.ndarray:
        U, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        S = U @ np.diag(np.logspace(0, -8, 3)) @ U.T
        return 0.5 * (S + S.T)

    cells = tuple(tuple(Gaussian(rng.standard_normal(3), cov()) for _ in range(2)) for _ in range(3))
    priors = rng.uniform(0.2, 1, (3, 2))
    model = GroupConditionalModel(
        np.arange(3), np.arange(2), np.full(3, 1 / 3), priors / priors.sum(1, keepdims=True), cells
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"lost precision.*condition numbers up to 1\.0e\+08.*shrinkage='oas'"):
            sf.solve_nearest_ideal(model, intervention="all", family="affine")
    # the isotropic search, bounded about its start, no longer steps to scales where the factorisations fail: its
    # answer is an ideal whose reported KL is its true one, and no affirmative solution is lower
    sol = sf.solve_nearest_ideal(model, intervention="all")
    assert sf.is_ideal(sol.ideal) and sol.kl == pytest.approx(sol.ideal.kl(model), rel=1e-9)
    assert all(sol.kl <= sf.solve_nearest_ideal(model, intervention="affirmative", reference=r).kl for r in range(3))


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--seed", "-1"], "--seed must be a non-negative integer"), (["--device", "cuda"], "no CUDA device")],
)
def test_generation_bias_rejects_a_negative_seed_and_a_missing_device_before_any_work(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a CUDA device is available here")
    with pytest.raises(SystemExit) as exc:
        cli_main(["generation-bias", "--model", "tiny-gpt2", "--out", str(tmp_path / "g"), *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "g" / "results.json").exists()


def test_demo_without_the_adult_wheel_checks_the_fallback_folder_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the Adult data the demo falls back to the synthetic case study; existing results there were found only
    after the fallback, as a traceback. Now a usage error, before any work."""
    from steerfair import cli
    from steerfair.datasets import MissingDataPackageError

    def missing(package: str, dataset: str) -> Path:
        raise MissingDataPackageError(f"{package} is not installed")

    monkeypatch.setattr("steerfair.datasets.container.wheel_directory", missing)
    (tmp_path / "synthetic").mkdir()
    for name in cli.SYNTHETIC_FILES:
        (tmp_path / "synthetic" / name).write_text("{}")
    with pytest.raises(SystemExit) as exc:
        cli_main(["demo", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "already holds results" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- session 11
def _small_model() -> tuple[GroupConditionalModel, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X, y, g = rng.normal(size=(120, 2)), np.repeat([0, 1], 60), np.tile([0, 1], 60)
    X[y == 1] += 1.0
    return GroupConditionalModel.fit(X, y, g), X, y, g


def test_posterior_reads_one_hot_rows_as_labels_and_names_a_wrong_group_count() -> None:
    model, X, _, g = _small_model()
    np.testing.assert_array_equal(model.posterior(X[:4], np.eye(2)[g[:4]]), model.posterior(X[:4], g[:4]))
    with pytest.raises(ValueError, match="groups has 2 entries but X has 3 rows"):
        model.posterior(X[:3], [0, 1])
    with pytest.raises(ValueError, match="soft memberships"):
        model.log_joint(X[:2], [[0.5, 0.5], [1.0, 0.0]])


def test_a_single_column_of_group_labels_gets_a_message_that_says_so() -> None:
    _, X, y, g = _small_model()
    with pytest.raises(ValueError, match=r"groups has shape \(120, 1\): one column of labels must be passed 1-D"):
        GroupConditionalModel.fit(X, y, g[:, None])


def test_cell_statistics_from_rows_names_plain_labels() -> None:
    from steerfair.membership import Membership
    from steerfair.statistics import CellStatistics

    _, X, y, g = _small_model()
    with pytest.raises(TypeError, match="groups must be a steerfair.membership.Membership"):
        CellStatistics.from_rows(X, list(g), Membership.parse(y, name="classes"))
    stats = CellStatistics.from_rows(X, Membership.parse(g), Membership.parse(y, name="classes"))
    assert stats.counts.sum() == len(X)


def test_gaussian_fit_refuses_an_estimator_with_loose_shrinkage() -> None:
    from steerfair.covariance import CovarianceEstimator

    X = np.random.default_rng(1).normal(size=(50, 3))
    with pytest.raises(ValueError, match="not both"):
        Gaussian.fit(X, shrinkage=0.9, estimator=CovarianceEstimator(None, None))
    with pytest.raises(ValueError, match="not both"):
        Gaussian.fit(X, reg=1e-3, estimator=CovarianceEstimator(None, None))
    shrunk = Gaussian.fit(X, estimator=CovarianceEstimator(0.9, None))
    np.testing.assert_allclose(shrunk.cov, Gaussian.fit(X, shrinkage=0.9, reg=None).cov)


def test_small_api_checks_from_the_math_review() -> None:
    from steerfair.membership import Membership
    from steerfair.representations import IdealTemplateSteering

    with pytest.raises(TypeError, match="d must be an integer"):
        AffineMap.identity(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="d must be"):
        AffineMap.identity(-1)
    assert AffineMap.identity(2) == AffineMap(np.eye(2))  # equal by value, whatever the storage
    assert AffineMap.identity(2) != AffineMap(np.eye(2), np.ones(2)) and AffineMap.identity(2) != AffineMap.identity(3)
    with pytest.raises(ValueError, match=r"index holds -1, outside 0..1"):
        Membership.one_hot([0, -1], [0, 1])
    with pytest.raises(RuntimeError, match="not fitted; call fit"):
        IdealTemplateSteering().transform(np.zeros((2, 2)), [0, 1])


def test_model_counts_must_be_one_finite_number_per_cell() -> None:
    model, *_ = _small_model()
    parts = (model.groups, model.classes, model.group_priors, model.class_priors, model.components)
    for bad in ([[1, 2], [3]], [[1.0, np.nan], [3.0, 4.0]], [1, 2, 3, 4]):
        with pytest.raises(ValueError, match="counts"):
            GroupConditionalModel(*parts, counts=bad)  # type: ignore[arg-type]
    ok = GroupConditionalModel(*parts, counts=[[30, 30], [30, 30]])  # type: ignore[arg-type]
    assert ok.counts is not None and ok.counts.shape == (2, 2) and not ok.counts.flags.writeable


def test_solver_argument_checks_from_the_solver_review() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _random_models import random_model

    import steerfair as sf

    model = random_model(3, 2, 2, 2)
    with pytest.raises(ValueError, match="unknown solver 'bogus'"):
        sf.solve_nearest_ideal(model, family="affine", solver="bogus")
    with pytest.raises(ValueError, match="reference must be a group label, not a boolean"):
        sf.solve_nearest_ideal(model, reference=True)
    with pytest.raises(TypeError, match="literal must be True or False"):
        sf.is_ideal(model, literal="no")  # type: ignore[arg-type]
    parts = ([0.5, 0.5], model.class_priors, model.components)
    with pytest.raises(ValueError, match="groups has non-integer values"):
        GroupConditionalModel(np.array([1.5, 2.5]), model.classes, *parts)
