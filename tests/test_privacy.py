"""steerfair.privacy: randomized response, unbiased channel inversion, PSD repair, posteriors, private fits,
the Gaussian mechanism. Monte Carlo tolerances are z-scores of the estimators' exact (conditional) variances."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from _random_models import random_model
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import check_grad

from steerfair import FairSteerer, GroupConditionalModel, fit_steering
from steerfair import privacy as P
from steerfair.llm.stats import ActivationStats
from steerfair.membership import Membership

seeds = st.integers(0, 10_000)
epsilons = st.floats(0.05, 10.0)
Z = 5.0  # z-score of every Monte Carlo check (two-sided p ~ 6e-7 per check; seeds are fixed)


def rr_moments(eps: float, k: int) -> tuple[float, float, float, float]:
    """(p, q, Var W own group, Var W other group) of the de-biased membership W = (1[r=a] - q) / (p - q)."""
    p, q = P.rr_probabilities(eps, k)
    return p, q, p * (1 - p) / (p - q) ** 2, q * (1 - q) / (p - q) ** 2


# ------------------------------------------------------------------------------------ mechanism
@given(eps=epsilons, k=st.integers(2, 8))
@settings(max_examples=40, deadline=None)
def test_channel_rows_sum_to_one_and_likelihood_ratio_is_e_eps(eps: float, k: int) -> None:
    C = P.rr_channel(eps, k)
    np.testing.assert_allclose(C.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert C[0, 0] / C[0, 1] == pytest.approx(math.exp(eps), rel=1e-12)
    assert P.rr_keep_probability(eps, k) == pytest.approx(math.exp(eps) / (math.exp(eps) + k - 1), rel=1e-12)
    assert P.rr_variance_inflation(eps, k) == pytest.approx(((math.exp(eps) + k - 1) / (math.exp(eps) - 1)) ** 2)
    W = np.linalg.solve(C, np.eye(k))  # the closed-form inverse used by the estimators
    p, q = P.rr_probabilities(eps, k)
    np.testing.assert_allclose(W, (np.eye(k) - q) / (p - q), rtol=1e-9, atol=1e-9)


@given(eps=epsilons, k=st.integers(2, 5), seed=seeds)
@settings(max_examples=15, deadline=None)
def test_empirical_flip_rate_matches_the_channel(eps: float, k: int, seed: int) -> None:
    n = 20_000
    rng = np.random.default_rng(seed)
    values = rng.integers(0, k, n)
    out = P.randomized_response(values, eps, k, seed=seed + 1)
    assert out.dtype == values.dtype and out.min() >= 0 and out.max() < k
    flip = 1.0 - P.rr_keep_probability(eps, k)
    assert abs(np.mean(out != values) - flip) <= Z * math.sqrt(flip * (1 - flip) / n)
    # a flipped value is uniform over the k - 1 others: P(report = b | true = a) = q for b != a
    _, q = P.rr_probabilities(eps, k)
    sel = values == 0
    for b in range(1, k):
        freq = np.mean(out[sel] == b)
        assert abs(freq - q) <= Z * math.sqrt(q * (1 - q) / sel.sum())


def test_labels_in_labels_out_and_infinite_epsilon_is_identity() -> None:
    g = np.array(["F", "M", "M", "F", "M"] * 40)
    out = P.randomized_response(g, 0.5, seed=0)
    assert set(out.tolist()) <= {"F", "M"} and out.shape == g.shape
    np.testing.assert_array_equal(P.randomized_response(g, math.inf, seed=0), g)
    out3 = P.randomized_response(g, 0.1, seed=0, categories=["F", "M", "X"])
    assert "X" in set(out3.tolist())  # the public domain, not only the observed values
    with pytest.raises(ValueError, match="n_categories"):
        P.randomized_response(g, 1.0, 3)  # two observed values cannot name three categories
    with pytest.raises(ValueError, match="codes"):
        P.randomized_response(np.array([0, 1, 5]), 1.0, 3)
    with pytest.raises(ValueError, match="not among categories"):
        P.randomized_response(g, 1.0, categories=["F", "X"])


BAD_EPS = [0, 0.0, -1.0, math.nan, -math.inf, "one", None, True]
BAD_DELTA = [0.0, 1.0, -0.1, 1.5, math.nan, None, "x"]


@pytest.mark.parametrize("eps", BAD_EPS)
def test_invalid_epsilon_is_rejected_everywhere(eps: object) -> None:
    X, y, g = random_model(0, 2).sample(200, seed=0)
    with pytest.raises(ValueError, match="epsilon"):
        P.randomized_response(g, eps, 2, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epsilon"):
        P.fit_private_model(X, y, g, eps)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epsilon"):
        P.gaussian_sigma(eps, 1e-5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epsilon"):
        P.dp_fit_model(X, y, g, eps, 1e-5, clip_norm=3.0)  # type: ignore[arg-type]
    if eps is not None:  # group_epsilon=None means raw groups
        with pytest.raises(ValueError, match="group_epsilon"):
            FairSteerer(group_epsilon=eps).fit(X, y, groups=g)  # type: ignore[arg-type]


@pytest.mark.parametrize("delta", BAD_DELTA)
def test_invalid_delta_is_rejected(delta: object) -> None:
    X, y, g = random_model(0, 2).sample(200, seed=0)
    with pytest.raises(ValueError, match="delta"):
        P.gaussian_sigma(1.0, delta)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta"):
        P.dp_statistics(X, y, g, 1.0, delta, clip_norm=3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta"):
        P.dp_fit_model(X, y, g, math.inf, delta, clip_norm=3.0)  # type: ignore[arg-type]


def test_other_invalid_arguments() -> None:
    X, y, g = random_model(0, 2).sample(200, seed=0)
    with pytest.raises(ValueError, match="clip_norm"):
        P.dp_statistics(X, y, g, 1.0, 1e-5, clip_norm=0.0)
    with pytest.raises(ValueError, match="neighbouring"):
        P.dp_statistics(X, y, g, 1.0, 1e-5, clip_norm=1.0, neighbouring="swap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_categories"):
        P.rr_channel(1.0, 1)
    with pytest.raises(ValueError, match="too few rows"):
        P.fit_private_model(X[:20], y[:20], P.randomized_response(g[:20], 0.1, 2, seed=0), 0.1)


# ----------------------------------------------------------------------------- unbiasedness
def _fixed_data(seed: int, n: int, d: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, k, n)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, d)) + g[:, None] - y[:, None]
    return X, y, g


@pytest.mark.parametrize(("k", "eps"), [(2, 0.5), (3, 1.0), (4, 2.0)])
def test_channel_inversion_totals_are_unbiased(k: int, eps: float) -> None:
    """counts, sums and second-moment totals per (group, class): E[estimate | data] = truth."""
    n, d, R = 150, 2, 4000
    X, y, g = _fixed_data(k, n, d, k)
    H = np.eye(2)[y]
    reports = P.randomized_response(np.tile(g, R), eps, k, seed=7).reshape(R, n)
    W = P.debiased_membership(reports.ravel(), eps, k)[0].reshape(R, n, k)
    feats = np.column_stack([np.ones(n), X, np.einsum("jd,je->jde", X, X).reshape(n, -1)])  # 1, x, x x^T
    est = np.einsum("rja,ji,jf->raif", W, H, feats)  # (R, k, m, 1 + d + d^2)
    G = np.eye(k)[g]
    truth = np.einsum("ja,ji,jf->aif", G, H, feats)
    _, _, v_own, v_other = rr_moments(eps, k)
    varW = np.where(G == 1, v_own, v_other)  # (n, k)
    var = np.einsum("ja,ji,jf->aif", varW, H, feats**2)  # exact variance of one replicate
    se = np.sqrt(var / R)
    assert np.all(np.abs(est.mean(axis=0) - truth) <= Z * se)
    # and the variance formula itself (relative s.e. of a sample variance ~ sqrt(2 / R) for near-normal sums)
    ratio = est.var(axis=0, ddof=1) / var
    assert np.all(np.abs(ratio - 1) <= Z * math.sqrt(2 / R))
    # the public estimator gives the same totals on a replicate
    st1 = P.ldp_statistics(X, y, reports[0], eps, n_categories=k)
    np.testing.assert_allclose(st1.counts, est[0, :, :, 0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(st1.sums, est[0, :, :, 1 : 1 + d], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(st1.outers.reshape(k, 2, -1), est[0, :, :, 1 + d :], rtol=1e-12, atol=1e-9)


def test_totals_with_privatised_labels_are_unbiased() -> None:
    n, d, R, k, m, eps, leps = 150, 2, 4000, 2, 2, 1.0, 2.0
    X, y, g = _fixed_data(11, n, d, k)
    rep_g = P.randomized_response(np.tile(g, R), eps, k, seed=1)
    rep_y = P.randomized_response(np.tile(y, R), leps, m, seed=2)
    WA = P.debiased_membership(rep_g, eps, k)[0].reshape(R, n, k)
    WY = P.debiased_membership(rep_y, leps, m)[0].reshape(R, n, m)
    feats = np.column_stack([np.ones(n), X])
    est = np.einsum("rja,rji,jf->raif", WA, WY, feats)
    G, H = np.eye(k)[g], np.eye(m)[y]
    truth = np.einsum("ja,ji,jf->aif", G, H, feats)
    _, _, va, vb = rr_moments(eps, k)
    _, _, la, lb = rr_moments(leps, m)
    EA2 = np.where(G == 1, 1 + va, vb)  # E[W^2] = Var + mean^2
    EY2 = np.where(H == 1, 1 + la, lb)
    var_prod = np.einsum("ja,ji->jai", EA2, EY2) - np.einsum("ja,ji->jai", G, H)  # independent channels
    var = np.einsum("jai,jf->aif", var_prod, feats**2)
    assert np.all(np.abs(est.mean(axis=0) - truth) <= Z * np.sqrt(var / R))
    st1 = P.ldp_statistics(X, rep_y[:n], rep_g[:n], eps, n_categories=k, label_epsilon=leps)
    np.testing.assert_allclose(st1.counts, est[0, ..., 0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(st1.sums, est[0, ..., 1:], rtol=1e-12, atol=1e-9)


def test_group_share_estimate_and_debias_of_reported_cells() -> None:
    X, y, g = _fixed_data(5, 400, 3, 3)
    r = P.randomized_response(g, 1.5, 3, seed=3)
    direct = P.ldp_statistics(X, y, r, 1.5, n_categories=3)
    by_report = P.cell_statistics(X, np.eye(3)[r], np.eye(2)[y], groups=np.arange(3), classes=np.arange(2))
    back = P.debias_statistics(by_report, 1.5)
    for name in ("counts", "sums", "outers"):
        np.testing.assert_allclose(getattr(back, name), getattr(direct, name), rtol=1e-10, atol=1e-9)
    assert direct.counts.sum() == pytest.approx(400, rel=1e-12)  # rows of W sum to 1


# ------------------------------------------------------------------------------ epsilon = inf
@given(seed=seeds, k=st.integers(2, 3))
@settings(max_examples=4, deadline=None)
def test_infinite_epsilon_recovers_the_non_private_fit_exactly(seed: int, k: int) -> None:
    X, y, g = random_model(seed, 2, k=k).sample(300, seed=seed)
    ref = GroupConditionalModel.fit(X, y, g)
    for got in (P.fit_private_model(X, y, g, math.inf), P.dp_fit_model(X, y, g, math.inf, 1e-5, clip_norm=1.0)):
        np.testing.assert_array_equal(got.group_priors, ref.group_priors)
        np.testing.assert_array_equal(got.class_priors, ref.class_priors)
        np.testing.assert_array_equal(got.counts, ref.counts)
        for a in range(k):
            for i in range(2):
                assert got.components[a][i] == ref.components[a][i]
    np.testing.assert_array_equal(
        P.fit_private_steering(X, y, g, math.inf).transform(X, g), fit_steering(ref).transform(X, g)
    )
    np.testing.assert_array_equal(P.posterior_group_proba(g, math.inf, n_categories=k), np.eye(k)[g])
    assert P.gaussian_sigma(math.inf, 1e-5) == 0.0


def test_fairsteerer_infinite_group_epsilon_is_the_raw_fit() -> None:
    df, y, g = _table(0)
    a = FairSteerer(columns=["f0", "f1"])
    b = FairSteerer(columns=["f0", "f1"], group_epsilon=math.inf)
    pd.testing.assert_frame_equal(a.fit_transform(df, y, groups=g), b.fit_transform(df, y, groups=g), check_exact=True)
    pd.testing.assert_frame_equal(a.transform(df, groups=g), b.transform(df, groups=g), check_exact=True)
    pd.testing.assert_frame_equal(a.transform(df), b.transform(df), check_exact=True)
    np.testing.assert_array_equal(a.sample_weight(y, groups=g), b.sample_weight(y, groups=g))


def _table(seed: int, n: int = 3000) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.3 + 0.2 * g).astype(int)
    X = rng.normal(size=(n, 2)) * (1.0 + 0.5 * g[:, None]) + 1.5 * y[:, None] + g[:, None]
    df = pd.DataFrame(X, columns=["f0", "f1"])
    df["proxy"] = ((g + (rng.random(n) < 0.2)) % 2).astype(float)  # a one-hot column informative of the group
    return df, y, np.where(g == 1, "M", "F")


# ---------------------------------------------------------------------------- private fits
def test_private_model_means_within_their_delta_method_error() -> None:
    """Ratio estimator mean_a = sum W x / sum W: error s.d. ~ sqrt(sum E[W^2] (x - mu)^2) / n_a."""
    eps, k = 1.0, 2
    X, y, g = _fixed_data(21, 20_000, 2, k)
    ref = GroupConditionalModel.fit(X, y, g)
    r = P.randomized_response(g, eps, k, seed=0)
    got = P.fit_private_model(X, y, r, eps)
    _, _, v_own, v_other = rr_moments(eps, k)
    for a in range(k):
        for i in range(2):
            mu = ref.components[a][i].mean
            sel = y == i
            ew2 = np.where(g[sel] == a, 1 + v_own, v_other)
            sd = np.sqrt(ew2 @ (X[sel] - mu) ** 2) / np.sum(g[sel] == a)
            assert np.all(np.abs(got.components[a][i].mean - mu) <= Z * sd)
            assert np.all(np.linalg.eigvalsh(got.components[a][i].cov) > 0)


@given(seed=seeds, d=st.integers(1, 5))
@settings(max_examples=25, deadline=None)
def test_psd_repair(seed: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d))
    S = A + A.T
    R = P.psd_repair(S, 0.0)
    evals = np.linalg.eigvalsh(S)
    assert np.allclose(R, R.T, atol=0)
    assert np.linalg.eigvalsh(R).min() >= -1e-12 * max(1.0, abs(evals).max())
    # nearest PSD matrix in Frobenius norm: the distance is the norm of the negative eigenvalues
    assert np.linalg.norm(S - R) == pytest.approx(np.linalg.norm(np.minimum(evals, 0)), rel=1e-9, abs=1e-12)
    spd = A @ A.T + np.eye(d)
    np.testing.assert_array_equal(P.psd_repair(spd, 0.0), 0.5 * (spd + spd.T))  # valid input is kept
    with pytest.raises(ValueError):
        P.psd_repair(np.ones((2, 3)))


# ------------------------------------------------------------------------------- posteriors
def test_posterior_matches_monte_carlo_bayes() -> None:
    k, eps, n = 3, 0.8, 60_000
    rng = np.random.default_rng(0)
    prior = np.array([0.5, 0.3, 0.2])
    g = rng.choice(k, size=n, p=prior)
    r = P.randomized_response(g, eps, k, seed=1)
    post = P.posterior_group_proba(r, eps, prior, n_categories=k)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-12)
    for rep in range(k):
        sel = r == rep
        for a in range(k):
            p_hat = np.mean(g[sel] == a)
            p = post[sel][0, a]
            assert abs(p_hat - p) <= Z * math.sqrt(p * (1 - p) / sel.sum())
    # prior="reports": the reports' maximum-likelihood shares, here (60k rows, every share well inside the simplex)
    # the de-biased shares; the default prior is uniform
    share = P.debiased_membership(r, eps, k)[0].mean(axis=0)
    np.testing.assert_allclose(
        P.posterior_group_proba(r, eps, "reports", n_categories=k),
        P.posterior_group_proba(r, eps, share, n_categories=k),
    )
    np.testing.assert_allclose(
        P.posterior_group_proba(r, eps, n_categories=k), P.posterior_group_proba(r, eps, np.ones(k), n_categories=k)
    )


def test_model_group_proba_is_bayes_rule() -> None:
    model = random_model(3, 2)
    X, y, g = model.sample(50, seed=0)
    Pxy = P.model_group_proba(model, X, y)
    Px = P.model_group_proba(model, X)
    np.testing.assert_allclose(Pxy.sum(1), 1, atol=1e-12)
    i = int(y[0])
    dens = [
        model.group_priors[a] * model.class_priors[a, i] * math.exp(model.components[a][i].logpdf(X[:1])[0])
        for a in range(2)
    ]
    assert Pxy[0, 0] == pytest.approx(dens[0] / sum(dens), rel=1e-10)
    assert Px.shape == (50, 2) and np.all((Px > 0) & (Px < 1))


def test_private_group_probe_gradient_and_recovery() -> None:
    rng = np.random.default_rng(0)
    n, eps = 20_000, 1.0
    x = rng.normal(size=(n, 1))
    p_true = 1 / (1 + np.exp(-2.5 * x[:, 0]))
    g = (rng.random(n) < p_true).astype(int)
    r = P.randomized_response(g, eps, 2, seed=1)
    probe = P.PrivateGroupProbe(eps, C=100.0).fit(x, r)
    # forward correction recovers P(A | x); a plain fit on the reports is attenuated toward 1/2
    err = np.abs(probe.predict_proba(x)[:, 1] - p_true).mean()
    naive = P.PrivateGroupProbe(math.inf, C=100.0).fit(x, r)
    err_naive = np.abs(naive.predict_proba(x)[:, 1] - p_true).mean()
    assert err < 0.03 < err_naive
    # the analytic gradient of the forward-corrected loss
    from steerfair.privacy.posterior import forward_corrected_loss

    xs, gs = rng.normal(size=(40, 2)), rng.integers(0, 3, 40)
    Ccol = P.rr_channel(0.7, 3)[:, gs].T
    args = (xs, Ccol, np.full(40, 1 / 40), 0.3)
    theta = rng.normal(size=9)
    assert (
        check_grad(lambda t: forward_corrected_loss(t, *args)[0], lambda t: forward_corrected_loss(t, *args)[1], theta)
        < 1e-5
    )


# ----------------------------------------------------------------------------- FairSteerer
def test_fairsteerer_from_private_groups() -> None:
    df, y, g = _table(1)
    r = P.randomized_response(g, 1.0, seed=0, categories=["F", "M"])
    fs = FairSteerer(columns=["f0", "f1"], group_epsilon=1.0)
    out = fs.fit_transform(df, y, groups=r)
    assert list(fs.groups_) == ["F", "M"] and fs.group_epsilon_ == 1.0
    ref = FairSteerer(columns=["f0", "f1"]).fit(df, y, groups=g)
    for a in range(2):  # the private fit estimates the raw fit
        for i in range(2):
            np.testing.assert_allclose(fs.model_.components[a][i].mean, ref.model_.components[a][i].mean, atol=0.25)
    pd.testing.assert_series_equal(out["proxy"], df["proxy"])
    # reports at transform time are read through the posterior: a mixture between the two group maps
    t = fs.transform(df, groups=r)
    per = [
        fs.transform(df, groups=np.column_stack([np.full(len(df), 1.0 - a), np.full(len(df), float(a))]))
        for a in (0, 1)
    ]
    lo = np.minimum(per[0]["f0"], per[1]["f0"]) - 1e-9
    hi = np.maximum(per[0]["f0"], per[1]["f0"]) + 1e-9
    assert np.all((t["f0"] >= lo) & (t["f0"] <= hi))
    assert fs.transform(df).shape == df.shape  # probe trained on the reports
    w = fs.sample_weight(y, groups=r)
    assert w.shape == (len(df),) and np.all(w > 0)
    with pytest.raises(ValueError, match="hard group labels"):
        FairSteerer(columns=["f0", "f1"], group_epsilon=1.0).fit(df, y, groups=r).inverse_transform(df, groups=r)


# ---------------------------------------------------------------------------- central DP
@given(eps=st.floats(0.05, 20.0), delta=st.floats(1e-10, 0.1), sens=st.floats(0.1, 10.0))
@settings(max_examples=30, deadline=None)
def test_analytic_gaussian_calibration(eps: float, delta: float, sens: float) -> None:
    sigma = P.gaussian_sigma(eps, delta, sens)
    assert P.gaussian_delta(sigma, eps, sens) == pytest.approx(delta, rel=1e-6)
    assert P.gaussian_sigma(eps, delta, 1.0) * sens == pytest.approx(sigma, rel=1e-8)
    if eps < 1:  # never worse than the classical calibration where that one is valid
        assert sigma <= sens * math.sqrt(2 * math.log(1.25 / delta)) / eps * (1 + 1e-9)


def test_gaussian_mechanism_noise_and_clipping() -> None:
    X, y, g = _fixed_data(3, 300, 2, 2)
    C, eps, delta, R = 2.0, 1.0, 1e-5, 300
    rels = [P.dp_statistics(X, y, g, eps, delta, clip_norm=C, seed=s) for s in range(R)]
    sigma = rels[0].sigma
    assert sigma == pytest.approx(P.gaussian_sigma(eps, delta, math.sqrt(3)))
    U = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True) / C, 1.0) / C
    assert rels[0].n_clipped == int(np.sum(np.linalg.norm(X, axis=1) > C))
    exact = P.cell_statistics(U, np.eye(2)[g], np.eye(2)[y], groups=[0, 1], classes=[0, 1])
    iu = np.triu_indices(2)
    noise = np.concatenate(
        [np.concatenate([(r.stats.counts - exact.counts).ravel(), (r.stats.sums - exact.sums).ravel(),
                         (r.stats.outers - exact.outers)[:, :, iu[0], iu[1]].ravel()]) for r in rels]
    )  # fmt: skip
    N = noise.size
    assert abs(noise.mean()) <= Z * sigma / math.sqrt(N)
    assert abs(noise.var() / sigma**2 - 1) <= Z * math.sqrt(2 / N)
    o = rels[0].stats.outers
    np.testing.assert_array_equal(o, np.swapaxes(o, -1, -2))
    model = rels[0].to_model()
    assert model.dim == 2 and all(np.all(np.linalg.eigvalsh(c.cov) > 0) for row in model.components for c in row)
    assert P.dp_statistics(X, y, g, eps, delta, clip_norm=C, neighbouring="replace").sensitivity == math.sqrt(6)


# -------------------------------------------------------------------------------------- LLM
def test_activation_stats_collected_with_reports_debias_to_the_ldp_totals() -> None:
    X, y, g = _fixed_data(9, 200, 3, 2)
    r = P.randomized_response(g, 1.0, 2, seed=0)
    stats = ActivationStats([0], [0, 1], [0, 1], 3).update(0, torch.as_tensor(X), r, y)
    got = P.debias_statistics(P.activation_statistics(stats, 0), 1.0)
    ref = P.ldp_statistics(X, y, r, 1.0, n_categories=2)
    for name in ("counts", "sums", "outers"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-10, atol=1e-9)
    model = GroupConditionalModel.from_statistics(got)
    assert model.n_groups == 2


@pytest.mark.slow  # loads transformers / runs the experiment end to end (~5 s)
def test_privacy_tradeoff_experiment_on_features_file(tmp_path: object) -> None:
    from pathlib import Path

    from steerfair.evaluation import privacy_tradeoff as exp

    rng = np.random.default_rng(0)
    n = 1200
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.3 + 0.3 * g).astype(int)
    X = rng.normal(size=(n, 3)) + g[:, None] + 1.2 * y[:, None]
    path = Path(str(tmp_path)) / "enc.npz"
    np.savez(path, X=X, y=y, groups=np.where(g == 1, "m", "f"))
    res = exp.run(
        path.parent / "out", exp.load_features(path), seeds=[0], epsilons=[1.0, math.inf], show_progress=False
    )
    s = res["per_seed"][0]
    assert s["by_epsilon"]["inf"]["private"] == s["non-private"]  # epsilon = inf is the raw fit exactly
    assert s["by_epsilon"]["inf"]["naive"] == s["non-private"]
    for name in ("json", "md", "png"):
        assert (path.parent / "out" / f"privacy_tradeoff.{name}").stat().st_size > 0
    assert "| 1 |" in exp.markdown(res)


def test_covariance_repair_is_scale_free() -> None:
    """A valid covariance with wildly different feature scales is untouched; an indefinite one is repaired
    in correlation units (small-scale features keep their scale)."""
    S_ok = np.diag([1e10, 1.0])
    S_bad = np.array([[1e10, 2e5], [2e5, 1.0]])  # correlation 2 > 1: indefinite
    stats = P.CellStatistics.from_totals(
        np.array([0]),
        np.array([0, 1]),
        np.array([[10.0, 10.0]]),
        np.zeros((1, 2, 2)),
        10.0 * np.stack([S_ok, S_bad])[None],
        signed=np.ones((1, 2), dtype=bool),  # estimates from signed weights are the ones repaired
    )
    covs = stats.covariances()
    np.testing.assert_array_equal(covs[0, 0], S_ok)
    assert np.linalg.eigvalsh(covs[0, 1]).min() > 0
    assert covs[0, 1][1, 1] < 10.0 and covs[0, 1][0, 0] < 1e11  # no feature inflated by the other's scale


def test_signed_weights_that_cancel_in_a_cell_are_refused_not_merged_wrongly() -> None:
    """At ``eps = ln 3`` (k = 2) de-biased weights are exactly 1.5 and -0.5: a shard's cell can total 0 with a non-zero
    signed sum, which (count, mean, centred covariance) cannot hold; the merge of shards then silently differed from
    the statistics of the union (covariance off by 0.83; by 37 one ulp away from ln 3)."""
    X = np.random.default_rng(0).standard_normal((8, 2)) + 5
    reports, y = np.array([0, 1, 1, 1, 0, 0, 1, 0]), np.array([0, 0, 0, 0, 0, 0, 0, 1])
    for eps in (math.log(3), math.log(3) + 1e-9):
        with pytest.raises(ValueError, match=r"cell \(0, 0\) has signed \(de-biased\) weights that cancel"):
            P.ldp_statistics(X[:4], y[:4], reports[:4], eps, categories=[0, 1], label_categories=[0, 1])
    shards = [P.ldp_statistics(X[s], y[s], reports[s], 2.0, categories=[0, 1], label_categories=[0, 1])
              for s in (slice(0, 4), slice(4, 8), slice(0, 8))]  # fmt: skip
    merged = shards[0] + shards[1]
    np.testing.assert_allclose(merged.covs, shards[2].covs, atol=1e-12)


def test_dp_statistics_release_the_declared_domains() -> None:
    """A person with a unique label added a cell to the release: the domains are declared (``group_labels=``,
    ``label_categories=``), and without them a finite epsilon warns."""
    rng = np.random.default_rng(0)
    X, y, g = rng.standard_normal((300, 2)), rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    with pytest.warns(UserWarning, match="label_categories: the groups / classes present in the data"):
        P.dp_statistics(X, y, g, 1.0, 1e-5, 3.0, group_labels=[0, 1], seed=0)
    declared = P.dp_statistics(X, y, g, 1.0, 1e-5, 3.0, group_labels=[0, 1], label_categories=[0, 1, 2], seed=0)
    assert declared.stats.classes.tolist() == [0, 1, 2]  # the public domain, whatever the data hold
    y_odd = y.copy()
    y_odd[0] = 7  # outside the declared domain: refused, not a new cell
    with pytest.raises(ValueError, match="y"):
        P.dp_statistics(X, y_odd, g, 1.0, 1e-5, 3.0, group_labels=[0, 1], label_categories=[0, 1], seed=0)


def test_cell_statistics_refuse_inconsistent_input() -> None:
    from steerfair import CellStatistics

    ones = np.ones((2, 2))
    with pytest.raises(ValueError, match="disagree"):
        CellStatistics.from_totals([0, 1], [0, 1], ones, np.zeros((2, 2, 3)), np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="center must be a finite vector of length 3"):
        CellStatistics.empty([0, 1], [0, 1], 3).project(np.eye(3), center=[1, 2])
    with pytest.raises(ValueError, match="groups must not repeat a label"):
        CellStatistics([0, 0], [0, 1], ones, ones, np.zeros((2, 2, 3)), np.zeros((2, 2, 3, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="sq_weights"):
        CellStatistics([0, 1], [0, 1], ones, -ones, np.zeros((2, 2, 3)), np.zeros((2, 2, 3, 3)), np.zeros((2, 2)))
    rng = np.random.default_rng(0)
    X, y, g = rng.standard_normal((300, 2)), rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    with pytest.raises(ValueError, match="mismatched lengths: y=10, groups=300"):
        FairSteerer().fit(X, y, groups=g).sample_weight(y[:10], groups=g)


# ------------------------------------------------------------------ review of the mergeable statistics and privacy
def _cancelling_shards() -> tuple:
    """Three shards of de-biased statistics (k = 2, epsilon = ln 3: weights 1.5 / -0.5) whose cell (0, 0) counts are
    1.5, -1.5 and 1.5, so that two of them cancel exactly."""
    X = np.arange(1.0, 7.0)[:, None]
    r, y = np.array([0, 1, 1, 1, 0, 0]), np.array([0, 0, 0, 0, 0, 1])

    def shard(s: slice) -> P.CellStatistics:
        return P.ldp_statistics(X[s], y[s], r[s], math.log(3), n_categories=2, label_categories=[0, 1])

    return shard(slice(0, 6)), shard(slice(0, 1)), shard(slice(1, 4)), shard(slice(4, 6))


def test_merges_whose_signed_weights_cancel_are_refused_in_every_order() -> None:
    """The merged cell's count cancels to 0: (count, mean, covariance) cannot hold it. Dropping it silently gave 5.0
    and 1.0 for a mean that is 3.0 in one pass, depending on the order of the merges."""
    whole, a, b, c = _cancelling_shards()
    assert whole.means[0, 0, 0] == pytest.approx(3.0)
    for merge in (lambda: (a + b) + c, lambda: a + (b + c), lambda: sum([a, b, c])):
        with pytest.raises(ValueError, match=r"cell \(0, 0\) has signed \(de-biased\) weights that cancel"):
            merge()
    X = np.arange(1.0, 5.0)[:, None]
    G, H = Membership.parse([0, 1], labels=[0, 1]), Membership.parse([0, 0], labels=[0], min_groups=1)
    shards = [P.CellStatistics.from_rows(X[j : j + 2], G, H) for j in (0, 2)]
    assert np.array_equal(sum(shards).means, (shards[0] + shards[1]).means)  # sum() merges plain shards


def test_tiny_epsilons_and_label_epsilon_get_errors_naming_them() -> None:
    for call in (
        lambda: P.posterior_group_proba(np.array([0, 1]), 1e-17, prior="reports", n_categories=2),
        lambda: P.rr_variance_inflation(1e-17, 2),
    ):
        with pytest.raises(ValueError, match="epsilon=1e-17 is too small to de-bias"):
            call()
    assert np.isfinite(P.rr_variance_inflation(1e-6, 2))
    X, r, y = np.ones((4, 1)), np.array([0, 1, 0, 1]), np.array([0, 1, 1, 0])
    for bad in (0, float("nan"), -1.0):
        with pytest.raises(ValueError, match="label_epsilon"):
            P.ldp_statistics(X, y, r, 1.0, n_categories=2, label_categories=[0, 1], label_epsilon=bad)


def test_infinite_epsilon_checks_what_a_finite_one_checks() -> None:
    rng = np.random.default_rng(0)
    g, y, X = rng.integers(0, 2, 400), rng.integers(0, 2, 400), rng.normal(size=(400, 2))
    common = {"group_labels": [0, 1]}
    for kw, error in (({"center": [0, 0, 0]}, "center"), ({"label_categories": [0]}, "not among categories"),
                      ({"seed": "x"}, "seed must be")):  # fmt: skip
        for eps in (math.inf, 1e3):
            with pytest.raises((ValueError, TypeError), match=error):
                P.dp_fit_model(X, y, g, eps, 1e-5, 5.0, **common, **{"label_categories": [0, 1], **kw})
    raw = P.dp_fit_model(X, y, g, math.inf, 1e-5, 5.0, **common)
    assert raw.kl(GroupConditionalModel.fit(X, y, g)) == 0.0


def test_a_negative_noisy_count_is_too_few_rows_not_a_crash() -> None:
    """A cell of 5 rows at epsilon = 1 gets noisy counts below 0 on some seeds; the release stays valid and the fit
    says the cell has too few rows for this epsilon (it crashed on the sums of squared weights)."""
    rng = np.random.default_rng(0)
    g, y = rng.integers(0, 2, 2000), rng.integers(0, 2, 2000)
    y[g == 0] = 0
    y[np.flatnonzero(g == 0)[:5]] = 1
    X = rng.normal(size=(2000, 2))
    negative = 0
    for seed in range(40):
        rel = P.dp_statistics(X, y, g, 1.0, 1e-5, clip_norm=3.0, group_labels=[0, 1], label_categories=[0, 1],
                              seed=seed)  # fmt: skip
        negative += bool(np.any(rel.stats.counts < 0))
        try:
            rel.to_model()
        except ValueError as exc:
            assert "too few rows for this epsilon" in str(exc) or "below min_samples" in str(exc), exc
    assert negative > 0  # the case the test is about did occur


def test_number_checks_of_the_central_release_are_consistent() -> None:
    rng = np.random.default_rng(1)
    g, y, X = rng.integers(0, 2, 300), rng.integers(0, 2, 300), rng.normal(size=(300, 2))
    kw = {"group_labels": [0, 1], "label_categories": [0, 1], "seed": 0}
    a = P.dp_statistics(X, y, g, 1.0, 1e-5, clip_norm=np.int64(3), **kw)
    b = P.dp_statistics(X, y, g, 1.0, 1e-5, clip_norm=3.0, **kw)
    assert np.array_equal(a.stats.means, b.stats.means)
    with pytest.raises(ValueError, match="delta must be a number in"):
        P.dp_statistics(X, y, g, 1.0, "0.1", clip_norm=3.0, **kw)  # type: ignore[arg-type]


def test_cell_statistics_messages_name_the_problem() -> None:
    whole = _cancelling_shards()[0]
    with pytest.raises(ValueError, match=r"one row per new label"):
        whole.combine_groups(np.ones((1, 2)), ["x", "y"])
    with pytest.raises(ValueError, match="coefficients contain NaN"):
        whole.combine_groups(np.array([[np.nan, 1.0]]), ["x"])
    with pytest.raises(ValueError, match="basis contains NaN"):
        whole.project(np.array([[np.nan]]))
    other = P.CellStatistics.from_rows(np.ones((2, 1)), Membership.parse(["a", "b"]),
                                       Membership.parse([0, 1], name="classes"))  # fmt: skip
    with pytest.raises(ValueError, match=r"groups \[0, 1\] and \['a', 'b'\].*labels="):
        whole + other


def test_private_reports_of_a_single_group_ask_for_the_group_labels() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 3)), rng.integers(0, 2, 100)
    with pytest.raises(ValueError, match="hold a single value.*pass group_labels"):
        FairSteerer(group_epsilon=1.0).fit(X, y, groups=np.array(["f"] * 100))


def test_a_report_outside_the_declared_groups_says_so() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="groups contains 1, which was not among the declared labels"):
        P.dp_statistics(rng.normal(size=(50, 2)), rng.integers(0, 2, 50), rng.integers(0, 2, 50), 1.0, 1e-5,
                        clip_norm=3.0, group_labels=[0], label_categories=[0, 1])  # fmt: skip


# --------------------------------------------------------------- review fixes (posterior prior, domains, probe)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 4), n=st.integers(1, 40), eps=st.floats(0.2, 4.0))
@settings(max_examples=40, deadline=None)
def test_report_shares_maximise_the_report_likelihood_on_the_simplex(seed: int, k: int, n: int, eps: float) -> None:
    """The shares are a point of the simplex whose report likelihood no other point beats (the likelihood is
    concave in the shares); where the de-biased shares are all positive they are that point."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, n)
    pi = P.report_shares(codes, eps, n_categories=k)
    assert np.all(pi >= 0) and abs(pi.sum() - 1.0) < 1e-12
    C = P.rr_channel(eps, k)

    def loglik(s: np.ndarray) -> float:
        return float(np.sum(np.log((s @ C)[codes])))

    best = loglik(pi)
    for s in rng.dirichlet(np.ones(k), size=200):
        assert loglik(s) <= best + 1e-9
    p, q = P.rr_probabilities(eps, k)
    direct = (np.bincount(codes, minlength=k) / n - q) / (p - q)
    if np.all(direct > 1e-9):
        assert np.allclose(pi, direct, atol=1e-12)


