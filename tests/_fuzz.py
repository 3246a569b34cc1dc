"""Shared pieces of the property-based fuzz tests (tests/test_fuzz_api.py, tests/test_fuzz_frontends.py).

:func:`outcome` is the property: a call either raises ``ValueError`` / ``TypeError`` whose message names the
corrupted argument, or returns a result whose numbers are all finite. The corruption helpers turn a valid input into
a bad one in one random way each.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings

from steerfair import AffineMap, Gaussian, GroupConditionalModel

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_FUZZ = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------------- the property
def all_finite(obj: Any, depth: int = 0) -> bool:
    """Whether every number reachable in ``obj`` (arrays, floats, Gaussians, maps, models, containers) is finite."""
    if depth > 6 or obj is None or isinstance(obj, (str, bool, bytes)):
        return True
    if isinstance(obj, (int, np.integer)):
        return True
    if isinstance(obj, (float, np.floating)):
        return math.isfinite(float(obj))
    if isinstance(obj, np.ndarray):
        return obj.dtype.kind not in "fc" or bool(np.all(np.isfinite(obj)))
    if isinstance(obj, dict):
        return all(all_finite(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(all_finite(v, depth + 1) for v in obj)
    if isinstance(obj, Gaussian):
        return all_finite(obj.mean) and all_finite(obj.cov)
    if isinstance(obj, AffineMap):
        return all_finite(obj.b) and (all_finite(obj.A) if not obj.is_low_rank else all_finite((obj.U, obj.V)))
    if isinstance(obj, GroupConditionalModel):
        return all_finite((obj.group_priors, obj.class_priors, obj.components), depth + 1)
    if hasattr(obj, "to_numpy"):
        return all_finite(np.asarray(obj.to_numpy(dtype=float)))
    if hasattr(obj, "weights") and isinstance(obj.weights, np.ndarray):
        return all_finite(obj.weights)
    return True


def outcome(call: Callable[[], Any], names: tuple[str, ...]) -> Any:
    """Run ``call``: a ValueError / TypeError must name one of ``names``; a result must be finite.

    Returns the result, or ``None`` when the call raised the expected error.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = call()
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        pattern = "|".join(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9])" for n in names)
        assert re.search(pattern, msg), f"{type(exc).__name__} names none of {names}: {msg!r}"
        return None
    assert all_finite(result), f"non-finite result: {result!r}"
    return result


# ------------------------------------------------------------------------------------------- corruptions
MATRIX_CORRUPTIONS = ("nan", "inf", "string", "object_none", "vector", "3d", "empty", "short", "extra_column")
LABEL_CORRUPTIONS = ("short", "nan", "none", "2d", "single", "empty")


def corrupt_matrix(X: np.ndarray, how: str, rng: np.random.Generator) -> Any:
    i, j = int(rng.integers(X.shape[0])), int(rng.integers(X.shape[1]))
    if how in ("nan", "inf"):
        bad = X.copy()
        bad[i, j] = np.nan if how == "nan" else -np.inf * rng.choice([-1, 1])
        return bad
    if how == "string":
        bad = X.astype(object)
        bad[i, j] = "abc"
        return bad
    if how == "object_none":
        bad = X.astype(object)
        bad[i, j] = None
        return bad
    if how == "vector":
        return X[:, 0]
    if how == "3d":
        return X[None]
    if how == "empty":
        return X[:0]
    if how == "short":
        return X[:-1]
    if how == "extra_column":
        return np.hstack([X, X[:, :1]])
    raise AssertionError(how)


def corrupt_labels(g: np.ndarray, how: str, rng: np.random.Generator) -> Any:
    i = int(rng.integers(len(g)))
    if how == "short":
        return g[:-1]
    if how == "nan":
        bad = g.astype(float)
        bad[i] = np.nan
        return bad
    if how == "none":
        bad = g.astype(object)
        bad[i] = None
        return bad
    if how == "2d":
        return np.stack([g, g, g], axis=1).astype(float) + 5.0  # not probabilities
    if how == "single":
        return np.zeros_like(g)
    if how == "empty":
        return g[:0]
    raise AssertionError(how)


def data(seed: int, n: int = 60, d: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = np.arange(n) % 2
    y = (np.arange(n) // 2) % 2
    X = rng.normal(size=(n, d)) + 1.5 * g[:, None] + 1.0 * y[:, None]
    return X, y, g


def fitted_model(seed: int = 0) -> GroupConditionalModel:
    X, y, g = data(seed)
    return GroupConditionalModel.fit(X, y, g, reg=1e-6)
