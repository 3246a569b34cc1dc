"""Shared-target steering: the garbling pushes every group's class-conditionals exactly onto one common law, the
target is the most informative reachable one, and any downstream model then has equal TPR and FPR across groups."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from _downstream import steered_separability_groups, true_model_rates, two_separability_cells
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from steerfair import FairSteerer, Gaussian, GroupConditionalModel, Membership
from steerfair.datasets import separability_groups
from steerfair.evaluation.bios_methods import SharedTargetMethod
from steerfair.representations import IdealTemplateSteering
from steerfair.shared_target import (
    SharedTargetSteering,
    class_experiment,
    experiment_meet,
    pick_strength,
    solve_shared_target,
    strength_folds,
)

seeds = st.integers(0, 2**31 - 1)


def random_problem(seed: int, k: int, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Class means ``(k, m, d)`` with group-specific separability and well-conditioned covariances ``(k, d, d)``."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, m, d)) * rng.uniform(0.3, 3.0, size=(k, 1, 1)) + rng.normal(size=(k, 1, d))
    B = rng.normal(size=(k, d, d))
    covs = B @ np.swapaxes(B, 1, 2) / d + rng.uniform(0.2, 1.0, size=(k, 1, 1)) * np.eye(d)
    return means, covs


def loewner_leq(P: np.ndarray, Q: np.ndarray, tol: float = 1e-9) -> bool:
    return bool(np.linalg.eigvalsh(Q - P)[0] >= -tol * max(1.0, np.abs(Q).max()))


@given(seed=seeds, k=st.integers(2, 4), m=st.integers(2, 4), extra=st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_garbling_pushes_every_cell_exactly_onto_the_target(seed: int, k: int, m: int, extra: int) -> None:
    d = m - 1 + extra
    means, covs = random_problem(seed, k, m, d)
    target = solve_shared_target(means, covs)
    scale = max(1.0, float(np.abs(target.means).max()))
    for a in range(k):
        K = target.garblings[a]
        R = K.noise_cov
        assert np.linalg.eigvalsh(R)[0] >= -1e-12 * max(1.0, np.abs(target.cov).max())  # R is PSD
        for y in range(m):
            mean, cov = K.push(means[a, y], covs[a])
            np.testing.assert_allclose(mean, target.means[y], rtol=0, atol=1e-10 * scale)
            # 1e-8: the noise factor is a square root of I - G G^T, whose round-off-negative eigenvalues are clipped
            # (seed 120, k = 3, m = 4, d = 3: 5.5e-10 relative, where other examples get 1e-15)
            np.testing.assert_allclose(cov, target.cov, rtol=0, atol=1e-8 * np.abs(target.cov).max())
        # the target experiment is reachable from (dominated by) every group's experiment
        assert loewner_leq(target.experiment, class_experiment(means[a], covs[a])[1])
    # the target's own experiment is the one reported
    Q = class_experiment(target.means, target.cov)[1]
    np.testing.assert_allclose(Q, target.experiment, atol=1e-9 * max(1.0, np.abs(Q).max()))


@given(seed=seeds, k=st.integers(2, 4), d=st.integers(1, 5))
@settings(max_examples=40, deadline=None)
def test_two_classes_target_the_least_separable_group_with_a_deterministic_map(seed: int, k: int, d: int) -> None:
    means, covs = random_problem(seed, k, 2, d)
    target = solve_shared_target(means, covs)
    sep = [float(class_experiment(means[a], covs[a])[1][0, 0]) for a in range(k)]
    r = int(np.argmin(sep))
    assert target.greatest and target.reference == r
    assert target.experiment[0, 0] == pytest.approx(min(sep), rel=1e-12)
    K = target.garblings[r]
    assert K.is_deterministic and np.array_equal(K.linear.A, np.eye(d)) and not np.any(K.linear.b)
    np.testing.assert_array_equal(target.means, means[r])
    for a in range(k):  # a strictly more separable group needs noise (its experiment must shrink)
        if sep[a] > sep[r] * (1 + 1e-6):
            assert not target.garblings[a].is_deterministic


@given(seed=seeds, m=st.integers(2, 4), extra=st.integers(0, 2))
@settings(max_examples=40, deadline=None)
def test_meet_is_the_max_det_common_lower_bound(seed: int, m: int, extra: int) -> None:
    means, covs = random_problem(seed, 2, m, m - 1 + extra)
    Q1, Q2 = (class_experiment(means[a], covs[a])[1] for a in range(2))
    Q = experiment_meet(Q1, Q2)
    assert loewner_leq(Q, Q1) and loewner_leq(Q, Q2)
    # its log det is the closed form of docs/shared_target.md, and no common lower bound has a larger one (an
    # interior-point solve of the convex problem; "optimal_inaccurate" solves of ill-conditioned pairs are skipped)
    L = np.linalg.cholesky(Q1)
    Li = np.linalg.solve(L, np.eye(len(Q1)))
    lam, V = np.linalg.eigh(Li @ Q2 @ Li.T)
    expected = np.sum(np.log(np.linalg.eigvalsh(Q1))) + np.sum(np.log(np.minimum(lam, 1.0)))
    assert np.linalg.slogdet(Q)[1] == pytest.approx(expected, abs=1e-8)
    cvxpy = pytest.importorskip("cvxpy")
    X = cvxpy.Variable(Q.shape, symmetric=True)
    prob = cvxpy.Problem(cvxpy.Maximize(cvxpy.log_det(X)), [Q1 - X >> 0, Q2 - X >> 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prob.solve(solver="CLARABEL")
        except cvxpy.error.SolverError:  # an ill-conditioned pair: nothing to compare with
            return
    if prob.status == "optimal":
        # the solver's X may violate the constraints by its feasibility tolerance; to first order that buys
        # log det at most (violation) x tr(X^-1), which ill-conditioned pairs make larger than 1e-6
        Xv = 0.5 * (X.value + X.value.T)
        violation = max(0.0, -np.linalg.eigvalsh(Q1 - Xv).min(), -np.linalg.eigvalsh(Q2 - Xv).min())
        slack = 2.0 * violation * float(np.trace(np.linalg.inv(Xv)))
        assert prob.value <= np.linalg.slogdet(Q)[1] + 1e-6 * max(1.0, abs(prob.value)) + slack


def test_a_dominated_group_is_the_target_for_any_number_of_classes() -> None:
    rng = np.random.default_rng(3)
    d, m = 4, 3
    mu = rng.normal(size=(m, d)) * 2
    S = np.eye(d) + 0.3 * np.ones((d, d))
    # group 1: the same class configuration shrunk toward its centre (dominated), in another frame
    A = rng.normal(size=(d, d)) + 3 * np.eye(d)
    mu1 = (0.5 * (mu - mu.mean(0))) @ A.T + 7.0
    means = np.stack([mu, mu1])
    covs = np.stack([S, A @ S @ A.T])
    target = solve_shared_target(means, covs)
    assert target.greatest and target.reference == 1 and target.garblings[1].is_deterministic
    np.testing.assert_array_equal(target.means, mu1)


def test_heteroscedastic_cells_match_means_and_pooled_covariance() -> None:
    rng = np.random.default_rng(5)
    k, m, d = 2, 3, 3
    comps = []
    for _ in range(k):
        row = []
        for _ in range(m):
            B = rng.normal(size=(d, d))
            row.append(Gaussian(rng.normal(size=d) * 2, B @ B.T + np.eye(d)))
        comps.append(tuple(row))
    model = GroupConditionalModel([0, 1], [0, 1, 2], [0.5, 0.5], [[0.2, 0.3, 0.5], [0.4, 0.4, 0.2]], tuple(comps))
    target = SharedTargetSteering.fit(model).target
    for a in range(k):
        K = target.garblings[a]
        pooled = sum(model.class_priors[a, i] * comps[a][i].cov for i in range(m))
        for i in range(m):
            mean, _ = K.push(comps[a][i].mean, comps[a][i].cov)
            np.testing.assert_allclose(mean, target.means[i], atol=1e-10 * np.abs(target.means).max())
        _, cov = K.push(comps[a][0].mean, pooled)
        np.testing.assert_allclose(cov, target.cov, atol=1e-10 * np.abs(target.cov).max())


def test_strength_zero_is_the_identity_and_the_least_separable_group_is_not_moved() -> None:
    rng = np.random.default_rng(0)
    X, y, g = separability_groups(4000, 3, rng)
    out = FairSteerer(target="shared", strength=0.0, random_state=0).fit_transform(X, y, groups=g)
    np.testing.assert_array_equal(out, X)
    st_ = FairSteerer(target="shared", random_state=0).fit(X, y, groups=g)
    assert st_.shared_.target.reference == 1 and st_.shared_.target.garblings[1].is_deterministic
    moved = st_.transform(X, groups=g)
    np.testing.assert_array_equal(moved[g == 1], X[g == 1])
    assert not np.allclose(moved[g == 0], X[g == 0])


@given(seed=seeds, strength=st.floats(0.05, 0.95))
@settings(max_examples=20, deadline=None)
def test_strength_steers_each_row_with_that_probability(seed: int, strength: float) -> None:
    """Intermediate strengths mix the identity and the garbling: a row is either untouched (bit for bit) or moved
    exactly as at strength 1; the moved share is binomial."""
    X, y, g = separability_groups(3000, 2, np.random.default_rng(seed))
    steer = SharedTargetSteering.fit(GroupConditionalModel.fit(X, y, g))
    rows = g == 0  # the garbled group (group 1 is the least separable: its map is the identity)
    out = steer.transform(X[rows], Membership.one_hot(g[rows], [0, 1]), np.random.default_rng(seed), strength)
    K = steer.target.garblings[0]
    untouched = np.all(out == X[rows], axis=1)
    moved = ~untouched
    n = int(rows.sum())
    assert abs(moved.mean() - strength) <= 4 * np.sqrt(strength * (1 - strength) / n)
    # the moved rows carry the garbling's law: their residual from the deterministic part has covariance R
    resid = out[moved] - K.linear(X[rows][moved])
    R = K.noise_cov
    assert abs(np.trace(np.cov(resid.T)) - np.trace(R)) <= 6 * np.trace(R) * np.sqrt(2 / max(moved.sum(), 2))


def test_random_state_makes_the_garbling_reproducible() -> None:
    X, y, g = separability_groups(3000, 2, np.random.default_rng(1))
    a = FairSteerer(target="shared", random_state=7).fit(X, y, groups=g).transform(X, groups=g)
    b = FairSteerer(target="shared", random_state=7).fit(X, y, groups=g).transform(X, groups=g)
    c = FairSteerer(target="shared", random_state=8).fit(X, y, groups=g).transform(X, groups=g)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_soft_membership_draws_each_row_group() -> None:
    X, y, g = separability_groups(2000, 2, np.random.default_rng(2))
    steer = SharedTargetSteering.fit(GroupConditionalModel.fit(X, y, g))
    hard = Membership.one_hot(g, [0, 1])
    soft = Membership([0, 1], np.eye(2)[g] * 0.999 + 0.0005, "probabilities")
    same = steer.transform(X, hard, np.random.default_rng(0))
    mixed = steer.transform(X, soft, np.random.default_rng(0))
    assert mixed.shape == same.shape and np.all(np.isfinite(mixed))


@pytest.mark.parametrize("d", [2, 5])
def test_every_downstream_model_has_equal_tpr_and_fpr(d: int) -> None:
    """The acceptance property at unit-test size (recipes/shared_target_gaussian.py runs it on 200k test rows)."""
    rates, tpr_bound, fpr_bound = steered_separability_groups("shared", d, 100 + d)
    for name, r in rates.items():
        assert np.ptp(r.tpr) <= tpr_bound, (name, r.tpr, tpr_bound)
        assert np.ptp(r.fpr) <= fpr_bound, (name, r.fpr, fpr_bound)


def test_the_true_garbling_equalises_rates_in_law() -> None:
    """With the true model's garbling the steered laws are equal exactly: gaps are Monte Carlo error only."""
    r, (tpr_bound, fpr_bound) = true_model_rates(SharedTargetSteering.fit(two_separability_cells()), 11)
    assert np.ptp(r.tpr) <= tpr_bound and np.ptp(r.fpr) <= fpr_bound


