"""Group-matching baselines that steerfair is compared against, behind one small interface.

Every baseline is fitted on ``(X, groups)`` (and labels where it uses them) and moves rows given their
group, like :class:`steerfair.FairSteerer` with known groups:

* :class:`MeanMatching`: shift every group's mean onto the pooled mean (``x - m_a + m``).
* :class:`GaussianOTMatching`: MiMiC-style (Singh et al. 2024) affine matching. Every group's Gaussian
  (mean, covariance) is carried by the 2-Wasserstein optimal transport map onto a target Gaussian: a
  reference group (MiMiC's source -> target convention; default the largest group) or the Bures
  barycenter of all groups.
* :class:`LeaceMatching`: LEACE (Belrose et al. 2023) through the ``concept-erasure`` package with its defaults
  (covariance shrinkage, singular values of the whitened cross-covariance below ``svd_tol = 0.01`` dropped): the
  least-squares-optimal linear erasure of the group indicator up to those defaults (same map for every row). It is
  fitted on standardised columns and mapped back: exact LEACE does not depend on the columns' units or offsets, but
  the package's shrinkage does (on German's raw columns it moved rows 6.6 times as far, 1.04 against 0.158 SD^2). A weak
  signal of a small group can fall below the tolerance and stay (a 2 % group shifted by 0.25 SD: no change at
  all), as it would for a user of the package's defaults.
* :class:`INLP`: iterative nullspace projection (Ravfogel et al. 2020); fitted on ``(X, y, groups)`` with ``y``
  unused (the Bios protocol's interface).
* :func:`reweighing_weights`: Kamiran-Calders reweighing, ``w(a, y) = P(a) P(y) / P(a, y)``.

All fits run in float64 with diagonal regularisation only; the maps are
:class:`steerfair.AffineMap` objects so they can be saved and applied to numpy arrays or torch tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .covariance import Regularisation
from .families import Gaussian
from .maps import AffineMap, bures_barycenter, gaussian_ot_map
from .membership import Membership
from .validation import as_matrix

__all__ = ["INLP", "GaussianOTMatching", "LeaceMatching", "MeanMatching", "reweighing_weights"]


def _hard_groups(X: np.ndarray, groups: Any) -> tuple[np.ndarray, np.ndarray]:
    """Group labels of the rows (hard labels, >= 2 groups) and the distinct labels, via :class:`Membership`."""
    membership = Membership.parse(groups, X.shape[0])
    if not membership.is_hard:
        raise ValueError("these baselines are fitted on hard group labels, not probabilities")
    return membership.labels[membership.indices()], membership.labels


class _GroupwiseAffine:
    """Shared ``transform`` for baselines that apply one affine map per group."""

    maps_: dict[Any, AffineMap]

    def fit(self, X: Any, groups: Any) -> _GroupwiseAffine:
        raise NotImplementedError  # every subclass fits its own maps

    def transform(self, X: Any, groups: Any) -> np.ndarray:
        """Move every row with its group's map; ``(n, k)`` probabilities (columns in fit order) mix the maps."""
        if not hasattr(self, "maps_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(X, groups) first")
        Xa = as_matrix(X, "X")
        P = Membership.align(groups, list(self.maps_), Xa.shape[0]).weights
        out = np.zeros_like(Xa)
        for a, T in enumerate(self.maps_.values()):
            rows = np.nonzero(P[:, a])[0]
            if rows.size:
                out[rows] += P[rows, a, None] * T(Xa[rows])
        return out

    def fit_transform(self, X: Any, groups: Any) -> np.ndarray:
        """Fit on ``(X, groups)``, then move the same rows."""
        return self.fit(X, groups).transform(X, groups)


class MeanMatching(_GroupwiseAffine):
    """Shift every group's mean onto the pooled mean (first-moment matching)."""

    def fit(self, X: Any, groups: Any) -> MeanMatching:
        """Fit one translation per group, from the group means and the pooled mean; returns ``self``."""
        Xa = as_matrix(X, "X")
        g, labels = _hard_groups(Xa, groups)
        mu = Xa.mean(axis=0)
        self.maps_ = {a: AffineMap.translation(mu - Xa[g == a].mean(axis=0)) for a in labels.tolist()}
        return self


