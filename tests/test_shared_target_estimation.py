"""Estimation choices of the shared target (steerfair/shared_target_estimation.py): denoised (shrunk) class means keep
the garbling exact for the shrunk cells and move noisy group deviations toward their common value; the discriminant
coordinates are an orthonormal basis holding the groups' mean-difference direction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair import GroupConditionalModel
from steerfair.evaluation.bios_methods import METHODS, SharedTargetMethod, make_method
from steerfair.shared_target import SharedTargetSteering, class_experiment, solve_shared_target, within_group_laws
from steerfair.shared_target_estimation import discriminant_coordinates, shrink_group_deviations

seeds = st.integers(0, 2**31 - 1)


def problem(seed: int, k: int, m: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class means ``(k, m, d)``, positive-definite covariances ``(k, d, d)`` and cell counts ``(k, m)``."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, m, d)) * rng.uniform(0.3, 3.0, size=(k, 1, 1)) + rng.normal(size=(k, 1, d))
    B = rng.normal(size=(k, d, d))
    covs = B @ np.swapaxes(B, 1, 2) / d + rng.uniform(0.2, 1.0, size=(k, 1, 1)) * np.eye(d)
    counts = rng.integers(3, 400, size=(k, m))
    return means, covs, counts


def loewner_leq(P: np.ndarray, Q: np.ndarray, tol: float = 1e-9) -> bool:
    return bool(np.linalg.eigvalsh(Q - P)[0] >= -tol * max(1.0, np.abs(Q).max()))


@given(seed=seeds, k=st.integers(2, 3), m=st.integers(2, 5), extra=st.integers(0, 3))
@settings(max_examples=40, deadline=None)
def test_garbling_of_the_shrunk_cells_is_exact_and_reachable(seed: int, k: int, m: int, extra: int) -> None:
    means, covs, counts = problem(seed, k, m, m - 1 + extra)
    shrunk = shrink_group_deviations(means, covs, counts)
    assert shrunk.shape == means.shape and np.all(np.isfinite(shrunk))
    target = solve_shared_target(shrunk, covs)
    scale = max(1.0, float(np.abs(target.means).max()))
    for a in range(k):
        K = target.garblings[a]
        assert np.linalg.eigvalsh(K.noise_cov)[0] >= -1e-12 * max(1.0, np.abs(target.cov).max())
        for y in range(m):
            mean, cov = K.push(shrunk[a, y], covs[a])
            np.testing.assert_allclose(mean, target.means[y], rtol=0, atol=1e-9 * scale)
            np.testing.assert_allclose(cov, target.cov, rtol=0, atol=1e-9 * np.abs(target.cov).max())
        assert loewner_leq(target.experiment, class_experiment(shrunk[a], covs[a])[1])


def test_pure_noise_deviations_shrink_to_the_common_deviation() -> None:
    """Groups that differ only by a common shift plus sampling noise: the class-specific parts are removed, so the
    shrunk experiments are (nearly) equal and the garbling adds (nearly) no noise."""
    rng = np.random.default_rng(0)
    k, m, d = 2, 8, 30
    n = np.array([[40] * m, [400] * m])
    base = rng.normal(size=(m, d)) * 3.0
    shift = rng.normal(size=d)
    means = np.stack([base + rng.normal(size=(m, d)) / np.sqrt(n[0, :, None]),
                      base + shift + rng.normal(size=(m, d)) / np.sqrt(n[1, :, None])])  # fmt: skip
    covs = np.stack([np.eye(d)] * k)
    shrunk = shrink_group_deviations(means, covs, n)
    spread = [np.linalg.norm(np.diff(x, axis=0)[0] - np.diff(x, axis=0)[0].mean(axis=0)) for x in (means, shrunk)]
    assert spread[1] < 0.2 * spread[0]
    noise_raw = sum(np.trace(K.noise_cov) for K in solve_shared_target(means, covs).garblings)
    noise_eb = sum(np.trace(K.noise_cov) for K in solve_shared_target(shrunk, covs).garblings)
    assert noise_eb < 0.2 * noise_raw


def test_well_estimated_class_specific_deviations_are_kept() -> None:
    rng = np.random.default_rng(1)
    k, m, d = 2, 6, 5
    means = rng.normal(size=(k, m, d)) * 2.0
    covs = np.stack([np.eye(d)] * k)
    counts = np.full((k, m), 10**7)
    np.testing.assert_allclose(shrink_group_deviations(means, covs, counts), means, atol=1e-4)


@pytest.mark.parametrize(
    ("counts", "match"),
    [(None, "counts are required"), (np.zeros((2, 3)), "positive finite"), (np.ones((3, 3)), r"\(2, 3\)")],
)
def test_shrinkage_refuses_bad_counts(counts: object, match: str) -> None:
    means, covs, _ = problem(0, 2, 3, 4)
    with pytest.raises(ValueError, match=match):
        shrink_group_deviations(means, covs, counts)


def test_shrinkage_refuses_mismatched_shapes() -> None:
    means, covs, counts = problem(0, 2, 3, 4)
    with pytest.raises(ValueError, match="means must be"):
        shrink_group_deviations(means[0], covs, counts)


def _rows(seed: int, n: int = 900, d: int = 12, m: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, m, size=n)
    g = np.where(rng.random(n) < 0.4, "f", "m")
    centers = rng.normal(size=(m, d)) * 2.0
    gender = rng.normal(size=d)
    X = centers[y] + np.where(g == "f", 1.0, 0.0)[:, None] * gender + rng.normal(size=(n, d))
    return X, y.astype(str), g


def test_steering_fit_without_shrinkage_is_unchanged_and_with_it_is_exact() -> None:
    X, y, g = _rows(2)
    model = GroupConditionalModel.fit(X, y, g, shrinkage="oas")
    means, covs = within_group_laws(model)
    plain = SharedTargetSteering.fit(model).target
    ref = solve_shared_target(means, covs)
    np.testing.assert_array_equal(plain.means, ref.means)
    np.testing.assert_array_equal(plain.garblings[0].linear.A, ref.garblings[0].linear.A)
    eb = SharedTargetSteering.fit(model, shrink_means=True).target
    shrunk = shrink_group_deviations(means, covs, model.counts)
    for a in range(2):
        for i in range(model.n_classes):
            np.testing.assert_allclose(eb.garblings[a].push(shrunk[a, i], covs[a])[0], eb.means[i], atol=1e-9)
    with pytest.raises(ValueError, match="shrink_means"):
        SharedTargetSteering.fit(model, shrink_means="yes")  # type: ignore[arg-type]


def test_discriminant_coordinates_are_orthonormal_and_hold_the_group_direction() -> None:
    X, y, g = _rows(3)
    coords = discriminant_coordinates(X, y, g)
    B = coords.basis
    assert B is not None and B.shape == (12, 4)  # m - 1 = 3 discriminant directions + 1 group direction
    np.testing.assert_allclose(B.T @ B, np.eye(B.shape[1]), atol=1e-10)
    diff = X[(g == "f") & (y == "0")].mean(axis=0) - X[(g == "m") & (y == "0")].mean(axis=0)
    dg = sum(np.sum(y == c) * (X[(g == "m") & (y == c)].mean(0) - X[(g == "f") & (y == c)].mean(0))
             for c in np.unique(y))  # fmt: skip
    np.testing.assert_allclose(B @ (B.T @ dg), dg, atol=1e-8 * np.linalg.norm(dg))
    assert np.linalg.norm(B.T @ diff) > 0
    np.testing.assert_allclose(coords.center, X.mean(axis=0))


@pytest.mark.parametrize(("n_directions", "match"), [(0, "n_directions"), (13, "n_directions"), (2.5, "n_directions")])
def test_discriminant_coordinates_refuse_bad_options(n_directions: object, match: str) -> None:
    X, y, g = _rows(4)
    with pytest.raises(ValueError, match=match):
        discriminant_coordinates(X, y, g, n_directions)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one label per row"):
        discriminant_coordinates(X, y[:-1], g)


@pytest.mark.parametrize("name", ["steerfair_shared_lda", "steerfair_shared_eb"])
def test_bios_shared_methods_steer_only_their_subspace(name: str) -> None:
    assert name in METHODS
    X, y, g = _rows(5)
    method = make_method(name, rank=6, random_state=0).fit(X, y, g)
    Z = method.transform(X, g)
    assert Z.shape == X.shape and np.all(np.isfinite(Z))
    B = method.shared_.coordinates.basis
    resid = (Z - X) - (Z - X) @ B @ B.T  # the complement of the steered subspace is not moved
    np.testing.assert_allclose(resid, 0.0, atol=1e-9)
    # the steered training rows have (in-sample) equal class means across groups, in the steered subspace
    P = (Z - X.mean(axis=0)) @ B
    for c in np.unique(y):
        gap = P[(y == c) & (g == "f")].mean(axis=0) - P[(y == c) & (g == "m")].mean(axis=0)
        raw = (X - X.mean(axis=0)) @ B
        raw_gap = raw[(y == c) & (g == "f")].mean(axis=0) - raw[(y == c) & (g == "m")].mean(axis=0)
        assert np.linalg.norm(gap) < 0.6 * np.linalg.norm(raw_gap)


def test_shared_target_method_refuses_bad_options() -> None:
    with pytest.raises(ValueError, match="subspace"):
        SharedTargetMethod("pca")
    with pytest.raises(ValueError, match="rank"):
        SharedTargetMethod("principal", rank=0)
    with pytest.raises(ValueError, match="strength"):
        SharedTargetMethod(strength=2.0)
