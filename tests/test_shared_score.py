"""The greatest common garbling of two-class experiments (steerfair.dichotomy) and ``SharedScore``: the target's ROC
curve is the pointwise minimum of the groups' (so no common target is more informative), every kernel carries its
group exactly onto it, and models trained on the steered score have equal error rates in every group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from steerfair.categorical_garbling import solve_common_garbling
from steerfair.datasets import separability_groups
from steerfair.dichotomy import greatest_common_dichotomy, pool_adjacent_violators, roc_curve_of, roc_value
from steerfair.metrics import group_rates
from steerfair.shared_score import SharedScore

seeds = st.integers(0, 2**31 - 1)


def random_experiments(seed: int, k: int, n_max: int) -> list[np.ndarray]:
    """``k`` two-class experiments with different numbers of outcomes, some outcomes absent from one class."""
    rng = np.random.default_rng(seed)
    laws = []
    for a in range(k):
        n = int(rng.integers(1, n_max + 1))
        P = rng.dirichlet(np.full(n, 0.6), size=2)
        if n > 2 and (seed + a) % 3 == 0:  # an outcome class 0 never shows (infinite likelihood ratio)
            P[0, 0] = 0.0
            P[0] /= P[0].sum()
        laws.append(P)
    return laws


def bayes_accuracy(P: np.ndarray, prior1: float) -> float:
    return float(np.sum(np.maximum((1 - prior1) * P[0], prior1 * P[1])))


@given(seed=seeds, k=st.integers(1, 4), n_max=st.integers(1, 9))
@settings(max_examples=60, deadline=None)
def test_the_target_is_the_pointwise_minimum_and_every_group_reaches_it(seed: int, k: int, n_max: int) -> None:
    """``ROC_target == min_a ROC_a`` at every false-positive rate (by Blackwell's theorem for dichotomies, the
    greatest common garbling), and ``P_a K_a = target`` with stochastic kernels for every group."""
    laws = random_experiments(seed, k, n_max)
    meet = greatest_common_dichotomy(laws)
    x = np.linspace(0.0, 1.0, 2001)
    lowest = np.min([roc_value(*roc_curve_of(P), x) for P in laws], axis=0)
    np.testing.assert_allclose(roc_value(*meet.roc(), x), lowest, atol=1e-9)
    assert np.all(meet.target >= 0) and np.allclose(meet.target.sum(axis=1), 1.0, atol=1e-12)
    for P, K in zip(laws, meet.kernels, strict=True):
        assert K.shape == (P.shape[1], meet.target.shape[1])
        assert np.all(K >= 0) and np.allclose(K.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(P @ K, meet.target, atol=1e-8)
    assert meet.residual <= 1e-8
    if k == 1:  # a lone group keeps its experiment: the same curve, the same accuracy at every prior
        for prior in (0.1, 0.5, 0.8):
            assert bayes_accuracy(meet.target, prior) == pytest.approx(bayes_accuracy(laws[0], prior), abs=1e-9)


@given(seed=seeds, k=st.integers(2, 3), n=st.integers(2, 6), prior=st.floats(0.05, 0.95))
@settings(max_examples=30, deadline=None)
def test_no_common_target_is_more_accurate_at_any_prior(seed: int, k: int, n: int, prior: float) -> None:
    """At every class prior the target's Bayes accuracy is at least that of the categorical LP's common target
    (which maximises accuracy at that one prior) and at most every group's own."""
    rng = np.random.default_rng(seed)
    laws = rng.dirichlet(np.full(n, 0.6), size=(k, 2))
    meet = greatest_common_dichotomy(laws)
    lp = solve_common_garbling(laws, np.array([1 - prior, prior]))
    acc = bayes_accuracy(meet.target, prior)
    assert acc >= bayes_accuracy(lp.target, prior) - 1e-7
    assert acc <= min(bayes_accuracy(P, prior) for P in laws) + 1e-9