class GaussianOTMatching(_GroupwiseAffine):
    """MiMiC-style Gaussian optimal-transport matching of the group distributions.

    Args:
        target: ("reference" or "barycenter") ``"reference"``: move every group onto the Gaussian of ``reference``
            (which stays put); ``"barycenter"``: move every group onto the size-weighted Bures-Wasserstein barycenter.
        reference: (group label, optional) The target group for ``target="reference"``; default the largest group.
        reg: (float or "auto") Diagonal regularisation of each group covariance, as in :meth:`steerfair.Gaussian.fit`
            (one-hot columns can make a group covariance singular).
    """

    def __init__(self, target: str = "reference", reference: Any = None, reg: Regularisation = "auto") -> None:
        if target not in ("reference", "barycenter"):
            raise ValueError(f"target must be 'reference' or 'barycenter'; got {target!r}")
        self.target = target
        self.reference = reference
        self.reg = reg

    def fit(self, X: Any, groups: Any) -> GaussianOTMatching:
        """Fit a Gaussian per group and the Gaussian OT map of each onto the target; returns ``self``."""
        Xa = as_matrix(X, "X")
        g, labels = _hard_groups(Xa, groups)
        fitted = {a: Gaussian.fit(Xa[g == a], reg=self.reg) for a in labels.tolist()}
        sizes = {a: int(np.sum(g == a)) for a in fitted}
        if self.target == "reference":
            ref = max(sizes, key=sizes.__getitem__) if self.reference is None else self.reference
            if ref not in fitted:
                raise ValueError(f"reference group {ref!r} not in groups {sorted(fitted)!r}")
            tgt = fitted[ref]
        else:
            w = np.array([sizes[a] for a in fitted], dtype=np.float64)
            cov = bures_barycenter([p.cov for p in fitted.values()], w)
            mean = sum(wi * p.mean for wi, p in zip(w / w.sum(), fitted.values(), strict=True))
            tgt = Gaussian(mean, cov)
        self.maps_ = {a: gaussian_ot_map(p, tgt) for a, p in fitted.items()}
        if self.target == "reference":  # the reference group is the target: exactly the identity
            self.maps_[ref] = AffineMap.translation(np.zeros(Xa.shape[1]))
        return self


class LeaceMatching:
    """LEACE erasure of the group indicator (``concept-erasure`` with its defaults, on standardised columns; one map
    for all rows)."""

    def fit(self, X: Any, groups: Any) -> LeaceMatching:
        """Fit the LEACE eraser of the one-hot group indicator (hard group labels); returns ``self``."""
        try:
            import torch
            from concept_erasure import LeaceEraser
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise ImportError("LeaceMatching needs the concept-erasure package: pip install concept-erasure") from exc
        Xa = as_matrix(X, "X")
        g, labels = _hard_groups(Xa, groups)
        Z = (g[:, None] == labels[None, :]).astype(np.float64)
        # fit in standard units: the package's shrinkage is not unit-free, and its moments lose digits at offsets
        centre = Xa.mean(axis=0)
        scale = Xa.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        eraser = LeaceEraser.fit(torch.from_numpy((Xa - centre) / scale), torch.from_numpy(Z))
        P = (eraser.proj_left @ eraser.proj_right).double().numpy()  # u -> u - P (u - bias), u = (x - centre) / scale
        A = np.eye(Xa.shape[1]) - scale[:, None] * P / scale[None, :]
        b = centre - A @ centre + scale * (P @ eraser.bias.double().numpy())
        self.map_ = AffineMap(A, b)
        return self

    def transform(self, X: Any, groups: Any = None) -> np.ndarray:
        """Erase the group from every row (``groups`` is accepted for a uniform interface and ignored)."""
        if not hasattr(self, "map_"):
            raise RuntimeError("LeaceMatching is not fitted; call fit(X, groups) first")
        return self.map_(as_matrix(X, "X"))

    def fit_transform(self, X: Any, groups: Any) -> np.ndarray:
        """Fit on ``(X, groups)``, then erase the group from the same rows."""
        return self.fit(X, groups).transform(X)


