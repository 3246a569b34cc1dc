"""Group-aware post-processing of a multi-class classifier (steerfair.evaluation.label_postprocessing).

Relabelling: the kernels are stochastic, keep every per-class TPR difference within the budget, are the most accurate
such kernels (accuracy falls as the budget shrinks, and no budget is at least as accurate as leaving predictions
alone). Class weights: the dual's randomised rule keeps the budget on the probabilities it was fitted to, costs
accuracy only as the budget tightens, the empirical correction keeps it on the labelled rows, and the rule shrinks
the TPR differences of new rows. The recipe's rows hold the protocol's metrics, and it draws its frontier.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair.evaluation.label_postprocessing import apply_label_kernels, confusion_laws, equal_tpr_kernels


def random_confusions(seed: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Two groups' confusion laws, diagonal-heavy and different, and their class counts (some class absent)."""
    rng = np.random.default_rng(seed)
    laws = rng.dirichlet(np.full(m, 0.5), size=(2, m)) + rng.uniform(0.5, 4.0, size=(2, 1, 1)) * np.eye(m)
    laws /= laws.sum(axis=2, keepdims=True)
    counts = rng.integers(0, 60, size=(2, m)).astype(float)
    counts[:, 0] += 1.0
    return laws, counts


def tprs(laws: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    return np.einsum("ayk,aky->ay", laws, kernels)


@given(seed=st.integers(0, 2**31 - 1), m=st.integers(2, 7))
@settings(max_examples=40, deadline=None)
def test_kernels_keep_the_budget_and_trade_accuracy_for_it(seed: int, m: int) -> None:
    laws, counts = random_confusions(seed, m)
    shown = (counts[0] > 0) & (counts[1] > 0)
    identity_acc = float(np.sum(counts * np.einsum("ayy->ay", laws)) / counts.sum())
    accs = []
    for budget in (None, 0.3, 0.1, 0.0):
        K, acc = equal_tpr_kernels(laws, counts, budget)
        assert K.shape == (2, m, m) and np.all(K >= 0) and np.allclose(K.sum(axis=2), 1.0, atol=1e-12)
        t = tprs(laws, K)
        assert acc == pytest.approx(float(np.sum(counts * t) / counts.sum()), abs=1e-9)
        if budget is not None:
            assert np.all(np.abs(t[0] - t[1])[shown] <= budget + 1e-7)
        accs.append(acc)
    assert accs[0] >= identity_acc - 1e-9  # the unconstrained optimum relabels only where it gains
    assert all(a >= b - 1e-9 for a, b in zip(accs, accs[1:], strict=False))  # tighter budget, never more accurate


def test_confusion_laws_and_relabelling_draws_follow_the_kernels() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 30_000)
    g = rng.integers(0, 2, 30_000)
    pred = np.where(rng.random(30_000) < 0.7 + 0.2 * g, y, rng.integers(0, 3, 30_000))
    laws, counts = confusion_laws(y, pred, g, 3, 2)
    np.testing.assert_allclose(laws.sum(axis=2), 1.0)
    np.testing.assert_array_equal(counts, np.array([[np.sum((g == a) & (y == c)) for c in range(3)] for a in range(2)]))
    assert laws[1, 0, 0] > laws[0, 0, 0] + 0.1  # group 1 is the better classified one
    K, _ = equal_tpr_kernels(laws, counts, 0.0)
    out = apply_label_kernels(pred, g, K, rng)
    for a in range(2):  # the relabelled TPRs are equal across groups within Monte Carlo error
        for c in range(3):
            rows = (g == a) & (y == c)
            assert np.mean(out[rows] == c) == pytest.approx(tprs(laws, K)[a, c], abs=0.02)
    t = [np.mean(out[(g == a) & (y == 0)] == 0) for a in range(2)]
    assert abs(t[0] - t[1]) < 0.03  # steering did equalise what differed by about 0.2


