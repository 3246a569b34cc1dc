"""Soft group membership: (n, k) probabilities on every fit path; one-hot rows reproduce hard labels exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _random_models import random_model
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair import FairSteerer, GroupConditionalModel, fit_steering
from steerfair.llm.stats import ActivationStats, collect

seeds = st.integers(0, 10_000)


def table(seed: int, n: int = 400, d: int = 2, k: int = 2) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, k, n)
    y = (rng.random(n) < 0.3 + 0.2 * (g == 1)).astype(int)
    X = rng.normal(size=(n, d)) * (1.0 + 0.5 * g[:, None]) + 1.5 * y[:, None] + g[:, None]
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(d)])
    df["flag"] = rng.integers(0, 2, n).astype(float)
    return df, y, np.array(["g" + str(v) for v in g])


def dirichlet_rows(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.dirichlet(np.ones(k), size=n)


# ------------------------------------------------------------------------------------ FairSteerer
@given(seed=seeds, k=st.integers(2, 3), mode=st.sampled_from(["group", "posterior"]))
@settings(max_examples=4, deadline=None)
def test_fairsteerer_one_hot_probabilities_equal_hard_labels(seed: int, k: int, mode: str) -> None:
    df, y, g = table(seed, k=k)
    labels = np.unique(g)
    onehot = (g[:, None] == labels[None, :]).astype(float)
    hard = FairSteerer(columns=["f0", "f1"], test_mode=mode)
    soft = FairSteerer(columns=["f0", "f1"], test_mode=mode)
    pd.testing.assert_frame_equal(
        hard.fit_transform(df, y, groups=g),
        soft.fit_transform(df, y, groups=onehot, group_labels=labels),
        check_exact=True,
    )
    np.testing.assert_array_equal(hard.groups_, soft.groups_)
    for a in range(k):
        for i in range(2):
            assert hard.model_.components[a][i] == soft.model_.components[a][i]
    pd.testing.assert_frame_equal(hard.transform(df, groups=g), soft.transform(df, groups=onehot), check_exact=True)
    pd.testing.assert_frame_equal(hard.transform(df), soft.transform(df), check_exact=True)  # same probe
    np.testing.assert_array_equal(hard.sample_weight(y, groups=g), soft.sample_weight(y, groups=onehot))


def test_fairsteerer_soft_fit_is_the_weighted_model_and_transform_the_mixture() -> None:
    df, y, g = table(3)
    rng = np.random.default_rng(0)
    P = dirichlet_rows(rng, len(df), 2)
    fs = FairSteerer(columns=["f0", "f1"], test_mode="group").fit(df, y, groups=P, group_labels=["a", "b"])
    ref = GroupConditionalModel.fit(df[["f0", "f1"]].to_numpy(), y, P, group_labels=["a", "b"])
    for a in range(2):
        for i in range(2):
            assert fs.model_.components[a][i] == ref.components[a][i]
    out = fs.transform(df, groups=P)
    per = [fs.transform(df, groups=np.full(len(df), lab)) for lab in ("a", "b")]
    mix = P[:, :1] * per[0][["f0", "f1"]].to_numpy() + P[:, 1:] * per[1][["f0", "f1"]].to_numpy()
    np.testing.assert_allclose(out[["f0", "f1"]].to_numpy(), mix, rtol=0, atol=1e-12)
    pd.testing.assert_series_equal(out["flag"], df["flag"])
    # the probe was trained on the soft labels and knows both groups
    assert fs.transform(df).shape == df.shape
    # expected prior weights
    w = fs.sample_weight(y, groups=P)
    wa, wb = fs.sample_weight(y, groups=np.full(len(df), "a")), fs.sample_weight(y, groups=np.full(len(df), "b"))
    np.testing.assert_allclose(w, P[:, 0] * wa + P[:, 1] * wb, rtol=1e-14)


def test_fairsteerer_rejects_bad_probabilities() -> None:
    df, y, g = table(1)
    P = np.full((len(df), 2), 0.5)
    with pytest.raises(ValueError, match="sum to 1"):
        FairSteerer(columns=["f0", "f1"]).fit(df, y, groups=P + 0.1)
    fs = FairSteerer(columns=["f0", "f1"]).fit(df, y, groups=P)
    with pytest.raises(ValueError, match="shape"):
        fs.transform(df, groups=np.full((len(df), 3), 1 / 3))
    with pytest.raises(ValueError, match="privatised reports"):
        FairSteerer(columns=["f0", "f1"], group_epsilon=1.0).fit(df, y, groups=P)


# ------------------------------------------------------------------------- model and steering
@given(seed=seeds)
@settings(max_examples=5, deadline=None)
def test_weighted_soft_fit_one_hot_equals_hard(seed: int) -> None:
    X, y, g = random_model(seed, 2).sample(300, seed=seed)
    w = np.random.default_rng(seed).uniform(0.5, 2.0, len(y))
    hard = GroupConditionalModel.fit(X, y, g, weights=w)
    soft = GroupConditionalModel.fit(X, y, np.eye(2)[g], weights=w, group_labels=hard.groups)
    np.testing.assert_array_equal(hard.group_priors, soft.group_priors)
    for a in range(2):
        for i in range(2):
            assert hard.components[a][i] == soft.components[a][i]
    steer = fit_steering(hard)
    np.testing.assert_array_equal(steer.transform(X, g), steer.transform(X, np.eye(2)[g]))  # 2-D groups = proba
    np.testing.assert_array_equal(steer.sample_weights(y, g), steer.sample_weights(y, np.eye(2)[g]))


# ---------------------------------------------------------------------------- activation stats
@given(seed=seeds, k=st.integers(2, 3))
@settings(max_examples=8, deadline=None)
def test_activation_stats_one_hot_equals_hard(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n, d = 50, 4
    x = torch.as_tensor(rng.normal(size=(n, d)), dtype=torch.float32)
    g = rng.integers(0, k, n)
    y = rng.integers(0, 2, n)
    names = [f"g{a}" for a in range(k)]
    hard = ActivationStats([0], names, [0, 1], d).update(0, x, [names[a] for a in g], y)
    soft = ActivationStats([0], names, [0, 1], d).update(0, x, np.eye(k)[g], y)
    for name in ("counts", "sums", "outer"):
        assert torch.equal(getattr(hard, name), getattr(soft, name))


def test_activation_stats_soft_update_gives_the_weighted_model() -> None:
    model = random_model(4, 3)
    X, y, g = model.sample(600, seed=4)
    P = dirichlet_rows(np.random.default_rng(4), len(y), 2)
    stats = ActivationStats([0], [0, 1], [0, 1], 3)
    stats.update(0, X[:250], P[:250], y[:250]).update(0, torch.as_tensor(X[250:]), torch.as_tensor(P[250:]), y[250:])
    for a in range(2):
        for i in range(2):
            sel = y == i
            assert stats.count(0, a, i) == pytest.approx(P[sel, a].sum(), rel=1e-14)
    got = stats.to_model(0, reg=None)
    ref = GroupConditionalModel.fit(X, y, P, reg=None)
    np.testing.assert_allclose(got.class_priors, ref.class_priors, rtol=1e-12)
    for a in range(2):
        for i in range(2):
            np.testing.assert_allclose(got.components[a][i].mean, ref.components[a][i].mean, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(got.components[a][i].cov, ref.components[a][i].cov, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="sum to 1"):
        stats.update(0, X[:3], np.full((3, 2), 0.7), y[:3])
    with pytest.raises(ValueError, match="shape"):
        stats.update(0, X[:3], np.full((3, 3), 1 / 3), y[:3])


@pytest.mark.slow  # loads transformers / runs the experiment end to end (~5 s)
def test_collect_accepts_group_probabilities() -> None:
    from test_llm_stats import WORDS, make_model, make_tokenizer

    torch.set_num_threads(1)
    model, tok = make_model("gpt2"), make_tokenizer()
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 6)))) for _ in range(12)]
    g = rng.integers(0, 2, 12)
    y = rng.integers(0, 2, 12)
    hard = collect(model, tok, texts, [["f", "m"][a] for a in g], y, layers=[1], batch_size=5, progress=False)
    onehot = collect(
        model, tok, texts, np.eye(2)[g], y, layers=[1], batch_size=5, progress=False, group_labels=["f", "m"]
    )
    for name in ("counts", "sums", "outer"):
        assert torch.equal(getattr(hard, name), getattr(onehot, name))
    Pg = rng.dirichlet([1.0, 1.0], size=12)
    soft = collect(model, tok, texts, Pg, y, layers=[1], batch_size=5, progress=False, group_labels=["f", "m"])
    assert soft.groups == ("f", "m")
    np.testing.assert_allclose(soft.counts[0].sum(dim=1).numpy(), Pg.sum(axis=0), rtol=1e-12)


# ------------------------------------------------------------------ Membership: names, missing values, row sums
@given(seed=seeds, k=st.integers(2, 4))
@settings(max_examples=10, deadline=None)
def test_probability_frame_columns_are_matched_by_name(seed: int, k: int) -> None:
    """A DataFrame of probabilities is read by its column names, in whatever order they come: permuting the
    columns changes nothing (before, the columns were read by position and the groups silently swapped)."""
    from steerfair import Membership

    rng = np.random.default_rng(seed)
    labels = [f"g{j}" for j in range(k)]
    P = dirichlet_rows(rng, 7, k)
    order = rng.permutation(k)
    frame = pd.DataFrame(P[:, order], columns=[labels[j] for j in order])
    assert np.array_equal(Membership.align(frame, labels).weights, P)
    assert np.array_equal(Membership.parse(frame, labels=labels).weights, P)
    parsed = Membership.parse(frame)  # no labels declared: the frame's names are the labels
    assert parsed.labels.tolist() == [labels[j] for j in order]
    assert np.array_equal(parsed.weights, P[:, order])
    with pytest.raises(ValueError, match="columns"):
        Membership.align(frame.set_axis([f"x{j}" for j in range(k)], axis=1), labels)


def test_a_named_probability_frame_steers_as_its_labels_do() -> None:
    df, y, g = table(3)
    X = df[["f0", "f1"]].to_numpy()
    model = GroupConditionalModel.fit(X, y, g)
    steer = fit_steering(model)
    onehot = pd.get_dummies(pd.Series(g)).astype(float)[["g1", "g0"]]  # the columns in the other order
    assert np.array_equal(steer.transform(X, onehot, y), steer.transform(X, g, y))


@pytest.mark.parametrize(
    "groups",
    [
        ["a", np.nan, "b", "a"],
        pd.Series(["a", pd.NA, "b", "a"], dtype="string"),
        ["a", pd.NaT, "b", "a"],
        pd.Series(["a", None, "b", "a"]),
    ],
    ids=["nan-in-list", "pandas-NA", "NaT", "None"],
)
def test_missing_group_labels_are_refused(groups: object) -> None:
    """A missing value is never a group of its own (np.asarray turned NaN among strings into the label 'nan')."""
    from steerfair import Membership

    with pytest.raises(ValueError, match="missing values"):
        Membership.parse(groups)


def test_membership_rows_must_sum_to_one() -> None:
    from steerfair import Membership

    with pytest.raises(ValueError, match="sum to 1"):
        Membership(np.array([0, 1]), np.array([[5.0, 3.0], [0.0, 1.0]]), "probabilities")
    with pytest.raises(ValueError, match="negative"):
        Membership(np.array([0, 1]), np.array([[1.5, -0.5]]), "probabilities")
    signed = Membership(np.array([0, 1]), np.array([[1.5, -0.5]]), "debiased")  # de-biased rows are signed
    assert signed.weights.sum() == 1.0