def test_default_posterior_reads_each_report_alone() -> None:
    """With no prior a row's posterior is its report's likelihood: the same whatever else is in the call (before,
    the batch's clipped de-biased shares gave a reported F the probability 1e-12)."""
    p, _ = P.rr_probabilities(1.0, 2)
    alone = P.posterior_group_proba(["F"], 1.0, categories=["F", "M"])
    batch = P.posterior_group_proba(["F", "M", "M", "M"], 1.0, categories=["F", "M"])
    assert np.allclose(alone[0], [p, 1 - p]) and np.allclose(batch[0], alone[0])
    shares = P.posterior_group_proba(["F", "M", "M", "M"], 1.0, prior="reports", categories=["F", "M"])
    assert np.all(shares >= 0) and np.allclose(shares.sum(axis=1), 1.0)
    assert np.allclose(P.report_shares(["F", "M", "M", "M"], 1.0, categories=["F", "M"]), [0.0, 1.0])  # the boundary
    scaled = P.posterior_group_proba(["F", "M"], 1.0, prior=np.array([[2.0, 0.5], [0.5, 0.5]]), categories=["F", "M"])
    assert np.allclose(scaled, P.posterior_group_proba(["F", "M"], 1.0, prior=np.array([[0.8, 0.2], [0.5, 0.5]]),
                                                       categories=["F", "M"]))  # fmt: skip
    with pytest.raises(ValueError, match="'reports'"):
        P.posterior_group_proba(["F", "M"], 1.0, prior="batch", categories=["F", "M"])