def test_pick_strength_meets_the_budget_and_traces_the_trade_off() -> None:
    rng = np.random.default_rng(4)
    X_tr, y_tr, g_tr = separability_groups(6000, 3, rng)
    X_va, y_va, g_va = separability_groups(6000, 3, rng)
    budget = 0.05
    choice = pick_strength(
        FairSteerer(target="shared", random_state=0), LogisticRegression(), X_tr, y_tr, g_tr, X_va, y_va, g_va,
        budget=budget, strengths=[0.0, 0.5, 0.8, 1.0],
    )  # fmt: skip
    by = {row["strength"]: row for row in choice.table}
    assert by[0.0]["gap"] > by[1.0]["gap"] and by[0.0]["accuracy"] > by[1.0]["accuracy"]
    feasible = [row for row in choice.table if row["gap"] <= budget]
    assert feasible and choice.gap <= budget
    assert choice.accuracy == max(row["accuracy"] for row in feasible)
    assert choice.steerer.strength == choice.strength and choice.within_budget
    with pytest.warns(UserWarning, match="no strength keeps the validation gap within budget"):
        impossible = pick_strength(
            FairSteerer(target="shared", random_state=0), LogisticRegression(), X_tr, y_tr, g_tr, X_va, y_va, g_va,
            budget=0.0, strengths=[0.0, 1.0],
        )  # fmt: skip
    assert not impossible.within_budget and impossible.gap == min(row["gap"] for row in impossible.table)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target": "common"}, "target"),
        ({"target": "shared", "strength": 1.5}, "strength"),
        ({"marginals": "rank"}, "marginals"),
        ({"marginals": "copula", "lognormal_columns": "auto"}, "lognormal_columns"),
        ({"random_state": -1}, "random_state"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object], match: str) -> None:
    X, y, g = separability_groups(500, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match=match):
        FairSteerer(**kwargs).fit(X, y, groups=g)  # type: ignore[arg-type]