def test_bad_inputs_are_refused_with_the_argument_named() -> None:
    laws, counts = random_confusions(0, 3)
    with pytest.raises(ValueError, match=r"laws must be \(2, m, m\)"):
        equal_tpr_kernels(laws[:1], counts, 0.1)
    with pytest.raises(ValueError, match="sum to 1"):
        equal_tpr_kernels(laws * 2, counts, 0.1)
    with pytest.raises(ValueError, match="counts must be"):
        equal_tpr_kernels(laws, counts[:, :2], 0.1)
    with pytest.raises(ValueError, match="budget"):
        equal_tpr_kernels(laws, counts, -0.1)
    with pytest.raises(ValueError, match="pred must hold indices"):
        confusion_laws(np.array([0, 1]), np.array([0, 5]), np.array([0, 1]), 3, 2)
    with pytest.raises(ValueError, match="same length"):
        confusion_laws(np.array([0, 1]), np.array([0]), np.array([0, 1]), 3, 2)


def test_the_recipe_table_reports_cuts_against_the_unsteered_row() -> None:
    from _recipes import load_recipe

    recipe = load_recipe("bios_postprocessing")
    row = {"accuracy": 0.36, "excess_rms_tpr_gap": 0.1, "rms_tpr_gap": 0.12, "noise_floor_rms": 0.06}
    half = dict(row, accuracy=0.35, excess_rms_tpr_gap=0.04)
    table = recipe.markdown({"none": {"gold": row, "predicted": row}, "x": {"gold": half, "predicted": half}}, "cmd")
    assert "| x | 0.3500 (-1.0 pt) | 0.040 (60 %) |" in table
    summary = {"none": {"gold": row, "predicted": row}, "group-aware score": {"gold": row, "predicted": row}}
    implied = {"argmax": {"accuracy": 0.4, "rms_tpr_gap": 0.2}, "budget 0.1": {"accuracy": 0.39, "rms_tpr_gap": 0.05}}
    assert "| 0.1 | 0.3900 (-1.0 pt) | 0.050 (75 %) |" in recipe.markdown(summary, "cmd", implied)


def test_the_recipe_runs_one_split_of_the_protocol_on_small_data() -> None:
    """``run_seed`` on a small synthetic occupation task (4 classes, gender shifts the features): every rule has the
    protocol's metrics with gold and predicted gender, and exact equal opportunity on the held-out training
    predictions removes more of the test gap than the group-aware score leaves (the gender effect is large)."""
    from _recipes import load_recipe

    from steerfair.evaluation.bios_protocol import ProtocolConfig

    recipe = load_recipe("bios_postprocessing")
    rng = np.random.default_rng(0)
    n = 4_000
    y = rng.integers(0, 4, n)
    g = np.where(rng.random(n) < 0.5, "female", "male")
    shift = np.where(g == "female", 1.0, 0.0)[:, None] * (y == 0)[:, None]  # class 0 is clearer for women
    X = rng.normal(size=(n, 6)) + np.eye(6)[y] * 1.2 + 2.0 * shift * np.eye(6)[0]
    out = recipe.run_seed(X, np.array([f"job{c}" for c in y]), g, 0, [None, 0.0], ProtocolConfig(), (0.0,))
    implied = out.pop(recipe.MODEL_IMPLIED)
    rules = [k for k, v in out.items() if isinstance(v, dict)]
    assert rules[:2] == ["none", "group-aware score"] and "equal TPR, budget 0" in rules
    # the model-implied frontier: exact equal opportunity under the score's own probabilities, for some accuracy
    assert set(implied) == {"argmax", "budget 0"} and implied["argmax"]["rms_tpr_gap"] > 0.05
    assert implied["budget 0"]["rms_tpr_gap"] <= 5e-3 < implied["argmax"]["accuracy"] - implied["budget 0"]["accuracy"]
    assert {"class weights (plug-in), budget 0", "class weights (corrected), budget 0"} <= set(rules)
    on_raw = f"{recipe.ON_PROTOCOL_CLASSIFIER}(corrected), budget 0"
    assert {f"{recipe.ON_PROTOCOL_CLASSIFIER}(plug-in), budget 0", on_raw} <= set(rules)
    for rule in rules:
        for which in ("gold", "predicted"):
            assert set(out[rule][which]) == set(recipe.KEYS) and 0.0 < out[rule][which]["accuracy"] <= 1.0
    for rule in ("equal TPR, budget 0", "class weights (corrected), budget 0"):
        assert out[rule]["gold"]["rms_tpr_gap"] < out["group-aware score"]["gold"]["rms_tpr_gap"]
    # on the protocol's own classifier the weights start from the unsteered row and must lower its gap
    assert out[on_raw]["gold"]["rms_tpr_gap"] < out["none"]["gold"]["rms_tpr_gap"]


