"""The covariance estimator: one value that says how a cell covariance is estimated from its moments.

A :class:`CovarianceEstimator` bundles linear shrinkage toward ``(tr S / d) I`` and diagonal regularisation.
Every fit path (arrays, streamed statistics, privatised reports, activations) takes it as one argument,
``estimator=``; the old ``shrinkage=`` / ``reg=`` keywords are read into one by :meth:`CovarianceEstimator.of`.
The default, ``CovarianceEstimator()``, is the maximum-likelihood covariance with ``reg="auto"`` (a tiny ridge
only when the covariance is numerically singular, with a warning).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .warning_location import user_stacklevel

__all__ = [
    "AUTO_REG_RCOND",
    "AUTO_REG_SCALE",
    "CovarianceEstimator",
    "Regularisation",
    "Shrinkage",
    "UNSET",
    "ledoit_wolf_intensity",
    "near_singular",
    "oas_intensity",
]

#: Covariance shrinkage: ``"ledoit_wolf"``, ``"oas"``, a fixed intensity in ``[0, 1]`` or ``None`` (MLE).
Shrinkage = Literal["ledoit_wolf", "oas"] | float | None
#: Diagonal regularisation: a fixed amount, ``"auto"`` (only near-singular covariances) or ``None``.
Regularisation = float | Literal["auto"] | None

#: A fitted covariance whose correlation matrix has an eigenvalue ratio min/max below this is "near-singular".
AUTO_REG_RCOND = 1e-10
#: ``reg="auto"`` then adds ``AUTO_REG_SCALE`` times each variance to the diagonal.
AUTO_REG_SCALE = 1e-8

#: Marks a keyword argument the caller did not pass.
UNSET: Any = object()


def ledoit_wolf_intensity(S: np.ndarray, Xc: np.ndarray, p: np.ndarray) -> float:
    """Ledoit-Wolf (2004) estimate of the optimal shrinkage intensity of ``S`` toward ``(tr S / d) I``.

    Args:
        S: the weighted covariance of the rows.
        Xc: the rows centred at their weighted mean, ``(n, d)``.
        p: normalised row weights (they enter as ``sum p_k^2 ||x_k x_k^T - S||_F^2``).
    """
    d = S.shape[0]
    mu = float(np.trace(S)) / d
    sq = np.einsum("ij,ij->i", Xc, Xc)
    quad = np.einsum("ij,jk,ik->i", Xc, S, Xc)
    fro2 = float(np.sum(S * S))
    b2 = float(np.sum(p**2 * (sq**2 - 2.0 * quad + fro2)))
    d2 = float(np.sum((S - mu * np.eye(d)) ** 2))
    return 0.0 if d2 <= 0 else min(max(b2, 0.0), d2) / d2


def oas_intensity(S: np.ndarray, n_eff: float) -> float:
    """Oracle-approximating shrinkage intensity (Chen et al. 2010) for ``n_eff`` effective samples."""
    d = S.shape[0]
    mu = float(np.trace(S)) / d
    a2 = float(np.mean(S**2))
    den = (n_eff + 1.0) * (a2 - mu**2 / d)
    return 1.0 if den <= 0 else min((a2 + mu**2) / den, 1.0)


def near_singular(eigenvalues: np.ndarray) -> bool:
    """The ``reg="auto"`` criterion: the eigenvalue ratio min/max (ascending ``eigenvalues`` of a symmetric matrix)
    is at most ``AUTO_REG_RCOND``, or the matrix has no positive eigenvalue."""
    return not (eigenvalues[-1] > 0 and eigenvalues[0] > AUTO_REG_RCOND * eigenvalues[-1])


@dataclass(frozen=True)
class CovarianceEstimator:
    """How a covariance is estimated from a cell's moments.

    Attributes:
        shrinkage: ``None`` (maximum likelihood), ``"oas"`` (oracle-approximating, from the moments and the
            effective sample size), ``"ledoit_wolf"`` (needs the rows: available when fitting from arrays) or a
            fixed intensity in ``[0, 1]``.
        reg: diagonal regularisation added after shrinkage: ``"auto"`` adds ``AUTO_REG_SCALE`` times each variance
            only when ``S`` is near-singular (its correlation matrix's eigenvalue ratio below ``AUTO_REG_RCOND``)
            and warns; a float is always added; ``None`` never regularises (a singular covariance then raises
            where it is used).
    """

    shrinkage: Shrinkage = None
    reg: Regularisation = "auto"

    def __post_init__(self) -> None:
        s = self.shrinkage
        if isinstance(s, str):
            if s not in ("ledoit_wolf", "oas"):
                raise ValueError(f"unknown shrinkage {s!r}; use 'ledoit_wolf', 'oas', a float in [0, 1] or None")
        elif s is not None:
            if isinstance(s, bool) or not isinstance(s, (int, float, np.floating, np.integer)):
                raise ValueError(f"shrinkage must be 'ledoit_wolf', 'oas', a float in [0, 1] or None; got {s!r}")
            if not 0.0 <= float(s) <= 1.0:
                raise ValueError(f"shrinkage intensity must lie in [0, 1]; got {s!r}")
            object.__setattr__(self, "shrinkage", float(s))
        r = self.reg
        if isinstance(r, str):
            if r != "auto":
                raise ValueError(f"reg must be a non-negative float, 'auto' or None; got {r!r}")
        elif r is not None:
            if isinstance(r, bool) or not isinstance(r, (int, float, np.floating, np.integer)):
                raise ValueError(f"reg must be a non-negative float, 'auto' or None; got {r!r}")
            if not (math.isfinite(float(r)) and float(r) >= 0):
                raise ValueError(f"reg must be a finite non-negative float; got {r!r}")
            object.__setattr__(self, "reg", float(r))

    @classmethod
    def of(cls, estimator: Any = None, *, shrinkage: Any = UNSET, reg: Any = UNSET) -> CovarianceEstimator:
        """The estimator a call asks for: ``estimator`` itself, or one built from loose ``shrinkage`` / ``reg``.

        Passing both an estimator and a loose keyword is an error; unset fields take the defaults.
        """
        loose = {k: v for k, v in (("shrinkage", shrinkage), ("reg", reg)) if v is not UNSET}
        if estimator is None:
            return cls(**loose)
        if not isinstance(estimator, CovarianceEstimator):
            raise TypeError(f"estimator must be a CovarianceEstimator; got {type(estimator).__name__}")
        if loose:
            raise ValueError(f"pass estimator= or {' / '.join(loose)}=, not both")
        return estimator

    @property
    def needs_rows(self) -> bool:
        """Whether the shrinkage intensity needs the rows themselves (Ledoit-Wolf)."""
        return self.shrinkage == "ledoit_wolf"

    def intensity(self, S: np.ndarray, n_eff: float, rows: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        """The shrinkage intensity for covariance ``S`` of ``n_eff`` effective samples.

        Args:
            S: the (maximum-likelihood) covariance.
            n_eff: effective sample size ``(sum w)^2 / sum w^2``.
            rows: ``(centred rows, normalised weights)`` for Ledoit-Wolf.
        """
        s = self.shrinkage
        if s is None:
            return 0.0
        if s == "oas":
            return oas_intensity(S, n_eff)
        if s == "ledoit_wolf":
            if rows is None:
                raise ValueError(
                    "shrinkage='ledoit_wolf' needs the rows; from statistics use 'oas' or a fixed intensity"
                )
            return ledoit_wolf_intensity(S, *rows)
        return float(s)

    def estimate(
        self,
        S: np.ndarray,
        n_eff: float,
        *,
        rows: tuple[np.ndarray, np.ndarray] | None = None,
        intensity: float | None = None,
        stacklevel: int | None = None,
    ) -> np.ndarray:
        """Shrink, then regularise, the symmetric matrix ``S`` (a new array).

        Args:
            S: the maximum-likelihood covariance.
            n_eff: effective sample size (for ``"oas"``).
            rows: centred rows and normalised weights (for ``"ledoit_wolf"``).
            intensity: a shrinkage intensity computed elsewhere (overrides ``shrinkage``).
            stacklevel: passed to the ``reg="auto"`` warning (default: the first frame outside steerfair).
        """
        alpha = self.intensity(S, n_eff, rows) if intensity is None else float(intensity)
        out = np.array(S, dtype=np.float64, copy=True)
        if alpha != 0.0:
            d = out.shape[0]
            mu = float(np.trace(out)) / d
            out *= 1.0 - alpha
            out[np.diag_indices(d)] += alpha * mu
        return self.regularise(out, stacklevel=None if stacklevel is None else stacklevel + 1)

    def regularise(self, S: np.ndarray, *, stacklevel: int | None = None) -> np.ndarray:
        """Add the diagonal regularisation ``reg`` to ``S`` (in place when a ridge is added; returns ``S``).

        ``reg="auto"`` is scale-free: it tests the correlation matrix ``D^-1/2 S D^-1/2`` (``D`` the variances) and
        adds ``AUTO_REG_SCALE`` times each variance (``tr(S) / d`` for a zero variance), so a change of units of
        any column changes the result by the same change of units.
        """
        reg = self.reg
        if reg is None:
            return S
        d = S.shape[0]
        if reg == "auto":
            variances = np.diag(S).copy()
            if not np.any(variances > 0):
                raise ValueError("the fitted covariance is zero (all samples identical)")
            scale = np.where(variances > 0, variances, float(np.sum(variances[variances > 0])) / d)
            root = np.sqrt(scale)
            evals = np.linalg.eigvalsh(S / np.outer(root, root))
            if not near_singular(evals):
                return S
            warnings.warn(
                f"fitted covariance is near-singular (eigenvalue ratio of its correlation matrix "
                f"{evals[0] / evals[-1]:.2e}); adding {AUTO_REG_SCALE:g} x each variance to the diagonal. Pass "
                "shrinkage='oas' or reg=<float> to control this.",
                RuntimeWarning,
                stacklevel=user_stacklevel() if stacklevel is None else stacklevel,
            )
            S[np.diag_indices(d)] += AUTO_REG_SCALE * scale
            return S
        S[np.diag_indices(d)] += float(reg)
        return S
