"""Estimating the shared target from small cells (docs/shared_target.md, section 10; docs/bios.md).

The garbling of :mod:`steerfair.shared_target` is exact for the *fitted* Gaussian cells. With tens of rows per
(group, class) cell in a hundred dimensions, the fitted class means are noisy (whitened squared error about
``d / n_ay`` per cell), and a test row is moved by a map that equalises the noise of the training means, not the
groups' true means. Two estimation choices address that, both label-free at deployment:

* :func:`shrink_group_deviations`: every class's between-group deviation, denoised across classes by
  singular-value shrinkage toward the group's common deviation (components within the sampling-noise bulk are
  dropped). The garbling is then solved, exactly, for the shrunk cells: the spurious differences between the
  groups' experiments shrink, and so does the garbling noise.
* :func:`discriminant_coordinates`: steer only the span of the ``m - 1`` discriminant directions of the classes plus
  the groups' mean-difference directions, instead of a principal subspace: the class experiment lives there, the
  garbling noise stays there, and far fewer dimensions are estimated (on Bios: about 2 points more accurate at a
  similar gap, docs/bios.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.linalg import eigh, solve_triangular

from .linalg import cholesky
from .steering import Coordinates
from .validation import as_matrix, symmetrize

__all__ = ["discriminant_coordinates", "shrink_group_deviations"]


def shrink_group_deviations(means: Any, covs: Any, counts: Any) -> np.ndarray:
    """Shrunk class means per group: each class's deviation from its pooled mean, denoised across classes.

    Whitened by the count-weighted within-class covariance ``S = L L^T`` of all groups, group ``a``'s deviation in
    class ``y`` is ``w_ay = L^{-1}(mu_ay - mu_y)`` (``mu_y``: the count-weighted mean of the class over groups),
    observed with noise of covariance ``v_ay I``, ``v_ay = 1/n_ay - 1/n_y``. The group's common deviation ``c_a``
    (precision-weighted mean over classes, estimated from all its rows) is kept. The class-specific parts, scaled to
    unit noise, ``R = diag(v_a)^{-1/2} (W_a - c_a)`` (``m x d``), are denoised by singular-value shrinkage:
    ``s -> s max(0, 1 - tau / s^2)`` with ``tau = (sqrt(d) + sqrt(m))^2``, the upper edge of the singular values of
    an ``m x d`` matrix of pure unit noise (Marchenko-Pastur). Components within the noise bulk are dropped, strong
    ones kept almost unchanged. (A moment estimate of the deviations' covariance, ``R^T R / m - I``, does not shrink
    when ``m < d``: pure noise gives it ``m - 1`` eigenvalues near ``d / m``.)

    Args:
        means: ``(k, m, d)`` fitted class means per group.
        covs: ``(k, d, d)`` within-class covariance per group (positive definite).
        counts: ``(k, m)`` positive row counts of the cells (the weights the means were fitted with).

    Returns:
        np.ndarray: ``(k, m, d)`` shrunk class means (the pooled class means ``mu_y`` are the reference point).

    Raises:
        ValueError: for mismatched shapes, or counts that are not positive and finite.
    """
    means = np.asarray(means, dtype=np.float64)
    covs = np.asarray(covs, dtype=np.float64)
    if means.ndim != 3 or covs.shape != (means.shape[0], means.shape[2], means.shape[2]):
        raise ValueError(f"means must be (k, m, d) and covs (k, d, d); got {means.shape} and {covs.shape}")
    k, m, d = means.shape
    if counts is None:
        raise ValueError("counts are required (the model has no cell counts: fit it with hard group labels)")
    n = np.asarray(counts, dtype=np.float64)
    if n.shape != (k, m) or not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise ValueError(f"counts must be ({k}, {m}) positive finite cell counts; got {np.shape(counts)}")
    n_y = n.sum(axis=0)
    pooled = np.einsum("am,amd->md", n, means) / n_y[:, None]
    group_share = n.sum(axis=1) / n.sum()
    L = cholesky(symmetrize(np.einsum("a,aij->ij", group_share, covs)), "pooled within-class covariance")
    tau = (math.sqrt(d) + math.sqrt(m)) ** 2
    out = means.copy()
    for a in range(k):
        sd = np.sqrt(np.maximum(1.0 / n[a] - 1.0 / n_y, 1e-12))  # (m,) noise sd per whitened coordinate
        W = solve_triangular(L, (means[a] - pooled).T, lower=True, check_finite=False).T  # (m, d)
        c = (W / sd[:, None] ** 2).sum(axis=0) / np.sum(sd**-2.0)
        U, s, Vt = np.linalg.svd((W - c) / sd[:, None], full_matrices=False)
        s_new = s * np.clip(1.0 - tau / np.maximum(s * s, 1e-300), 0.0, None)
        out[a] = pooled + (L @ (c + sd[:, None] * ((U * s_new) @ Vt)).T).T
    return out


def discriminant_coordinates(X: Any, y: Any, groups: Any, n_directions: int | None = None) -> Coordinates:
    """Working coordinates on the discriminant span of the classes plus the groups' mean-difference directions.

    The top ``n_directions`` (default ``m - 1``) generalized eigenvectors of the between-class scatter against the
    within-class covariance (Fisher's discriminant directions, pooled over groups), together with, for every group
    but the first, the count-weighted mean over classes of its within-class mean difference to the first group;
    orthonormalised (rank-revealing SVD). Centre: the mean of ``X``. The orthogonal complement is left unchanged by
    a steering fitted in these coordinates.

    Args:
        X: ``(n, d)`` training rows.
        y: ``(n,)`` class labels (at least 2 classes).
        groups: ``(n,)`` group labels (at least 2 groups).
        n_directions: how many discriminant directions (``1 <= n_directions <= d``; default ``min(m - 1, d)``).

    Returns:
        Coordinates: centre and an orthonormal ``(d, r)`` basis (``r <= n_directions + k - 1``).

    Raises:
        ValueError: for mismatched lengths, fewer than 2 classes or groups, or a bad ``n_directions``.
    """
    X = as_matrix(X, "X", min_rows=2)
    y, g = np.asarray(y), np.asarray(groups)
    if y.shape != (X.shape[0],) or g.shape != (X.shape[0],):
        raise ValueError(f"y and groups must hold one label per row of X ({X.shape[0]}); got {y.shape}, {g.shape}")
    classes, yi = np.unique(y, return_inverse=True)
    labels, gi = np.unique(g, return_inverse=True)
    if len(classes) < 2 or len(labels) < 2:
        raise ValueError(f"need at least 2 classes and 2 groups; got {len(classes)} and {len(labels)}")
    d, m = X.shape[1], len(classes)
    r = min(m - 1, d) if n_directions is None else n_directions
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 1 <= r <= d:
        raise ValueError(f"n_directions must be an integer in 1..{d} (or None); got {n_directions!r}")
    center = X.mean(axis=0)
    ny = np.bincount(yi, minlength=m).astype(np.float64)
    cm = np.zeros((m, d))
    np.add.at(cm, yi, X)
    cm /= ny[:, None]
    resid = X - cm[yi]
    Sw = symmetrize(resid.T @ resid / X.shape[0])
    Sw = Sw + 1e-3 * max(float(np.trace(Sw)) / d, 1e-12) * np.eye(d)  # ridge: d may exceed the rows of a class
    between = cm - center
    Sb = symmetrize((between * ny[:, None]).T @ between / X.shape[0])
    _, vecs = eigh(Sb, Sw)
    cols = [vecs[:, ::-1][:, : int(r)]]
    for a in range(1, len(labels)):
        diff = np.zeros(d)
        for i in range(m):
            in_a, in_0 = (yi == i) & (gi == a), (yi == i) & (gi == 0)
            if in_a.any() and in_0.any():
                diff += ny[i] * (X[in_a].mean(axis=0) - X[in_0].mean(axis=0))
        cols.append(diff[:, None])
    B = np.hstack(cols)
    U, s, _ = np.linalg.svd(B / np.maximum(np.linalg.norm(B, axis=0), 1e-300), full_matrices=False)
    keep = s > 1e-8 * s[0]
    return Coordinates(center, np.ascontiguousarray(U[:, keep]))
