"""The trust-region pieces of the affine-family solver (:mod:`steerfair.ideal.affine_newton`): the Cayley
retraction, Steihaug-Toint CG, and the trust-region Newton method on one group's map."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm

from steerfair.ideal.affine_newton import GroupMapProblem, cayley, newton_map, steihaug_cg

seeds = st.integers(0, 10_000)


def _spd(rng: np.random.Generator, n: int, floor: float = 0.2) -> np.ndarray:
    A = rng.normal(size=(n, n))
    return A @ A.T / n + floor * np.eye(n)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, d=st.integers(1, 12))
def test_cayley_of_antisymmetric_is_a_rotation_and_logdet_is_exact(seed: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d))
    G = A - A.T
    C, ld = cayley(G)
    np.testing.assert_allclose(C @ C.T, np.eye(d), atol=1e-10)
    assert abs(ld) < 1e-10
    H = rng.normal(scale=0.5, size=(d, d))
    C, ld = cayley(H)
    sign, ref = np.linalg.slogdet(C)
    assert sign != 0 and ld == pytest.approx(ref, abs=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_cayley_agrees_with_exp_to_second_order(seed: int) -> None:
    """``cayley(tG) - expm(tG) = O(t^3)``: halving t divides the difference by about 8."""
    G = np.random.default_rng(seed).normal(size=(5, 5))
    err = [np.linalg.norm(cayley(t * G)[0] - expm(t * G)) for t in (1e-2, 5e-3)]
    assert 6.0 < err[0] / err[1] < 10.0


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(2, 30))
def test_steihaug_interior_step_is_the_newton_step(seed: int, n: int) -> None:
    """Convex model, radius out of reach: the step solves ``H s = -g`` (to the CG tolerance)."""
    rng = np.random.default_rng(seed)
    H, Mi = _spd(rng, n), np.linalg.inv(_spd(rng, n))
    g = rng.normal(size=n)
    s, Hs, norm, _ = steihaug_cg(lambda v: H @ v, g, lambda v: Mi @ v, 1e12, 1e-12, 10 * n)
    np.testing.assert_allclose(s, np.linalg.solve(H, -g), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(Hs, H @ s, atol=1e-8)
    M = np.linalg.inv(Mi)
    assert norm == pytest.approx(np.sqrt(s @ M @ s), rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(2, 30), negative=st.booleans())
def test_steihaug_stops_on_the_boundary_of_the_metric_ball(seed: int, n: int, negative: bool) -> None:
    """A small radius, or an indefinite model: the step lies on ``||s||_M = radius`` and decreases the model."""
    rng = np.random.default_rng(seed)
    H = _spd(rng, n)
    if negative:
        H -= 3.0 * np.linalg.eigvalsh(H).max() * np.outer(np.ones(n), np.ones(n)) / n
    M = _spd(rng, n)
    Mi = np.linalg.inv(M)
    g = rng.normal(size=n)
    newton_norm = np.sqrt(max(np.linalg.solve(H, g) @ M @ np.linalg.solve(H, g), 0.0))
    radius = 0.1 * newton_norm if not negative else 10.0 * newton_norm + 1.0
    s, Hs, norm, _ = steihaug_cg(lambda v: H @ v, g, lambda v: Mi @ v, radius, 1e-12, 10 * n)
    if not negative or norm == pytest.approx(radius):
        assert np.sqrt(s @ M @ s) == pytest.approx(radius, rel=1e-8)
    assert g @ s + 0.5 * s @ H @ s < 0.0


def _problem(seed: int, d: int, m: int) -> GroupMapProblem:
    rng = np.random.default_rng(seed)
    covs = np.array([_spd(rng, d, 0.5) for _ in range(m)])
    t_covs = np.array([_spd(rng, d, 0.5) for _ in range(m)])
    return GroupMapProblem(
        np.linalg.inv(covs),
        rng.normal(size=(m, d)),
        np.linalg.slogdet(covs)[1],
        rng.dirichlet(np.full(m, 5.0)),
        rng.normal(size=(m, d)),
        t_covs,
        np.linalg.slogdet(t_covs)[1],
    )


@settings(max_examples=15, deadline=None)
@given(seed=seeds, d=st.integers(1, 16), m=st.integers(2, 3))
def test_trust_region_never_rises_and_ends_at_a_critical_point(seed: int, d: int, m: int) -> None:
    problem = _problem(seed, d, m)
    X0 = problem.matched_start()
    res = newton_map(problem, X0)
    assert res.value <= problem.value(X0) + 1e-12
    assert res.value == pytest.approx(problem.value(res.X), abs=1e-10)
    assert res.converged and res.grad_norm < 1e-5
    # no small move along a random direction lowers the value: a local minimum, not a saddle
    rng = np.random.default_rng(seed)
    for _ in range(5):
        E = rng.normal(size=(d, d))
        E *= 1e-4 / np.linalg.norm(E)
        assert problem.value(res.X @ (np.eye(d) + E)) >= res.value - 1e-12


def test_trust_region_resumes_from_a_collapsed_radius() -> None:
    """A radius left tiny by an earlier call and the ``RESUME_RADIUS`` floor: the method still converges, and a
    collapsed radius with a large gradient is not reported as converged."""
    problem = _problem(3, 8, 3)
    X0 = problem.matched_start()
    stuck = newton_map(problem, X0, radius=1e-20)
    assert not stuck.converged and stuck.value == pytest.approx(problem.value(X0))
    resumed = newton_map(problem, X0, radius=1e-3)
    assert resumed.converged and resumed.value < stuck.value


@settings(max_examples=20, deadline=None)
@given(seed=seeds, n=st.integers(2, 20), memory=st.integers(0, 5))
def test_anderson_descent_never_above_the_plain_round_and_reaches_the_minimum(seed: int, n: int, memory: int) -> None:
    """Block Gauss-Seidel on a strongly coupled convex quadratic: every accepted point is at most the plain
    round's value from the same point, and the end is the minimiser."""
    from steerfair.ideal.anderson import anderson_descent

    rng = np.random.default_rng(seed)
    A = _spd(rng, n, 0.05)
    b = rng.normal(size=n)
    xstar = np.linalg.solve(A, b)

    def objective(x: np.ndarray) -> float:
        return float(0.5 * x @ A @ x - b @ x)

    def gauss_seidel(x: np.ndarray) -> tuple[np.ndarray, bool]:
        x = x.copy()
        for j in range(n):
            x[j] += (b[j] - A[j] @ x) / A[j, j]
        return x, True

    seen: list[tuple[float, float]] = []

    def watched(x: np.ndarray) -> tuple[np.ndarray, bool]:
        g, ok = gauss_seidel(x)
        seen.append((objective(x), objective(g)))
        return g, ok

    res = anderson_descent(watched, objective, np.zeros(n), memory=memory, max_rounds=20_000, rtol=1e-15)
    values = [v for v, _ in seen]
    assert all(b2 <= a2 + 1e-12 for a2, b2 in pairwise(values))  # starts of rounds never rise
    assert res.value <= objective(xstar) + 1e-9 * max(1.0, abs(objective(xstar)))
    if memory == 0:
        assert res.extrapolated == 0


