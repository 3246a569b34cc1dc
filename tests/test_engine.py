"""Invariants of the one steering engine: membership, covariance estimator, statistics, coordinates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair import GroupConditionalModel
from steerfair.covariance import CovarianceEstimator
from steerfair.membership import Membership
from steerfair.statistics import CellStatistics
from steerfair.steering import Coordinates, SteeringTransform


def _data(seed: int, n: int = 300, d: int = 3, k: int = 2, m: int = 2, offset: float = 0.0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, k, n)
    y = rng.integers(0, m, n)
    g[:k] = np.arange(k)
    y[:m] = np.arange(m)
    X = offset + rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 0.7 * g[:, None] + 1.3 * y[:, None]
    return X, y, g


# ------------------------------------------------------------------------------------------------ membership
@given(st.integers(0, 2**16), st.integers(2, 4))
def test_membership_labels_and_one_hot_probabilities_agree(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    idx = np.r_[np.arange(k), rng.integers(0, k, 20)]
    labels = np.array([f"g{j}" for j in range(k)])
    hard = Membership.parse(labels[idx], len(idx))
    soft = Membership.parse(np.eye(k)[idx], len(idx), labels=labels)
    np.testing.assert_array_equal(hard.weights, soft.weights)
    assert hard.is_hard and soft.is_hard
    np.testing.assert_array_equal(hard.indices(), idx)
    # apply side: the same labels map to the same columns, whatever their order of appearance
    perm = rng.permutation(len(idx))
    np.testing.assert_array_equal(Membership.align(labels[idx][perm], labels).weights, hard.weights[perm])


@pytest.mark.parametrize(
    ("groups", "kwargs", "match"),
    [
        (np.zeros(5), {}, "need at least two groups"),
        (np.array([0, 1, 1]), {"n": 4}, "one entry per row"),
        (np.array([[0.5, 0.6], [1.0, 0.0]]), {}, "must sum to 1"),
        (np.array([[1.5, -0.5], [1.0, 0.0]]), {}, "negative"),
        (np.array([0.0, np.nan, 1.0]), {}, "NaN"),
        (["a", None, "b"], {}, "missing"),
        (None, {}, "required"),
    ],
)
def test_membership_rejects_bad_groups_with_a_named_argument(groups, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        Membership.parse(groups, **kwargs)


def test_membership_align_names_unseen_labels() -> None:
    with pytest.raises(ValueError, match="'z', which was not seen in fit"):
        Membership.align(["a", "z"], ["a", "b"])
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        Membership.align(np.full((2, 2), 0.5), ["a", "b", "c"], 2)


def test_membership_keeps_tuple_labels_whole() -> None:
    groups = [("f", 1), ("m", 0), ("f", 1)]
    mem = Membership.parse(groups, 3)
    assert mem.k == 2 and mem.labels.tolist() == [("f", 1), ("m", 0)]


# ------------------------------------------------------------------------------------------------ estimator
def test_covariance_estimator_validates_and_builds_from_loose_keywords() -> None:
    assert CovarianceEstimator.of(shrinkage="oas") == CovarianceEstimator("oas", "auto")
    with pytest.raises(ValueError, match="not both"):
        CovarianceEstimator.of(CovarianceEstimator(), reg=1e-3)
    for bad in ({"shrinkage": "nope"}, {"shrinkage": 1.5}, {"reg": -1.0}, {"reg": "x"}, {"shrinkage": True}):
        with pytest.raises(ValueError, match="shrinkage|reg"):
            CovarianceEstimator(**bad)
    with pytest.raises(ValueError, match="ledoit_wolf"):
        CovarianceEstimator("ledoit_wolf").estimate(np.eye(2), 10.0)


@given(st.integers(0, 2**16), st.sampled_from([None, "oas", 0.3]))
def test_fit_with_estimator_equals_fit_with_loose_keywords(seed: int, shrinkage) -> None:
    X, y, g = _data(seed)
    a = GroupConditionalModel.fit(X, y, g, shrinkage=shrinkage, reg=None)
    b = GroupConditionalModel.fit(X, y, g, estimator=CovarianceEstimator(shrinkage, None))
    for ra, rb in zip(a.components, b.components, strict=True):
        for ca, cb in zip(ra, rb, strict=True):
            np.testing.assert_array_equal(ca.cov, cb.cov)


# ------------------------------------------------------------------------------------------------ statistics
def _assert_stats_close(p: CellStatistics, q: CellStatistics, rtol: float = 1e-10) -> None:
    np.testing.assert_allclose(p.counts, q.counts, rtol=rtol)
    np.testing.assert_allclose(p.sq_weights, q.sq_weights, rtol=rtol)
    scale = max(1.0, float(np.abs(q.covs).max()))
    np.testing.assert_allclose(p.means, q.means, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(p.covs, q.covs, rtol=rtol, atol=rtol * scale)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**16), st.integers(1, 5), st.booleans())
def test_statistics_of_shards_merge_to_the_statistics_of_all_rows(seed: int, shards: int, weighted: bool) -> None:
    X, y, g = _data(seed, n=240)
    w = np.random.default_rng(seed).uniform(0.1, 2.0, len(X)) if weighted else None
    G, H = Membership.parse(g, len(X)), Membership.parse(y, len(X))
    whole = CellStatistics.from_rows(X, G, H, w)
    cuts = np.array_split(np.arange(len(X)), shards)
    parts = [CellStatistics.from_rows(X[c], G.rows(c), H.rows(c), None if w is None else w[c]) for c in cuts]
    merged = CellStatistics.empty(G.labels, H.labels, X.shape[1])
    for p in parts:
        merged = merged + p
    _assert_stats_close(merged, whole)
    np.testing.assert_array_equal(merged.sizes, whole.sizes)


@pytest.mark.parametrize("offset", [1e7, 1e8, 1e10])
def test_statistics_and_models_are_equivariant_to_large_offsets(offset: float) -> None:
    """Centred sums: shifting every row by a huge constant moves the means and leaves the covariances (merged
    from shards too), where raw ``E[x x^T] - mu mu^T`` would lose every digit."""
    X, y, g = _data(3, n=400)
    G, H = Membership.parse(g, len(X)), Membership.parse(y, len(X))
    ref = CellStatistics.from_rows(X, G, H)
    half = np.arange(len(X)) < 200
    far = CellStatistics.from_rows(X[half] + offset, G.rows(half), H.rows(half)) + CellStatistics.from_rows(
        X[~half] + offset, G.rows(~half), H.rows(~half)
    )
    np.testing.assert_allclose(far.covs, ref.covs, rtol=1e-6, atol=1e-6 * np.abs(ref.covs).max())
    m_ref = GroupConditionalModel.from_statistics(ref)
    m_far = GroupConditionalModel.fit(X + offset, y, g)
    for ra, rb in zip(m_ref.components, m_far.components, strict=True):
        for ca, cb in zip(ra, rb, strict=True):
            np.testing.assert_allclose(cb.cov, ca.cov, rtol=1e-6)
            np.testing.assert_allclose(cb.mean - offset, ca.mean, atol=1e-6 * offset)


@given(st.integers(0, 2**16))
def test_identity_combination_is_bit_identical_and_pooling_matches_the_rows(seed: int) -> None:
    X, y, g = _data(seed, k=3)
    G, H = Membership.parse(g, len(X)), Membership.parse(y, len(X))
    stats = CellStatistics.from_rows(X, G, H)
    same = stats.combine_groups(np.eye(3), stats.groups)
    np.testing.assert_array_equal(same.means, stats.means)
    np.testing.assert_array_equal(same.covs, stats.covs)
    n, mean, cov = stats.pooled()
    assert n == len(X)
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cov, np.cov(X, rowvar=False, bias=True), rtol=1e-9, atol=1e-9)


def test_statistics_round_trip_through_arrays() -> None:
    X, y, g = _data(1)
    stats = CellStatistics.from_rows(X, Membership.parse(g, len(X)), Membership.parse(y, len(X)))
    back = CellStatistics.from_state_dict(stats.state_dict("s."), stats.groups, stats.classes, "s.")
    _assert_stats_close(back, stats, rtol=0)
    with pytest.raises(ValueError, match="missing the array"):
        CellStatistics.from_state_dict({}, stats.groups, stats.classes)


# ------------------------------------------------------------------------------------------------ coordinates
@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from(["group", "posterior"]), st.sampled_from([None, 2]))
def test_full_space_maps_equal_the_transform_of_rows(seed: int, mode: str, rank: int | None) -> None:
    """``full_group_maps`` (what the LLM hooks apply) and ``transform`` move rows identically; with a subspace the
    orthogonal complement of the steered directions is left unchanged."""
    X, y, g = _data(seed, d=4)
    coords = Coordinates.principal(np.cov(X, rowvar=False), rank, center=X.mean(axis=0))
    model = GroupConditionalModel.fit(coords.to_working(X), y, g)
    steer = SteeringTransform.fit(model, coordinates=coords)
    out = steer.transform(X, g, mode="group")
    assert np.abs(out - X).max() > 1e-3  # steering moved the rows (the data are far from ideal)
    maps = steer.full_group_maps()
    for a, T in maps.items():
        np.testing.assert_allclose(out[g == a], T(X[g == a]), rtol=1e-9, atol=1e-9)
    if rank is not None:
        Q = np.eye(4) - coords.basis @ coords.basis.T
        np.testing.assert_allclose((steer.transform(X, g, mode=mode) - X) @ Q, 0.0, atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**16))
def test_standardised_coordinates_solve_the_same_ideal_and_push_cells_onto_it(seed: int) -> None:
    """The nearest ideal is equivariant under a diagonal rescaling; the maps built in standardised coordinates
    (the OT metric of ``FairSteerer``) push every labelled cell exactly onto the ideal cell in input units."""
    X, y, g = _data(seed)
    X = X * np.array([100.0, 1.0, 0.1])
    model = GroupConditionalModel.fit(X, y, g, reg=None)
    coords = Coordinates.standardising(model)
    scaled = SteeringTransform.fit(coords.model(model), coordinates=coords)
    ideal = coords.unmodel(scaled.ideal)
    plain = SteeringTransform.fit(model)
    assert scaled.solution.kl > 1e-3  # the data are not ideal: the maps must move every cell
    out = scaled.transform(X, g, y)
    for a in range(2):
        for i in range(2):
            sel = (g == a) & (y == i)
            want = ideal.components[a][i]
            np.testing.assert_allclose(plain.ideal.components[a][i].cov, want.cov, rtol=1e-5)
            got_mean = out[sel].mean(axis=0)
            got_cov = np.cov(out[sel], rowvar=False, bias=True)
            s = np.sqrt(np.diag(want.cov))
            np.testing.assert_allclose(got_mean / s, want.mean / s, atol=1e-8)
            np.testing.assert_allclose(got_cov / np.outer(s, s), want.cov / np.outer(s, s), atol=1e-8)


def test_soft_membership_mixes_the_group_results() -> None:
    X, y, g = _data(5)
    steer = SteeringTransform.fit(GroupConditionalModel.fit(X, y, g))
    P = np.column_stack([np.full(len(X), 0.25), np.full(len(X), 0.75)])
    mixed = steer.transform(X, P, mode="group")
    by_group = [steer.transform(X, np.full(len(X), a), mode="group") for a in (0, 1)]
    assert np.abs(by_group[0] - by_group[1]).max() > 1e-3  # the two groups' maps differ: the mixture is not trivial
    np.testing.assert_allclose(mixed, 0.25 * by_group[0] + 0.75 * by_group[1], rtol=1e-12, atol=1e-12)


@given(seed=st.integers(0, 10_000), n=st.integers(20, 120), cut=st.integers(0, 3))
@settings(max_examples=15, deadline=None)
def test_an_empty_batch_is_the_neutral_element_of_a_stream(seed: int, n: int, cut: int) -> None:
    """Streaming ``sum(from_rows(batch))`` over batches that include empty ones gives the statistics of all rows,
    and steering an empty batch returns an empty batch (before, both refused 0 rows)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) + 5.0
    g, y = rng.integers(0, 2, n), rng.integers(0, 2, n)
    g[:2], y[:4] = [0, 1], [0, 1, 0, 1]

    def stats(rows: slice) -> CellStatistics:
        G = Membership.parse(g[rows], labels=[0, 1])
        H = Membership.parse(y[rows], labels=[0, 1], name="y")
        return CellStatistics.from_rows(X[rows], G, H)

    edges = sorted({0, n, *rng.integers(0, n, cut).tolist()})
    batches = [slice(0, 0)] + [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)] + [slice(n, n)]
    total = sum((stats(b) for b in batches[1:]), stats(batches[0]))
    whole = stats(slice(0, n))
    assert np.array_equal(total.counts, whole.counts)
    assert np.allclose(total.means, whole.means, atol=1e-12) and np.allclose(total.covs, whole.covs, atol=1e-12)
    steer = SteeringTransform.fit(GroupConditionalModel.fit(X, y, g))
    assert steer.transform(X[:0], g[:0], y[:0]).shape == (0, 3)
    with pytest.raises(ValueError, match="feature"):
        steer.transform(np.zeros((0, 2)), g[:0], y[:0])