def _ordered_roc(P: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The ROC polyline of ``P`` with its outcomes taken in the given order from the last (the highest score) down."""
    fpr = np.concatenate([[0.0], np.cumsum(P[0, ::-1])])
    tpr = np.concatenate([[0.0], np.cumsum(P[1, ::-1])])
    return np.interp(x, fpr, tpr)


@given(seed=seeds, n=st.integers(1, 12))
@settings(max_examples=80, deadline=None)
def test_pooling_gives_increasing_ratios_the_ordered_hull_and_a_garbling(seed: int, n: int) -> None:
    """``pool_adjacent_violators`` keeps the masses (every block is the sum of its outcomes, blocks contiguous),
    leaves likelihood ratios strictly increasing, and its curve is the concave hull of the curve in the given order:
    at least that curve, at most the curve with the outcomes sorted by ratio (pooling is a garbling, Blackwell); a
    pooled experiment pools to itself."""
    P = random_experiments(seed, 1, n)[0]
    Q, block = pool_adjacent_violators(P)
    assert block[0] == 0 and np.all(np.diff(block) >= 0) and np.all(np.diff(block) <= 1)
    assert block[-1] == Q.shape[1] - 1
    for k in range(Q.shape[1]):
        np.testing.assert_allclose(P[:, block == k].sum(axis=1), Q[:, k], atol=1e-15)
    assert np.all(Q[0, 1:] * Q[1, :-1] < Q[1, 1:] * Q[0, :-1])  # ratios strictly increasing (cross-multiplied)
    x = np.linspace(0.0, 1.0, 1001)
    pooled = _ordered_roc(Q, x)
    assert np.all(pooled >= _ordered_roc(P, x) - 1e-12)
    assert np.all(pooled <= roc_value(*roc_curve_of(P), x) + 1e-12)
    np.testing.assert_allclose(pooled, roc_value(*roc_curve_of(Q), x), atol=1e-12)  # concave: the same curve
    again, again_block = pool_adjacent_violators(Q)
    np.testing.assert_array_equal(again, Q)
    np.testing.assert_array_equal(again_block, np.arange(Q.shape[1]))


def test_bad_experiments_are_refused_with_the_argument_named() -> None:
    with pytest.raises(ValueError, match="at least one group"):
        greatest_common_dichotomy([])
    with pytest.raises(ValueError, match=r"laws\[1\] must be \(2, n"):
        greatest_common_dichotomy([np.full((2, 2), 0.5), np.full((3, 2), 0.5)])
    with pytest.raises(ValueError, match=r"laws\[0\] must be finite"):
        greatest_common_dichotomy([np.array([[0.5, 0.6], [0.5, 0.5]])])


# ---------------------------------------------------------------------------------------------- the transformer
@pytest.fixture(scope="module")
def gaussian_fit() -> tuple[SharedScore, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``SharedScore`` on 48k rows of two Gaussian groups of separations 2.8 and 1.2; its output on 60k fresh rows."""
    rng = np.random.default_rng(0)
    X, y, g = separability_groups(48_000, 3, rng)
    steer = SharedScore(estimator=LogisticRegression(), random_state=0)
    Ztr = steer.fit_transform(X, y, groups=g)
    Xt, yt, gt = separability_groups(60_000, 3, rng)
    return steer, Ztr, np.c_[y, g], steer.transform(Xt, groups=gt), np.c_[yt, gt]


def test_the_training_rows_expected_law_is_the_target_exactly(gaussian_fit: tuple) -> None:
    """On the training rows (held-out scores) the expected law of the output given ``(Y, A)`` is the target: the
    bins, their laws and the kernels are one consistent construction."""
    steer = gaussian_fit[0]
    y, g = gaussian_fit[2].T
    for a in range(2):
        bins = np.searchsorted(steer.edges_[a], steer.oof_scores_[g == a], side="right")
        for c in (0, 1):
            expected = steer.meet_.kernels[a][bins[y[g == a] == c]].mean(axis=0)
            np.testing.assert_allclose(expected, steer.meet_.target[c], atol=1e-9)


def test_every_model_on_the_steered_score_has_equal_error_rates(gaussian_fit: tuple) -> None:
    """New rows, labels unknown: TPR and FPR of every threshold of the output and of LR, GBM and kNN trained on it are
    equal across groups within Monte Carlo error, while the raw groups' rates differ (steering changed them)."""
    steer, Ztr, ytr_g, Zte, yte_g = gaussian_fit
    ytr = ytr_g[:, 0]
    yt, gt = yte_g.T
    # 4 standard deviations of a rate difference: the bins' laws are estimated on training cells of >= 7,000 rows
    # (an error that shrinks as 1 / sqrt(n): measured 0.05 / 0.015 largest gap at 12k / 48k rows), test cells >= 9,000
    se = 4 * np.sqrt(2 * 0.25 / 7_000 + 2 * 0.25 / 9_000)
    values = np.unique(Zte)
    assert values.size >= 5
    for v in values[1:]:  # every threshold of the score itself
        r = group_rates(yt, (Zte[:, 0] >= v).astype(int), gt)
        assert abs(r.tpr[0] - r.tpr[1]) <= se and abs(r.fpr[0] - r.fpr[1]) <= se
    for model in (LogisticRegression(), HistGradientBoostingClassifier(random_state=0), KNeighborsClassifier(50)):
        pred = model.fit(Ztr, ytr).predict(Zte)
        r = group_rates(yt, pred, gt)
        assert abs(r.tpr[0] - r.tpr[1]) <= se and abs(r.fpr[0] - r.fpr[1]) <= se


@pytest.mark.parametrize("strength", [0.0, 0.5])
def test_strength_scales_every_gap_of_a_fixed_threshold(strength: float) -> None:
    """``strength = t`` steers each row with probability ``t``: a fixed threshold's TPR gap is ``(1 - t)`` times the
    unsteered one (``t = 0``: each group's own calibrated bins, whose gap is large on these groups)."""
    rng = np.random.default_rng(3)
    X, y, g = separability_groups(12_000, 3, rng)
    Xt, yt, gt = separability_groups(100_000, 3, rng)
    gaps = {}
    for t in (0.0, strength, 1.0):
        steer = SharedScore(estimator=LogisticRegression(), strength=t, random_state=0).fit(X, y, groups=g)
        r = group_rates(yt, (steer.transform(Xt, groups=gt)[:, 0] >= 0.4).astype(int), gt)
        gaps[t] = r.tpr[0] - r.tpr[1]
    assert abs(gaps[0.0]) > 0.1
    se = 4 * np.sqrt(0.25 / 15_000 * 2)
    assert gaps[strength] == pytest.approx((1 - strength) * gaps[0.0] + strength * gaps[1.0], abs=se)
    assert abs(gaps[1.0]) <= se


def test_dataframes_unseen_groups_and_bad_arguments_get_clear_errors() -> None:
    rng = np.random.default_rng(0)
    X, y, g = separability_groups(400, 2, rng)
    frame = pd.DataFrame(X, columns=["a", "b"])
    steer = SharedScore(estimator=LogisticRegression(), random_state=0).fit(frame, y, groups=g)
    assert list(steer.get_feature_names_out()) == ["shared_score"]
    assert steer.transform(frame, groups=g).shape == (400, 1)
    with pytest.raises(ValueError, match="different columns"):
        steer.transform(frame[["b", "a"]], groups=g)
    with pytest.raises(ValueError, match="not seen in fit"):
        steer.transform(frame, groups=np.full(400, 7))
    with pytest.raises(ValueError, match="groups is required"):
        SharedScore(estimator=LogisticRegression(), group_probe=None).fit(frame, y, groups=g).transform(frame)
    with pytest.raises(ValueError, match="group_probe"):
        SharedScore(group_probe="tree").fit(X, y, groups=g)
    with pytest.raises(ValueError, match="exactly two classes.*FairSteerer"):
        SharedScore().fit(X, np.arange(400) % 3, groups=g)
    with pytest.raises(ValueError, match="one label per row when fitting"):
        SharedScore().fit(X, y, groups=np.c_[np.full(400, 0.5), np.full(400, 0.5)])
    with pytest.raises(ValueError, match="at least n_folds"):
        SharedScore(n_folds=5).fit(X[:14], np.r_[np.zeros(10), np.ones(4)], groups=np.r_[np.zeros(12), np.ones(2)])
    with pytest.raises(ValueError, match="requires y to be passed"):
        SharedScore().fit(X, None, groups=g)
    with pytest.raises(ValueError, match="n_bins"):
        SharedScore(n_bins=0).fit(X, y, groups=g)
    with pytest.raises(ValueError, match="strength"):
        SharedScore(strength=1.5).fit(X, y, groups=g)
    with pytest.raises(ValueError, match="predict_proba"):
        SharedScore(estimator=object()).fit(X, y, groups=g)
    with pytest.raises(ValueError, match="numeric"):
        SharedScore().fit(pd.DataFrame({"a": ["x"] * 400}), y, groups=g)


def test_pooled_bins_have_increasing_likelihood_ratios_and_unpooled_ones_keep_the_cut() -> None:
    """Fitted on a small table (where neighbouring bins invert by noise), every group's pooled bins have likelihood
    ratios that increase with the score, the edges are the kept cut points, and the training rows' expected law is
    still the target exactly; ``pool_bins=False`` keeps the quantile cut (and there some ratios do invert)."""
    rng = np.random.default_rng(2)
    X, y, g = separability_groups(900, 2, rng)
    pooled = SharedScore(estimator=LogisticRegression(), random_state=0, progress=False).fit(X, y, groups=g)
    cut = SharedScore(estimator=LogisticRegression(), random_state=0, pool_bins=False).fit(X, y, groups=g)
    inversions = 0
    for a in range(2):
        P, Pc = pooled.laws_[a], cut.laws_[a]
        assert np.all(P[0, 1:] * P[1, :-1] < P[1, 1:] * P[0, :-1])
        assert set(pooled.edges_[a]) <= set(cut.edges_[a]) and P.shape[1] == pooled.edges_[a].size + 1
        inversions += int(np.sum(Pc[0, 1:] * Pc[1, :-1] > Pc[1, 1:] * Pc[0, :-1]))
        rows = pooled.train_groups_ == a
        bins = np.searchsorted(pooled.edges_[a], pooled.oof_scores_[rows], side="right")
        for c in (0, 1):
            expected = pooled.meet_.kernels[a][bins[y[rows] == c]].mean(axis=0)
            np.testing.assert_allclose(expected, pooled.meet_.target[c], atol=1e-9)
    assert inversions > 0  # the unpooled cut does show noise inversions on this small table
    with pytest.raises(ValueError, match="pool_bins"):
        SharedScore(pool_bins="yes").fit(X, y, groups=g)


def test_group_probabilities_at_prediction_mix_the_groups_steering() -> None:
    """At prediction ``groups`` may be ``(n, k)`` probabilities: one-hot rows give exactly the labels' output, and a
    soft row is steered as a group drawn from it, so the output's mean is the probability-weighted mix of the
    groups' (within Monte Carlo error); signed memberships are refused; without ``groups`` the group probe's
    probabilities are used."""
    rng = np.random.default_rng(4)
    X, y, g = separability_groups(4_000, 2, rng)
    Xt = separability_groups(40_000, 2, rng)[0]
    a = SharedScore(estimator=LogisticRegression(), random_state=1).fit(X, y, groups=g)
    b = SharedScore(estimator=LogisticRegression(), random_state=1).fit(X, y, groups=g)
    labels = np.arange(40_000) % 2
    np.testing.assert_array_equal(a.transform(Xt, groups=labels), b.transform(Xt, groups=np.eye(2)[labels]))
    means = [float(a.transform(Xt, groups=np.full(40_000, k)).mean()) for k in (0, 1)]
    assert abs(means[0] - means[1]) > 0.02  # the groups' steering differs on the same rows
    soft = np.tile([0.3, 0.7], (40_000, 1))
    mixed = float(a.transform(Xt, groups=soft).mean())
    assert mixed == pytest.approx(0.3 * means[0] + 0.7 * means[1], abs=0.01)
    with pytest.raises(ValueError):
        a.transform(Xt[:2], groups=np.array([[1.5, -0.5], [0.5, 0.5]]))
    # no groups: exactly the output for the probe's P(A | x) given as probabilities (same fitted state and draws)
    c = SharedScore(estimator=LogisticRegression(), random_state=1).fit(X, y, groups=g)
    d = SharedScore(estimator=LogisticRegression(), random_state=1).fit(X, y, groups=g)
    np.testing.assert_array_equal(c.transform(Xt), d.transform(Xt, groups=d.probe_.predict_proba(Xt)))


def test_the_plot_is_written(tmp_path: object) -> None:
    rng = np.random.default_rng(0)
    X, y, g = separability_groups(2_000, 2, rng)
    steer = SharedScore(estimator=LogisticRegression(), random_state=0).fit(X, y, groups=g)
    curves = steer.roc_curves()
    assert set(curves) == {"0", "1", "common target"}
    path = tmp_path / "roc.png"  # type: ignore[operator]
    steer.plot(path)
    assert path.stat().st_size > 1000


def test_the_default_score_model_is_the_candidate_with_the_smaller_held_out_log_loss() -> None:
    """``estimator=None`` cross-fits every :func:`default_estimators` candidate and keeps the one with the smaller
    held-out log-loss; the held-out scores kept are that candidate's."""
    from steerfair.shared_score import default_estimators

    rng = np.random.default_rng(0)
    X, y, g = separability_groups(1_500, 2, rng)
    steer = SharedScore(random_state=0).fit(X, y, groups=g)
    losses = steer.held_out_log_loss_
    assert set(losses) == set(default_estimators(0))
    assert steer.estimator_name_ == min(losses, key=losses.__getitem__)
    p = np.clip(steer.oof_scores_, 1e-12, 1 - 1e-12)
    assert -np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)) == pytest.approx(losses[steer.estimator_name_])
    given_one = SharedScore(estimator=LogisticRegression(), random_state=0).fit(X, y, groups=g)
    assert given_one.estimator_name_ == "estimator" and list(given_one.held_out_log_loss_) == ["estimator"]


