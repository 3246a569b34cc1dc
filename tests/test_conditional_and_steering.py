"""Group-conditional models and the steering maps onto the ideal."""

from __future__ import annotations

import numpy as np
import pytest
from _random_models import random_model
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from steerfair import GroupConditionalModel, fit_steering, is_ideal, kl

seeds = st.integers(0, 10_000)


@given(
    seed=seeds, d=st.integers(1, 4), k=st.integers(2, 3), m=st.integers(2, 3),
    family=st.sampled_from(["isotropic", "affine"]),
)  # fmt: skip
@settings(max_examples=25, deadline=None)
def test_label_maps_push_the_empirical_model_exactly_onto_the_ideal(
    seed: int, d: int, k: int, m: int, family: str
) -> None:
    """Steering fitted data with the label maps gives data whose refitted model *is* the ideal (either family)."""
    truth = random_model(seed, d, k, m)
    X, y, g = truth.sample(60 * k * m, seed=seed)
    cells = np.unique(np.column_stack([g, y]), axis=0, return_counts=True)[1]
    assume(len(cells) == k * m and cells.min() >= d + 2)
    model = GroupConditionalModel.fit(X, y, g, reg=None, min_samples=d + 2)
    steer = fit_steering(model, family=family)  # type: ignore[arg-type]
    assert steer.solution.family == family
    if family == "affine":  # the larger ideal set: never farther than the isotropic family's projection
        assert steer.solution.kl <= fit_steering(model).solution.kl * (1 + 1e-9) + 1e-12
    Xs = steer.transform(X, g, y)
    refit = GroupConditionalModel.fit(Xs, y, g, weights=steer.sample_weights(y, g), reg=None, min_samples=d + 2)
    for a in range(k):
        for i in range(m):
            np.testing.assert_allclose(refit.components[a][i].mean, steer.ideal.components[a][i].mean, atol=1e-9)
            np.testing.assert_allclose(refit.components[a][i].cov, steer.ideal.components[a][i].cov, atol=1e-9)
    np.testing.assert_allclose(refit.class_priors, steer.ideal.class_priors, atol=1e-12)
    assert is_ideal(refit, tol=1e-7)


@given(seed=seeds)
@settings(max_examples=10, deadline=None)
def test_lognormal_steering_stays_positive_and_reaches_the_ideal(seed: int) -> None:
    base = random_model(seed, 2)
    truth = GroupConditionalModel(
        base.groups, base.classes, base.group_priors, base.class_priors, base.components, "lognormal"
    )
    X, y, g = truth.sample(400, seed=seed)
    assume(np.unique(np.column_stack([g, y]), axis=0, return_counts=True)[1].min() >= 4)
    assert np.all(X > 0)
    model = GroupConditionalModel.fit(X, y, g, family="lognormal", reg=None)
    steer = fit_steering(model)
    Xs = steer.transform(X, g, y)
    assert np.all(Xs > 0)
    refit = GroupConditionalModel.fit(Xs, y, g, family="lognormal", weights=steer.sample_weights(y, g), reg=None)
    assert is_ideal(refit, tol=1e-7)


def test_soft_groups_one_hot_equals_hard_and_mixture_is_linear() -> None:
    model = random_model(1, 3)
    X, y, g = model.sample(200, seed=1)
    steer = fit_steering(GroupConditionalModel.fit(X, y, g))
    onehot = np.eye(2)[g]
    for mode in ("label", "posterior", "group"):
        yy = y if mode == "label" else None
        hard = steer.transform(X, g, yy, mode=mode)
        soft = steer.transform(X, None, yy, mode=mode, group_proba=onehot)
        np.testing.assert_array_equal(hard, soft)
    P = np.full((len(X), 2), 0.5)
    half = steer.transform(X, None, mode="group", group_proba=P)
    both = 0.5 * steer.transform(X, np.zeros(len(X), int), mode="group") + 0.5 * steer.transform(
        X, np.ones(len(X), int), mode="group"
    )
    np.testing.assert_allclose(half, both, atol=1e-12)


def test_group_maps_match_first_two_moments() -> None:
    model = random_model(2, 2)
    steer = fit_steering(model)
    from steerfair.steering import mixture_moments

    for a in range(2):
        src = mixture_moments(model.components[a], model.class_priors[a])
        dst = mixture_moments(steer.ideal.components[a], steer.ideal.class_priors[a])
        pushed = src.pushforward(steer.group_maps[a])
        np.testing.assert_allclose(pushed.mean, dst.mean, atol=1e-10)
        np.testing.assert_allclose(pushed.cov, dst.cov, atol=1e-10)


