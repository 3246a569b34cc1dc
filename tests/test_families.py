"""Invariants of the parametric families."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _random_models import random_spd
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from steerfair import AffineMap, Gaussian, LogNormal, kl
from steerfair.families.gaussian import AUTO_REG_SCALE

seeds = st.integers(0, 10_000)
dims = st.integers(1, 6)


@given(seed=seeds, d=dims)
@settings(max_examples=40, deadline=None)
def test_logpdf_matches_scipy(seed: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    g = Gaussian(rng.normal(size=d), random_spd(rng, d))
    X = rng.normal(size=(7, d))
    ref = sps.multivariate_normal(g.mean, g.cov).logpdf(X)
    np.testing.assert_allclose(g.logpdf(X), np.atleast_1d(ref), rtol=1e-10, atol=1e-10)


@given(seed=seeds, d=dims)
@settings(max_examples=40, deadline=None)
def test_kl_properties(seed: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    p = Gaussian(rng.normal(size=d), random_spd(rng, d))
    q = Gaussian(rng.normal(size=d), random_spd(rng, d))
    assert kl(p, p) == pytest.approx(0.0, abs=1e-10)
    assert kl(p, q) > 0
    # closed form equals the expectation of the log-ratio (quadrature by exact Gaussian moments):
    # E_p[log p - log q] computed from the formula terms independently of the Cholesky route
    Qi = np.linalg.inv(q.cov)
    dm = q.mean - p.mean
    ref = 0.5 * (np.trace(Qi @ p.cov) + dm @ Qi @ dm - d + np.linalg.slogdet(q.cov)[1] - np.linalg.slogdet(p.cov)[1])
    assert kl(p, q) == pytest.approx(ref, rel=1e-9, abs=1e-12)


@given(seed=seeds, d=dims)
@settings(max_examples=30, deadline=None)
def test_kl_invariant_under_affine_bijection(seed: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    p = Gaussian(rng.normal(size=d), random_spd(rng, d))
    q = Gaussian(rng.normal(size=d), random_spd(rng, d))
    A = rng.normal(size=(d, d)) + 3 * np.eye(d)
    f = AffineMap(A, rng.normal(size=d))
    assert kl(p.pushforward(f), q.pushforward(f)) == pytest.approx(kl(p, q), rel=1e-7, abs=1e-9)


@given(seed=seeds, d=dims)
@settings(max_examples=30, deadline=None)
def test_lognormal_kl_equals_underlying_normal_kl(seed: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    m0, m1 = rng.normal(size=d), rng.normal(size=d)
    S0, S1 = random_spd(rng, d), random_spd(rng, d)
    assert kl(LogNormal(m0, S0), LogNormal(m1, S1)) == kl(Gaussian(m0, S0), Gaussian(m1, S1))


def test_lognormal_kl_matches_monte_carlo() -> None:
    rng = np.random.default_rng(1)
    p, q = LogNormal([0.1, -0.2], random_spd(rng, 2)), LogNormal([0.3, 0.1], random_spd(rng, 2))
    X = p.sample(400_000, seed=2)
    lr = p.logpdf(X) - q.logpdf(X)
    assert abs(lr.mean() - kl(p, q)) < 5 * lr.std() / np.sqrt(len(lr))


@given(seed=seeds, d=dims)
@settings(max_examples=30, deadline=None)
def test_fit_recovers_sample_moments(seed: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(50, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
    g = Gaussian.fit(X, reg=None)
    np.testing.assert_allclose(g.mean, X.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(g.cov, np.cov(X.T, bias=True).reshape(d, d), atol=1e-10)


@given(seed=seeds, d=dims)
@settings(max_examples=30, deadline=None)
def test_integer_weights_equal_repetition(seed: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(20, d))
    w = rng.integers(1, 4, size=20)
    a = Gaussian.fit(X, weights=w, reg=None)
    b = Gaussian.fit(np.repeat(X, w, axis=0), reg=None)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-12)
    np.testing.assert_allclose(a.cov, b.cov, atol=1e-12)


def test_shrinkage_matches_sklearn() -> None:
    from sklearn.covariance import ledoit_wolf, oas

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 12)) @ rng.normal(size=(12, 12))
    np.testing.assert_allclose(Gaussian.fit(X, shrinkage="ledoit_wolf", reg=None).cov, ledoit_wolf(X)[0], rtol=1e-10)
    np.testing.assert_allclose(Gaussian.fit(X, shrinkage="oas", reg=None).cov, oas(X)[0], rtol=1e-10)


def test_shrinkage_reduces_error_when_n_small() -> None:
    rng = np.random.default_rng(0)
    S = random_spd(rng, 40, cond=5)
    L = np.linalg.cholesky(S)
    errs = {"mle": 0.0, "oas": 0.0, "ledoit_wolf": 0.0}
    for _ in range(10):
        X = rng.normal(size=(60, 40)) @ L.T
        errs["mle"] += np.linalg.norm(Gaussian.fit(X, reg=1e-9).cov - S)
        errs["oas"] += np.linalg.norm(Gaussian.fit(X, shrinkage="oas").cov - S)
        errs["ledoit_wolf"] += np.linalg.norm(Gaussian.fit(X, shrinkage="ledoit_wolf").cov - S)
    assert errs["oas"] < errs["mle"] and errs["ledoit_wolf"] < errs["mle"]


def test_sample_moments_converge() -> None:
    rng = np.random.default_rng(3)
    g = Gaussian(rng.normal(size=3), random_spd(rng, 3))
    X = g.sample(200_000, seed=4)
    assert np.allclose(X.mean(axis=0), g.mean, atol=0.02)
    assert np.allclose(np.cov(X.T), g.cov, atol=0.05 * np.abs(g.cov).max())
    assert np.array_equal(g.sample(5, seed=1), g.sample(5, seed=1))


def test_singular_covariance_is_regularised_on_the_diagonal_only() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 8))  # n < d: singular
    with pytest.warns(RuntimeWarning, match="near-singular"):
        g = Gaussian.fit(X)
    raw = np.cov(X.T, bias=True)
    off = ~np.eye(8, dtype=bool)
    np.testing.assert_allclose(g.cov[off], raw[off], rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.diag(g.cov) - np.diag(raw), AUTO_REG_SCALE * np.diag(raw))
    with pytest.raises(ValueError, match="singular|semi-definite"):
        Gaussian.fit(X, reg=None)


@settings(max_examples=20, deadline=None)
@given(
    log_scales=st.lists(st.floats(-6, 6), min_size=4, max_size=4),
    offsets=st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4),
    n=st.sampled_from([3, 50]),
)
def test_auto_regularisation_follows_a_change_of_units(log_scales: list[float], offsets: list[float], n: int) -> None:
    """``reg="auto"`` decides and regularises on the correlation scale: rescaling and shifting the columns rescales the
    fitted covariance the same way, whether it is singular (3 rows, 4 columns) or not; and it warns at the user's
    line."""
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, 4)) @ rng.normal(size=(4, 4))
    s = 10.0 ** np.asarray(log_scales)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = Gaussian.fit(X)
        h = Gaussian.fit((X + np.asarray(offsets)) * s)  # offsets up to 1e3 spreads of a column
    np.testing.assert_allclose(h.cov / np.outer(s, s), g.cov, rtol=1e-6, atol=1e-12 * np.abs(g.cov).max())
    singular = [w for w in caught if "near-singular" in str(w.message)]
    assert len(singular) == (2 if n == 3 else 0)
    assert all(w.filename == __file__ for w in singular)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros(2), np.eye(3)), "expected 2x2"),
        ((np.zeros(2), np.array([[1.0, 2.0], [0.0, 1.0]])), "not symmetric"),
        ((np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]])), "not positive semi-definite"),
        ((np.array([np.nan, 0.0]), np.eye(2)), "NaN"),
        ((np.zeros(2), np.diag([1.0, 0.0])), "singular"),
    ],
)
def test_bad_parameters_raise(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Gaussian(*args)


def test_bad_fit_inputs_raise() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        Gaussian.fit(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        Gaussian.fit(np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        Gaussian.fit(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="non-positive"):
        LogNormal.fit(np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 1.0]]))
    with pytest.raises(ValueError, match="shrinkage"):
        Gaussian.fit(np.random.default_rng(0).normal(size=(5, 2)), shrinkage="bogus")
    with pytest.raises(ValueError, match="expected 3"):
        Gaussian(np.zeros(3), np.eye(3)).logpdf(np.zeros((2, 2)))
    with pytest.raises(TypeError):
        kl(Gaussian(np.zeros(1), np.eye(1)), LogNormal(np.zeros(1), np.eye(1)))


def test_weighted_means_keep_their_digits_far_from_the_origin() -> None:
    """Unit-spread rows 1e9 from the origin: the one-pass weighted sum lost about 1e-5 of a standard deviation at
    1e6 rows; with the correction pass the mean is within a few ulps of the offset (1.2e-7 at 1e9)."""
    from steerfair.families.gaussian import weighted_moments

    rng = np.random.default_rng(0)
    n = 200_000
    Z = np.round(rng.normal(size=(n, 3)) * 2**20) / 2**20  # exact in float64 after the offset too
    offset = np.array([1e9, -7.5e8, 1e9])
    mean, cov = weighted_moments(Z + offset, np.full(n, 1.0 / n))
    assert np.abs(mean - offset - Z.mean(axis=0)).max() < 5e-7
    assert np.allclose(cov, np.cov(Z.T, bias=True), atol=1e-9)


@given(seed=st.integers(0, 10_000), d=st.integers(1, 5), log_delta=st.floats(-12.0, -1.0), shift=st.booleans())
@settings(max_examples=40, deadline=None)
def test_kl_of_nearly_equal_gaussians_keeps_its_digits(seed: int, d: int, log_delta: float, shift: bool) -> None:
    """Summed as non-negative terms the KL keeps the relative precision the inputs allow; the textbook
    ``tr - d + logdet`` lost all of it for KLs near 1e-16 (it returned 0 for 2.5e-16) and 4e-4 of a mean shift."""
    import mpmath as mp

    from steerfair.families.gaussian import gaussian_kl

    mp.mp.dps = 40
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((d, d))
    S0 = G @ G.T / d + 0.5 * np.eye(d)
    delta = 10.0**log_delta
    if shift:  # equal covariances: the KL is half the Mahalanobis distance exactly
        S1, m1 = S0, delta * rng.normal(size=d)
    else:
        E = rng.standard_normal((d, d))
        S1, m1 = S0 + delta * (E @ E.T) / d, np.zeros(d)
    A0, A1 = mp.matrix(S0.tolist()), mp.matrix(S1.tolist())
    dm = mp.matrix(m1.tolist())
    inv = A1**-1
    exact = 0.5 * (sum((inv * A0)[i, i] for i in range(d)) + (dm.T * inv * dm)[0] - d + mp.log(mp.det(A1) / mp.det(A0)))
    got = gaussian_kl(np.zeros(d), S0, m1, S1)
    # the covariances' own rounding (eps relative) moves a KL of size r^2, r = |S1 - S0| / |S0|, by about
    # eps r d: relative eps d / r (and the solve's rounding leaves about d^2 eps^2 where the covariances are equal)
    r = np.linalg.norm(S1 - S0) / np.linalg.norm(S0)
    tol = 1e-13 if shift else 1e-13 + 100 * d * 2.2e-16 / r
    assert abs(got - float(exact)) <= tol * float(exact) + 10 * d * d * 2.2e-16**2


@given(st.floats(-0.99, 100.0))
@settings(max_examples=60, deadline=None)
def test_u_minus_log1p_has_full_relative_precision(u: float) -> None:
    import mpmath as mp

    from steerfair.families.gaussian import _u_minus_log1p

    mp.mp.dps = 40 + (int(-np.log10(abs(u))) if 0 < abs(u) < 1 else 0)  # enough digits for the cancellation
    exact = mp.mpf(u) - mp.log1p(mp.mpf(u))
    got = float(_u_minus_log1p(np.array([u]))[0])
    if exact < mp.mpf(1e-290):  # u^2 / 2 below float64's normal range: it underflows to (nearly) 0
        assert 0.0 <= got <= 1e-290
        return
    assert got >= 0.0 and abs(mp.mpf(got) - exact) <= 3e-15 * exact