def test_shared_target_has_no_inverse() -> None:
    X, y, g = separability_groups(500, 2, np.random.default_rng(0))
    steer = FairSteerer(target="shared", random_state=0).fit(X, y, groups=g)
    with pytest.raises(NotImplementedError, match="garbling"):
        steer.inverse_transform(X, groups=g)


def test_without_groups_the_probe_draws_each_row_group() -> None:
    X, y, g = separability_groups(3000, 2, np.random.default_rng(6))
    steer = FairSteerer(target="shared", random_state=0).fit(X, y, groups=g)
    out = steer.transform(X)
    assert out.shape == X.shape and np.all(np.isfinite(out))
    # a row is either left alone (drawn into the least separable group, whose map is the identity) or garbled
    kept = np.all(out == X, axis=1)
    p_ref = steer.probe_.predict_proba(X)[:, 1]
    assert abs(kept.mean() - p_ref.mean()) <= 4 * np.sqrt(0.25 / len(X))


def test_cross_validated_pick_uses_every_row_once_and_meets_the_budget() -> None:
    """Without a validation split the candidates are scored on pooled out-of-fold predictions: strength 0 is the
    raw model's out-of-fold score exactly, the choice is the most accurate feasible candidate, and the seed of the
    folds makes it repeatable."""
    from sklearn.model_selection import cross_val_predict

    from steerfair.metrics import equalized_odds_gap

    X, y, g = separability_groups(4000, 3, np.random.default_rng(8))
    kw = {"budget": 0.05, "strengths": [0.0, 0.5, 1.0], "cv": 4, "random_state": 3}
    choice = pick_strength(FairSteerer(target="shared", random_state=0), LogisticRegression(), X, y, g, **kw)
    by = {row["strength"]: row for row in choice.table}
    folds = strength_folds(y, g, 4, 3)
    for _, val_rows in folds:  # stratified by (group, label): every cell split in the same proportion
        for cell in {(a, c) for a, c in zip(g, y, strict=True)}:
            in_cell = (g == cell[0]) & (y == cell[1])
            assert abs(np.sum(in_cell[val_rows]) - np.sum(in_cell) / 4) <= 1
    raw = cross_val_predict(LogisticRegression(), X, y, cv=folds)  # strength 0 leaves every row as it is
    assert by[0.0]["accuracy"] == pytest.approx(np.mean(raw == y), abs=1e-12)
    assert by[0.0]["gap"] == pytest.approx(equalized_odds_gap(y, raw, groups=g), abs=1e-12)
    assert by[0.0]["gap"] > by[1.0]["gap"]  # the trade-off is traced out of fold too
    feasible = [row for row in choice.table if row["gap"] <= kw["budget"]]
    assert feasible and choice.accuracy == max(row["accuracy"] for row in feasible)
    again = pick_strength(FairSteerer(target="shared", random_state=0), LogisticRegression(), X, y, g, **kw)
    assert again.table == choice.table and again.steerer.strength == choice.strength


