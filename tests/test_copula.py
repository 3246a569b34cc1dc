"""The Gaussian-copula front end: exact inverse on continuous columns, normal scores on the training rows, marginals
preserved on the way back, and steered tables whose values stay on the training atoms."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from steerfair import FairSteerer
from steerfair.copula import GaussianCopula

seeds = st.integers(0, 2**31 - 1)


def mixed_table(seed: int, n: int) -> np.ndarray:
    """A continuous column, a count column, a one-hot column and a zero-inflated column."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.standard_t(4, n) * 3 + 10,
            rng.poisson(2.5, n).astype(float),
            (rng.random(n) < 0.3).astype(float),
            np.where(rng.random(n) < 0.8, 0.0, rng.exponential(1000, n)),
        ]
    )


@given(seed=seeds, n=st.integers(2, 400), scale=st.floats(1e-3, 1e4))
@settings(max_examples=50, deadline=None)
def test_continuous_columns_are_inverted_exactly(seed: int, n: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) * scale + rng.normal() * scale
    copula = GaussianCopula.fit(X)
    assert all(m.continuous for m in copula.marginals)
    new = np.vstack([X, rng.normal(size=(50, 2)) * 3 * scale])  # unseen values, beyond the range too
    Z = copula.to_normal(new, rng)
    back = copula.from_normal(Z)
    np.testing.assert_allclose(back, new, rtol=1e-9, atol=1e-9 * scale)
    assert np.all(np.diff(Z[np.argsort(new[:, 0]), 0]) > 0)  # strictly increasing


@given(seed=seeds)
@settings(max_examples=20, deadline=None)
def test_round_trip_keeps_every_training_value_and_scores_are_standard_normal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = mixed_table(seed, 3000)
    copula = GaussianCopula.fit(X)
    Z = copula.to_normal(X, rng)
    np.testing.assert_allclose(copula.from_normal(Z), X, rtol=1e-9)
    for j in range(X.shape[1]):  # normal scores of the training rows: standard normal (randomised PIT)
        assert stats.kstest(Z[:, j], "norm").pvalue > 1e-4


@given(seed=seeds)
@settings(max_examples=20, deadline=None)
def test_the_way_back_preserves_the_marginals(seed: int) -> None:
    """Standard-normal scores map back to the training marginal: atoms with their frequencies, within 4 standard
    errors of a frequency estimated on the two samples."""
    rng = np.random.default_rng(seed)
    X = mixed_table(seed, 4000)
    copula = GaussianCopula.fit(X)
    n = 20_000
    back = copula.from_normal(rng.standard_normal((n, X.shape[1])))
    for j in (1, 2, 3):
        values, counts = np.unique(X[:, j], return_counts=True)
        assert set(np.unique(back[:, j])) <= set(values)  # values land on training atoms only
        for v, c in zip(values, counts, strict=True):
            if c < 50:
                continue
            p = c / X.shape[0]
            se = np.sqrt(p * (1 - p) * (1 / n + 1 / X.shape[0]))
            assert abs(np.mean(back[:, j] == v) - p) <= 4 * se
    assert stats.ks_2samp(back[:, 0], X[:, 0]).pvalue > 1e-4


def test_fair_steerer_with_copula_steers_every_column_and_keeps_atoms() -> None:
    rng = np.random.default_rng(0)
    n = 6000
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.4).astype(int)
    latent = rng.normal(size=(n, 3)) + (y * np.where(g == 0, 2.0, 1.0))[:, None] + 0.5 * g[:, None]
    X = pd.DataFrame(
        {
            "score": latent[:, 0] * 4 + 50,
            "count": np.floor(np.exp(0.6 * latent[:, 1])),
            "flag": (latent[:, 2] > 0.8).astype(float),
            "const": np.ones(n),
        }
    )
    steer = FairSteerer(target="shared", marginals="copula", discrete="copula", random_state=0)
    out = steer.fit_transform(X, y, groups=g)
    assert [X.columns[j] for j in steer.steer_columns_] == ["score", "count", "flag"]
    for c in ("count", "flag"):
        assert set(np.unique(out[c])) <= set(np.unique(X[c]))
    np.testing.assert_array_equal(out["const"], X["const"])
    # strength 0 leaves every value as it is (the unsteered rows bypass the copula)
    steer.set_params(strength=0.0)
    pd.testing.assert_frame_equal(steer.transform(X, groups=g), X)
    # the least separable group (group 1) round-trips through its own marginals: its atoms come back unchanged
    steer.set_params(strength=1.0)
    assert steer.shared_.target.reference == 1 and steer.copula_.back == 1
    back = steer.transform(X, groups=g)
    np.testing.assert_array_equal(back.loc[g == 1, ["count", "flag"]], X.loc[g == 1, ["count", "flag"]])
    np.testing.assert_allclose(back.loc[g == 1, "score"], X.loc[g == 1, "score"], rtol=1e-9)


def test_identity_steering_round_trips_through_the_copula() -> None:
    X = mixed_table(3, 2000)
    rng = np.random.default_rng(3)
    g = rng.integers(0, 2, X.shape[0])
    y = (rng.random(X.shape[0]) < 0.5).astype(int)
    steer = FairSteerer(marginals="copula", test_mode="identity", random_state=1).fit(X, y, groups=g)
    np.testing.assert_allclose(steer.transform(X, groups=g), X, rtol=1e-9)


def test_one_hot_blocks_stay_valid_one_hot_rows() -> None:
    """A categorical column one-hot encoded: steered rows still have exactly one category, and the least separable
    group's rows come back unchanged."""
    rng = np.random.default_rng(1)
    n = 5000
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.4).astype(int)
    latent = rng.normal(size=(n, 2)) + (y * np.where(g == 0, 2.0, 0.8))[:, None]
    category = np.digitize(latent[:, 1] + rng.normal(size=n), [-0.5, 0.7])  # 3 ordered categories
    X = np.column_stack([latent[:, 0], np.eye(3)[category]])
    copula = GaussianCopula.fit(X)
    assert copula.blocks == (((1, 2, 3), True),)
    steer = FairSteerer(target="shared", marginals="copula", discrete="copula", random_state=0)
    out = steer.fit_transform(X, y, groups=g)
    np.testing.assert_array_equal(out[:, 1:].sum(axis=1), np.ones(n))
    assert set(np.unique(out[:, 1:])) <= {0.0, 1.0}
    ref = steer.shared_.target.reference
    np.testing.assert_array_equal(out[g == ref, 1:], X[g == ref, 1:])


@given(st.floats(1e-15, 1e-10), st.sampled_from([0, 5]))  # (a top share below 1.1e-16 rounds away: 1 - s == 1.0)
@settings(max_examples=10, deadline=None)
def test_a_value_of_tiny_weight_share_comes_back_to_itself(weight: float, where: int) -> None:
    """An extreme value whose weight share is below the clip floor (1e-12) was clipped into its neighbour's interval
    and came back as the neighbour's value."""
    from steerfair.copula import ColumnMarginal

    x = np.array([0.0, 1.0, 1.0, 2.0, 2.0, 3.0])
    w = np.ones(6)
    w[where] = weight
    marginal = ColumnMarginal.fit(x, w)
    back = marginal.from_normal(marginal.to_normal(x, np.random.default_rng(0)))
    np.testing.assert_array_equal(back, x)