def test_fractional_floats_are_not_categories_and_domains_name_their_argument() -> None:
    with pytest.raises(ValueError, match="fractional"):
        P.randomized_response(np.array([0.0, 0.5, 1.0]), 1.0)
    assert P.randomized_response(np.array([0.0, 0.5]), math.inf, categories=[0.0, 0.5]).tolist() == [0.0, 0.5]
    with pytest.raises(ValueError, match="reports holds 1 distinct"):
        P.randomized_response(["a", "a"], 1.0, seed=0) if False else P.encode_categories(["a", "a"], name="reports")
    with pytest.raises(ValueError, match="categories must list at least 2"):
        P.encode_categories(["a"], categories=["a"])


def test_cell_statistics_refuse_memberships_whose_rows_do_not_sum_to_one() -> None:
    X = np.random.default_rng(0).normal(size=(6, 2))
    G, H = np.full((6, 2), 0.5), np.tile([1.0, 0.0], (3, 1)).repeat(2, axis=0)[:6]
    H = np.eye(2)[[0, 1, 0, 1, 0, 1]]
    with pytest.raises(ValueError, match="sum to 1"):
        P.cell_statistics(X, 3 * G, H, groups=["a", "b"], classes=[0, 1])
    assert P.cell_statistics(X, G, H, groups=["a", "b"], classes=[0, 1]).counts.sum() == pytest.approx(6.0)