def calibrated_task(seed: int, m: int, n: int = 6_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows with exactly calibrated posteriors: ``y`` is drawn from each row's ``proba``, whose sharpness differs
    between the two groups (the classifier is more certain in group 0), so the argmax's TPRs differ."""
    rng = np.random.default_rng(seed)
    groups = (rng.random(n) < 0.4).astype(np.int64)
    logits = rng.normal(size=(n, m)) * np.where(groups == 0, 2.5, 1.0)[:, None] + rng.normal(size=m)
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(proba, axis=1)).sum(axis=1)
    return proba, groups, np.minimum(y, m - 1)


@given(seed=st.integers(0, 2**31 - 1), m=st.integers(2, 5))
@settings(max_examples=15, deadline=None)
def test_class_weights_keep_the_budget_and_trade_accuracy_for_it(seed: int, m: int) -> None:
    """The dual's rule keeps every plug-in TPR difference near the budget, is as accurate as the plain argmax when
    the budget is loose, and its plug-in accuracy falls (up to the smoothing) as the budget tightens; the empirical
    correction meets the budget on the labelled rows up to about one row per cell."""
    from steerfair.evaluation.label_postprocessing import equal_tpr_class_weights, expected_rates, tpr_by_group

    proba, groups, y = calibrated_task(seed, m)
    argmax_acc, argmax_tpr = expected_rates(proba, np.argmax(proba, axis=1), groups)
    loose = equal_tpr_class_weights(proba, groups, 1.0)
    assert np.allclose(loose.weights, 1.0)
    accs = []
    for budget in (0.2, 0.1, 0.05, 0.0):
        rule = equal_tpr_class_weights(proba, groups, budget)
        acc, tpr = expected_rates(proba, rule.decision_proba(proba, groups), groups)
        assert np.abs(tpr[0] - tpr[1]).max() <= budget + 2e-3  # the smoothed dual's randomised rule keeps it
        assert acc <= argmax_acc + 1e-9
        accs.append(acc)
    assert all(b <= a + 1e-3 for a, b in zip(accs, accs[1:], strict=False))
    if np.abs(argmax_tpr[0] - argmax_tpr[1]).max() > 0.1:
        assert accs[-1] < argmax_acc - 1e-3  # equality had a price
    rule = equal_tpr_class_weights(proba, groups, 0.05, y=y)
    gap = np.nan_to_num(np.subtract(*tpr_by_group(y, rule.decision_proba(proba, groups), groups, m)))
    assert np.abs(gap).max() <= 0.05 + 0.01  # the empirical correction meets the budget on the labelled rows


def test_class_weights_move_the_test_rates_of_new_rows() -> None:
    """Fitted on one sample and applied to a fresh one from the same law, exact equal opportunity shrinks the
    largest TPR difference between the groups (steering did change what it should)."""
    from steerfair.evaluation.label_postprocessing import equal_tpr_class_weights, tpr_by_group

    proba, groups, y = calibrated_task(1, 4, n=20_000)
    fit, new = slice(0, 10_000), slice(10_000, None)
    rule = equal_tpr_class_weights(proba[fit], groups[fit], 0.0, y=y[fit])
    before = np.abs(np.subtract(*tpr_by_group(y[new], np.argmax(proba[new], 1), groups[new], 4))).max()
    drawn = rule.predict(proba[new], groups[new], np.random.default_rng(0))
    after = np.abs(np.subtract(*tpr_by_group(y[new], drawn, groups[new], 4))).max()
    assert before > 0.1 and after < 0.3 * before


def test_class_weights_refuse_bad_inputs_with_the_argument_named() -> None:
    from steerfair.evaluation.label_postprocessing import equal_tpr_class_weights

    proba, groups, y = calibrated_task(0, 3, n=200)
    with pytest.raises(ValueError, match="proba"):
        equal_tpr_class_weights(proba[:, 0], groups, 0.1)
    with pytest.raises(ValueError, match="proba"):
        equal_tpr_class_weights(proba * 2.0, groups, 0.1)
    with pytest.raises(ValueError, match="groups"):
        equal_tpr_class_weights(proba, groups + 1, 0.1)
    with pytest.raises(ValueError, match="budget"):
        equal_tpr_class_weights(proba, groups, -0.1)
    with pytest.raises(ValueError, match="y must"):
        equal_tpr_class_weights(proba, groups, 0.1, y=y + 5)