def test_pick_strength_takes_a_shared_score_and_steers_its_training_rows_from_held_out_scores() -> None:
    """``pick_strength`` accepts a ``SharedScore``: the strength is read when rows are steered, the training rows are
    steered from their held-out scores (at strength 0: each row's own bin posterior in its group, exactly), and the
    choice is the most accurate strength within the budget."""
    from steerfair.shared_target import pick_strength

    rng = np.random.default_rng(5)
    X, y, g = separability_groups(6_000, 2, rng)
    steer = SharedScore(estimator=LogisticRegression(), strength=0.0, random_state=0).fit(X, y, groups=g)
    own = steer.training_rows_transform()[:, 0]
    for a in range(2):
        rows = steer.train_groups_ == a
        bins = np.searchsorted(steer.edges_[a], steer.oof_scores_[rows], side="right")
        np.testing.assert_array_equal(own[rows], steer.own_values_[a][bins])
    choice = pick_strength(SharedScore(estimator=LogisticRegression(), random_state=0), LogisticRegression(), X, y, g,
                           budget=0.05, strengths=[0.0, 0.5, 1.0], cv=3)  # fmt: skip
    assert choice.strength in (0.5, 1.0)  # unsteered, the groups' rates differ by far more than 0.05
    by = {r["strength"]: r for r in choice.table}
    assert by[0.0]["gap"] > 0.1 and by[1.0]["gap"] <= 0.05
    within = [r for r in choice.table if r["gap"] <= 0.05]
    assert choice.accuracy == max(r["accuracy"] for r in within)
    assert choice.steerer.strength == choice.strength and hasattr(choice.steerer, "meet_")


