"""Multivariate log-normal family, parametrised by the underlying normal of ``log X``.

``X = exp(Z)`` with ``Z ~ N(mean, cov)``. KL divergence is invariant under the bijection
``x -> log x``, so ``KL(LogNormal(m0,S0) || LogNormal(m1,S1)) = KL(N(m0,S0) || N(m1,S1))``: every
solver works on the underlying normals and maps act affinely in log-space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..validation import as_matrix
from .gaussian import Gaussian, Shrinkage

if TYPE_CHECKING:  # pragma: no cover
    from ..maps.affine import AffineMap

__all__ = ["LogNormal", "check_positive", "to_log"]


def check_positive(X: np.ndarray, name: str = "X") -> np.ndarray:
    """Raise unless every entry is strictly positive (a log-normal's support)."""
    if np.any(X <= 0):
        bad = int(np.count_nonzero(X <= 0))
        raise ValueError(f"{name} has {bad} non-positive value(s); a log-normal needs strictly positive data")
    return X


def to_log(X: np.ndarray, name: str = "X", dim: int | None = None) -> np.ndarray:
    """Validated ``log X``."""
    X = as_matrix(X, name, dim=dim)
    return np.log(check_positive(X, name))


@dataclass(frozen=True, eq=False)
class LogNormal:
    """Log-normal distribution; ``mean`` and ``cov`` are the parameters of ``log X``."""

    mean: np.ndarray
    cov: np.ndarray
    normal: Gaussian = field(init=False, repr=False)

    def __post_init__(self) -> None:
        g = Gaussian(self.mean, self.cov)
        object.__setattr__(self, "normal", g)
        object.__setattr__(self, "mean", g.mean)
        object.__setattr__(self, "cov", g.cov)

    @classmethod
    def from_normal(cls, normal: Gaussian) -> LogNormal:
        """Wrap an underlying normal."""
        return cls(normal.mean, normal.cov)

    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return self.normal.dim

    def __repr__(self) -> str:
        return f"LogNormal(dim={self.dim})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogNormal) and self.normal == other.normal

    # Defining __eq__ sets __hash__ to None: instances compare by value and are unhashable.

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        weights: np.ndarray | None = None,
        shrinkage: Shrinkage = None,
        reg: float | Literal["auto"] | None = "auto",
    ) -> LogNormal:
        """Fit the underlying normal to ``log X`` (``X`` strictly positive). See :meth:`Gaussian.fit`."""
        return cls.from_normal(Gaussian.fit(to_log(X), weights=weights, shrinkage=shrinkage, reg=reg))

    def logpdf(self, X: np.ndarray) -> np.ndarray:
        """Log-density of ``X`` (Jacobian ``-sum(log x)`` included)."""
        L = to_log(X, dim=self.dim)
        return self.normal.logpdf(L) - L.sum(axis=1)

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """Draw ``n`` samples."""
        return np.exp(self.normal.sample(n, seed))

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of ``X`` itself (not of ``log X``)."""
        m, S = self.mean, self.cov
        ex = np.exp(m + 0.5 * np.diag(S))
        return ex, np.outer(ex, ex) * np.expm1(S)

    def kl(self, other: LogNormal) -> float:
        """``KL(self || other)`` (equals the KL of the underlying normals)."""
        if not isinstance(other, LogNormal):
            raise TypeError(f"kl needs two LogNormals; got {type(other).__name__}")
        return self.normal.kl(other.normal)

    def pushforward(self, amap: AffineMap) -> LogNormal:
        """Distribution of ``exp(A log x + b)`` for ``x ~ self`` (the map acts in log-space)."""
        return LogNormal.from_normal(self.normal.pushforward(amap))
