"""Binned copies of steered columns: found exactly where a column bins another, re-derived from the steered value
(so the steered table keeps the relation and a tree cannot read its breakage), left alone where nothing moved."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair import FairSteerer
from steerfair.derived_columns import find_binned_columns, rederive
from steerfair.metrics import group_leakage


def _table(seed: int, n: int = 3000, cuts: tuple[float, ...] = (25.0, 45.0)) -> pd.DataFrame:
    """An integer age, its one-hot binning at ``cuts`` (right-closed lower bins), an unrelated one-hot block and a
    rare two-valued column; groups differ in age."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    y = rng.integers(0, 2, n)
    age = np.round(rng.normal(35 + 6 * g + 4 * y, 10, n)).clip(18, 80)
    X = pd.DataFrame({"age": age, "hours": rng.normal(40 + 3 * y, 8, n)})
    band = np.searchsorted(np.asarray(cuts), age, side="left")
    for k in range(len(cuts) + 1):
        X[f"band={k}"] = (band == k).astype(np.float64)
    other = rng.integers(0, 3, n)
    for k in range(3):
        X[f"other={k}"] = (other == k).astype(np.float64)
    X["rare"] = (rng.random(n) < 0.005).astype(np.float64)
    X.attrs["g"], X.attrs["y"] = g, y
    return X


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), lo=st.floats(22, 34), width=st.floats(2, 20), shift=st.floats(-1e3, 1e3),
       scale=st.floats(0.01, 100))  # fmt: skip
def test_the_binned_block_is_found_with_its_cuts_in_any_units(
    seed: int, lo: float, width: float, shift: float, scale: float
) -> None:
    X = _table(seed, cuts=(lo, lo + width))
    arr = X.to_numpy()
    arr[:, 0] = arr[:, 0] * scale + shift  # units and offsets of the source
    found = find_binned_columns(arr, [0, 1], list(range(2, arr.shape[1])))
    assert len(found) == 1 and found[0].source == 0 and found[0].columns == (2, 3, 4)
    b = found[0]
    assert b.agreement == 1.0  # the rule reproduces every training row ...
    assert np.array_equal(b.derive(arr[:, 0]), arr[:, 2:5])
    ages = np.unique(X["age"])  # ... and each cut lies between the last age of one band and the first of the next
    for cut, edge in zip((lo, lo + width), b.edges, strict=True):
        below, above = ages[ages <= cut], ages[ages > cut]
        if below.size and above.size:
            assert below.max() * scale + shift <= edge + 1e-9 * abs(edge) <= above.min() * scale + shift + 1e-6


def test_unrelated_and_rare_columns_are_not_derived() -> None:
    X = _table(1).to_numpy()
    found = find_binned_columns(X, [0, 1], list(range(2, X.shape[1])))
    assert [b.columns for b in found] == [(2, 3, 4)]  # not the other block, not the rare column (never predicted)


def test_rederive_writes_only_rows_that_moved() -> None:
    X = _table(2).to_numpy()
    (b,) = find_binned_columns(X, [0], list(range(2, X.shape[1])))
    out = X.copy()
    out[:10, 0] += 30.0  # ten rows moved, the rest untouched
    X[10:20, 2:5] = 0.0  # what an unchanged row holds must survive, however odd
    out[10:20, 2:5] = 0.0
    out[20:25, 2:5] = X[20:25, 2:5][:, ::-1]  # rows whose band alone was moved are re-derived too
    assert rederive(out, X, [b]) == [2, 3, 4]
    assert np.array_equal(out[:10, 2:5], b.derive(X[:10, 0] + 30.0)) and np.all(out[10:20, 2:5] == 0.0)
    assert np.array_equal(out[20:, 2:5], b.derive(X[20:, 0]))
    assert rederive(X.copy(), X, [b]) == []


@pytest.mark.parametrize("target", ["ideal", "shared_positive"])
def test_fair_steerer_keeps_the_binning_of_steered_rows(target: str) -> None:
    X = _table(3)
    g, y = X.attrs["g"], X.attrs["y"]
    fs = FairSteerer(target=target, marginals="copula", random_state=0).fit(X, y, groups=g)
    assert [X.columns[c] for c in fs.derived_[0].columns] == ["band=0", "band=1", "band=2"]
    S = fs.transform(X, groups=g)
    assert not np.allclose(S["age"], X["age"])  # steering did move the source
    bands = S[["band=0", "band=1", "band=2"]].to_numpy()
    assert np.array_equal(bands, fs.derived_[0].derive(S["age"].to_numpy()))  # every row consistent again
    kept = FairSteerer(target=target, marginals="copula", derived="keep", random_state=0).fit(X, y, groups=g)
    K = kept.transform(X, groups=g)
    assert kept.derived_ == ()
    assert not np.array_equal(K[["band=0", "band=1", "band=2"]].to_numpy(), fs.derived_[0].derive(K["age"].to_numpy()))


def test_rederiving_removes_the_group_signal_the_broken_binning_carried() -> None:
    """Seen by a gradient-boosted discriminator among the positives: the inconsistent rows name the moved group."""
    X = _table(4, n=6000)
    g, y = X.attrs["g"], X.attrs["y"]
    adv = {}
    for derived in ("keep", "rederive"):
        fs = FairSteerer(target="shared_positive", marginals="copula", derived=derived, random_state=0)
        S = fs.fit(X, y, groups=g).transform(X, groups=g)
        adv[derived] = group_leakage(S, y, g)[1]
    assert adv["keep"].advantage > 3 * adv["keep"].floor  # the broken binning is visible
    assert adv["rederive"].advantage < adv["keep"].advantage - 2 * adv["keep"].floor


def test_bad_options() -> None:
    X = _table(5, n=200)
    with pytest.raises(ValueError, match="unknown derived"):
        FairSteerer(derived="always").fit(X, X.attrs["y"], groups=X.attrs["g"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_agreement"):
        find_binned_columns(X.to_numpy(), [0], [2, 3, 4], min_agreement=0.3)
