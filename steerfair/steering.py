"""Steering transforms: the affine maps that carry each group onto its ideal target.

For every (group ``a``, class ``i``) cell the Gaussian optimal-transport map ``T_ai`` pushes the
original ``N(mu_ai, S_ai)`` *exactly* onto the ideal ``N~_ai``. Applying ``T_{a,y}`` to labelled
data therefore turns the original distribution into the ideal one (with the ideal priors realised
by :meth:`SteeringTransform.sample_weights`).

When the label is unknown (test time) three documented choices are offered (docs/theory.md):

* ``"posterior"`` (default without labels): ``sum_i P(Y=i | x, a) T_ai(x)`` with the original
  model's group-aware posterior - a soft version of the label map;
* ``"group"``: one OT map per group between the moment-matched Gaussians of the group's feature
  distribution before and after steering (label-free, affine, exact in the first two moments);
* ``"label"``: ``T_{a,y}`` (requires ``y``; exact push-forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .families import Gaussian
from .ideal.solve import Criterion, IdealSolution, Intervention, solve_nearest_ideal
from .maps import AffineMap, gaussian_ot_map
from .model import GroupConditionalModel

__all__ = ["SteeringTransform", "fit_steering", "mixture_moments"]

Mode = Literal["auto", "label", "posterior", "group"]


def mixture_moments(components: tuple[Gaussian, ...], weights: np.ndarray) -> Gaussian:
    """The Gaussian with the mean and covariance of the mixture ``sum_i w_i components[i]``."""
    w = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    mean = sum(wi * c.mean for wi, c in zip(w, components, strict=True))
    second = sum(wi * (c.cov + np.outer(c.mean, c.mean)) for wi, c in zip(w, components, strict=True))
    cov = second - np.outer(mean, mean)
    return Gaussian(mean, 0.5 * (cov + cov.T))


@dataclass(frozen=True, eq=False)
class SteeringTransform:
    """Per-cell and per-group affine maps from a model onto its nearest ideal.

    Maps act in the model's working space (``log x`` for log-normal models); :meth:`transform`
    handles the log/exp round trip.
    """

    solution: IdealSolution
    cell_maps: tuple[tuple[AffineMap, ...], ...]
    group_maps: tuple[AffineMap, ...]

    @classmethod
    def from_solution(cls, solution: IdealSolution) -> SteeringTransform:
        """Build the maps for a solved projection."""
        orig, ideal = solution.original, solution.ideal
        k, m = orig.n_groups, orig.n_classes
        fixed = solution.intervention == "affirmative"
        cells, groups = [], []
        for a in range(k):
            if fixed and a == solution.reference:
                cells.append(tuple(AffineMap.identity(orig.dim) for _ in range(m)))
                groups.append(AffineMap.identity(orig.dim))
                continue
            cells.append(tuple(gaussian_ot_map(orig.components[a][i], ideal.components[a][i]) for i in range(m)))
            src = mixture_moments(orig.components[a], orig.class_priors[a])
            dst = mixture_moments(ideal.components[a], ideal.class_priors[a])
            groups.append(gaussian_ot_map(src, dst))
        return cls(solution, tuple(cells), tuple(groups))

    # ---------------------------------------------------------------- views
    @property
    def original(self) -> GroupConditionalModel:
        """The fitted original model."""
        return self.solution.original

    @property
    def ideal(self) -> GroupConditionalModel:
        """The ideal target model."""
        return self.solution.ideal

    def group_map(self, group: Any) -> AffineMap:
        """The label-free map of one group (by label)."""
        return self.group_maps[int(self.original.group_index(np.asarray([group]), "group")[0])]

    def cell_map(self, group: Any, label: Any) -> AffineMap:
        """The map of one (group, class) cell (by labels)."""
        a = int(self.original.group_index(np.asarray([group]), "group")[0])
        i = int(self.original.class_index(np.asarray([label]), "label")[0])
        return self.cell_maps[a][i]

    def sample_weights(self, y: Any, groups: Any) -> np.ndarray:
        """Weights that realise the ideal class priors (the prior part of the ideal).

        ``groups`` may be ``(n, k)`` membership probabilities (columns in ``original.groups`` order): the
        weight of a row is then its expected cell weight ``sum_a P(a | row) q_i / q_ia`` (one-hot rows give
        the hard-label weights exactly).
        """
        P = _soft_groups(groups)
        if P is None:
            return self.solution.sample_weights(np.asarray(y), np.asarray(groups))
        from .ideal.priors import cell_weights

        orig = self.original
        yi = orig.class_index(np.asarray(y))
        _check_proba(P, len(yi), orig.n_groups, "groups")
        W = cell_weights(orig, self.solution.class_priors)  # (k, m)
        return np.sum(P * W[:, yi].T, axis=1)

    # ----------------------------------------------------------- application
    def transform(
        self,
        X: Any,
        groups: Any = None,
        y: Any = None,
        *,
        mode: Mode = "auto",
        group_proba: Any = None,
    ) -> np.ndarray:
        """Steer the rows of ``X``.

        Args:
            X: features ``(n, d)`` in the original space.
            groups: group labels per row, or ``(n, k)`` membership probabilities (the same as passing
                them as ``group_proba``).
            y: class labels per row (required by ``mode="label"``).
            mode: ``"auto"`` (``"label"`` when ``y`` is given, else ``"posterior"``), ``"label"``,
                ``"posterior"`` or ``"group"``.
            group_proba: ``(n, k)`` group membership probabilities (soft application: the output is
                the probability-weighted mixture of the per-group results). Hard labels are the
                one-hot special case.
        """
        orig = self.original
        Z = orig.features(X)
        n = Z.shape[0]
        if mode == "auto":
            mode = "label" if y is not None else "posterior"
        if mode not in ("label", "posterior", "group"):
            raise ValueError(f"unknown mode {mode!r}; use 'auto', 'label', 'posterior' or 'group'")
        yi = None
        if mode == "label":
            if y is None:
                raise ValueError("mode='label' needs y")
            yi = orig.class_index(np.asarray(y))
            if len(yi) != n:
                raise ValueError(f"y has {len(yi)} entries but X has {n} rows")
        if group_proba is None and _soft_groups(groups) is not None:
            group_proba, groups = groups, None
        if group_proba is None:
            if groups is None:
                raise ValueError("pass groups (labels) or group_proba (probabilities)")
            ga = orig.group_index(np.asarray(groups))
            if len(ga) != n:
                raise ValueError(f"groups has {len(ga)} entries but X has {n} rows")
            P = np.zeros((n, orig.n_groups))
            P[np.arange(n), ga] = 1.0
        else:
            P = _check_proba(np.asarray(group_proba, dtype=np.float64), n, orig.n_groups, "group_proba")
        out = np.zeros_like(Z)
        for a in range(orig.n_groups):
            rows = np.nonzero(P[:, a] > 0)[0]
            if rows.size == 0:
                continue
            out[rows] += P[rows, a, None] * self._apply_group(Z[rows], a, mode, None if yi is None else yi[rows])
        return np.exp(out) if orig.family == "lognormal" else out

    def _apply_group(self, Z: np.ndarray, a: int, mode: str, yi: np.ndarray | None) -> np.ndarray:
        orig = self.original
        if self.solution.intervention == "affirmative" and a == self.solution.reference:
            return Z  # the advantaged group is not moved (bit-exact)
        if mode == "group":
            return self.group_maps[a](Z)
        if mode == "label":
            out = np.empty_like(Z)
            for i in range(orig.n_classes):
                sel = yi == i
                if np.any(sel):
                    out[sel] = self.cell_maps[a][i](Z[sel])
            return out
        # posterior mixture of the cell maps, with the original group-aware posterior
        lj = np.column_stack(
            [np.log(orig.class_priors[a, i]) + orig.components[a][i].logpdf(Z) for i in range(orig.n_classes)]
        )
        lj -= lj.max(axis=1, keepdims=True)
        post = np.exp(lj)
        post /= post.sum(axis=1, keepdims=True)
        return sum(post[:, i, None] * self.cell_maps[a][i](Z) for i in range(orig.n_classes))


def _soft_groups(groups: Any) -> np.ndarray | None:
    """``groups`` as a float ``(n, k)`` probability matrix when it is a 2-D numeric array, else ``None``."""
    if groups is None or isinstance(groups, (str, bytes)):
        return None
    arr = np.asarray(groups.to_numpy() if hasattr(groups, "to_numpy") else groups)
    if arr.ndim == 2 and arr.dtype.kind in "fiub":
        return arr.astype(np.float64)
    return None


def _check_proba(P: np.ndarray, n: int, k: int, name: str) -> np.ndarray:
    if P.shape != (n, k) or not np.all(np.isfinite(P)) or np.any(P < 0):
        raise ValueError(f"{name} must be finite, non-negative, of shape ({n}, {k})")
    if np.any(np.abs(P.sum(axis=1) - 1) > 1e-6):
        raise ValueError(f"each row of {name} must sum to 1")
    return P


def fit_steering(
    model: GroupConditionalModel,
    criterion: Criterion = "equal_opportunity",
    intervention: Intervention = "all",
    solver: Literal["auto", "cvxpy"] = "auto",
    *,
    reference: object = None,
) -> SteeringTransform:
    """Solve the nearest-ideal projection of ``model`` and build the steering maps."""
    return SteeringTransform.from_solution(
        solve_nearest_ideal(model, criterion, intervention, solver, reference=reference)
    )
