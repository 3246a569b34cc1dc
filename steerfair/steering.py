"""The steering transform: how rows move onto the ideal. Every front end (tables, representations, LLM hooks)
builds one of these and adapts its inputs to it.

For every (group ``a``, class ``i``) cell the Gaussian optimal-transport map ``T_ai`` pushes the original
``N(mu_ai, S_ai)`` *exactly* onto its target: the ideal cell ``N~_ai`` (``frame="ideal"``) or the ideal's shared
class template ``N(nu_i, Omega_i)`` (``frame="template"``: the ideal composed with a per-group affine bijection,
which is the same ideal for a group-aware classifier and makes the steered class-conditionals identical across
groups). Applying ``T_{a,y}`` to labelled data turns the original distribution into the target (with the ideal
priors realised by :meth:`SteeringTransform.sample_weights`).

When the label is unknown (test time) the documented choices are (docs/theory.md):

* ``"posterior"`` (default without labels): ``sum_i P(Y=i | x, a) T_ai(x)`` with the original model's
  group-aware posterior (:meth:`~steerfair.GroupConditionalModel.class_posterior`);
* ``"group"``: one OT map per group between the moment-matched Gaussians of the group's feature distribution
  before and after steering (label-free, affine, exact in the first two moments);
* ``"label"``: ``T_{a,y}`` (requires ``y``; exact push-forward).

Group membership may be hard, soft or posterior (a :class:`~steerfair.membership.Membership`): the output is the
membership-weighted mixture of the per-group results. Maps act in *working coordinates*
(:class:`Coordinates`: a centre, an orthonormal basis of a steered subspace, and a per-coordinate scale);
directions outside the subspace are left unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .families import Gaussian
from .families.lognormal import to_log
from .ideal.solve import Criterion, Family, IdealSolution, Intervention, solve_nearest_ideal
from .linalg import eigh_sym
from .maps import AffineMap, gaussian_ot_map
from .membership import Membership
from .model import GroupConditionalModel
from .validation import as_matrix

__all__ = ["Coordinates", "Frame", "Mode", "SteeringTransform", "fit_steering", "mixture_moments"]

#: How :meth:`SteeringTransform.transform` moves rows: by label, by class posterior, by group, or chosen from
#: its arguments (``"auto"``).
Mode = Literal["auto", "label", "posterior", "group"]
#: What the maps target: the ideal distribution, or its per-group templates.
Frame = Literal["ideal", "template"]
_MODES = ("auto", "label", "posterior", "group")


def mixture_moments(components: tuple[Gaussian, ...], weights: np.ndarray) -> Gaussian:
    """The Gaussian with the mean and covariance of the mixture ``sum_i w_i components[i]`` (centred sums).

    Raises:
        ValueError: if ``weights`` is not one non-negative finite number per component with a positive sum, or the
            components differ in dimension.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != len(components) or not len(components):
        raise ValueError(f"weights must hold one number per component ({len(components)}); got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.sum(w) > 0:
        raise ValueError(f"weights must be non-negative and finite with a positive sum; got {w.tolist()}")
    dims = {c.dim for c in components}
    if len(dims) != 1:
        raise ValueError(f"the components must share one dimension; got dimensions {sorted(dims)}")
    w = w / np.sum(w)
    mean = sum(wi * c.mean for wi, c in zip(w, components, strict=True))
    cov = sum(wi * (c.cov + np.outer(c.mean - mean, c.mean - mean)) for wi, c in zip(w, components, strict=True))
    return Gaussian(mean, 0.5 * (cov + cov.T))


@dataclass(frozen=True, eq=False)
class Coordinates:
    """Working coordinates of a steering transform: ``z = (basis^T (x - center)) / scale``.

    Attributes:
        center: ``(d,)`` or ``None`` (the origin).
        basis: ``(d, r)`` with orthonormal columns spanning the steered subspace, or ``None`` (all of it).
        scale: ``(r,)`` positive per-coordinate scale, or ``None`` (1).
    """

    center: np.ndarray | None = None
    basis: np.ndarray | None = None
    scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Check the fields' shapes and that ``basis`` is orthonormal (``lift`` inverts ``to_working`` only then: a
        basis ``2 [e1, e2]`` of the right subspace left the steered rows 0.25 from ideal, silently)."""
        c = None if self.center is None else np.asarray(self.center, dtype=np.float64)
        d = None if c is None else c.shape
        if c is not None and (c.ndim != 1 or not np.all(np.isfinite(c))):
            raise ValueError(f"center must be a finite (d,) vector; got shape {d}")
        r = None
        if self.basis is not None:
            B = np.asarray(self.basis, dtype=np.float64)
            if B.ndim != 2 or (d is not None and B.shape[0] != d[0]) or not np.all(np.isfinite(B)):
                raise ValueError(f"basis must be a finite (d, r) matrix with d = len(center); got shape {B.shape}")
            if not np.allclose(B.T @ B, np.eye(B.shape[1]), rtol=0.0, atol=1e-8):
                raise ValueError("basis must have orthonormal columns (e.g. from np.linalg.qr or eigh)")
            r = B.shape[1]
        if self.scale is not None:
            sc = np.asarray(self.scale, dtype=np.float64)
            if sc.ndim != 1 or (r is not None and sc.size != r) or not np.all(np.isfinite(sc) & (sc > 0)):
                raise ValueError(f"scale must hold one positive finite number per working coordinate; got {sc}")

    @classmethod
    def principal(cls, cov: Any, rank: int | None, center: Any = None) -> Coordinates:
        """The top-``rank`` principal subspace of the covariance ``cov``, with origin ``center`` (``rank=None`` or
        ``rank >= d``: the input coordinates themselves).

        Raises:
            ValueError: if ``cov`` is not a square finite matrix (one column's ``np.cov`` is 0-d: taken as 1 x 1),
                ``center`` has another length, or ``rank`` is not a positive integer.
        """
        cov = np.atleast_2d(np.asarray(cov, dtype=np.float64))
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or not np.all(np.isfinite(cov)):
            raise ValueError(f"cov must be a square finite matrix; got shape {cov.shape}")
        d = cov.shape[0]
        if center is not None and np.shape(center) != (d,):
            raise ValueError(f"center must have one entry per coordinate ({d}); got shape {np.shape(center)}")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank):
            raise ValueError(f"rank must be None or a positive integer; got {rank!r}")
        if rank is None or rank >= d:
            return cls()  # the whole space: no change of coordinates
        c = None if center is None else np.asarray(center, dtype=np.float64)
        _, vecs = eigh_sym(cov)
        return cls(c, np.ascontiguousarray(vecs[:, ::-1][:, : int(rank)]))

    @classmethod
    def standardising(cls, model: GroupConditionalModel) -> Coordinates:
        """Per-column scaling by the standard deviation of the model's mixture (1 where it is not positive).

        The nearest-ideal problem is equivariant under a common diagonal scaling, so the ideal found in these
        coordinates is the same in exact arithmetic. The steering maps are not: the OT maps minimise a Euclidean
        cost, which a change of units changes, so the steered rows depend on the coordinates (up to 0.33 SD between
        the identity and these coordinates in group mode, measured). Steering in these coordinates makes the steered
        rows equivariant to the columns' units (``FairSteerer`` does), and keeps columns on very different scales
        from making the covariances so ill-conditioned that the OT maps amplify round-off."""
        joint = model.joint
        comps = [(joint[a, i], model.components[a][i]) for a in range(model.n_groups) for i in range(model.n_classes)]
        mean = sum(w * c.mean for w, c in comps)
        var = sum(w * (np.diag(c.cov) + (c.mean - mean) ** 2) for w, c in comps)
        var = np.asarray(var, dtype=np.float64)
        return cls(scale=np.where(var > 0, np.sqrt(np.maximum(var, 0.0)), 1.0))

    @property
    def is_identity(self) -> bool:
        """Whether working coordinates are the input coordinates."""
        return self.center is None and self.basis is None and self.scale is None

    def to_working(self, X: np.ndarray) -> np.ndarray:
        """``z`` of the rows of ``X``."""
        Z = X if self.center is None else X - self.center
        if self.basis is not None:
            Z = Z @ self.basis
        return Z / self.scale if self.scale is not None else Z

    def lift(self, X: np.ndarray, Z: np.ndarray, Z_new: np.ndarray) -> np.ndarray:
        """Rows of ``X`` moved by the working-space displacement ``Z_new - Z`` (complement unchanged)."""
        if self.basis is None and self.center is None and self.scale is None:
            return Z_new
        D = Z_new - Z
        if self.scale is not None:
            D = D * self.scale
        return X + (D if self.basis is None else D @ self.basis.T)

    def model(self, model: GroupConditionalModel) -> GroupConditionalModel:
        """The model of the working coordinates of rows drawn from ``model`` (an exact affine image)."""
        if self.is_identity:
            return model
        d = model.dim
        P = np.eye(d) if self.basis is None else self.basis
        s = np.ones(P.shape[1]) if self.scale is None else self.scale
        c = np.zeros(d) if self.center is None else self.center
        M = P / s  # z = M^T (x - c)
        comps = [[Gaussian((g.mean - c) @ M, M.T @ g.cov @ M) for g in row] for row in model.components]
        return model.with_components(comps)

    def unmodel(self, model: GroupConditionalModel) -> GroupConditionalModel:
        """Inverse of :meth:`model` for a pure scaling (no subspace): the model back in input coordinates."""
        if self.basis is not None:
            raise ValueError("a model of a subspace cannot be mapped back to the full space")
        s = np.ones(model.dim) if self.scale is None else self.scale
        c = np.zeros(model.dim) if self.center is None else self.center
        comps = [[Gaussian(g.mean * s + c, g.cov * np.outer(s, s)) for g in row] for row in model.components]
        return model.with_components(comps)

    def lift_map(self, T: AffineMap) -> AffineMap:
        """The full-space map of a working-space map ``T`` (identity plus rank ``r`` when a basis is set)."""
        if self.is_identity:
            return T
        r = T.d_in
        s = np.ones(r) if self.scale is None else self.scale
        if self.basis is None:
            c = np.zeros(r) if self.center is None else self.center
            A = T.A * s[:, None] / s[None, :]
            return AffineMap(A, s * T.b + c - A @ c)
        P = self.basis
        c = np.zeros(P.shape[0]) if self.center is None else self.center
        U = (P * s) @ (T.A - np.eye(r))  # x -> x + U V^T (x - c) + P (s * b)
        V = P / s
        return AffineMap.low_rank(U, V, (P * s) @ T.b - U @ (V.T @ c))

    def lift_factor(self, F: np.ndarray) -> np.ndarray:
        """The input-space factor of a working-space noise factor ``F`` ``(r, q)``: a working displacement
        ``F e`` moves a row by ``P (s * F e)`` (the complement of the subspace gets no noise)."""
        F = np.asarray(F, dtype=np.float64)
        if self.scale is not None:
            F = F * self.scale[:, None]
        return F if self.basis is None else self.basis @ F


@dataclass(frozen=True, eq=False)
class SteeringTransform:
    """Per-cell and per-group affine maps from a model onto its nearest ideal (or the ideal's templates).

    Maps act in the model's working space (``log x`` for log-normal models, in :attr:`coordinates`);
    :meth:`transform` handles the coordinates and the log/exp round trip.

    Attributes:
        solution: the solved projection.
        cell_maps: ``cell_maps[a][i]`` carries cell ``(a, i)`` onto its target.
        group_maps: label-free map of each group (two-moment OT between its mixture laws).
        frame: ``"ideal"`` (targets are the ideal cells) or ``"template"`` (the ideal's class templates).
        coordinates: the working coordinates of the maps.
        fixed: index of the group that is never moved (the affirmative reference), or ``None``.
    """

    solution: IdealSolution
    cell_maps: tuple[tuple[AffineMap, ...], ...]
    group_maps: tuple[AffineMap, ...]
    frame: Frame = "ideal"
    coordinates: Coordinates = Coordinates()
    fixed: int | None = None

    @classmethod
    def from_solution(
        cls, solution: IdealSolution, *, frame: Frame = "ideal", coordinates: Coordinates | None = None
    ) -> SteeringTransform:
        """Build the maps for a solved projection (of the model in ``coordinates``)."""
        if frame not in ("ideal", "template"):
            raise ValueError(f"frame must be 'ideal' or 'template'; got {frame!r}")
        orig, ideal = solution.original, solution.ideal
        k, m = orig.n_groups, orig.n_classes
        fixed = solution.reference if solution.intervention == "affirmative" else None
        cells, groups = [], []
        for a in range(k):
            if a == fixed:  # the reference group is not moved (bit-exact): its cells are the templates
                cells.append(tuple(AffineMap.identity(orig.dim) for _ in range(m)))
                groups.append(AffineMap.identity(orig.dim))
                continue
            if frame == "template":
                targets = tuple(Gaussian(solution.template_means[i], solution.template_covs[i]) for i in range(m))
                priors = solution.class_priors
            else:
                targets, priors = ideal.components[a], ideal.class_priors[a]
            cells.append(tuple(gaussian_ot_map(orig.components[a][i], targets[i]) for i in range(m)))
            src = mixture_moments(orig.components[a], orig.class_priors[a])
            groups.append(gaussian_ot_map(src, mixture_moments(tuple(targets), priors)))
        return cls(solution, tuple(cells), tuple(groups), frame, coordinates or Coordinates(), fixed)

    @classmethod
    def fit(
        cls,
        model: GroupConditionalModel,
        criterion: Criterion = "equal_opportunity",
        intervention: Intervention = "all",
        solver: Literal["auto", "cvxpy"] = "auto",
        *,
        reference: Any = None,
        frame: Frame = "ideal",
        coordinates: Coordinates | None = None,
        family: Family = "isotropic",
    ) -> SteeringTransform:
        """Solve the nearest ideal of ``model`` (given in ``coordinates``) and build the maps.

        Args:
            model: the fitted model, in the working coordinates.
            criterion, intervention, solver, reference: see :func:`steerfair.solve_nearest_ideal`;
                ``reference="largest"`` picks the group with the largest prior.
            frame: ``"ideal"`` or ``"template"`` (see the module docstring).
            coordinates: the working coordinates of ``model`` (default: the input coordinates).
            family: the ideal set searched, ``"isotropic"`` or ``"affine"`` (see :func:`steerfair.solve_nearest_ideal`).
        """
        if isinstance(reference, str) and reference == "largest":
            reference = model.groups[int(np.argmax(model.group_priors))].item()
        solution = solve_nearest_ideal(model, criterion, intervention, solver, reference=reference, family=family)
        return cls.from_solution(solution, frame=frame, coordinates=coordinates)

    # ---------------------------------------------------------------- views
    @property
    def original(self) -> GroupConditionalModel:
        """The fitted original model (working coordinates)."""
        return self.solution.original

    @property
    def ideal(self) -> GroupConditionalModel:
        """The ideal target model (working coordinates)."""
        return self.solution.ideal

    def group_map(self, group: Any) -> AffineMap:
        """The label-free map of one group (by label), in working coordinates."""
        return self.group_maps[int(self.original.group_index(np.asarray([group]), "group")[0])]

    def cell_map(self, group: Any, label: Any) -> AffineMap:
        """The map of one (group, class) cell (by labels), in working coordinates."""
        a = int(self.original.group_index(np.asarray([group]), "group")[0])
        i = int(self.original.class_index(np.asarray([label]), "label")[0])
        return self.cell_maps[a][i]

    def full_group_maps(self) -> dict[Any, AffineMap]:
        """``{group label: map of the input space}`` (identity plus low rank when steering a subspace); for a
        log-normal model the maps act on ``log X`` (``transform(mode="group")`` is ``exp(map(log X))``)."""
        labels = self.original.groups.tolist()
        return {g: self.coordinates.lift_map(T) for g, T in zip(labels, self.group_maps, strict=True)}

    def membership(self, groups: Any = None, n: int | None = None, *, group_proba: Any = None) -> Membership:
        """The apply-time membership of ``groups`` (labels, probabilities or a Membership) or ``group_proba``."""
        if groups is not None and group_proba is not None:
            raise ValueError("pass groups= or group_proba=, not both")
        value, name = (groups, "groups") if group_proba is None else (group_proba, "group_proba")
        if value is None:
            raise ValueError("pass groups (labels) or group_proba (probabilities)")
        if isinstance(value, Membership):
            if value.k != self.original.n_groups or (n is not None and value.n != n):
                raise ValueError(f"{name} must have {self.original.n_groups} columns and one row per row of X")
            return value
        return Membership.align(value, self.original.groups, n, name=name)

    def sample_weights(self, y: Any, groups: Any) -> np.ndarray:
        """Weights that realise the ideal class priors (the prior part of the ideal).

        ``groups`` may be labels, ``(n, k)`` membership probabilities (columns in ``original.groups`` order) or a
        :class:`~steerfair.membership.Membership`: the weight of a row is its expected cell weight
        ``sum_a P(a | row) q_i / q_ia`` (one-hot rows give the hard-label weights exactly).
        """
        from .ideal.priors import cell_weights

        orig = self.original
        yi = orig.class_index(np.asarray(y))
        rows = groups.n if isinstance(groups, Membership) else (np.shape(groups) or (None,))[0]
        if rows is not None and rows != len(yi):  # the membership's own message speaks of X, not taken here
            raise ValueError(f"y has {len(yi)} labels but groups has {rows} entries; pass one of each per row")
        P = self.membership(groups, len(yi)).weights
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
            X: features ``(n, d)`` in the input space.
            groups: group labels per row, ``(n, k)`` membership probabilities, or a
                :class:`~steerfair.membership.Membership`.
            y: class labels per row (required by ``mode="label"``).
            mode: ``"auto"`` (``"label"`` when ``y`` is given, else ``"posterior"``), ``"label"``,
                ``"posterior"`` or ``"group"``.
            group_proba: ``(n, k)`` group membership probabilities (soft application: the output is the
                probability-weighted mixture of the per-group results); the same as passing them as ``groups``.
        """
        if mode not in _MODES:
            raise ValueError(f"unknown mode {mode!r}; use 'auto', 'label', 'posterior' or 'group'")
        orig = self.original
        dim_in = orig.dim if self.coordinates.basis is None else self.coordinates.basis.shape[0]
        if len(np.shape(X)) == 2 and np.shape(X)[0] == 0:  # an empty batch (a stream's last) steers to itself
            as_matrix(X, "X", min_rows=0, dim=dim_in)
            return np.empty((0, dim_in))
        if self.coordinates.basis is None:
            Xw = orig.features(X)
        else:  # log X for a log-normal model here too (it steered raw X and exponentiated: a 2.9x median move)
            Xw = to_log(X, "X", dim=dim_in) if orig.family == "lognormal" else as_matrix(X, "X", dim=dim_in)
        Z = self.coordinates.to_working(Xw)
        n = Z.shape[0]
        if mode == "auto":
            mode = "label" if y is not None else "posterior"
        yi = None
        if mode == "label":
            if y is None:
                raise ValueError("mode='label' needs y")
            yi = orig.class_index(np.asarray(y))
            if len(yi) != n:
                raise ValueError(f"y has {len(yi)} entries but X has {n} rows")
        P = self.membership(groups, n, group_proba=group_proba).weights
        out = np.zeros_like(Z)
        for a in range(orig.n_groups):
            rows = np.nonzero(P[:, a] != 0)[0]
            if rows.size:
                out[rows] += P[rows, a, None] * self.apply_group(Z[rows], a, mode, None if yi is None else yi[rows])
        moved = self.coordinates.lift(Xw, Z, out)
        return np.exp(moved) if orig.family == "lognormal" else moved

    def apply_group(self, Z: np.ndarray, a: int, mode: str, yi: np.ndarray | None = None) -> np.ndarray:
        """Rows ``Z`` (working coordinates) of group index ``a`` moved by ``mode`` (``yi``: class indices)."""
        if a == self.fixed:
            return Z  # the reference group is not moved (bit-exact)
        if mode == "group":
            return self.group_maps[a](Z)
        maps = self.cell_maps[a]
        if mode == "label":
            if yi is None:
                raise ValueError("mode='label' needs class indices")
            out = np.empty_like(Z)
            for i in range(len(maps)):
                sel = yi == i
                if np.any(sel):
                    out[sel] = maps[i](Z[sel])
            return out
        post = self.original.class_posterior(Z, a)
        return sum(post[:, i, None] * maps[i](Z) for i in range(len(maps)))


def fit_steering(
    model: GroupConditionalModel,
    criterion: Criterion = "equal_opportunity",
    intervention: Intervention = "all",
    solver: Literal["auto", "cvxpy"] = "auto",
    *,
    reference: object = None,
    frame: Frame = "ideal",
    family: Family = "isotropic",
) -> SteeringTransform:
    """Solve the nearest-ideal projection of ``model`` (over the ideal set ``family``) and build the steering maps.

    The maps act in the model's own coordinates. The ideal does not depend on the columns' units, but the OT maps
    minimise a Euclidean cost, so the steered rows do (measured: up to about 0.5 in the rows' own units when columns
    are rescaled by 1e-3 .. 1e4). For rows equivariant to units and offsets, as ``FairSteerer`` steers them, fit in
    standardised coordinates: ``c = Coordinates.standardising(model)``, then
    ``SteeringTransform.fit(c.model(model), coordinates=c)``.
    """
    return SteeringTransform.fit(
        model, criterion, intervention, solver, reference=reference, frame=frame, family=family
    )