def test_pick_strength_takes_the_positive_target_and_refuses_bad_splits() -> None:
    X, y, g = separability_groups(1500, 2, np.random.default_rng(9))
    choice = pick_strength(FairSteerer(target="shared_positive"), LogisticRegression(), X, y, g, budget=0.05,
                           strengths=[0.0, 1.0], gap="equal_opportunity", cv=3)  # fmt: skip
    assert choice.steerer.target == "shared_positive" and choice.strength in (0.0, 1.0)
    with pytest.raises(ValueError, match="all of X_val, y_val and groups_val"):
        pick_strength(FairSteerer(target="shared"), LogisticRegression(), X, y, g, X, budget=0.05)
    with pytest.raises(ValueError, match="cv must be"):
        pick_strength(FairSteerer(target="shared"), LogisticRegression(), X, y, g, budget=0.05, cv=1)
    with pytest.raises(ValueError, match="target='shared' or 'shared_positive'"):
        pick_strength(FairSteerer(), LogisticRegression(), X, y, g, budget=0.05)
    with pytest.raises(ValueError, match="mismatched lengths: X_train=1500, y_train=1500, groups_train=1499"):
        pick_strength(FairSteerer(target="shared"), LogisticRegression(), X, y, g[:-1], budget=0.05)
    with pytest.raises(ValueError, match="mismatched lengths: X_val=1499, y_val=1500"):
        pick_strength(FairSteerer(target="shared"), LogisticRegression(), X, y, g, X[:-1], y, g, budget=0.05)
    with pytest.raises(ValueError, match="pass pos_label"):
        pick_strength(FairSteerer(target="shared"), LogisticRegression(), X, y + g, g, budget=0.05)
    with pytest.raises(ValueError, match="pos_label 7 is not a class"):
        pick_strength(FairSteerer(target="shared"), LogisticRegression(), X, y, g, budget=0.05, pos_label=7)


