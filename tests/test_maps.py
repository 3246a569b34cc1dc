"""Invariants of affine maps and Gaussian transport maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _random_models import random_spd
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair import AffineMap, Gaussian, LogNormal, bures_barycenter, gaussian_ot_map, mean_shift_map
from steerfair.maps import ot_map_matrix

seeds = st.integers(0, 10_000)
dims = st.integers(1, 8)


def _rand_map(rng: np.random.Generator, d: int, low_rank: bool) -> AffineMap:
    if low_rank:
        r = int(rng.integers(0, d + 1))
        return AffineMap.low_rank(0.3 * rng.normal(size=(d, r)), 0.3 * rng.normal(size=(d, r)), rng.normal(size=d))
    return AffineMap(rng.normal(size=(d, d)) + 2 * np.eye(d), rng.normal(size=d))


@given(seed=seeds, d=dims)
@settings(max_examples=40, deadline=None)
def test_ot_map_pushes_source_exactly_onto_target(seed: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    s = Gaussian(rng.normal(size=d), random_spd(rng, d, cond=50))
    t = Gaussian(rng.normal(size=d), random_spd(rng, d, cond=50))
    f = gaussian_ot_map(s, t)
    A = f.A
    np.testing.assert_allclose(A, A.T, atol=1e-12)
    assert np.linalg.eigvalsh(A).min() > 0
    pushed = s.pushforward(f)
    np.testing.assert_allclose(pushed.mean, t.mean, atol=1e-9)
    np.testing.assert_allclose(pushed.cov, t.cov, rtol=1e-8, atol=1e-9 * np.abs(t.cov).max())


@given(seed=seeds, d=dims)
@settings(max_examples=25, deadline=None)
def test_ot_map_matches_pot_and_concept_erasure(seed: int, d: int) -> None:
    ot = pytest.importorskip("ot")
    ce = pytest.importorskip("concept_erasure")
    rng = np.random.default_rng(seed)
    S1, S2 = random_spd(rng, d), random_spd(rng, d)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    A = ot_map_matrix(S1, S2)
    # POT's closed form for Gaussian OT between N(m1, S1) and N(m2, S2)
    A_pot, b_pot = ot.gaussian.bures_wasserstein_mapping(m1[None], m2[None], S1, S2)
    np.testing.assert_allclose(A, np.asarray(A_pot), rtol=1e-7, atol=1e-9)
    f = gaussian_ot_map(Gaussian(m1, S1), Gaussian(m2, S2))
    np.testing.assert_allclose(f.b, np.asarray(b_pot).ravel(), rtol=1e-7, atol=1e-8)
    A_ce = ce.optimal_transport.ot_map(torch.tensor(S1), torch.tensor(S2)).numpy()
    np.testing.assert_allclose(A, A_ce, rtol=1e-6, atol=1e-8)


@given(seed=seeds, d=dims, lr1=st.booleans(), lr2=st.booleans())
@settings(max_examples=40, deadline=None)
def test_compose_and_inverse_identities(seed: int, d: int, lr1: bool, lr2: bool) -> None:
    rng = np.random.default_rng(seed)
    f, g = _rand_map(rng, d, lr1), _rand_map(rng, d, lr2)
    x = rng.normal(size=(5, d))
    np.testing.assert_allclose(f.compose(g)(x), f(g(x)), atol=1e-9)
    if lr1 and lr2:
        assert f.compose(g).is_low_rank
    cond = np.linalg.cond(f.A)
    if cond < 1e6:
        finv = f.inverse()
        np.testing.assert_allclose(finv(f(x)), x, atol=1e-8 * cond)
        np.testing.assert_allclose(f.compose(finv).A, np.eye(d), atol=1e-8 * cond)
        assert finv.is_low_rank == f.is_low_rank


@given(seed=seeds, d=dims, lr=st.booleans())
@settings(max_examples=30, deadline=None)
def test_low_rank_equals_dense(seed: int, d: int, lr: bool) -> None:
    rng = np.random.default_rng(seed)
    f = _rand_map(rng, d, True)
    dense = f.to_dense()
    x = rng.normal(size=(4, d))
    np.testing.assert_allclose(f(x), dense(x), atol=1e-12)
    np.testing.assert_allclose(dense.to_low_rank()(x), dense(x), atol=1e-10)
    assert dense.to_low_rank().rank <= (f.rank or 0)


@given(seed=seeds, d=dims, lr=st.booleans())
@settings(max_examples=20, deadline=None)
def test_save_load_round_trip_is_bit_identical(
    tmp_path_factory: pytest.TempPathFactory, seed: int, d: int, lr: bool
) -> None:
    rng = np.random.default_rng(seed)
    f = _rand_map(rng, d, lr)
    f.meta["note"] = "unit"
    path = tmp_path_factory.mktemp("maps") / "map.safetensors"
    f.save(path)
    g = AffineMap.load(path)
    assert g == f and g.meta == {"note": "unit"}
    assert np.array_equal(g.A, f.A) and np.array_equal(g.b, f.b)


def test_map_metadata_round_trips_numpy_values_and_refuses_others(tmp_path) -> None:  # noqa: ANN001
    """Metadata was written with ``default=str``: ``np.int64(3)`` came back as ``"3"``, silently."""
    f = AffineMap(np.eye(2), meta={"n": np.int64(3), "w": np.array([0.5, 1.5]), "t": (1, 2), "x": np.float32(0.25)})
    f.save(tmp_path / "m.safetensors")
    assert AffineMap.load(tmp_path / "m.safetensors").meta == {"n": 3, "w": [0.5, 1.5], "t": [1, 2], "x": 0.25}
    with pytest.raises(TypeError, match="AffineMap.meta must hold JSON values"):
        AffineMap(np.eye(2), meta={"when": object()}).save(tmp_path / "other.safetensors")
    assert not (tmp_path / "other.safetensors").exists()


def test_load_rejects_foreign_file(tmp_path) -> None:
    from safetensors.numpy import save_file

    save_file({"A": np.eye(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a steerfair AffineMap"):
        AffineMap.load(tmp_path / "x.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")  # a damaged file, a clear error
    with pytest.raises(ValueError, match="cannot read AffineMap file .*broken.safetensors"):
        AffineMap.load(tmp_path / "broken.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AffineMap.load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("lr", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_torch_application_matches_numpy(lr: bool, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(0)
    f = _rand_map(rng, 6, lr)
    x = torch.tensor(rng.normal(size=(2, 3, 6)), dtype=dtype)
    y = f(x)
    assert y.dtype == dtype and y.shape == x.shape
    ref = f(x.double().numpy().reshape(-1, 6)).reshape(2, 3, 6)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 0.1}[dtype]
    np.testing.assert_allclose(y.double().numpy(), ref, atol=tol)


def test_numpy_dtype_is_kept() -> None:
    f = AffineMap(2 * np.eye(3), np.ones(3))
    assert f(np.ones((2, 3), dtype=np.float32)).dtype == np.float32


def test_mean_shift_and_lognormal_maps() -> None:
    rng = np.random.default_rng(0)
    s, t = Gaussian(rng.normal(size=3), random_spd(rng, 3)), Gaussian(rng.normal(size=3), random_spd(rng, 3))
    f = mean_shift_map(s, t)
    np.testing.assert_allclose(s.pushforward(f).mean, t.mean)
    np.testing.assert_allclose(s.pushforward(f).cov, s.cov)
    ls, lt = LogNormal(s.mean, s.cov), LogNormal(t.mean, t.cov)
    g = gaussian_ot_map(ls, lt)
    np.testing.assert_allclose(ls.pushforward(g).cov, lt.cov, atol=1e-10)


@given(seed=seeds, d=st.integers(1, 5), k=st.integers(2, 4))
@settings(max_examples=20, deadline=None)
def test_barycenter_fixed_point(seed: int, d: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    Cs = [random_spd(rng, d) for _ in range(k)]
    w = rng.dirichlet(np.ones(k))
    S = bures_barycenter(Cs, w)
    # first-order optimality: the weighted mean of the OT maps from S to the C_k is the identity
    T = sum(wk * ot_map_matrix(S, C) for wk, C in zip(w, Cs, strict=True))
    np.testing.assert_allclose(T, np.eye(d), atol=1e-8)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: AffineMap(np.eye(3), np.zeros(2)), "length 2"),
        (lambda: AffineMap(np.eye(3))(np.zeros((2, 4))), "last dimension 4"),
        (lambda: AffineMap(np.array([[np.nan]])), "NaN"),
        (lambda: AffineMap(np.zeros((2, 2))).inverse(), "singular"),
        (lambda: AffineMap(np.eye(2)).compose(AffineMap(np.eye(3))), "compose"),
        (lambda: AffineMap.low_rank(np.zeros((3, 1)), np.zeros((2, 1))), r"\(d, r\)"),
        (lambda: gaussian_ot_map(Gaussian(np.zeros(2), np.eye(2)), Gaussian(np.zeros(3), np.eye(3))), "dimension"),
    ],
)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), r=st.integers(1, 4))
def test_to_low_rank_truncates_a_low_rank_map_to_its_best_rank_r_part(seed: int, r: int) -> None:
    """``to_low_rank(r)`` on an identity-plus-rank-5 map returned it unchanged; now the best rank-``r`` part of its
    update (the tail singular values are the Frobenius error), bias kept."""
    rng = np.random.default_rng(seed)
    U, V, b = rng.normal(size=(7, 5)), rng.normal(size=(7, 5)), rng.normal(size=7)
    T = AffineMap.low_rank(U, V, b)
    short = T.to_low_rank(r)
    s = np.linalg.svd(U @ V.T, compute_uv=False)
    assert short.rank == r and np.array_equal(short.b, T.b)
    err = np.linalg.norm((short.A - np.eye(7)) - U @ V.T)
    assert err == pytest.approx(np.sqrt(np.sum(s[r:] ** 2)), rel=1e-9, abs=1e-12)
    assert T.to_low_rank(5) is T and T.to_low_rank(9) is T


def _scaled_pair(rng: np.random.Generator, d: int, decades: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two covariances in coordinates whose standard deviations span ``2 * decades`` orders of magnitude."""
    scale = 10.0 ** rng.uniform(-decades, decades, size=d)
    C1, C2 = random_spd(rng, d, cond=20), random_spd(rng, d, cond=20)
    return scale[:, None] * C1 * scale[None, :], scale[:, None] * C2 * scale[None, :], scale