def test_anderson_descent_cuts_the_rounds_of_a_slow_alternation() -> None:
    from steerfair.ideal.anderson import anderson_descent

    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    A = (Q * np.geomspace(1e-3, 1.0, 30)) @ Q.T
    b = rng.normal(size=30)

    def objective(x: np.ndarray) -> float:
        return float(0.5 * x @ A @ x - b @ x)

    def gauss_seidel(x: np.ndarray) -> tuple[np.ndarray, bool]:
        x = x.copy()
        for j in range(30):
            x[j] += (b[j] - A[j] @ x) / A[j, j]
        return x, True

    plain = anderson_descent(gauss_seidel, objective, np.zeros(30), memory=0, max_rounds=100_000, rtol=1e-14)
    fast = anderson_descent(gauss_seidel, objective, np.zeros(30), memory=5, max_rounds=100_000, rtol=1e-14)
    assert fast.value <= plain.value + 1e-10
    assert fast.rounds * 3 < plain.rounds


@pytest.mark.parametrize("memory", [-1, 1.5, "3"])
def test_anderson_descent_rejects_a_bad_memory(memory: object) -> None:
    from steerfair.ideal.anderson import anderson_descent

    with pytest.raises(ValueError, match="memory"):
        anderson_descent(lambda x: (x, True), lambda x: 0.0, np.zeros(2), memory=memory)  # type: ignore[arg-type]