def test_pick_strength_measures_the_gap_of_the_same_class_whatever_the_labels_are_called() -> None:
    """The gaps compared are those of the positive class (the second of two sorted classes, as for
    ``target="shared_positive"``): renaming the classes ``0, 1`` to ``1, 2`` or to strings changes nothing (with
    labels ``1, 2`` the gap was that of class 1, the negative one; with strings it crashed)."""
    X, y, g = separability_groups(600, 2, np.random.default_rng(3))
    kw = {"budget": np.float32(0.0), "strengths": [0.0, 0.5, 1.0], "cv": 2, "gap": "equal_opportunity"}
    steerer = FairSteerer(target="shared_positive", random_state=0)
    tables = [
        pick_strength(steerer, LogisticRegression(), X, labels, g, **kw).table
        for labels in (y, y + 1, np.where(y == 1, "yes", "no"))
    ]
    assert tables[0] == tables[1] == tables[2]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 200), shift=st.floats(0.0, 3.0))
def test_roc_hull_of_the_ceiling_recipe_is_concave_and_dominates_the_curve(seed: int, n: int, shift: float) -> None:
    """``recipes/shared_target_ceiling.py`` reads each group's experiment off the concave hull of its ROC curve: the
    hull runs from (0, 0) to (1, 1), is concave, and lies on or above every point of the empirical curve; the
    common law's ceiling (pointwise minimum of two hulls) is never above either group's own accuracy."""
    from _recipes import load_recipe
    from sklearn.metrics import roc_curve

    recipe = load_recipe("shared_target_ceiling")
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n, bool), np.ones(n, bool)]
    score = rng.normal(size=2 * n) + shift * y
    grid = np.linspace(0.0, 1.0, 2001)
    hull = recipe._roc_hull(y, score, grid)
    assert 0.0 <= hull[0] <= 1.0 and hull[-1] == pytest.approx(1.0)
    assert np.all(np.diff(hull) >= -1e-12)  # non-decreasing
    assert np.all(np.diff(hull, 2) <= 1e-9)  # concave on the uniform grid
    fpr, tpr, _ = roc_curve(y, score)
    assert np.all(recipe._roc_hull(y, score, fpr) >= tpr - 1e-12)  # at the curve's own points
    other = recipe._roc_hull(y, rng.normal(size=2 * n) + 0.5 * shift * y, grid)
    meet = np.minimum(hull, other)
    for q1 in (0.1, 0.5, 0.8):
        acc = [float(np.max(q1 * c + (1 - q1) * (1 - grid))) for c in (hull, other, meet)]
        assert acc[2] <= min(acc[0], acc[1]) + 1e-12


