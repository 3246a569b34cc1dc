"""The shared target's input handling, from a new-user pass: what used to be silently wrong or a crash."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair import FairSteerer, GroupConditionalModel, SharedTargetSteering
from steerfair.membership import Membership
from steerfair.shared_target import solve_shared_target


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(3, 5))
def test_fewer_dimensions_than_class_differences_is_refused_every_time(seed: int, m: int) -> None:
    """With ``d < m - 1`` every group's class experiment is singular; a numerically positive eigenvalue let the
    solver return garblings that missed the target (class means off by up to 0.63 SD) or fail as "a bug"."""
    means = np.random.default_rng(seed).standard_normal((2, m, m - 2))
    covs = np.tile(np.eye(m - 2), (2, 1, 1))
    with pytest.raises(ValueError, match="affinely dependent; steer a space with d >= m - 1"):
        solve_shared_target(means, covs)


def test_bad_means_covs_and_reference_are_named() -> None:
    means, covs = np.zeros((2, 2, 2)), np.tile(np.eye(2), (2, 1, 1))
    means[0, 1] = [1.0, np.nan]
    with pytest.raises(ValueError, match="means and covs must be finite"):
        solve_shared_target(means, covs)
    means[0, 1] = [1.0, 0.0]
    means[1, 1] = [0.0, 1.0]
    for bad in (1.9, "a", 5):
        with pytest.raises((ValueError, TypeError), match="reference"):
            solve_shared_target(means, covs, reference=bad)


def test_a_soft_row_draws_one_group_for_the_copula_and_the_garbling() -> None:
    """Half-half probabilities on rows of the reference group (whose garbling is the identity): a row drawn as the
    reference must come back exactly; the copula drew a second, independent group for its normal scores, so only a
    quarter did."""
    rng = np.random.default_rng(0)
    n = 4000
    g, y = rng.integers(0, 2, n), rng.integers(0, 2, n)
    s = np.where(g == 1, 3.0, 1.0)[:, None]
    X = rng.standard_normal((n, 2)) * s + y[:, None] * s + 5 * g[:, None]
    steerer = FairSteerer(target="shared", marginals="copula", random_state=0).fit(X, y, groups=g)
    ref = steerer.shared_.target.reference
    rows = X[g == ref]
    kept = np.all(np.isclose(steerer.transform(rows, groups=np.full((len(rows), 2), 0.5)), rows, atol=1e-9), axis=1)
    assert abs(kept.mean() - 0.5) < 0.05


def test_shared_target_steering_refuses_log_normal_models_and_mismatched_rows() -> None:
    """A log-normal model's garblings were applied to raw values (negative outputs); a membership of another length
    left rows unsteered or crashed with an IndexError."""
    rng = np.random.default_rng(1)
    n = 400
    g, y = rng.integers(0, 2, n), rng.integers(0, 2, n)
    X = np.exp(0.3 * rng.standard_normal((n, 2)) + y[:, None] * (0.3 + 0.6 * g[:, None]) + g[:, None])
    with pytest.raises(ValueError, match="log-normal model describes log X"):
        SharedTargetSteering.fit(GroupConditionalModel.fit(X, y, g, family="lognormal"))
    steering = SharedTargetSteering.fit(GroupConditionalModel.fit(np.log(X), y, g))
    for rows, labels in ((np.log(X), g[:-10]), (np.log(X)[:-10], g)):
        with pytest.raises(ValueError, match="one row per membership row"):
            steering.transform(rows, Membership.parse(labels, len(labels)), rng)


def test_the_positive_targets_reference_is_matched_like_the_groups() -> None:
    """``reference=1`` with groups ``[0., 1.]`` was refused (labels compared as strings), while ``target="ideal"``
    accepted it; an unknown reference is a clear error naming it."""
    rng = np.random.default_rng(0)
    n = 600
    g, y = rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n)
    X = rng.normal(size=(n, 2)) + y[:, None] * (1 + g[:, None])
    fitted = FairSteerer(target="shared_positive", reference=1, random_state=0).fit(X, y, groups=g)
    assert fitted.shared_.target.reference == 1
    with pytest.raises(ValueError, match="reference contains 7"):
        FairSteerer(target="shared_positive", reference=7).fit(X, y, groups=g)