def test_private_group_probe_is_a_careful_estimator() -> None:
    import warnings

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    reports = P.randomized_response((X[:, 0] > 0).astype(int), 1.0, 2, seed=1)
    with pytest.warns(RuntimeWarning, match="max_iter"):
        P.PrivateGroupProbe(1.0, max_iter=1).fit(X, reports)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P.PrivateGroupProbe(1.0).fit(X, reports)  # converges: no warning
    with pytest.raises(ValueError, match="max_iter"):
        P.PrivateGroupProbe(1.0, max_iter=-5)
    probe = P.PrivateGroupProbe(1.0, C=np.int64(2))
    assert probe.C == 2.0 and probe.set_params(C=0.5).get_params()["C"] == 0.5
    assert P.gaussian_sigma(1.0, 1e-5, np.int64(2)) == P.gaussian_sigma(1.0, 1e-5, 2.0)


def test_ideal_template_sample_weight_reads_privatised_reports() -> None:
    """With ``group_epsilon`` the weights are expected ones under P(A | report, y), as FairSteerer's (before, the
    reports were read as true groups)."""
    from steerfair.representations import IdealTemplateSteering

    rng = np.random.default_rng(0)
    n = 3000
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.3 + 0.3 * g).astype(int)
    X = rng.normal(size=(n, 2)) + y[:, None] + 0.5 * g[:, None]
    r = P.randomized_response(g, 1.0, 2, seed=2)
    its = IdealTemplateSteering(group_epsilon=1.0).fit(X, y, r)
    fs = FairSteerer(group_epsilon=1.0).fit(X, y, groups=r)
    w_its, w_fs = its.sample_weight(y, r), fs.sample_weight(y, groups=r)
    assert len(np.unique(w_its.round(12))) == 4  # one weight per (report, label), shrunk by the posterior
    plain = its.steering_.sample_weights(y, r)  # the reports read as groups: the old, unshrunk weights
    assert np.all(np.abs(w_its - 1.0) <= np.abs(plain - 1.0) + 1e-12) and not np.allclose(w_its, plain)
    assert np.corrcoef(w_its, w_fs)[0, 1] > 0.99


def test_label_and_floor_errors_name_the_callers_arguments() -> None:
    X = np.random.default_rng(0).normal(size=(6, 2))
    r = np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="^y contains 2"):
        P.ldp_statistics(X, [0, 1, 0, 1, 0, 2], r, 1.0, label_epsilon=1.0, label_categories=[0, 1])
    with pytest.raises(ValueError, match="psd_floor"):
        P.fit_private_model(X, [0, 1, 0, 1, 0, 1], r, 1.0, psd_floor=-1)
    with pytest.raises(ValueError, match="label_epsilon=2.5e-09 is too small"):
        P.fit_private_model(X, [0, 1, 2, 0, 1, 2], r, 1.0, label_epsilon=2.5e-9, label_categories=[0, 1, 2])