def reweighing_weights(y: Any, groups: Any) -> np.ndarray:
    """Kamiran-Calders reweighing: ``w = P(A=a) P(Y=y) / P(A=a, Y=y)`` for every row (mean weight 1).

    Under these weights the label is independent of the group, i.e. the class priors are equal across
    groups (condition 3 of the ideal distribution alone, paper Remark 3.4).
    """
    if np.ndim(y) >= 1 and np.ndim(groups) >= 1 and len(y) != len(groups):
        raise ValueError(f"y and groups must have one entry per row each; got {len(y)} and {len(groups)}")
    G = Membership.parse(groups, name="groups", min_groups=1)
    Y = Membership.parse(y, G.n, name="y", min_groups=1)
    if not (G.is_hard and Y.is_hard) or np.ndim(y) != 1 or np.ndim(groups) != 1:
        raise ValueError("y and groups must be 1-D labels (one per row), not probabilities")
    if G.n == 0:
        raise ValueError("y and groups are empty; pass one label per row")
    g, yy = G.indices(), Y.indices()
    w = np.empty(G.n, dtype=np.float64)
    for a in range(G.k):
        ma = g == a
        for c in range(Y.k):
            cell = ma & (yy == c)
            if cell.any():
                w[cell] = ma.mean() * (yy == c).mean() / cell.mean()
    return w


class INLP:
    """Iterative nullspace projection (Ravfogel et al. 2020): repeatedly fit a linear gender classifier and
    project its direction out; ``P = I - P_rowspace`` of all the classifier directions. Stops after
    ``n_iterations`` or once the classifier's training accuracy is within ``min_gain`` of the majority rate
    (binary groups: one direction per iteration)."""

    def __init__(self, n_iterations: int = 20, C: float = 0.01, min_gain: float = 0.005, seed: int = 0) -> None:
        self.n_iterations, self.C, self.min_gain, self.seed = n_iterations, C, min_gain, seed

    def fit(self, X: Any, y: Any, groups: Any) -> INLP:
        """Learn the projection from ``X`` and the group labels (``y`` is unused)."""
        from sklearn.svm import LinearSVC

        X = as_matrix(X, "X", min_rows=2)
        g, _ = _hard_groups(X, groups)
        if y is not None:  # unused, but a wrong one is a caller's mistake worth reporting
            Membership.parse(y, X.shape[0], name="y", min_groups=1)
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        W = np.zeros((0, X.shape[1]))
        P = np.eye(X.shape[1])
        majority = max(np.mean(g == v) for v in np.unique(g))
        self.n_iterations_ = 0
        for _ in range(min(self.n_iterations, X.shape[1] - 1)):
            clf = LinearSVC(C=self.C, random_state=self.seed).fit(Xc @ P, g)
            if clf.score(Xc @ P, g) < majority + self.min_gain:  # the group is no longer linearly decodable
                break
            self.n_iterations_ += 1
            W = np.vstack([W, clf.coef_])
            Q, _ = np.linalg.qr(W.T)  # orthonormal basis of the rowspace of all directions so far
            P = np.eye(X.shape[1]) - Q @ Q.T
        self.map_ = AffineMap(P, self.mean_ - P @ self.mean_)
        return self

    def transform(self, X: Any, groups: Any = None, y: Any = None) -> np.ndarray:
        """Project every row (``groups`` and ``y`` are accepted for a uniform interface and ignored)."""
        if not hasattr(self, "map_"):
            raise RuntimeError("INLP is not fitted; call fit(X, y, groups) first")
        return self.map_(as_matrix(X, "X", dim=self.map_.d_in))

    def fit_transform(self, X: Any, y: Any, groups: Any) -> np.ndarray:
        """Fit on ``(X, y, groups)`` (``y`` unused), then project the same rows."""
        return self.fit(X, y, groups).transform(X)