def test_affirmative_leaves_reference_group_untouched() -> None:
    model = random_model(4, 3)
    X, y, g = model.sample(300, seed=0)
    steer = fit_steering(GroupConditionalModel.fit(X, y, g), intervention="affirmative", reference=1)
    sel = g == 1
    for mode in ("label", "posterior", "group"):
        out = steer.transform(X, g, y if mode == "label" else None, mode=mode)
        np.testing.assert_array_equal(out[sel], X[sel])


def test_model_fit_sample_and_kl() -> None:
    model = random_model(5, 2, k=3, m=3)
    X, y, g = model.sample(30_000, seed=0)
    refit = GroupConditionalModel.fit(X, y, g)
    assert kl(refit, model) < 0.01
    assert kl(model, model) == 0.0
    np.testing.assert_allclose(refit.joint, model.joint, atol=0.02)
    post = refit.posterior(X[:50], g[:50])
    np.testing.assert_allclose(post.sum(axis=1), 1.0)


def test_from_moments_equals_fit() -> None:
    model = random_model(6, 2)
    X, y, g = model.sample(500, seed=0)
    fit = GroupConditionalModel.fit(X, y, g, reg=None)
    means = np.array([[c.mean for c in row] for row in fit.components])
    covs = np.array([[c.cov for c in row] for row in fit.components])
    mom = GroupConditionalModel.from_moments(fit.groups, fit.classes, fit.counts, means, covs, reg=None)
    assert kl(mom, fit) == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"y": np.zeros(9)}, "y has 9 entries"),
        ({"groups": np.r_[np.zeros(9), 1]}, "too few samples"),
        ({"X": np.full((10, 2), np.nan)}, "NaN"),
        ({"groups": np.zeros(10)}, "single value"),
        ({"y": np.zeros(10)}, "single class"),
        ({"family": "gamma"}, "unknown family"),
    ],
)
def test_fit_rejects_bad_input(kwargs: dict, match: str) -> None:
    rng = np.random.default_rng(0)
    args = {"X": rng.normal(size=(10, 2)), "y": np.tile([0, 1], 5), "groups": np.repeat([0, 1], 5), **kwargs}
    with pytest.raises(ValueError, match=match):
        GroupConditionalModel.fit(**args)


def test_transform_rejects_bad_input() -> None:
    model = random_model(0, 2)
    steer = fit_steering(model)
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="not seen in fit"):
        steer.transform(X, ["x", "y", "z"])
    with pytest.raises(ValueError, match="expected 2"):
        steer.transform(np.ones((3, 3)), [0, 0, 1])
    with pytest.raises(ValueError, match="needs y"):
        steer.transform(X, [0, 0, 1], mode="label")
    with pytest.raises(ValueError, match="group_proba"):
        steer.transform(X, group_proba=np.ones((3, 2)))
    with pytest.raises(ValueError, match="unknown mode"):
        steer.transform(X, [0, 0, 1], mode="magic")  # type: ignore[arg-type]


@given(seed=seeds, k=st.integers(2, 3))
@settings(max_examples=10, deadline=None)
def test_one_hot_group_probabilities_equal_hard_labels(seed: int, k: int) -> None:
    model = random_model(seed, 2, k=k)
    X, y, g = model.sample(300, seed=seed)
    cells = np.unique(np.column_stack([g, y]), axis=0, return_counts=True)[1]
    assume(len(cells) == 2 * k and cells.min() >= 4)
    hard = GroupConditionalModel.fit(X, y, g)
    soft = GroupConditionalModel.fit(X, y, np.eye(k)[g], group_labels=hard.groups)
    for a in range(k):
        for i in range(2):
            assert hard.components[a][i] == soft.components[a][i]
    np.testing.assert_array_equal(hard.class_priors, soft.class_priors)
    np.testing.assert_array_equal(hard.counts, soft.counts)


def test_soft_membership_is_a_weighted_fit() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = rng.integers(0, 2, 400)
    P = rng.dirichlet([1.0, 1.0], size=400)
    m = GroupConditionalModel.fit(X, y, P)
    sel = y == 1
    w = P[sel, 0] / P[sel, 0].sum()
    np.testing.assert_allclose(m.components[0][1].mean, w @ X[sel])
    np.testing.assert_allclose(m.group_priors, P.mean(axis=0))
    with pytest.raises(ValueError, match="sum to 1"):
        GroupConditionalModel.fit(X, y, P * 2)