@given(seed=st.integers(0, 2**31 - 1), m=st.integers(2, 5))
@settings(max_examples=10, deadline=None)
def test_expected_rates_are_what_calibrated_probabilities_predict(seed: int, m: int) -> None:
    """On rows whose labels are drawn from their probabilities, the label-free expected accuracy and TPRs of a rule
    that does not read the labels agree with the measured ones to sampling error; with one-hot probabilities (a
    classifier that knows the label) they are the measured rates exactly."""
    from steerfair.evaluation.label_postprocessing import expected_rates, tpr_by_group

    proba, groups, y = calibrated_task(seed, m, n=40_000)
    weights = np.random.default_rng(seed).uniform(0.5, 2.0, size=(2, m))
    decision = np.argmax(proba * weights[groups], axis=1)
    acc, tpr = expected_rates(proba, decision, groups)
    measured = tpr_by_group(y, decision, groups, m)
    assert abs(acc - np.mean(decision == y)) <= 4 * np.sqrt(0.25 / y.size)
    rows = np.array([[np.sum((groups == a) & (y == c)) for c in range(m)] for a in (0, 1)])
    assert np.all(np.abs(tpr - measured) <= 4 * np.sqrt(0.25 / np.maximum(rows, 1)) + 1e-12)
    exact_acc, exact_tpr = expected_rates(np.eye(m)[y], decision, groups)
    assert exact_acc == pytest.approx(np.mean(decision == y), abs=1e-12)
    assert np.allclose(exact_tpr, measured, equal_nan=True, atol=1e-12)


def test_expected_rates_refuse_bad_inputs_with_the_argument_named() -> None:
    from steerfair.evaluation.label_postprocessing import expected_rates

    proba, groups, _ = calibrated_task(0, 3, n=50)
    with pytest.raises(ValueError, match="proba"):
        expected_rates(proba[:, 0], np.zeros(50, dtype=int), groups)
    with pytest.raises(ValueError, match="groups"):
        expected_rates(proba, np.zeros(50, dtype=int), groups + 1)
    with pytest.raises(ValueError, match="decision"):
        expected_rates(proba, np.full(50, 3), groups)
    with pytest.raises(ValueError, match="decision"):
        expected_rates(proba, np.zeros((50, 2)), groups)


def test_the_recipe_draws_its_frontier_and_replots_only_from_saved_results(tmp_path: Any) -> None:
    """``--replot`` refuses a folder without results, draws the PNG from saved ones, and keeps an existing PNG
    unless ``--overwrite`` is given."""
    import json

    from _recipes import load_recipe

    recipe = load_recipe("bios_postprocessing")
    row = {"accuracy": 0.36, "excess_rms_tpr_gap": 0.1, "rms_tpr_gap": 0.12, "noise_floor_rms": 0.06}
    summary = {"none": {"gold": row, "predicted": row}}
    for budget, cut in ((0.1, 0.3), (0.0, 0.6)):
        r = dict(row, accuracy=0.36 - cut / 50, excess_rms_tpr_gap=0.1 * (1 - cut))
        summary[f"class weights (plug-in), budget {budget:g}"] = {"gold": r, "predicted": r}
    summary["MiMiC (representation)"] = {"gold": dict(row, accuracy=0.35), "predicted": dict(row, accuracy=0.35)}
    assert recipe.frontier_png(summary, "test").startswith(b"\x89PNG")
    with pytest.raises(SystemExit):
        recipe.main(["--out", str(tmp_path), "--replot"])
    summary["group-aware score"] = {"gold": row, "predicted": row}
    implied = {"argmax": {"accuracy": 0.4, "rms_tpr_gap": 0.2}, "budget 0.1": {"accuracy": 0.39, "rms_tpr_gap": 0.05}}
    saved = {"summary": summary, "run": {"config": {}}, "model_implied": implied}
    (tmp_path / "bios_postprocessing.json").write_text(json.dumps(saved))
    recipe.main(["--out", str(tmp_path), "--replot"])
    png = tmp_path / "bios_postprocessing.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(SystemExit) as exc:  # the existing PNG is kept: a usage error naming --overwrite
        recipe.main(["--out", str(tmp_path), "--replot"])
    assert exc.value.code == 2
    recipe.main(["--out", str(tmp_path), "--replot", "--overwrite"])
