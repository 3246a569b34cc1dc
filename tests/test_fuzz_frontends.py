"""Property-based fuzz test of the front ends (``FairSteerer``, ``IdealTemplateSteering``, the baselines,
``ActivationStats`` / ``llm.fit_bundle``): a bad argument gives a ``ValueError`` / ``TypeError`` naming it, or a
finite result of the right shape (see tests/_fuzz.py for the property and the corruptions)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _fuzz import (
    LABEL_CORRUPTIONS,
    MATRIX_CORRUPTIONS,
    SLOW_FUZZ,
    all_finite,
    corrupt_labels,
    corrupt_matrix,
    data,
    outcome,
)
from hypothesis import given
from hypothesis import strategies as st

from steerfair.shared_target import TARGETS


# ------------------------------------------------------------------------------------------- front ends
@SLOW_FUZZ
@given(
    seed=st.integers(0, 10**6),
    arg=st.sampled_from(["X", "y", "groups", "transform_X", "transform_groups", "option"]),
    data_=st.data(),
)
def test_fuzz_fair_steerer(seed: int, arg: str, data_: st.DataObject) -> None:
    pytest.importorskip("sklearn")
    from steerfair import FairSteerer

    rng = np.random.default_rng(seed)
    X, y, g = data(seed, n=80)
    options: dict[str, Any] = {"group_probe": None, "target": data_.draw(st.sampled_from(TARGETS))}
    if arg == "X":
        X = corrupt_matrix(X, data_.draw(st.sampled_from(MATRIX_CORRUPTIONS)), rng)
    elif arg == "y":
        y = corrupt_labels(y, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)), rng)
    elif arg == "groups":
        g = corrupt_labels(g, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)), rng)
    elif arg == "option":
        name = data_.draw(st.sampled_from(["criterion", "intervention", "test_mode", "reg", "min_samples", "strength"]))
        options[name] = data_.draw(st.sampled_from(["nonsense", -1, float("nan"), None]))
        arg = name
    steerer = outcome(lambda: FairSteerer(**options).fit(X, y, groups=g), (arg, "groups", "y", "X"))
    if steerer is None or arg in ("X", "y", "groups"):
        return
    Xt, gt = data(seed + 1, n=10)[0], data(seed + 1, n=10)[2]
    if arg == "transform_X":
        Xt = corrupt_matrix(Xt, data_.draw(st.sampled_from(MATRIX_CORRUPTIONS)), rng)
    elif arg == "transform_groups":
        gt = gt + 3 if data_.draw(st.booleans()) else corrupt_labels(gt, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)),
                                                                     rng)  # fmt: skip
    out = outcome(lambda: steerer.transform(Xt, groups=gt), ("X", "groups"))
    if out is not None:
        assert np.shape(out) == np.shape(Xt)


@SLOW_FUZZ
@given(seed=st.integers(0, 10**6), arg=st.sampled_from(["X", "y", "groups", "transform_X", "rank", "transform_y"]),
       data_=st.data())  # fmt: skip
def test_fuzz_ideal_template_steering(seed: int, arg: str, data_: st.DataObject) -> None:
    from steerfair.representations import IdealTemplateSteering

    rng = np.random.default_rng(seed)
    X, y, g = data(seed, n=80)
    rank: Any = None
    if arg == "X":
        X = corrupt_matrix(X, data_.draw(st.sampled_from(MATRIX_CORRUPTIONS)), rng)
    elif arg == "y":
        y = corrupt_labels(y, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)), rng)
    elif arg == "groups":
        g = corrupt_labels(g, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)), rng)
    elif arg == "rank":
        rank = data_.draw(st.sampled_from([0, -1, 99, 1.5, "2"]))
    steering = outcome(lambda: IdealTemplateSteering(rank=rank).fit(X, y, g), (arg,))
    if steering is None or arg in ("X", "y", "groups", "rank"):
        return
    Xt, yt, gt = data(seed + 1, n=10)
    if arg == "transform_X":
        Xt = corrupt_matrix(Xt, data_.draw(st.sampled_from(MATRIX_CORRUPTIONS)), rng)
        out = outcome(lambda: steering.transform(Xt, gt), ("X",))
    else:
        yt = yt + 5 if data_.draw(st.booleans()) else corrupt_labels(yt, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)),
                                                                     rng)  # fmt: skip
        out = outcome(lambda: steering.transform(Xt, gt, y=yt), ("y",))
    if out is not None:
        assert np.shape(out) == np.shape(Xt)


@SLOW_FUZZ
@given(
    seed=st.integers(0, 10**6),
    method=st.sampled_from(["MeanMatching", "GaussianOTMatching", "LeaceMatching", "INLP", "reweighing_weights"]),
    arg=st.sampled_from(["X", "groups", "y"]),
    data_=st.data(),
)
def test_fuzz_baselines(seed: int, method: str, arg: str, data_: st.DataObject) -> None:
    from steerfair import baselines

    rng = np.random.default_rng(seed)
    X, y, g = data(seed, n=60)
    if arg == "X":
        X = corrupt_matrix(X, data_.draw(st.sampled_from(MATRIX_CORRUPTIONS)), rng)
    elif arg == "groups":
        g = corrupt_labels(g, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)), rng)
    else:
        y = corrupt_labels(y, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)), rng)
    if method == "reweighing_weights":
        w = outcome(lambda: baselines.reweighing_weights(y, g), (arg,))
        if w is not None:
            assert np.all(w > 0)
        return
    if method == "LeaceMatching":
        pytest.importorskip("concept_erasure")
    if method == "INLP":
        pytest.importorskip("sklearn")
        out = outcome(lambda: baselines.INLP(n_iterations=2).fit(X, y, g).transform(X), (arg,))
    else:
        cls = getattr(baselines, method)
        out = outcome(lambda: cls().fit(X, g).transform(X, g), (arg,))
    if out is not None:
        assert np.shape(out) == np.shape(X)


@SLOW_FUZZ
@given(
    seed=st.integers(0, 10**6),
    arg=st.sampled_from(["rows", "groups", "labels", "layers", "rank", "criterion", "intervention"]),
    data_=st.data(),
)
def test_fuzz_activation_stats_and_fit_bundle(seed: int, arg: str, data_: st.DataObject) -> None:
    pytest.importorskip("torch")
    from steerfair.llm import fit_bundle
    from steerfair.llm.stats import ActivationStats

    rng = np.random.default_rng(seed)
    X, y, g = data(seed, n=80, d=4)
    rows: Any = X
    groups: Any = np.array(["a", "b"])[g]
    labels: Any = y
    if arg == "rows":
        rows = corrupt_matrix(X, data_.draw(st.sampled_from(MATRIX_CORRUPTIONS)), rng)
    elif arg == "groups":
        groups = corrupt_labels(g, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)), rng)
    elif arg == "labels":
        labels = corrupt_labels(y, data_.draw(st.sampled_from(LABEL_CORRUPTIONS)), rng)
    stats = ActivationStats([1], ["a", "b"], [0, 1], 4)
    ok = outcome(lambda: stats.update(1, rows, groups, labels), (arg,))
    if ok is None or arg in ("rows", "groups", "labels"):
        return
    kwargs: dict[str, Any] = {"reg": 1e-6, "probe": False}
    if arg == "layers":
        kwargs["layers"] = data_.draw(st.sampled_from([[0], [1, 1], ["1"], [-1], []]))
    elif arg == "rank":
        kwargs["rank"] = data_.draw(st.sampled_from([0, -1, 99, 1.5, "2", 2]))
    else:
        kwargs[arg] = data_.draw(st.sampled_from(["nonsense", "", None, 3]))
    bundle = outcome(lambda: fit_bundle(stats, **kwargs), (arg,))
    if bundle is not None:
        for layer_maps in bundle.layer_maps().values():
            for T in layer_maps.values():
                assert all_finite(T) and T.d_in == 4