@given(seed=st.integers(0, 10_000), logs=st.lists(st.floats(-4.0, 4.0), min_size=3, max_size=3))
@settings(max_examples=10, deadline=None)
def test_standardised_coordinates_make_steered_rows_equivariant_to_units(seed: int, logs: list[float]) -> None:
    """The recipe of ``fit_steering``'s docstring: fitted in ``Coordinates.standardising`` coordinates, rescaling and
    shifting the columns rescales and shifts the steered rows the same way."""
    rng = np.random.default_rng(seed)
    n = 300
    g, y = rng.integers(0, 2, n), rng.integers(0, 2, n)
    X = rng.normal(size=(n, 3)) * (1.0 + 0.5 * g[:, None]) + y[:, None]
    D, b = 10.0 ** np.asarray(logs), rng.normal(size=3) * 100

    def steered(Z: np.ndarray) -> np.ndarray:
        model = GroupConditionalModel.fit(Z, y, g)
        c = Coordinates.standardising(model)
        return SteeringTransform.fit(c.model(model), coordinates=c).transform(Z, g)

    assert np.allclose((steered(X * D + b) - b) / D, steered(X), atol=1e-7)


@given(seed=st.integers(0, 10_000))
@settings(max_examples=15, deadline=None)
def test_a_log_normal_model_steers_log_x_in_a_subspace_too(seed: int) -> None:
    """With a basis, ``transform`` skipped the log of X but exponentiated the result (a whole-space basis moved rows
    by 44 where no basis moved them by 0.29). A whole-space orthonormal basis steers as no basis does; a subspace
    leaves the log-space complement untouched."""
    import warnings

    rng = np.random.default_rng(seed)
    n, d = 400, 3
    g, y = rng.integers(0, 2, n), rng.integers(0, 2, n)
    X = np.exp(rng.normal(size=(n, d)) * 0.3 + g[:, None] * [0.5, 0, 0.2] + y[:, None] * [0, 0.6, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        M = GroupConditionalModel.fit(X, y, g, family="lognormal")
        Q = np.linalg.qr(rng.normal(size=(d, d)))[0]
        whole = Coordinates(basis=Q)
        plain = SteeringTransform.fit(M).transform(X, g, y)
        rotated = SteeringTransform.fit(whole.model(M), coordinates=whole).transform(X, g, y)
        np.testing.assert_allclose(rotated, plain, rtol=1e-9)
        sub = Coordinates(basis=Q[:, :2])
        steered = SteeringTransform.fit(sub.model(M), coordinates=sub).transform(X, g, y)
    np.testing.assert_allclose(np.log(steered) @ Q[:, 2], np.log(X) @ Q[:, 2], atol=1e-12)
    assert np.max(np.abs(np.log(steered) - np.log(X))) > 1e-3  # steering acted


def test_coordinates_refuse_a_basis_that_is_not_orthonormal_and_bad_scales() -> None:
    """``lift`` inverts ``to_working`` only for orthonormal columns: ``2 [e1, e2]`` spans the right subspace but left
    the steered rows 0.25 from ideal, silently."""
    with pytest.raises(ValueError, match="orthonormal columns"):
        Coordinates(basis=2.0 * np.eye(3)[:, :2])
    with pytest.raises(ValueError, match="basis must be a finite"):
        Coordinates(center=np.zeros(4), basis=np.eye(3)[:, :2])
    for scale in (np.zeros(2), -np.ones(2), np.ones(3)):
        with pytest.raises(ValueError, match="scale must hold one positive"):
            Coordinates(basis=np.eye(3)[:, :2], scale=scale)
    with pytest.raises(ValueError, match="center must be a finite"):
        Coordinates(center=np.array([0.0, np.nan]))
    Coordinates(center=np.zeros(3), basis=np.linalg.qr(np.ones((3, 2)) + np.eye(3)[:, :2])[0], scale=np.ones(2))


def test_sample_weights_name_y_when_lengths_differ() -> None:
    rng = np.random.default_rng(0)
    X, y, g = rng.normal(size=(200, 2)), rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    T = SteeringTransform.fit(GroupConditionalModel.fit(X, y, g))
    with pytest.raises(ValueError, match="y has 199 labels but groups has 200 entries"):
        T.sample_weights(y[:-1], g)
    assert T.sample_weights(y, g).shape == (200,)
