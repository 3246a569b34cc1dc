"""Property-based fuzz test of the public API: random bad inputs give a clear error or a finite, correct result.

Each test starts from a valid input, corrupts ONE argument in a random way (NaN / inf, wrong shape, wrong dtype
including strings and objects, empty, mismatched length, unseen or missing labels, negative or zero counts,
probabilities that do not sum to one, unknown option strings) and calls a public entry point. The call must either
raise ``ValueError`` / ``TypeError`` whose message names the corrupted argument, or return a result whose numbers
are all finite (and, where the corruption is harmless, equal to the clean call's). Any other exception (an
``IndexError``, ``KeyError``, ``LinAlgError``, ``AttributeError`` from deep inside numpy / scipy) fails the test.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from _fuzz import (
    FUZZ,
    LABEL_CORRUPTIONS,
    MATRIX_CORRUPTIONS,
    corrupt_labels,
    corrupt_matrix,
    data,
    fitted_model,
    outcome,
)
from hypothesis import given
from hypothesis import strategies as st

from steerfair import (
    AffineMap,
    CellStatistics,
    Gaussian,
    GroupConditionalModel,
    Membership,
    bayes_gap,
    bures_barycenter,
    gaussian_ot_map,
    is_ideal,
    mean_shift_map,
    nearest_ideal,
)
from steerfair.privacy import posterior_group_proba, randomized_response


# ------------------------------------------------------------------------------------------- model fitting
@FUZZ
@given(seed=st.integers(0, 10**6), arg=st.sampled_from(["X", "y", "groups", "weights"]), data_=st.data())
def test_fuzz_group_conditional_model_fit(seed: int, arg: str, data_: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    X, y, g = data(seed)
    weights: Any = None
    if arg == "X":
        X = corrupt_matrix(X, data_.draw(st.sampled_from(MATRIX_CORRUPTIONS)), rng)
    elif arg == "y":
        y = corrupt_labels(y, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)), rng)
    elif arg == "groups":
        g = corrupt_labels(g, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)), rng)
    else:
        weights = rng.uniform(0.5, 2.0, size=len(g)).astype(object)
        how = data_.draw(st.sampled_from(["nan", "inf", "negative", "zero", "short", "string", "none", "2d"]))
        if how in ("nan", "inf", "negative", "string", "none"):
            weights[0] = {"nan": np.nan, "inf": np.inf, "negative": -1.0, "string": "x", "none": None}[how]
        elif how == "zero":
            weights[:] = 0.0
        elif how == "short":
            weights = weights[:-1]
        else:
            weights = np.stack([weights, weights], axis=1)
    model = outcome(lambda: GroupConditionalModel.fit(X, y, g, weights=weights, reg=1e-6), (arg,))
    if model is not None:
        assert model.dim == X.shape[1] and np.isclose(model.group_priors.sum(), 1.0)


@FUZZ
@given(
    seed=st.integers(0, 10**6),
    arg=st.sampled_from(["counts", "means", "covs"]),
    how=st.sampled_from(["nan", "inf", "negative", "zero", "shape", "string", "not_spd", "empty"]),
)
def test_fuzz_from_moments(seed: int, arg: str, how: str) -> None:
    rng = np.random.default_rng(seed)
    k, m, d = 2, 2, 3
    counts = rng.integers(5, 50, size=(k, m)).astype(float)
    means = rng.normal(size=(k, m, d))
    covs = np.stack([np.stack([np.eye(d) * rng.uniform(0.5, 2) for _ in range(m)]) for _ in range(k)])
    value = {"counts": counts, "means": means, "covs": covs}[arg].copy()
    flat = value.reshape(-1)
    if how in ("nan", "inf"):
        flat[int(rng.integers(flat.size))] = np.nan if how == "nan" else np.inf
    elif how == "negative":
        flat[int(rng.integers(flat.size))] = -1.0
    elif how == "zero":
        value = np.zeros_like(value)
    elif how == "shape":
        value = value[..., :-1] if value.ndim > 2 else value[:, :1]
    elif how == "string":
        value = value.astype(str)
        value.reshape(-1)[0] = "x"
    elif how == "not_spd":
        value = -value if arg == "covs" else value
    elif how == "empty":
        value = value[:0]
    kwargs = {"counts": counts, "means": means, "covs": covs, arg: value}
    # a dimension mismatch of means and covs may be told on either side
    names = ("means", "covs") if how == "shape" and arg != "counts" else (arg,)
    result = outcome(lambda: GroupConditionalModel.from_moments([0, 1], [0, 1], reg=1e-9, **kwargs), names)
    if result is not None and how not in ("zero", "not_spd"):
        assert result.dim == d


@FUZZ
@given(
    seed=st.integers(0, 10**6),
    arg=st.sampled_from(["group_priors", "class_priors"]),
    how=st.sampled_from(["nan", "inf", "negative", "not_one", "shape", "string"]),
)
def test_fuzz_model_priors(seed: int, arg: str, how: str) -> None:
    rng = np.random.default_rng(seed)
    model = fitted_model(seed % 3)
    value = np.array({"group_priors": model.group_priors, "class_priors": model.class_priors}[arg], dtype=object)
    if how == "nan":
        value.reshape(-1)[0] = np.nan
    elif how == "inf":
        value.reshape(-1)[0] = np.inf
    elif how == "negative":
        value.reshape(-1)[0] = -0.1
    elif how == "not_one":
        value = value.astype(float) * rng.uniform(1.1, 3.0)
    elif how == "shape":
        value = value.astype(float)[..., :1]
    elif how == "string":
        value.reshape(-1)[0] = "half"
    kwargs = {"group_priors": model.group_priors, "class_priors": model.class_priors, arg: value}
    outcome(lambda: GroupConditionalModel(model.groups, model.classes, components=model.components, **kwargs),
            (arg, "priors"))  # fmt: skip


# ------------------------------------------------------------------------------------------- ideal solutions
@FUZZ
@given(
    arg=st.sampled_from(["criterion", "intervention", "reference", "family", "solver"]),
    bad=st.sampled_from(["", "nonsense", "EQUAL_OPPORTUNITY", None, 3.5, -1, float("nan"), "7"]),
)
def test_fuzz_ideal_entry_points(arg: str, bad: Any) -> None:
    model = fitted_model()
    if arg == "criterion":
        r = outcome(lambda: bayes_gap(model, criterion=bad), ("criterion",))
        assert r is None or 0.0 <= r <= 1.0
        outcome(lambda: nearest_ideal(model, criterion=bad), ("criterion",))
        outcome(lambda: bayes_gap(model, n_costs=bad), ("n_costs",))
        outcome(lambda: is_ideal(model, tol=bad), ("tol",))
    else:
        ideal = outcome(lambda: nearest_ideal(model, **{arg: bad}), (arg,))
        if ideal is not None:
            assert is_ideal(ideal, tol=1e-5)


# ------------------------------------------------------------------------------------------- families and maps
@FUZZ
@given(
    seed=st.integers(0, 10**6),
    arg=st.sampled_from(["mean", "cov"]),
    how=st.sampled_from(["nan", "inf", "string", "shape", "empty", "not_spd", "asymmetric", "3d"]),
)
def test_fuzz_gaussian(seed: int, arg: str, how: str) -> None:
    rng = np.random.default_rng(seed)
    d = 3
    mean, cov = rng.normal(size=d), np.eye(d) * 2.0
    value: Any = {"mean": mean, "cov": cov}[arg].copy()
    if how in ("nan", "inf"):
        value.reshape(-1)[int(rng.integers(value.size))] = np.nan if how == "nan" else np.inf
    elif how == "string":
        value = value.astype(object)
        value.reshape(-1)[0] = "x"
    elif how == "shape":
        value = value[:-1]
    elif how == "empty":
        value = value[:0]
    elif how == "not_spd":
        value = -np.abs(value) if arg == "cov" else value
    elif how == "asymmetric" and arg == "cov":
        value[0, 1] += 1.0
    elif how == "3d":
        value = value[None, None]
    kwargs = {"mean": mean, "cov": cov, arg: value}
    g = outcome(lambda: Gaussian(**kwargs), ("mean", "cov") if how in ("shape", "empty") else (arg,))
    if g is not None:
        assert g.dim >= 1
        outcome(lambda: g.logpdf(rng.normal(size=(4, g.dim))), ("X",))
        outcome(lambda: g.logpdf(corrupt_matrix(rng.normal(size=(4, g.dim)), "nan", rng)), ("X",))
        outcome(lambda: g.sample(-1), ("n",))


@FUZZ
@given(
    seed=st.integers(0, 10**6),
    what=st.sampled_from(["A", "b", "call", "rank", "compose", "inverse", "low_rank", "ot", "shift"]),
    how=st.sampled_from(["nan", "inf", "string", "shape", "empty", "negative", "zero", "float"]),
)
def test_fuzz_affine_maps(seed: int, what: str, how: str) -> None:
    rng = np.random.default_rng(seed)
    d = 3
    A, b = np.eye(d) + 0.3 * rng.normal(size=(d, d)), rng.normal(size=d)

    def corrupt(v: np.ndarray) -> Any:
        v = v.copy()
        if how in ("nan", "inf"):
            v.reshape(-1)[int(rng.integers(v.size))] = np.nan if how == "nan" else np.inf
            return v
        if how == "string":
            o = v.astype(object)
            o.reshape(-1)[0] = "x"
            return o
        if how == "shape":
            return v[..., :-1]
        if how == "empty":
            return v[:0]
        return v

    if what in ("A", "b"):
        kwargs = {"A": A, "b": b, what: corrupt({"A": A, "b": b}[what])}
        T = outcome(lambda: AffineMap(**kwargs), (what,))
        if T is not None:  # a (d_out, d_in) matrix of any shape is a valid map
            assert T.d_out == np.shape(kwargs["A"])[0] and T.d_in == np.shape(kwargs["A"])[1]
        return
    T = AffineMap(A, b)
    if what == "call":
        X = corrupt(rng.normal(size=(5, d)))
        out = outcome(lambda: T(X), ("X", "x"))
        if out is not None:  # an empty batch maps to an empty batch
            np.testing.assert_allclose(out, np.asarray(X, dtype=float) @ A.T + b, rtol=1e-10, atol=1e-10)
    elif what == "rank":
        rank: Any = {"negative": -1, "zero": 0, "float": 1.5, "string": "2", "nan": float("nan")}.get(how, d + 3)
        L = outcome(lambda: T.to_low_rank(rank=rank), ("rank",))
        if L is not None:
            assert L.d_in == d
    elif what == "compose":
        other = AffineMap(np.eye(d + 1))
        outcome(lambda: T.compose(other), ("other", "compose", "dimension"))
    elif what == "inverse":
        S = AffineMap(np.zeros((d, d)) if how != "float" else np.eye(d), b)
        inv = outcome(lambda: S.inverse(), ("A", "inverse", "singular"))
        if inv is not None:
            np.testing.assert_allclose(inv(S(np.ones((1, d)))), np.ones((1, d)), atol=1e-8)
    elif what == "low_rank":
        U = corrupt(rng.normal(size=(d, 2)))
        outcome(lambda: AffineMap.low_rank(U, rng.normal(size=(d, 2)), b), ("U", "V"))
    else:
        src = Gaussian(rng.normal(size=d), np.eye(d))
        dst = Gaussian(rng.normal(size=d + (how == "shape")), np.eye(d + (how == "shape")))
        fn = gaussian_ot_map if what == "ot" else mean_shift_map
        M = outcome(lambda: fn(src, dst), ("source", "target"))
        if M is not None:
            np.testing.assert_allclose(M(src.mean[None]), dst.mean[None], atol=1e-8)


@FUZZ
@given(
    seed=st.integers(0, 10**6),
    arg=st.sampled_from(["covs", "weights"]),
    how=st.sampled_from(["nan", "negative", "zero", "short", "string", "not_spd", "empty", "mixed_dims"]),
)
def test_fuzz_bures_barycenter(seed: int, arg: str, how: str) -> None:
    rng = np.random.default_rng(seed)
    d = 3
    covs: Any = [np.eye(d) * rng.uniform(0.5, 2.0) for _ in range(3)]
    weights: Any = rng.dirichlet(np.ones(3))
    if arg == "weights":
        weights = weights.astype(object)
        if how == "nan":
            weights[0] = np.nan
        elif how == "negative":
            weights[0] = -0.5
        elif how == "zero":
            weights = np.zeros(3)
        elif how == "short":
            weights = weights[:2]
        elif how == "string":
            weights[0] = "a"
        elif how == "empty":
            weights = weights[:0]
    else:
        if how == "nan":
            covs[0] = covs[0].copy()
            covs[0][0, 0] = np.nan
        elif how in ("negative", "not_spd"):
            covs[1] = -covs[1]
        elif how == "zero":
            covs[1] = np.zeros((d, d))
        elif how == "short":
            covs = covs[:1]
        elif how == "string":
            covs[0] = covs[0].astype(str)
        elif how == "empty":
            covs = []
        elif how == "mixed_dims":
            covs[2] = np.eye(d + 1)
    S = outcome(lambda: bures_barycenter(covs, weights), (arg,))
    if S is not None:
        assert S.shape == (d, d) and np.all(np.linalg.eigvalsh(S) > 0)


# ------------------------------------------------------------------------------------------- statistics and groups
@FUZZ
@given(
    seed=st.integers(0, 10**6),
    arg=st.sampled_from(["X", "weights", "groups", "merge"]),
    how=st.sampled_from(MATRIX_CORRUPTIONS + ("negative", "zero")),
)
def test_fuzz_cell_statistics(seed: int, arg: str, how: str) -> None:
    rng = np.random.default_rng(seed)
    X, y, g = data(seed)
    G, H = Membership.parse(g, len(g)), Membership.parse(y, len(y), name="y")
    weights: Any = None
    if arg == "X" and how not in ("negative", "zero"):  # negative or zero features are valid data
        X = corrupt_matrix(X, how, rng)
    elif arg == "weights":
        w = rng.uniform(0.5, 2.0, size=len(g))
        if how in ("nan", "inf"):
            w[0] = np.nan if how == "nan" else np.inf
        elif how == "negative":
            w[0] = -1.0
        elif how == "zero":
            w[:] = 0.0
        elif how in ("short", "empty"):
            w = w[:-1] if how == "short" else w[:0]
        elif how == "string":
            w = w.astype(object)
            w[0] = "x"
        weights = w
    elif arg == "groups":
        G = Membership.parse(np.arange(len(g) - 1) % 2, len(g) - 1)
    if arg == "merge":
        a = CellStatistics.from_rows(X, G, H)
        other_dim = X.shape[1] + (how == "extra_column")
        b = CellStatistics.from_rows(rng.normal(size=(len(g), other_dim)), Membership.parse(g + 2 * (how == "short"),
                                     len(g)), H)  # fmt: skip
        merged = outcome(lambda: a.merge(b), ("other", "merge"))
        if merged is not None:
            np.testing.assert_allclose(merged.counts, a.counts + b.counts)
        return
    stats = outcome(lambda: CellStatistics.from_rows(X, G, H, weights), (arg, "X", "groups", "classes"))
    if stats is not None:
        assert stats.dim == X.shape[1] and np.all(stats.counts >= 0)


@FUZZ
@given(
    seed=st.integers(0, 10**6),
    how=st.sampled_from(LABEL_CORRUPTIONS + ("proba_not_one", "proba_negative", "proba_nan", "unseen", "3d")),
)
def test_fuzz_membership(seed: int, how: str) -> None:
    rng = np.random.default_rng(seed)
    n = 12
    g = rng.integers(0, 3, size=n)
    g[:3] = [0, 1, 2]
    P = rng.dirichlet(np.ones(3), size=n)
    if how.startswith("proba"):
        bad: Any = P * 1.5 if how == "proba_not_one" else P.copy()
        if how == "proba_negative":
            bad[0] = [-0.5, 1.0, 0.5]
        if how == "proba_nan":
            bad[0, 0] = np.nan
    elif how == "unseen":
        bad = g.copy()
        bad[0] = 7
    elif how == "3d":
        bad = P[None]
    else:
        bad = corrupt_labels(g, how, rng)
    M = outcome(lambda: Membership.parse(bad, n), ("groups",))
    if M is not None:
        assert M.weights.shape[0] == n and np.allclose(M.weights.sum(axis=1), 1.0)
    A = outcome(lambda: Membership.align(bad, [0, 1, 2], n), ("groups",))
    if A is not None:
        assert A.weights.shape == (n, 3) and np.allclose(A.weights.sum(axis=1), 1.0)


# ------------------------------------------------------------------------------------------- privacy and metrics
@FUZZ
@given(
    seed=st.integers(0, 10**6),
    arg=st.sampled_from(["epsilon", "values", "prior", "n_categories"]),
    bad=st.sampled_from([float("nan"), -1.0, 0.0, "1", None, [1, 2], float("inf"), 2.5]),
)
def test_fuzz_privacy(seed: int, arg: str, bad: Any) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2, size=20)
    kwargs: dict[str, Any] = {"epsilon": 1.0, "n_categories": 2}
    if arg == "values":
        values = values.astype(object)
        values[0] = bad
    elif arg != "prior":
        kwargs[arg] = bad
    reports = outcome(lambda: randomized_response(values, seed=0, **kwargs), (arg,))
    if reports is not None:
        assert set(np.unique(reports).tolist()) <= set(np.unique(values[values != None]).tolist()) | {0, 1}  # noqa: E711
    prior: Any = np.array([0.5, 0.5])
    if arg == "prior":
        prior = bad if not isinstance(bad, float) else np.array([bad, 0.5])
    names = (arg, "reports") if arg == "values" else (arg,)  # posterior_group_proba calls them reports
    P = outcome(lambda: posterior_group_proba(values, prior=prior, **kwargs), names)
    if P is not None:
        assert P.shape[0] == len(values) and np.allclose(P.sum(axis=1), 1.0)


@FUZZ
@given(
    seed=st.integers(0, 10**6),
    arg=st.sampled_from(["y_true", "y_pred", "groups", "pos_label"]),
    how=st.sampled_from(LABEL_CORRUPTIONS + ("unseen",)),
)
def test_fuzz_fairness_report(seed: int, arg: str, how: str) -> None:
    from steerfair.metrics import fairness_report

    rng = np.random.default_rng(seed)
    n = 40
    args: dict[str, Any] = {
        "y_true": rng.integers(0, 2, size=n),
        "y_pred": rng.integers(0, 2, size=n),
        "groups": np.arange(n) % 2,
    }
    pos_label: Any = 1
    if arg == "pos_label":
        pos_label = {"unseen": 7, "nan": float("nan"), "none": None}.get(how, "1")
    else:
        args[arg] = corrupt_labels(args[arg], how, rng) if how != "unseen" else args[arg] + 5
    report = outcome(lambda: fairness_report(**args, pos_label=pos_label), (arg,))
    if report is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = fairness_report(**args, pos_label=pos_label)
        for gap in (report.dp_gap, report.eo_gap, report.eodds_gap):
            # a gap is a number in [0, 1], or NaN only with a warning that says which rate is undefined
            assert (math.isfinite(gap) and 0.0 <= gap <= 1.0) or (
                math.isnan(gap) and any("undefined" in str(w.message) for w in caught)
            ), (gap, [str(w.message) for w in caught])
