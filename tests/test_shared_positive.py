"""The positive-class shared target: invertible label-free maps carry every group's positive class exactly onto one
law, so any downstream model has equal TPR across groups, and no group's class experiment is levelled down."""

from __future__ import annotations

import numpy as np
import pytest
from _downstream import steered_separability_groups, true_model_rates, two_separability_cells
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair import FairSteerer
from steerfair.datasets import separability_groups
from steerfair.representations import IdealTemplateSteering
from steerfair.shared_positive import fit_shared_positive, solve_shared_positive

seeds = st.integers(0, 2**31 - 1)


def random_cells(seed: int, k: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Positive-class means ``(k, d)`` and well-conditioned covariances ``(k, d, d)`` in units that differ by group."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * rng.uniform(0.1, 10.0, size=(k, 1))
    B = rng.normal(size=(k, d, d))
    covs = B @ np.swapaxes(B, 1, 2) / d + rng.uniform(0.2, 1.0, size=(k, 1, 1)) * np.eye(d)
    return means, covs * rng.uniform(0.01, 100.0, size=(k, 1, 1))


@given(seed=seeds, k=st.integers(1, 4), d=st.integers(1, 8), weights=st.lists(st.floats(0.1, 10.0), min_size=4))
@settings(max_examples=80, deadline=None)
def test_every_group_positive_law_lands_exactly_on_the_target(seed: int, k: int, d: int, weights: list[float]) -> None:
    means, covs = random_cells(seed, k, d)
    w = np.asarray(weights[:k])
    target = solve_shared_positive(means, covs, weights=w)
    assert target.reference == int(np.argmax(w))  # the largest group is the target, and it does not move
    ref = target.garblings[target.reference].linear
    assert np.array_equal(ref.A, np.eye(d)) and np.array_equal(ref.b, np.zeros(d))
    scale = np.abs(target.cov).max()
    for a in range(k):
        K = target.garblings[a]
        assert K.is_deterministic
        mean, cov = K.push(means[a], covs[a])
        np.testing.assert_allclose(mean, target.mean, rtol=0, atol=1e-9 * max(1.0, np.abs(target.mean).max()))
        np.testing.assert_allclose(cov, target.cov, rtol=0, atol=1e-9 * scale)
        A = K.linear.A  # symmetric positive definite: an invertible map, the group's experiment is kept whole
        np.testing.assert_allclose(A, A.T, rtol=0, atol=1e-12 * np.abs(A).max())
        assert np.linalg.eigvalsh(A)[0] > 0


def test_reference_index_and_label_choose_the_target() -> None:
    means, covs = random_cells(3, 3, 2)
    assert solve_shared_positive(means, covs, reference=2).reference == 2
    with pytest.raises(ValueError, match="reference"):
        solve_shared_positive(means, covs, reference=3)
    with pytest.raises(ValueError, match="weights"):
        solve_shared_positive(means, covs, weights=[1.0, 2.0])
    X, y, g = separability_groups(2000, 2, np.random.default_rng(0))
    labels = np.where(g == 0, "a", "b")
    fs = FairSteerer(target="shared_positive", reference="b", random_state=0).fit(X, y, groups=labels)
    assert fs.shared_.target.reference == 1
    with pytest.raises(ValueError, match="reference"):
        FairSteerer(target="shared_positive", reference="c").fit(X, y, groups=labels)


def test_more_than_two_classes_are_refused_with_a_pointer() -> None:
    rng = np.random.default_rng(1)
    X, g = rng.normal(size=(600, 3)), rng.integers(0, 2, 600)
    y = rng.integers(0, 3, 600)
    with pytest.raises(ValueError, match="two classes.*target='shared'"):
        FairSteerer(target="shared_positive").fit(X, y, groups=g)
    with pytest.raises(ValueError, match="two classes"):
        IdealTemplateSteering(target="shared_positive").fit(X, y, g)


@pytest.mark.parametrize("d", [2, 5])
def test_every_downstream_model_has_equal_tpr(d: int) -> None:
    rates, bound, _ = steered_separability_groups("shared_positive", d, 200 + d)
    for name, r in rates.items():
        assert np.ptp(r.tpr) <= bound, (name, r.tpr, bound)


def mahalanobis_separation(X: np.ndarray, y: np.ndarray) -> float:
    """The class-mean distance in the pooled within-class metric of one group's rows."""
    d = X[y == 1].mean(0) - X[y == 0].mean(0)
    S = 0.5 * (np.cov(X[y == 0], rowvar=False) + np.cov(X[y == 1], rowvar=False))
    return float(np.sqrt(d @ np.linalg.solve(np.atleast_2d(S), d)))


def test_no_group_is_levelled_down_unlike_the_shared_target() -> None:
    """Group 0 is the more separable (2.8 against 1.2). The all-class shared target garbles it down to 1.2; the
    positive-class target moves it by an invertible map, so its separation (an affine invariant) stays 2.8."""
    rng = np.random.default_rng(7)
    X, y, g = separability_groups(60_000, 3, rng)
    sep = {}
    for target in ("shared", "shared_positive"):
        out = FairSteerer(target=target, random_state=0).fit_transform(X, y, groups=g)
        sep[target] = [mahalanobis_separation(out[g == a], y[g == a]) for a in (0, 1)]
    raw = [mahalanobis_separation(X[g == a], y[g == a]) for a in (0, 1)]
    np.testing.assert_allclose(sep["shared_positive"], raw, rtol=1e-9)
    assert abs(sep["shared"][0] - raw[1]) < 0.1 and raw[0] - sep["shared"][0] > 1.0


def test_group_rows_move_by_one_invertible_affine_map_and_strength_zero_is_the_identity() -> None:
    X, y, g = separability_groups(4000, 3, np.random.default_rng(2))
    fs = FairSteerer(target="shared_positive", random_state=0).fit(X, y, groups=g)
    out = fs.transform(X, groups=g)
    moved = 1 - fs.shared_.target.reference
    K = fs.shared_.coordinates.lift_map(fs.shared_.target.garblings[moved].linear)  # in input units
    expect = K(X[g == moved])
    np.testing.assert_allclose(out[g == moved], expect, rtol=0, atol=1e-10 * np.abs(X).max())
    assert np.array_equal(out[g != moved], X[g != moved])  # the reference group is not moved
    assert np.array_equal(fs.set_params(strength=0.0).transform(X, groups=g), X)


def test_the_true_maps_equalise_tpr_in_law_and_not_fpr() -> None:
    """With the true model's maps the positive laws are equal exactly: the TPR gap is Monte Carlo error only; the
    negative class is not aligned, so the FPR gap stays (the target promises equal opportunity, not equalized odds)."""
    r, (tpr_bound, _) = true_model_rates(fit_shared_positive(two_separability_cells()), 12)
    assert np.ptp(r.tpr) <= tpr_bound and np.ptp(r.fpr) > 0.05


@pytest.mark.parametrize("how", ["probe", "soft", "private"])
def test_unknown_soft_or_private_groups_draw_each_row_group(how: str) -> None:
    """Without groups the probe's P(A | x), with soft groups their probabilities, with privatised reports the
    posterior pick each row's map; every steered row is either unmoved (the reference group's identity) or moved by
    the other group's map, never anything else."""
    X, y, g = separability_groups(4000, 2, np.random.default_rng(9))
    kwargs = {"group_epsilon": 2.0} if how == "private" else {}
    groups = {"probe": g, "soft": np.eye(2)[g] * 0.8 + 0.1, "private": g}[how]
    fs = FairSteerer(target="shared_positive", random_state=0, **kwargs).fit(X, y, groups=groups)
    out = fs.transform(X) if how == "probe" else fs.transform(X, groups=groups)
    target = fs.shared_.target
    other = fs.shared_.coordinates.lift_map(target.garblings[1 - target.reference].linear)
    kept = np.all(out == X, axis=1)
    moved = np.all(np.isclose(out, other(X), rtol=0, atol=1e-9 * np.abs(X).max()), axis=1)
    assert np.all(kept | moved) and kept.any() and moved.any()


def test_auto_marginals_steer_the_flags_a_model_reads() -> None:
    """With ``marginals="auto"`` and ``discrete=None`` a two-valued column whose law differs between the groups'
    positive rows is steered as ``marginals="copula", discrete="copula"`` steers it, not passed through (before,
    "auto" resolved the discrete columns as for Gaussian marginals and left the flag as it was). The copula matches
    two moments of the normal scores, so the positive-class shares come closer, not equal (docs/shared_target.md
    section 11)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 20_000
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.4).astype(int)
    flag = (rng.random(n) < np.where(y == 1, 0.5 + 0.3 * g, 0.3)).astype(float)
    df = pd.DataFrame({"x0": rng.normal(size=n) + y + 0.5 * g, "x1": rng.normal(size=n) * (1 + g), "flag": flag})
    steer = FairSteerer(target="shared_positive", random_state=0).fit(df, y, groups=g)
    assert steer.marginals_ == "copula" and steer.discrete_mode_ == "copula"
    assert 2 in steer.steer_columns_.tolist()
    out = steer.transform(df, groups=g)
    share = [out["flag"][(y == 1) & (g == a)].mean() for a in (0, 1)]
    raw = [flag[(y == 1) & (g == a)].mean() for a in (0, 1)]
    assert abs(raw[0] - raw[1]) > 0.25 and abs(share[0] - share[1]) < 0.5 * abs(raw[0] - raw[1])
    explicit = FairSteerer(target="shared_positive", marginals="copula", discrete="copula", random_state=0)
    assert np.array_equal(explicit.fit(df, y, groups=g).transform(df, groups=g).to_numpy(), out.to_numpy())
    plain = FairSteerer(target="shared_positive", random_state=0).fit(df[["x0", "x1"]], y, groups=g)
    assert plain.discrete_mode_ == "passthrough"  # no two-valued column: resolved as before
