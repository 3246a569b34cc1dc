"""group_leakage: no leakage where the class-conditional laws agree, leakage found in the class that differs, unit
invariance, the positive-class target removes the positive class's leakage only, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from steerfair import FairSteerer
from steerfair.datasets import separability_groups
from steerfair.metrics import ClassLeakage, group_leakage, plot_group_leakage


def _auc_se(n_a: int, n_b: int) -> float:
    """Standard error of an AUC of 0.5 (Mann-Whitney under the null)."""
    return float(np.sqrt((n_a + n_b + 1) / (12.0 * n_a * n_b)))


def _cells(seed: int, d: int, shift: float, n: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two classes, two groups drawn independently of the class; group 1's positives moved by ``shift`` along a
    random direction, in random units per column."""
    rng = np.random.default_rng(seed)
    y, g = rng.integers(0, 2, n), rng.integers(0, 2, n)
    X = rng.normal(size=(n, d)) + 1.5 * y[:, None]
    u = rng.normal(size=d)
    X[(y == 1) & (g == 1)] += shift * u / np.linalg.norm(u)
    return X * rng.uniform(0.01, 100.0, d) + rng.normal(0, 10, d), y, g


@settings(max_examples=12)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 5))
def test_equal_class_laws_show_no_leakage(seed: int, d: int) -> None:
    X, y, g = _cells(seed, d, shift=0.0)
    for label, leak in group_leakage(X, y, g, estimator=LogisticRegression(), random_state=seed).items():
        n = [int(np.sum((y == label) & (g == a))) for a in (0, 1)]
        assert abs(leak.auc - 0.5) < 5 * _auc_se(*n)
        assert leak.advantage < 3 * leak.floor
        assert leak.n == sum(n)


@settings(max_examples=12)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 5), shift=st.floats(1.0, 3.0))
def test_leakage_is_found_in_the_class_that_differs_only(seed: int, d: int, shift: float) -> None:
    X, y, g = _cells(seed, d, shift=shift)
    leak = group_leakage(X, y, g, estimator=LogisticRegression(), random_state=seed)
    assert leak[1].advantage > 5 * leak[1].floor and leak[1].auc > 0.6
    assert leak[0].advantage < 3 * leak[0].floor


def test_default_discriminator_is_invariant_to_units_and_offsets() -> None:
    X, y, g = _cells(3, 3, shift=1.0, n=2000)
    a = group_leakage(X, y, g)
    b = group_leakage(X * np.array([1e-3, 7.0, 250.0]) - 40.0, y, g)
    for label in a:
        assert a[label].auc == pytest.approx(b[label].auc, abs=1e-12)
        assert a[label].advantage == pytest.approx(b[label].advantage, abs=1e-12)


def test_more_groups_and_labels_of_any_type() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.choice(np.array(["no", "yes"]), n)
    g = rng.choice(np.array(["a", "b", "c"]), n)
    X = rng.normal(size=(n, 2))
    X[(y == "yes") & (g == "c"), 0] += 2.0
    leak = group_leakage(X, y, g, estimator=LogisticRegression())
    assert list(leak) == ["no", "yes"] and isinstance(leak["yes"], ClassLeakage)
    assert leak["yes"].advantage > 5 * leak["yes"].floor and leak["no"].advantage < 3 * leak["no"].floor


def test_positive_target_removes_the_positive_class_leakage_only() -> None:
    """The invariant the positive-class target promises, seen by a gradient-boosted discriminator on fresh rows."""
    rng = np.random.default_rng(5)
    X_fit, y_fit, g_fit = separability_groups(40_000, 3, rng)
    X, y, g = separability_groups(12_000, 3, rng)
    steer = FairSteerer(target="shared_positive").fit(X_fit, y_fit, groups=g_fit)
    raw, steered = group_leakage(X, y, g), group_leakage(steer.transform(X, groups=g), y, g)
    assert raw[1].advantage > 5 * raw[1].floor  # the test has power
    assert steered[1].advantage < 3 * steered[1].floor
    assert steered[0].advantage > 5 * steered[0].floor  # negatives are not aligned: that is the all-class target


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"y": np.zeros(10)}, "same length"),
        ({"X": np.full((40, 2), np.nan)}, "X contains NaN"),
        ({"X": np.zeros(40)}, "X must be 2-D"),
        ({"groups": np.zeros(40)}, "one group only"),
        ({"cv": 1}, "cv must be"),
        ({"cv": 30}, "fewer than cv=30"),
        ({"permutations": 0}, "permutations must be"),
        ({"estimator": LinearSVC()}, "predict_proba"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict, match: str) -> None:
    rng = np.random.default_rng(0)
    args = {"X": rng.normal(size=(40, 2)), "y": np.repeat([0, 1], 20), "groups": np.tile([0, 1], 20)}
    args.update(kwargs)
    X, y, groups = args.pop("X"), args.pop("y"), args.pop("groups")
    with pytest.raises(ValueError, match=match):
        group_leakage(X, y, groups, **args)


def test_plot_shows_one_bar_per_class_and_refuses_other_input(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    X, y, g = _cells(0, 2, shift=2.0, n=1500)
    leak = group_leakage(X, y, g, estimator=LogisticRegression())
    fig = plot_group_leakage(leak, tmp_path / "leak.png")
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([leak[0].advantage, leak[1].advantage])
    assert (tmp_path / "leak.png").stat().st_size > 0
    with pytest.raises(ValueError, match="result of group_leakage"):
        plot_group_leakage({0: 0.5})  # type: ignore[dict-item]


def test_skip_small_leaves_out_only_the_unmeasurable_classes_and_says_so() -> None:
    rng = np.random.default_rng(2)
    X, y, g = rng.normal(size=(900, 2)), np.repeat([0, 1, 2], 300), np.tile([0, 1], 450)
    g[(y == 2)] = 0  # class 2: one group only
    g[np.nonzero(y == 2)[0][:3]] = 1  # ... but for three rows, fewer than cv
    with pytest.warns(UserWarning, match="left out 1 class"):
        leak = group_leakage(X, y, g, estimator=LogisticRegression(), skip_small=True)
    assert sorted(leak) == [0, 1]
    with pytest.raises(ValueError, match="fewer than cv=5"):
        group_leakage(X, y, g, estimator=LogisticRegression())
    with pytest.warns(UserWarning, match="left out 3 class"), pytest.raises(ValueError, match="no class of y"):
        group_leakage(X, y, np.zeros(900, dtype=int), skip_small=True)