@given(seed=seeds, d=st.integers(2, 8), decades=st.floats(0.0, 3.0))
@settings(max_examples=40, deadline=None)
def test_ot_map_is_exact_in_every_coordinate_whatever_the_units(seed: int, d: int, decades: float) -> None:
    """``A S1 A = S2`` to rounding in correlation units, with standard deviations from 1e-3 to 1e3 (the symmetric
    root of S1 lost the small coordinates: 100 % error in them at 1e3 / 1e-3)."""
    rng = np.random.default_rng(seed)
    S1, S2, scale = _scaled_pair(rng, d, decades)
    A = ot_map_matrix(S1, S2)
    assert np.array_equal(A, A.T)
    sd = np.sqrt(np.diag(S2))
    np.testing.assert_allclose((A @ S1 @ A) / np.outer(sd, sd), S2 / np.outer(sd, sd), rtol=0, atol=1e-10)
    # positive definite in the scaled coordinates (the OT map is the unique symmetric PD solution)
    assert np.linalg.eigvalsh(A * np.outer(scale, scale)).min() > 0


@given(seed=seeds, d=st.integers(2, 6), decades=st.floats(0.0, 3.0), t=st.floats(0.1, 0.9))
@settings(max_examples=25, deadline=None)
def test_barycenter_of_two_is_the_mccann_interpolant_whatever_the_units(
    seed: int, d: int, decades: float, t: float
) -> None:
    """The W2 barycenter of two Gaussians with weights (1 - t, t) is the point t of the geodesic,
    ``M S1 M`` with ``M = (1 - t) I + t A``: checked in correlation units at badly scaled coordinates."""
    rng = np.random.default_rng(seed)
    S1, S2, _ = _scaled_pair(rng, d, decades)
    M = (1 - t) * np.eye(d) + t * ot_map_matrix(S1, S2)
    want = M @ S1 @ M
    got = bures_barycenter([S1, S2], [1 - t, t])
    sd = np.sqrt(np.diag(want))
    np.testing.assert_allclose(got / np.outer(sd, sd), want / np.outer(sd, sd), rtol=0, atol=1e-9)