@settings(max_examples=20, deadline=None)
@given(seed=seeds, d=st.integers(1, 10), m=st.integers(2, 3))
def test_group_problem_with_diagonal_precisions_is_the_rotated_dense_problem(seed: int, d: int, m: int) -> None:
    """Diagonal precisions take a factorisation-free path; the group's objective (value and gradient at a map) is
    the same as for the cells rotated by an orthogonal ``Q`` (dense precisions, the general path) at ``Q L``."""
    rng = np.random.default_rng(seed)
    diags = rng.uniform(0.3, 3.0, size=(m, d))
    means = rng.normal(size=(m, d))
    w = rng.dirichlet(np.full(m, 3.0))
    t_means, t_covs = rng.normal(size=(m, d)), np.array([_spd(rng, d) for _ in range(m)])
    t_logdets = np.array([np.linalg.slogdet(O)[1] for O in t_covs])
    logdets = -np.log(diags).sum(axis=1)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    diag_problem = GroupMapProblem(np.array([np.diag(p) for p in diags]), means, logdets, w, t_means, t_covs, t_logdets)
    dense = np.array([Q @ np.diag(p) @ Q.T for p in diags])
    dense_problem = GroupMapProblem(dense, means @ Q.T, logdets, w, t_means, t_covs, t_logdets)
    L = np.eye(d) + 0.3 * rng.normal(size=(d, d))
    X_diag, X_dense = diag_problem.to_x(L), dense_problem.to_x(Q @ L)
    assert diag_problem.value(X_diag) == pytest.approx(dense_problem.value(X_dense), rel=1e-9, abs=1e-9)
    Ld, cd = diag_problem.to_map(X_diag)
    Lq, cq = dense_problem.to_map(X_dense)
    np.testing.assert_allclose(Q @ Ld, Lq, atol=1e-8 * max(1.0, np.abs(Lq).max()))
    np.testing.assert_allclose(Q @ cd, cq, atol=1e-8 * max(1.0, np.abs(cq).max()))
    assert np.all(diag_problem.U == np.diag(np.diag(diag_problem.U)))  # the fast path was taken
    assert diag_problem.u_diag is not None


@settings(max_examples=40, deadline=None)
@given(seed=seeds, d=st.integers(1, 12))
def test_two_class_matching_by_sorting_is_an_optimal_assignment(seed: int, d: int) -> None:
    """Two classes: the template basis is matched to the group's by sorting (the cost ``log D_jk`` is
    supermodular); the matching costs no more than the Hungarian method's optimum."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(seed)
    m = 2
    precs = np.array([_spd(rng, d) for _ in range(m)])
    w = rng.dirichlet(np.full(m, 2.0)) * rng.uniform(0.2, 2.0)
    t_covs = np.array([_spd(rng, d) for _ in range(m)])
    t_logdets = np.array([np.linalg.slogdet(O)[1] for O in t_covs])
    logdets = -np.array([np.linalg.slogdet(P)[1] for P in precs])
    problem = GroupMapProblem(precs, rng.normal(size=(m, d)), logdets, w, rng.normal(size=(m, d)), t_covs, t_logdets)
    cost = np.log(problem.D)  # after the matching: the matched pairs lie on the diagonal
    rows, cols = linear_sum_assignment(cost)
    assert np.trace(cost) <= cost[rows, cols].sum() + 1e-9 * max(1.0, np.abs(cost).sum())


@settings(max_examples=50, deadline=None)
@given(slope=st.floats(-10.0, 10.0), curvature=st.floats(-10.0, 10.0))
def test_radius_cut_is_the_clipped_minimiser_of_the_interpolating_quadratic(slope: float, curvature: float) -> None:
    """After a poor step the trust radius is cut by the minimiser of ``slope t + curvature t^2`` (the quadratic
    through the value's change along the step), kept in [1/16, 1/4]; by 1/4 where it has no minimiser in (0, 1)."""
    from steerfair.ideal.affine_newton import _shrink

    factor = _shrink(slope, slope + curvature)
    assert 0.0625 <= factor <= 0.25
    if slope < 0.0 and curvature > 0.0:
        t = -slope / (2.0 * curvature)
        assert factor == pytest.approx(min(0.25, max(0.0625, t)))
    else:
        assert factor == 0.25