def test_strength_must_be_a_number() -> None:
    """``strength="1"`` was read as 1.0 (and kept as a string in ``get_params``); a bool or a string is refused."""
    from steerfair.shared_score import SharedScore

    X, y, g = separability_groups(200, 2, np.random.default_rng(1))
    for bad in ("1", "0.5", True):
        with pytest.raises(ValueError, match="strength must be a number in"):
            FairSteerer(target="shared", strength=bad).fit(X, y, groups=g)
        with pytest.raises(ValueError, match="strength must be a number in"):
            SharedScore(strength=bad).fit(X, y, groups=g)
    assert FairSteerer(target="shared", strength=np.float32(0.5), random_state=0).fit(X, y, groups=g).strength == 0.5


def test_pick_strength_names_bad_strengths_and_validation_labels() -> None:
    rng = np.random.default_rng(0)
    X, y, g = rng.normal(size=(300, 2)), rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    steer, model = FairSteerer(target="shared", random_state=0), LogisticRegression()
    with pytest.raises(ValueError, match=r"strengths must be numbers in \[0, 1\]"):
        pick_strength(steer, model, X, y, g, X, y, g, budget=0.05, strengths=["a"])
    with pytest.raises(ValueError, match="y_val contains 2, which was not seen"):
        pick_strength(steer, model, X, y, g, X, np.where(y == 1, 2, 0), g, budget=0.05)


def test_a_shared_target_warns_about_text_columns_it_leaves_uncovered() -> None:
    """A string column passed through unsteered lets any model read the group (EO gap 0.157 for a GBM in a review):
    the shared target says so; the ideal target, which makes no such promise, does not."""
    import pandas as pd

    rng = np.random.default_rng(1)
    n = 400
    g, y = rng.integers(0, 2, n), rng.integers(0, 2, n)
    df = pd.DataFrame(rng.normal(size=(n, 2)) + y[:, None], columns=["a", "b"])
    df["job"] = np.where(g == 1, "x", "y")
    with pytest.warns(UserWarning, match=r"column\(s\) \['job'\] are not numeric and pass through unchanged"):
        out = FairSteerer(target="shared", random_state=0).fit_transform(df, y, groups=g)
    assert out["job"].equals(df["job"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FairSteerer(random_state=0).fit_transform(df, y, groups=g)


@pytest.mark.parametrize("target", ["ideal", "shared", "shared_positive"])
def test_an_int_random_state_makes_every_transform_call_repeatable(target: str) -> None:
    """A fitted estimator with an int seed gives the same rows the same output on every call and from a copy (the
    copula's jitter and the garbling noise come from a fresh generator per call); a Generator is advanced."""
    rng = np.random.default_rng(3)
    X, y, g = separability_groups(1500, 2, rng)
    X = np.column_stack([X, rng.integers(0, 4, size=len(y))])  # an atom column: the copula ("auto") and its jitter
    steer = FairSteerer(target=target, random_state=5).fit(X, y, groups=g)
    assert steer.marginals_ == "copula"
    first = steer.transform(X[:400], groups=g[:400])
    np.testing.assert_array_equal(first, steer.transform(X[:400], groups=g[:400]))
    np.testing.assert_array_equal(first, copy.deepcopy(steer).transform(X[:400], groups=g[:400]))
    assert not np.array_equal(first, X[:400])  # it did steer
    if target != "ideal":  # label-free training rows: fit_transform is fit().transform()
        np.testing.assert_array_equal(steer.fit_transform(X, y, groups=g), steer.transform(X, groups=g))
    advancing = FairSteerer(target=target, random_state=np.random.default_rng(5)).fit(X, y, groups=g)
    assert not np.array_equal(
        advancing.transform(X[:400], groups=g[:400]), advancing.transform(X[:400], groups=g[:400])
    )
    with pytest.raises(ValueError, match="random_state must be"):
        FairSteerer(target=target, marginals="gaussian", random_state=-1).fit(X, y, groups=g)


def test_the_shared_steerers_of_representations_repeat_their_transform() -> None:
    X, y, g = separability_groups(1200, 2, np.random.default_rng(4))
    for est in (IdealTemplateSteering(target="shared", random_state=2), SharedTargetMethod(random_state=2)):
        fitted = est.fit(X, y, g)
        out = fitted.transform(X, g)
        np.testing.assert_array_equal(out, fitted.transform(X, g))
        assert not np.array_equal(out, X)