def test_barycenter_checks_its_iteration_settings_and_warns_when_it_stops_early() -> None:
    covs = [np.eye(2), np.diag([4.0, 1.0]), np.array([[2.0, 0.9], [0.9, 1.0]])]
    for bad, match in (({"max_iter": 0}, "max_iter"), ({"max_iter": -5}, "max_iter"), ({"tol": -1.0}, "tol")):
        with pytest.raises(ValueError, match=match):
            bures_barycenter(covs, **bad)
    with pytest.raises((TypeError, ValueError), match="tol"):
        bures_barycenter(covs, tol=float("nan"))
    with pytest.warns(RuntimeWarning, match="did not converge in max_iter=1"):
        bures_barycenter(covs, max_iter=1)


def test_inverse_of_a_change_of_units_is_exact_and_singular_maps_are_refused() -> None:
    """A diagonal change of units has condition number 1e16 but is exactly invertible (was: "singular")."""
    x = np.array([[3.0, -4.0]])
    T = AffineMap(np.diag([1e-8, 1e8]), np.array([1.0, 2.0]))
    np.testing.assert_allclose(T.inverse()(T(x)), x, rtol=1e-14)
    # as I + U V^T the forward map itself rounds x + (1e-8 - 1) x to about 1e-16 / 1e-8 relative
    low = AffineMap.low_rank(np.eye(2), np.diag([1e-8, 1e8]) - np.eye(2))
    np.testing.assert_allclose(low.inverse()(low(x)), x, rtol=1e-7)
    scaled_singular = np.diag([1e-8, 1e8]) @ np.array([[1.0, 2.0], [2.0, 4.0 + 1e-16]])
    with pytest.raises(ValueError, match="singular"):
        AffineMap(scaled_singular).inverse()
    with pytest.raises(ValueError, match="singular"):
        AffineMap.low_rank(np.ones((2, 1)), -np.array([[1.0], [0.0]])).inverse()  # I + u v^T with v^T u = -1