def test_missing_values_leave_gradient_boosting_as_the_default_score_model() -> None:
    """With ``estimator=None`` a table with NaN / inf crashed inside scikit-learn's logistic regression; gradient
    boosting reads them, so it is the only candidate then. A logistic regression chosen on a clean table refuses
    missing values at transform with a message that says what to do."""
    rng = np.random.default_rng(0)
    n = 400
    g, y = rng.integers(0, 2, n), rng.integers(0, 2, n)
    X = rng.normal(size=(n, 3)) + y[:, None]
    holes = X.copy()
    holes[3, 0], holes[5, 1] = np.nan, np.inf
    score = SharedScore(random_state=0).fit(holes, y, groups=g)
    assert score.estimator_name_ == "gradient boosting" and set(score.held_out_log_loss_) == {"gradient boosting"}
    assert np.all(np.isfinite(score.transform(holes, groups=g)))
    clean = SharedScore(random_state=0).fit(X[:, :1], y, groups=g)  # one column, linear: the regression wins
    assert clean.estimator_name_ == "logistic regression"
    with pytest.raises(ValueError, match="missing or infinite values"):
        clean.transform(holes[:, :1], groups=g)


def test_an_int_random_state_repeats_transform_and_the_training_rows_output() -> None:
    """The fold drawn per row, the steered rows and the kernels' draws come from a fresh generator per call."""
    rng = np.random.default_rng(6)
    X, y, g = separability_groups(3000, 2, rng)
    steer = SharedScore(estimator=LogisticRegression(), random_state=1).fit(X, y, groups=g)
    soft = np.eye(2)[g[:500]] * 0.8 + 0.1  # group probabilities: a group drawn per row
    out = steer.transform(X[:500], groups=soft)
    np.testing.assert_array_equal(out, steer.transform(X[:500], groups=soft))
    np.testing.assert_array_equal(steer.training_rows_transform(), steer.training_rows_transform())
    own = steer.set_params(strength=0.0).transform(X[:500], groups=soft)
    assert not np.array_equal(out, own)  # steering moved scores