@given(seed=seeds, d=st.integers(1, 4), k=st.integers(2, 3), m=st.integers(2, 3), w=st.floats(0.0, 1.0))
@settings(max_examples=25, deadline=None)
def test_shared_class_covariances_keep_the_pooled_covariance(seed: int, d: int, k: int, m: int, w: float) -> None:
    """Leaning the cells toward the group-pooled class covariance keeps means, priors and the pooled covariance
    itself; at weight 1 every group has the same covariance within a class."""
    model = random_model(seed, d, k, m)
    shared = model.share_class_covariances(w)
    n = model.joint  # no counts on a constructed model: the joint gives the shares
    assert np.array_equal(shared.class_priors, model.class_priors)
    for i in range(m):
        share = n[:, i] / n[:, i].sum()
        before = sum(share[a] * model.components[a][i].cov for a in range(k))
        after = sum(share[a] * shared.components[a][i].cov for a in range(k))
        np.testing.assert_allclose(after, before, rtol=1e-12, atol=1e-12)
        for a in range(k):
            assert np.array_equal(shared.components[a][i].mean, model.components[a][i].mean)
            expected = (1 - w) * model.components[a][i].cov + w * before
            np.testing.assert_allclose(shared.components[a][i].cov, expected, rtol=1e-12, atol=1e-12)
    assert model.share_class_covariances(0.0) is model
    full = model.share_class_covariances(1.0)
    for i in range(m):
        for a in range(1, k):
            np.testing.assert_array_equal(full.components[a][i].cov, full.components[0][i].cov)


def test_shared_class_covariances_use_the_cell_counts_and_reject_bad_weights() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)) * np.where(np.arange(400) < 100, 3.0, 1.0)[:, None]
    g = np.where(np.arange(400) < 100, "a", "b")
    y = np.tile([0, 1], 200)
    model = GroupConditionalModel.fit(X, y, g, reg=None)
    full = model.share_class_covariances(1.0)
    for i in range(2):  # count-weighted: 50 rows of group a, 150 of group b in each class
        sel = y == i
        expect = sum(
            (np.sum(sel & (g == a)) / sel.sum()) * np.cov(X[sel & (g == a)], rowvar=False, bias=True) for a in "ab"
        )
        np.testing.assert_allclose(full.components[0][i].cov, expect, rtol=1e-12)
    for bad in (-0.1, 1.5, True, float("nan"), "half", None):
        with pytest.raises(ValueError, match="weight"):
            model.share_class_covariances(bad)


def test_sample_and_single_class_errors_name_the_argument() -> None:
    model = random_model(2, 2)
    X, y, g = model.sample(40, seed=0)
    assert model.sample(0, seed=0)[0].shape == (0, 2)
    with pytest.raises(ValueError, match="n must be at least 0"):
        model.sample(-1, seed=0)
    with pytest.raises(TypeError, match="n must be an integer"):
        model.sample(2.5, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"y has a single class \(0\); need at least 2 classes"):
        GroupConditionalModel.fit(X, np.zeros(len(y), dtype=np.int64), g)


def test_mixture_moments_names_bad_weights_and_mismatched_components() -> None:
    from steerfair import Gaussian
    from steerfair.steering import mixture_moments

    a, b = Gaussian(np.zeros(2), np.eye(2)), Gaussian(np.ones(2), 2 * np.eye(2))
    mixed = mixture_moments((a, b), np.array([1.0, 3.0]))
    np.testing.assert_allclose(mixed.mean, [0.75, 0.75])
    between = 0.25 * 0.75**2 + 0.75 * 0.25**2  # sum_i w_i (m_i - m)(m_i - m)^T: every entry
    np.testing.assert_allclose(mixed.cov, (0.25 * 1 + 0.75 * 2) * np.eye(2) + between * np.ones((2, 2)))
    for weights, match in (([1.0, 2.0, 3.0], "one number per component"), ([0.0, 0.0], "positive sum"),
                           ([1.0, -0.5], "non-negative"), ([[1.0, 1.0]], "one number per component")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            mixture_moments((a, b), np.array(weights))
    with pytest.raises(ValueError, match="share one dimension"):
        mixture_moments((a, Gaussian(np.zeros(3), np.eye(3))), np.array([0.5, 0.5]))