@given(st.sampled_from([1e-170, 1e-160, 1e-100, 1.0, 1e100, 1e160, 1e170]))
@settings(max_examples=7, deadline=None)
def test_the_ot_matrix_does_not_depend_on_a_common_scale(scale: float) -> None:
    """``A`` is the same for ``(c S1, c S2)``: at covariances of size 1e-170 it was 0 (underflow in ``L^T S2 L``),
    at 1e160 NaN."""
    S1 = np.array([[2.0, 0.3], [0.3, 0.5]])
    S2 = np.array([[1.0, -0.4], [-0.4, 3.0]])
    np.testing.assert_allclose(ot_map_matrix(S1 * scale, S2 * scale), ot_map_matrix(S1, S2), rtol=1e-12)


def test_bad_ot_inputs_and_nearly_singular_low_rank_inverses_are_refused(tmp_path) -> None:  # noqa: ANN001
    S = np.eye(2)
    for S1, S2, match in ((np.array([[1.0, 0.5], [0.0, 1.0]]), S, "symmetric"), (S, np.full((2, 2), np.nan), "finite"),
                          (S, np.eye(3), "one shape")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            ot_map_matrix(S1, S2)
    w = np.array([1.0, 1.0]) / np.sqrt(2)
    nearly = AffineMap.low_rank(w[:, None], -(1 - 1e-15) * w[:, None])  # I - (1 - 1e-15) w w^T: cond ~ 1e15
    with pytest.raises(ValueError, match="singular"):
        nearly.inverse()
    fine = AffineMap.low_rank(w[:, None], -0.5 * w[:, None], np.ones(2))
    x = np.array([[0.3, -1.0]])
    np.testing.assert_allclose(fine.inverse()(fine(x)), x, atol=1e-14)
    path = tmp_path / "m.safetensors"
    fine.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # written through a temporary file, renamed
    np.testing.assert_array_equal(AffineMap.load(path)(x), fine(x))


@given(seed=seeds, d=st.integers(3, 12), decades=st.floats(2.0, 8.0), c=st.floats(0.25, 4.0))
@settings(max_examples=40, deadline=None)
def test_ot_map_of_graded_units_is_exact_where_the_symmetric_root_fails(
    seed: int, d: int, decades: float, c: float
) -> None:
    """Standard deviations spanning up to 16 decades: ``S2 = c^2 S1`` has the closed form ``A = c I``, and a
    general pair is pushed to rounding in correlation units. The symmetric root of ``L^T S2 L`` alone returned a
    singular ``A`` for ``S2 = 4 S1`` at standard deviations 1e-4, 1, 1e4 (``A_00 = 4e-9``), and missed random
    pairs by up to 50 in correlation units."""
    rng = np.random.default_rng(seed)
    S1, S2, _ = _scaled_pair(rng, d, decades)
    np.testing.assert_allclose(ot_map_matrix(S1, c**2 * S1), c * np.eye(d), rtol=0, atol=1e-12 * c)
    A = ot_map_matrix(S1, S2)
    sd = np.sqrt(np.diag(S2))
    np.testing.assert_allclose((A @ S1 @ A) / np.outer(sd, sd), S2 / np.outer(sd, sd), rtol=0, atol=1e-10)
    root = np.sqrt(np.diag(A))  # positive definite, judged on A's own correlation matrix (graded A is not
    assert np.linalg.eigvalsh(A / np.outer(root, root)).min() > 0  # resolved by eigvalsh in any fixed units)


def test_ot_map_at_opposite_extreme_scales_and_indefinite_covariances_refused() -> None:
    """Each covariance is brought to unit scale on its own (one common scale left 1e-170 I subnormal beside
    1e170 I: A was 0); indefinite and negative-variance inputs are refused (they returned A = diag(1, 0))."""
    np.testing.assert_allclose(ot_map_matrix(1e-170 * np.eye(2), 1e170 * np.eye(2)), 1e170 * np.eye(2), rtol=1e-14)
    np.testing.assert_allclose(ot_map_matrix(1e170 * np.eye(2), 1e-170 * np.eye(2)), 1e-170 * np.eye(2), rtol=1e-14)
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])
    for S1, S2, match in ((np.diag([1.0, -1.0]), np.eye(2), "S1 has a negative variance"),
                          (np.eye(2), -np.eye(2), "S2 has a negative variance"),
                          (indefinite, np.eye(2), "S1 is not positive semi-definite"),
                          (np.eye(2), indefinite, "S2 is not positive semi-definite")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            ot_map_matrix(S1, S2)
    # positive semi-definite target: the map is singular and still pushes exactly
    A = ot_map_matrix(np.eye(2), np.diag([1.0, 0.0]))
    np.testing.assert_allclose(A @ A, np.diag([1.0, 0.0]), atol=1e-15)
