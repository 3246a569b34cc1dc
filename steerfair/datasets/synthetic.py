"""Synthetic Gaussian groups of different separability (the shared target's acceptance data, docs/shared_target.md)."""

from __future__ import annotations

import numpy as np

from ..validation import as_int

__all__ = ["separability_groups"]


def separability_groups(
    n: int,
    d: int,
    rng: np.random.Generator,
    *,
    separations: tuple[float, float] = (2.8, 1.2),
    scales: tuple[float, float] = (1.0, 2.0),
    base_rates: tuple[float, float] = (0.45, 0.30),
    shift: float = 0.7,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two Gaussian groups whose classes differ in Mahalanobis separation, frame and base rate.

    Group ``a`` (drawn with probability 1/2) has label rate ``base_rates[a]``, covariance ``scales[a]**2 I`` and class
    means ``0`` and ``separations[a] * scales[a] * u`` (``u`` the unit diagonal direction), so its Mahalanobis
    separation is ``separations[a]``; group 1 is also shifted by ``shift`` along the last coordinate.

    Args:
        n: Number of rows.
        d: Dimension.
        rng: The random generator.
        separations, scales, base_rates: Per group (group 0, group 1).
        shift: Offset of group 1 along the last coordinate.

    Returns:
        ``(X (n, d), y (n,), groups (n,))`` with labels and groups in ``{0, 1}``.
    """
    n, d = as_int(n, "n", low=1), as_int(d, "d", low=1)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator (np.random.default_rng(seed)); got {type(rng).__name__}")
    if len(base_rates) != 2 or not all(0.0 < float(r) < 1.0 for r in base_rates):
        raise ValueError(f"base_rates must be two label rates in (0, 1); got {base_rates!r}")
    if len(scales) != 2 or not all(0.0 < float(v) < np.inf for v in scales):
        raise ValueError(f"scales must be two positive finite standard deviations; got {scales!r}")
    if len(separations) != 2 or not all(np.isfinite(float(v)) for v in separations):
        raise ValueError(f"separations must be two finite Mahalanobis separations; got {separations!r}")
    if not np.isfinite(float(shift)):
        raise ValueError(f"shift must be a finite number; got {shift!r}")
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < np.where(g == 0, base_rates[0], base_rates[1])).astype(int)
    direction = np.ones(d) / np.sqrt(d)
    scale = np.where(g == 0, scales[0], scales[1])
    X = rng.normal(size=(n, d)) * scale[:, None]
    X += (y * np.where(g == 0, separations[0], separations[1]) * scale)[:, None] * direction
    X[:, -1] += shift * g
    return X, y, g
