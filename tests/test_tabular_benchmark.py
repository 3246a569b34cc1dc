"""The tabular benchmark's new methods (shared target, picked strength, ThresholdOptimizer, ExponentiatedGradient), the
MLP, the verdict (computed from the results) and the Pareto plot, on a tiny synthetic task (seconds)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("fairlearn")
pytest.importorskip("matplotlib")

from steerfair.datasets import TabularDataset  # noqa: E402
from steerfair.evaluation import tabular_benchmark as tb  # noqa: E402
from steerfair.evaluation import tabular_methods, tabular_report  # noqa: E402

NEW = ("steerfair (shared)", "steerfair (shared positive)", "steerfair (shared score)", "steerfair (shared, picked)",
       "threshold_optimizer", "exponentiated_gradient")  # fmt: skip


def toy(n: int = 360, seed: int = 0) -> TabularDataset:
    """Two groups, three continuous columns (group- and label-dependent) and a three-level one-hot block."""
    rng = np.random.default_rng(seed)
    g = rng.random(n) < 0.4
    y = (rng.random(n) < np.where(g, 0.3, 0.5)).astype(int)
    cont = rng.normal(size=(n, 3)) + 1.2 * y[:, None] + 0.8 * g[:, None] * np.array([1.0, -0.5, 0.0])
    cat = rng.integers(0, 3, n) + (y & (rng.random(n) < 0.5))
    cat = np.minimum(cat, 2)
    X = pd.DataFrame(cont, columns=["a", "b", "c"])
    for k in range(3):
        X[f"cat_{k}"] = (cat == k).astype(np.float64)
    return TabularDataset(
        name="toy", X=X, y=y, groups=np.where(g, "B", "A"), feature_names=list(X.columns),
        numeric_columns=["a", "b", "c"], categorical_columns=["cat_0", "cat_1", "cat_2"], sensitive="g",
    )  # fmt: skip


@pytest.fixture
def toy_task(monkeypatch: pytest.MonkeyPatch) -> tb.Task:
    monkeypatch.setitem(tb.SENSITIVE, "toy", ("g",))
    monkeypatch.setattr(tb, "load_dataset", lambda name, sensitive: toy())
    return tb.Task("toy", "g")


def test_new_methods_and_mlp_run_end_to_end(toy_task: tb.Task, tmp_path: Path) -> None:
    methods = ["raw", "steerfair", *NEW, "reweighing", "mimic", "leace", "mimic (all columns)", "leace (all columns)"]
    res = tb.run(tmp_path, [toy_task], seeds=[0], models=["lr", "mlp"], methods=methods, show_progress=False)
    task = res["tasks"]["toy/g"]
    assert set(task["summary"]) == {"lr", "mlp"}
    for by in task["summary"].values():
        assert list(by) == methods
        for s in by.values():
            assert 0.4 < s["accuracy"]["mean"] <= 1.0 and 0.0 <= s["eo_gap"]["mean"] <= 1.0
    for model in ("lr", "mlp"):
        picked = task["per_seed"][model]["steerfair (shared, picked)"]
        assert all(p["strength"] in tabular_methods.PICK["strengths"] and p["budget"] >= 0 for p in picked)
    floors = [s["eo_floor"] for m in ("lr", "mlp") for s in task["per_seed"][m]["raw"]]
    assert all(0.0 < f < 1.0 for f in floors)  # the raw model's noise floor, read by the verdict
    assert all("eo_floor" in r for r in res["verdict"])
    on_disk = json.loads((tmp_path / "tabular_benchmark.json").read_text())
    assert on_disk["tasks"]["toy/g"]["summary"] == task["summary"]
    assert on_disk["verdict"] == json.loads(json.dumps(res["verdict"]))
    table = (tmp_path / "tabular_benchmark.md").read_text()
    assert table.startswith("## Verdict") and "## Overview" in table and "| threshold_optimizer |" in table
    assert "toy/g, mlp" in table
    assert (tmp_path / "tabular_benchmark.png").stat().st_size > 1000


def test_the_shared_target_moves_train_and_test_rows_and_the_picked_strength_is_one_of_the_candidates() -> None:
    """(Gradient boosting: ThresholdOptimizer on the same base model; ExponentiatedGradient with it takes ~10 s.)"""
    tr, te = toy().split(0.3, seed=0)
    fold = tabular_methods.Fold(tr, te, 0)
    Xtr, Xte, w = tabular_methods.prepare("steerfair (shared)", fold)
    assert w is None and Xtr.shape == tr.X.shape and Xte.shape == te.X.shape
    assert not np.allclose(Xte, te.to_numpy())
    assert set(np.unique(Xtr[:, 3:])) <= {0.0, 1.0}  # the copula keeps one-hot columns 0/1
    Xtr, Xte, _ = tabular_methods.prepare("steerfair (shared positive)", fold)
    assert not np.allclose(Xte, te.to_numpy()) and set(np.unique(Xte[:, 3:])) <= {0.0, 1.0}
    pred, info = tabular_methods.predict("steerfair (shared, picked)", "lr", fold)
    assert pred.shape == te.y.shape and info["strength"] in tabular_methods.PICK["strengths"]
    pred, info = tabular_methods.predict("threshold_optimizer", "gbm", fold)
    assert pred.shape == te.y.shape and set(np.unique(pred)) <= {0, 1} and info == {}


def test_a_method_that_needs_sample_weight_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    monkeypatch.setattr(tabular_methods, "make_model", lambda kind, seed: KNeighborsClassifier())
    for method in sorted(tabular_methods.NEEDS_SAMPLE_WEIGHT):
        with pytest.raises(ValueError, match=re.escape(f"{method!r} trains the downstream model with sample_weight")):
            tb.run(None, [tb.TASKS[0]], seeds=[0], models=["lr"], methods=["raw", method], show_progress=False)
    tabular_methods.check_models(["raw", "threshold_optimizer"], ["lr"])  # no weights needed: fine


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "svm"], "invalid choice"),
        (["--methods", "nope"], "invalid choice"),
        (["--tasks", "adult"], "dataset/sensitive"),
        (["--tasks", "adult/age"], "unknown task"),
        (["--seeds", "0"], "at least 1"),
    ],
)
def test_command_line_rejects_bad_arguments_before_any_work(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tb, "run", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(SystemExit) as exc:
        tb.main(["--out", str(tmp_path / "out"), *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def stat(mean: float, std: float = 0.01) -> dict[str, float]:
    return {"mean": mean, "std": std}


def constructed(
    steer_eo: float, steer_acc: float, shared_acc: float, to_eo: float, to_acc: float = 0.80
) -> dict[str, Any]:
    """One task, LR and MLP: raw accuracy 0.80 and EO gap 0.20; steerfair, its shared default and ThresholdOptimizer."""

    def row(acc: float, eo: float) -> dict[str, Any]:
        return {"accuracy": stat(acc), "eo_gap": stat(eo), "dp_gap": stat(0.1), "eodds_gap": stat(eo)}

    by = {
        "raw": row(0.80, 0.20),
        "steerfair": row(steer_acc, steer_eo),
        "steerfair (shared)": row(shared_acc, 0.15),
        "threshold_optimizer": row(to_acc, to_eo),
    }
    per_seed = {"raw": [{"accuracy": 0.8, "eo_gap": e} for e in (0.15, 0.20, 0.25)]}
    return {"tasks": {"t/a": {"summary": {"lr": by, "mlp": copy.deepcopy(by)}, "per_seed": {"lr": per_seed},
                              "seeds": [0, 1, 2], "n_rows": 100}}}  # fmt: skip


def test_verdict_is_computed_from_the_results_and_flips_with_them() -> None:
    base = dict(steer_eo=0.09, steer_acc=0.79, shared_acc=0.79, to_eo=0.05)
    lr, mlp = tabular_report.verdict(constructed(**base))
    assert lr["model"] == "lr" and lr["required"] and not mlp["required"]
    assert lr["raw_eo"] == 0.20 and (lr["raw_eo_min"], lr["raw_eo_max"]) == (0.15, 0.25)
    assert lr["best"] == "steerfair" and lr["meets"] and lr["best_ratio"] == pytest.approx(0.45)
    assert lr["default_losses"] == {} and lr["to_better"] and not lr["near_constant"]
    assert lr["to_eo_lower_by"] == pytest.approx(0.04) and lr["to_accuracy_higher_pt"] == pytest.approx(1.0)
    # a best variant barely more accurate than the majority class is marked
    near = constructed(**base)
    near["tasks"]["t/a"]["majority_accuracy"] = 0.788
    assert tabular_report.verdict(near)[0]["near_constant"]
    assert "(near the constant classifier)" in tabular_report.verdict_markdown(tabular_report.verdict(near))
    # EO gap above 0.5x raw: the target is missed
    assert not tabular_report.verdict(constructed(**{**base, "steer_eo": 0.11}))[0]["meets"]
    # 1.6 points of accuracy lost: missed (the best variant is then the shared target, within the tolerance)
    off = tabular_report.verdict(constructed(**{**base, "steer_acc": 0.784}))[0]
    assert not off["meets"] and off["best"] == "steerfair (shared)"
    # a default that loses more than 3 points is named, with its loss
    lost = tabular_report.verdict(constructed(**{**base, "shared_acc": 0.765}))[0]
    assert lost["default_losses"] == {"steerfair (shared)": pytest.approx(3.5)}
    assert tabular_report.verdict(constructed(**{**base, "shared_acc": 0.771}))[0]["default_losses"] == {}
    # ThresholdOptimizer no longer better once its gap is larger, or its accuracy too low (more than 0.5 pt below the
    # best variant's and more than 1.5 pt below raw); 1.3 pt below raw is affordable
    assert not tabular_report.verdict(constructed(**{**base, "to_eo": 0.10}))[0]["to_better"]
    exact = {**base, "steer_acc": 0.80}
    assert not tabular_report.verdict(constructed(**{**exact, "to_acc": 0.784}))[0]["to_better"]
    assert tabular_report.verdict(constructed(**{**exact, "to_acc": 0.787}))[0]["to_better"]
    table = tabular_report.verdict_markdown(tabular_report.verdict(constructed(**{**base, "steer_eo": 0.11})))
    assert "met on 0 of 1" in table and "(yes; not required)" not in table
    assert "met on 1 of 1" in tabular_report.verdict_markdown(tabular_report.verdict(constructed(**base)))
    # a raw gap inside its own seed-to-seed spread (std >= mean) is not held to the target
    noisy = constructed(**base)
    noisy["tasks"]["t/a"]["summary"]["lr"]["raw"]["eo_gap"] = stat(0.20, 0.21)
    lr = tabular_report.verdict(noisy)[0]
    assert not lr["required"] and not lr["above_spread"] and lr["meets"]
    table = tabular_report.verdict_markdown([lr])
    assert "met on 0 of 0" in table and "(yes; not required: raw gap within its seed spread)" in table


def test_a_variant_with_an_undefined_gap_is_not_ranked_and_ties_go_to_the_more_accurate() -> None:
    """A NaN mean compares False, so it won or lost by its place in the dict (the best variant read 'nan (nanx)')."""
    for first in (True, False):
        res = constructed(steer_eo=0.30, steer_acc=0.70, shared_acc=0.79, to_eo=0.05)
        by = res["tasks"]["t/a"]["summary"]["lr"]
        undefined = {"accuracy": stat(0.79), "eo_gap": stat(float("nan")), "dp_gap": stat(0.1),
                     "eodds_gap": stat(float("nan"))}  # fmt: skip
        order = ["steerfair (gaussian)", *by] if first else [*by, "steerfair (gaussian)"]
        res["tasks"]["t/a"]["summary"]["lr"] = {m: undefined if m == "steerfair (gaussian)" else by[m] for m in order}
        lr = tabular_report.verdict(res)[0]
        assert lr["best"] == "steerfair (shared)" and lr["best_eo"] == pytest.approx(0.15)
    tie = constructed(steer_eo=0.15, steer_acc=0.785, shared_acc=0.79, to_eo=0.05)
    assert tabular_report.verdict(tie)[0]["best"] == "steerfair (shared)"  # same gap, more accurate


def test_seed_spread_is_the_sample_standard_deviation(toy_task: tb.Task, tmp_path: Path) -> None:
    res = tb.run(tmp_path, [toy_task], seeds=[0, 1, 2], models=["lr"], methods=["raw"], show_progress=False)
    task = res["tasks"]["toy/g"]
    gaps = [s["eo_gap"] for s in task["per_seed"]["lr"]["raw"]]
    assert task["summary"]["lr"]["raw"]["eo_gap"]["std"] == pytest.approx(np.std(gaps, ddof=1), rel=1e-12)


def test_all_column_baselines_match_the_groups_on_every_column() -> None:
    """``mimic (all columns)`` / ``leace (all columns)`` move the one-hot columns too (the plain rows only the
    continuous ones), so the group means agree on every column of the training rows."""
    data = toy(n=600)
    fold = tabular_methods.Fold(data, data, seed=0)
    for method in ("mimic (all columns)", "leace (all columns)"):
        Xtr, _, _ = tabular_methods.prepare(method, fold)
        means = [Xtr[data.groups == g].mean(axis=0) for g in ("A", "B")]
        np.testing.assert_allclose(means[0], means[1], atol=1e-10)
        Xtr, _, _ = tabular_methods.prepare(method.split(" (")[0], fold)
        means = [Xtr[data.groups == g].mean(axis=0) for g in ("A", "B")]
        assert np.max(np.abs(means[0][3:] - means[1][3:])) > 0.01  # the continuous-column rows leave one-hots


def test_pareto_plot_is_written_with_every_method_in_its_legend(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tasks = {}
    for t, models in (("a/x", tb.MODELS), ("b/y", ("lr",))):
        summary = {m: {k: {"eo_gap": stat(rng.uniform(0, 0.3)), "accuracy": stat(rng.uniform(0.6, 0.9))}
                       for k in tb.METHODS} for m in models}  # fmt: skip
        tasks[t] = {"summary": summary}
    del tasks["b/y"]["summary"]["lr"]["raw"]  # a method missing from a panel is still in the legend
    results = {"tasks": tasks}
    path = tmp_path / "pareto.png"
    tabular_report.plot(results, path)
    assert path.stat().st_size > 1000
    fig = tabular_report.figure(results)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(tb.METHODS)
    assert len(fig.axes) == len(tb.MODELS) + 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eo_noise_floor_is_the_sampling_noise_of_a_tpr_difference(seed: int) -> None:
    """Hits independent of the group: the floor is the mean absolute difference of two binomial rates, about
    sqrt(2/pi) standard errors, and it falls as 1/sqrt(n) (pure noise, whatever the predictor's real gap)."""
    rng = np.random.default_rng(seed)

    def floor(n: int, gap: float) -> tuple[float, float]:
        y = (rng.random(n) < 0.4).astype(int)
        g = (rng.random(n) < 0.3).astype(int)
        hit = rng.random(n) < np.where(g == 1, 0.7 - gap, 0.7)  # the predictor's true TPR gap is `gap`
        pred = np.where(y == 1, hit, rng.random(n) < 0.2).astype(int)
        n1 = [np.sum((y == 1) & (g == a)) for a in (0, 1)]
        t = pred[y == 1].mean()
        return tb.eo_noise_floor(y, pred, g), float(np.sqrt(2 / np.pi * t * (1 - t) * (1 / n1[0] + 1 / n1[1])))

    small, expect_small = floor(2_000, 0.0)
    assert small == pytest.approx(expect_small, rel=0.15)
    large, expect_large = floor(32_000, 0.2)  # a real gap of 0.2 does not enter the floor
    assert large == pytest.approx(expect_large, rel=0.15) and large < 0.35 * small
    assert np.isnan(tb.eo_noise_floor(np.ones(10), np.ones(10), np.zeros(10)))  # one group: no gap to measure


def test_a_target_below_the_noise_floor_is_said_so_and_not_counted_as_met() -> None:
    missed = {"steer_eo": 0.12, "steer_acc": 0.79, "shared_acc": 0.79, "to_eo": 0.05}
    res = constructed(**missed)
    seeds = res["tasks"]["t/a"]["per_seed"]["lr"]["raw"]
    for s, floor in zip(seeds, (0.11, 0.12, 0.13), strict=True):
        s["eo_floor"] = floor
    lr = tabular_report.verdict(res)[0]
    assert lr["eo_floor"] == pytest.approx(0.12) and lr["below_floor"] and not lr["meets"]
    table = tabular_report.verdict_markdown([lr])
    assert "no: the target 0.100 is below the noise floor" in table and "| 0.120 |" in table
    assert "met on 0 of 1 (task, model) pairs; on 1 of the others the target is below the noise floor" in table
    for s in seeds:
        s["eo_floor"] = 0.05  # a floor under the target: an ordinary miss
    lr = tabular_report.verdict(res)[0]
    assert not lr["below_floor"] and "below the noise floor" not in tabular_report.verdict_markdown([lr])


def test_equalized_odds_threshold_optimizer_equalises_both_rates_where_it_was_fitted() -> None:
    """The equalized-odds variant is the alternative to the all-class shared target: on the rows it was fitted on,
    both rates agree across groups to sampling error, where the equal-TPR variant leaves the FPR gap."""
    from steerfair.metrics import group_rates

    rng = np.random.default_rng(1)
    n = 6000
    g = np.where(rng.random(n) < 0.4, "B", "A")
    y = (rng.random(n) < 0.4).astype(int)
    sep = np.where(g == "A", 2.5, 0.8)  # different class separations: equal TPR leaves unequal FPR
    X = pd.DataFrame(rng.normal(size=(n, 2)) + (sep * y)[:, None], columns=["a", "b"])
    ds = TabularDataset(name="sep", X=X, y=y, groups=g, feature_names=["a", "b"], numeric_columns=["a", "b"],
                        categorical_columns=[], sensitive="g")  # fmt: skip
    fold = tabular_methods.Fold(ds, ds, 0)  # test = train: the post-processor's own constraint set
    se = []
    for cls in (0, 1):
        n = [int(np.sum((ds.y == cls) & (ds.groups == a))) for a in ("A", "B")]
        se.append(float(np.sqrt(0.25 * (1 / n[0] + 1 / n[1]))))
    tpr_only = group_rates(ds.y, tabular_methods.predict("threshold_optimizer", "lr", fold)[0], ds.groups)
    pred = tabular_methods.predict("threshold_optimizer (equalized odds)", "lr", fold)[0]
    eodds = group_rates(ds.y, pred, ds.groups)
    assert np.ptp(tpr_only.fpr) > 6 * se[0]  # the test has power: equal TPR alone leaves an FPR gap
    assert np.ptp(eodds.fpr) < 4 * se[0] and np.ptp(eodds.tpr) < 4 * se[1]
