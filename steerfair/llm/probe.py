"""A linear (LDA) probe of the group of a hidden state, for steering rows whose group is not given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..membership import Membership
from ..validation import as_number

__all__ = ["LinearProbe"]


@dataclass(frozen=True, eq=False)
class LinearProbe:
    """Linear model of ``P(group | h)``: ``softmax(h W + c)`` over ``groups``.

    Fit by linear discriminant analysis (Gaussian groups with a shared covariance, whose Bayes posterior is
    exactly this softmax), from arrays (:meth:`fit`) or from streamed group moments (:meth:`from_moments`),
    so no activation has to be kept.
    """

    W: np.ndarray  # (d, k)
    c: np.ndarray  # (k,)
    groups: tuple[Any, ...]

    def __repr__(self) -> str:  # the arrays would fill a screen (a bundle prints one probe per layer)
        return f"LinearProbe(d={self.W.shape[0]}, groups={self.groups!r})"

    @classmethod
    def from_moments(
        cls, groups: Sequence[Any], counts: Any, means: Any, covs: Any, *, reg: float = 1e-6
    ) -> LinearProbe:
        """LDA from per-group counts ``(k,)``, means ``(k, d)`` and ML covariances ``(k, d, d)``.

        The shared covariance is the count-weighted within-group covariance plus ``reg * tr/d`` on the
        diagonal; ``W = S^-1 mu_a`` by a Cholesky solve (no inverse).
        """
        n = np.asarray(counts, dtype=np.float64)
        mu = np.asarray(means, dtype=np.float64)
        S = np.asarray(covs, dtype=np.float64)
        k = len(groups)
        if n.shape != (k,) or mu.ndim != 2 or mu.shape[0] != k or S.shape != (k, mu.shape[1], mu.shape[1]):
            raise ValueError("counts (k,), means (k, d) and covs (k, d, d) must agree with groups")
        if np.any(n <= 0):
            raise ValueError("every group needs a positive count")
        as_number(reg, "reg", low=0.0)
        d = mu.shape[1]
        pooled = np.tensordot(n / n.sum(), S, axes=1)
        pooled = 0.5 * (pooled + pooled.T) + reg * np.trace(pooled) / d * np.eye(d)
        from scipy.linalg import cho_factor, cho_solve

        fac = cho_factor(pooled, lower=True)
        W = cho_solve(fac, mu.T)  # (d, k)
        c = -0.5 * np.sum(mu.T * W, axis=0) + np.log(n / n.sum())
        return cls(W, c, tuple(groups))

    @classmethod
    def fit(cls, X: Any, groups: Any, *, reg: float = 1e-6) -> LinearProbe:
        """LDA from rows ``X`` (``n x d``) and their group labels."""
        from ..statistics import CellStatistics
        from ..validation import as_matrix

        X = as_matrix(X, "X", min_rows=2)
        G = Membership.parse(groups, X.shape[0])
        pooled = CellStatistics.from_rows(X, G, Membership.one_hot(np.zeros(X.shape[0], dtype=np.int64), [0]))
        return cls.from_moments(G.labels.tolist(), pooled.counts[:, 0], pooled.means[:, 0], pooled.covs[:, 0], reg=reg)

    def proba(self, h: Any) -> Any:
        """``P(group | h)`` for rows of ``h`` (numpy or torch, any leading dims): ``... x k``."""
        if not isinstance(h, torch.Tensor):
            h = np.asarray(h, dtype=np.float64)
        width = h.shape[-1] if h.ndim else None
        if width != self.W.shape[0]:
            raise ValueError(f"h must have {self.W.shape[0]} columns (the probe's width); got shape {tuple(h.shape)}")
        if isinstance(h, torch.Tensor):
            W = torch.as_tensor(self.W, dtype=torch.float32, device=h.device)
            c = torch.as_tensor(self.c, dtype=torch.float32, device=h.device)
            return torch.softmax(h.float() @ W + c, dim=-1)
        z = np.asarray(h, dtype=np.float64) @ self.W + self.c
        z -= z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def columns_for(self, labels: Sequence[Any], where: str = "the maps") -> list[int]:
        """The column of :meth:`proba` for each of ``labels`` (the groups of a set of maps, in their order): a probe's
        groups are matched by name, never by position.

        Raises:
            ValueError: if the probe's groups are not exactly ``labels`` (``where`` names the maps in the message).
        """
        groups = list(self.groups)
        columns = [next((j for j, g in enumerate(groups) if g == label), -1) for label in labels]
        if len(groups) != len(labels) or -1 in columns:
            raise ValueError(
                f"{where}: the probe's groups {groups} are not the groups of the maps {list(labels)}; pass the probe "
                "fitted with these maps (the bundle's own), or groups= / group_proba="
            )
        return columns

    def predict(self, h: Any) -> np.ndarray:
        """The most probable group of each row."""
        p = self.proba(h)
        p = p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else p
        return np.asarray(self.groups, dtype=object)[np.argmax(p, axis=-1)]
