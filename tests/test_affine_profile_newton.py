"""Newton on the all-subgroup profile (:mod:`steerfair.ideal.affine_profile_newton`): it never rises, ends at a
stationary point of the whole problem (maps and class prior), agrees with the block-coordinate descent it
accelerates, and leaves an ideal model where it is."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair import Gaussian, GroupConditionalModel
from steerfair.ideal import affine_family as af
from steerfair.ideal.affine_profile import cell_logdets, profile_terms
from steerfair.ideal.affine_profile_newton import profile_newton
from steerfair.ideal.scale_family import CellFactors

seeds = st.integers(0, 10_000)


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    A = rng.normal(size=(d, d))
    return A @ A.T / d + 0.3 * np.eye(d)


def _model(seed: int, d: int, k: int, m: int, ideal_noise: float | None = None) -> GroupConditionalModel:
    """Random cells; with ``ideal_noise``, affine images of shared templates (random non-symmetric maps, kept in
    ``_model.maps``), moved by that much (0: exactly ideal)."""
    rng = np.random.default_rng(seed)
    if ideal_noise is None:
        comps = tuple(tuple(Gaussian(rng.normal(size=d), _spd(rng, d)) for _ in range(m)) for _ in range(k))
    else:
        nus, oms = rng.normal(size=(m, d)), [_spd(rng, d) for _ in range(m)]
        rows, maps = [], []
        for _ in range(k):
            L, c = np.eye(d) + 0.4 * rng.normal(size=(d, d)), rng.normal(size=d)
            maps.append(L)
            rows.append(tuple(
                Gaussian(L @ nu + c + ideal_noise * rng.normal(size=d),
                         L @ om @ L.T + ideal_noise * _spd(rng, d)) for nu, om in zip(nus, oms, strict=True)
            ))  # fmt: skip
        comps = tuple(rows)
        _model.maps = np.array(maps)  # type: ignore[attr-defined]
    gp = rng.dirichlet(np.full(k, 5.0))
    q = rng.dirichlet(np.full(m, 5.0))
    cp = np.tile(q, (k, 1)) if ideal_noise == 0 else rng.dirichlet(np.full(m, 5.0), size=k)
    return GroupConditionalModel(np.arange(k), np.arange(m), gp, cp, comps)


def _setup(model: GroupConditionalModel) -> tuple:
    q0 = model.group_priors @ model.class_priors
    stats = CellFactors.from_components(model.components, model.group_priors[:, None] * q0[None, :])
    return stats, cell_logdets(stats), q0


def _value(model: GroupConditionalModel, stats: CellFactors, L: np.ndarray, q: np.ndarray, gauge: int) -> float:
    import dataclasses

    st_ = dataclasses.replace(stats, weights=model.group_priors[:, None] * q[None, :])
    F, _ = profile_terms(st_, [None if a == gauge else L[a] for a in range(model.n_groups)], gauge, cell_logdets(stats))
    return float(np.sum(st_.weights * F)) + float(
        model.group_priors @ ((np.log(q)[None, :] - np.log(model.class_priors)) @ q)
    )


@settings(max_examples=10, deadline=None)
@given(seed=seeds, d=st.integers(1, 6), k=st.integers(2, 3), m=st.integers(2, 3), congruence=st.booleans())
def test_profile_newton_never_rises_and_ends_stationary(seed: int, d: int, k: int, m: int, congruence: bool) -> None:
    """From a perturbed start the value only falls, and at the end neither a map nor the class prior can lower it:
    the profile gradient's Fisher norm is at rounding level and the closed-form prior update gains nothing. With
    ``congruence`` (two classes), in each group's congruence coordinates: diagonal precisions, the fast path the
    solver takes there."""
    from steerfair.ideal.affine_solve import _CongruenceFrame

    model = _model(seed, d, k, 2 if congruence else m)
    stats, logdets, q0 = _setup(model)
    if congruence:
        stats = _CongruenceFrame.of(stats).apply(stats)
        logdets = cell_logdets(stats)
    rng = np.random.default_rng(seed + 1)
    L0 = np.array([np.eye(d) if a == 0 else np.eye(d) + 0.3 * rng.normal(size=(d, d)) for a in range(k)])
    start = _value(model, stats, L0, q0, 0)
    res = profile_newton(stats, L0, q0, 0, model.group_priors, model.class_priors, logdets)
    assert res.converged
    assert res.value <= start + 1e-12 * max(1.0, abs(start))
    assert res.value == _value(model, stats, res.maps, res.q, 0)
    assert res.grad_fisher <= 1e-12 * max(1.0, abs(res.value))
    np.testing.assert_array_equal(res.maps[0], np.eye(d))
    # no small perturbation of a map lowers the value (first order: a stationary point)
    for _ in range(3):
        E = rng.normal(size=(d, d))
        Lp = res.maps.copy()
        Lp[1] = Lp[1] + 1e-5 * E
        assert _value(model, stats, Lp, res.q, 0) >= res.value - 1e-9 * max(1.0, abs(res.value))
        qp = res.q * np.exp(1e-4 * rng.normal(size=res.q.shape))
        assert _value(model, stats, res.maps, qp / qp.sum(), 0) >= res.value - 1e-9 * max(1.0, abs(res.value))


@settings(max_examples=8, deadline=None)
@given(seed=seeds, d=st.integers(2, 8), k=st.integers(2, 3), m=st.integers(2, 3))
def test_profile_newton_agrees_with_block_coordinate_descent_near_an_ideal(seed: int, d: int, k: int, m: int) -> None:
    """Near an ideal model (one basin) the Newton tail and the plain rounds reach the same minimum."""
    model = _model(seed, d, k, m, ideal_noise=0.05)
    stats, logdets, q0 = _setup(model)
    L0 = [None] * k
    L_alt, q_alt, _ = af._alternate(stats, L0, 0, model.group_priors, model.class_priors, q0, logdets)
    v_alt = _value(model, stats, L_alt, q_alt, 0)
    L1, q1, _ = af._alternate(stats, L0, 0, model.group_priors, model.class_priors, q0, logdets, max_rounds=1)
    res = profile_newton(stats, L1, q1, 0, model.group_priors, model.class_priors, logdets)
    assert res.converged
    assert abs(res.value - v_alt) <= 1e-9 * max(1.0, abs(v_alt)), (res.value, v_alt)


@settings(max_examples=8, deadline=None)
@given(seed=seeds, d=st.integers(1, 8), k=st.integers(2, 3), m=st.integers(2, 3))
def test_profile_newton_leaves_an_ideal_model_at_zero(seed: int, d: int, k: int, m: int) -> None:
    """An exactly ideal model (affine images of templates, common class prior) is its own projection: from the
    maps that carry the gauge group onto each group (``L_a L_0^-1``), the value is 0 and Newton stays there."""
    model = _model(seed, d, k, m, ideal_noise=0.0)
    stats, logdets, q0 = _setup(model)
    true = _model.maps  # type: ignore[attr-defined]
    L0 = np.array([La @ np.linalg.inv(true[0]) for La in true])
    L0[0] = np.eye(d)
    assert abs(_value(model, stats, L0, q0, 0)) <= 1e-8
    res = profile_newton(stats, L0, q0, 0, model.group_priors, model.class_priors, logdets)
    assert res.converged and abs(res.value) <= 1e-8
    np.testing.assert_allclose(res.maps, L0, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(seeds, st.integers(2, 8), st.integers(2, 3))
def test_congruence_frame_keeps_the_profile_and_diagonalises_two_classes(seed, d, k):
    """In each group's congruence coordinates (where the all-subgroup solver works for two classes) both precisions
    are diagonal, the profile's value is the original's at the corresponding maps, its gradient maps back by
    ``G_L = U_a^-T G~ U_g^T``, and the solution's parameters map back to the maps they came from."""
    from steerfair.ideal.affine_family import AffineFamilyParams
    from steerfair.ideal.affine_solve import _CongruenceFrame

    model = _model(seed, d, k, 2)
    rng = np.random.default_rng(seed + 1)
    gauge = 0
    stats = CellFactors.from_components(model.components, model.group_priors[:, None] * np.array([0.6, 0.4]))
    frame = _CongruenceFrame.of(stats)
    tr = frame.apply(stats)
    for a in range(k):
        for i in range(2):
            off = tr.precs[a, i] - np.diag(np.diag(tr.precs[a, i]))
            assert np.abs(off).max() == 0.0
            U = frame.bases[a]
            np.testing.assert_allclose(U.T @ stats.precs[a, i] @ U, tr.precs[a, i], atol=1e-9 * np.abs(tr.precs).max())
    maps = {a: np.eye(d) + 0.3 * rng.normal(size=(d, d)) for a in range(1, k)}
    full = [None, *[maps[a] for a in range(1, k)]]
    maps_t = frame.maps_in(maps, gauge)
    F, G = profile_terms(stats, full, gauge, cell_logdets(stats))
    Ft, Gt = profile_terms(tr, [None, *[maps_t[a] for a in range(1, k)]], gauge, cell_logdets(tr))
    np.testing.assert_allclose(Ft, F, rtol=1e-8, atol=1e-10)
    for a in range(1, k):
        back = np.linalg.solve(frame.bases[a].T, Gt[a]) @ frame.bases[gauge].T
        np.testing.assert_allclose(back, G[a], rtol=1e-7, atol=1e-9 * max(1.0, np.abs(G[a]).max()))
    params_t = AffineFamilyParams(
        np.array([np.eye(d), *[maps_t[a] for a in range(1, k)]]), rng.normal(size=(k, d)),
        rng.normal(size=(2, d)), np.array([_spd(rng, d) for _ in range(2)]), 0.0,
    )  # fmt: skip
    params = frame.params_out(params_t, gauge)
    for a in range(1, k):
        np.testing.assert_allclose(params.linear_maps[a], maps[a], rtol=1e-8, atol=1e-9)
    for a in range(k):  # each cell is the frame's cell mapped back by U_a
        for i in range(2):
            m_t, S_t = params_t.cell(a, i)
            m_o, S_o = params.cell(a, i)
            U = frame.bases[a]
            np.testing.assert_allclose(m_o, U @ m_t, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(S_o, U @ S_t @ U.T, rtol=1e-7, atol=1e-8)


def _diagonal_cells(rng: np.random.Generator, k: int, m: int, d: int) -> CellFactors:
    """Random cells with diagonal precisions, once with ``prec_diags`` (the fast path) and the same cells as
    dense matrices."""
    from steerfair.ideal.scale_family import CellMatrices

    diags = rng.uniform(0.2, 4.0, size=(k, m, d))
    return CellFactors(
        rng.normal(size=(k, m, d)),
        CellMatrices([[np.diag(1.0 / p) for p in row] for row in diags]),
        CellMatrices([[np.diag(1.0 / np.sqrt(p)) for p in row] for row in diags]),
        np.array([[np.diag(p) for p in row] for row in diags]),
        rng.dirichlet(np.ones(k * m)).reshape(k, m),
        prec_diags=diags,
    )


@settings(max_examples=20, deadline=None)
@given(seed=seeds, d=st.integers(1, 7), k=st.integers(2, 3), m=st.integers(2, 3), gauge=st.integers(0, 2))
def test_diagonal_fast_path_equals_the_general_profile(seed: int, d: int, k: int, m: int, gauge: int) -> None:
    """With diagonal precisions the profile takes symmetric rank-k products and triangular solves
    (``_inner_diagonal``); its per-cell KLs, gradients, templates and offsets are the general path's, for maps given
    as ``None``, as scales and as matrices."""
    import dataclasses

    from steerfair.ideal.affine_profile import templates_and_offsets

    gauge = gauge % k
    rng = np.random.default_rng(seed)
    fast = _diagonal_cells(rng, k, m, d)
    general = dataclasses.replace(fast, prec_diags=None)
    maps: list = [None] * k
    for a in range(k):
        if a != gauge:
            maps[a] = float(rng.uniform(0.5, 2.0)) if rng.random() < 0.3 else np.eye(d) + 0.4 * rng.normal(size=(d, d))
    logdets = cell_logdets(general)
    F1, G1 = profile_terms(fast, maps, gauge, logdets)
    F2, G2 = profile_terms(general, maps, gauge, logdets)
    np.testing.assert_allclose(F1, F2, rtol=1e-9, atol=1e-11)
    for a in G2:
        np.testing.assert_allclose(G1[a], G2[a], rtol=1e-8, atol=1e-10 * max(1.0, np.abs(G2[a]).max()))
    for x, y in zip(templates_and_offsets(fast, maps, gauge), templates_and_offsets(general, maps, gauge), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(seed=seeds, d=st.integers(1, 6), k=st.integers(2, 3), m=st.integers(2, 3))
def test_log_det_parts_add_up_to_the_full_profile(seed: int, d: int, k: int, m: int) -> None:
    """``log_det="value"`` leaves ``-W_a L_a^-T`` out of each free group's gradient and nothing out of the KLs;
    ``"none"`` also leaves ``-log|det L_a|`` out of the free groups' KLs (what the Newton tail's Hessian products
    use, adding the log-determinant's exact second derivative)."""
    rng = np.random.default_rng(seed)
    model = _model(seed, d, k, m)
    stats, logdets, _ = _setup(model)
    maps = [None, *[np.eye(d) + 0.4 * rng.normal(size=(d, d)) for _ in range(k - 1)]]
    F, G = profile_terms(stats, maps, 0, logdets)
    Fv, Gv = profile_terms(stats, maps, 0, logdets, log_det="value")
    Fn, Gn = profile_terms(stats, maps, 0, logdets, log_det="none")
    np.testing.assert_array_equal(Fv, F)
    for a in range(1, k):
        W = stats.weights[a].sum()
        np.testing.assert_allclose(Gv[a] - W * np.linalg.inv(maps[a]).T, G[a], rtol=1e-9, atol=1e-11)
        np.testing.assert_array_equal(Gn[a], Gv[a])
        np.testing.assert_allclose(Fn[a] - np.linalg.slogdet(maps[a])[1], F[a], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(Fn[0], F[0])
