"""Label-free shared-target steering: every group is garbled onto one common law per class (docs/shared_target.md).

If after steering ``X | Y=y, A=a`` has the same law ``T_y`` for every group ``a``, then *every* classifier ``h(x)``
trained afterwards that does not read the group (linear, tree, kNN, network) has equal TPR and FPR across groups,
at every threshold: the equalized-odds guarantee survives deployment, with labels unknown at test time. A label-free
*invertible* map cannot give that when groups differ in how separable their classes are (the whitened class-mean
configuration is an affine invariant); a *garbling* can:

    K_a(x) = A_a x + b_a + e,   e ~ N(0, R_a),   R_a PSD (possibly 0),

with ``A_a mu_ay + b_a = m_y`` and ``A_a S_a A_a^T + R_a = C`` for every class ``y``. This module solves for the
common target ``T_y = N(m_y, C)`` and the garblings, exactly, for any number of groups and classes, in the
sub-family where each group's cells share one within-class covariance ``S_a`` (pooled over classes with the group's
class priors: what a label-free map acts on). With heteroscedastic cells the class means still land exactly on
``m_y`` and the pooled within-class covariance exactly on ``C``; the class-specific covariance differences are not
equalised (documented in docs/shared_target.md).

The experiment of group ``a`` is ``D_a = L_a^{-1} [mu_a1 - mu_a0, ..., mu_a(m-1) - mu_a0]`` (``S_a = L_a L_a^T``),
and ``Q_a = D_a^T D_a`` (the Gram matrix of its whitened class-mean differences: all its pairwise Mahalanobis
distances). A target ``Q`` is reachable from group ``a`` iff ``Q <= Q_a`` (Loewner order). The target is a
maximum-determinant common lower bound of the ``Q_a``: the least separable group's own experiment whenever it is
dominated by every other (always for two classes); otherwise, for two groups, the exact max-det lower bound, and for
more groups the sequential max-det meet in order of separability (a valid, maximal-for-each-step lower bound).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy.linalg import solve_triangular

from .copula import GaussianCopula, draw_groups
from .linalg import cholesky, eigh_sym
from .maps import AffineMap, ot_map_matrix
from .membership import Membership
from .model import GroupConditionalModel
from .shared_target_estimation import shrink_group_deviations
from .steering import Coordinates
from .strength_choice import StrengthChoice, pick_strength, strength_folds  # re-exported: their home is strength_choice
from .validation import as_int, as_unit_weight, label_repr, symmetrize
from .warning_location import user_stacklevel

if TYPE_CHECKING:
    from .shared_positive import PositiveTarget

__all__ = [
    "MARGINALS",
    "TARGETS",
    "Garbling",
    "Marginals",
    "SharedTarget",
    "SharedTargetSteering",
    "StrengthChoice",
    "Target",
    "check_target_options",
    "class_experiment",
    "unequal_class_laws",
    "experiment_meet",
    "pick_strength",
    "solve_shared_target",
    "strength_folds",
    "within_group_laws",
]

#: What ``FairSteerer`` steers onto: the per-cell nearest ideal, one common law per class (label-free garbling), or
#: one common law for the positive class (label-free invertible maps, :mod:`steerfair.shared_positive`).
Target = Literal["ideal", "shared", "shared_positive"]
#: the accepted values of ``FairSteerer(target=...)``
TARGETS: tuple[str, ...] = ("ideal", "shared", "shared_positive")
#: How ``FairSteerer`` models the marginals of the steered columns: as they are, or through a Gaussian copula.
Marginals = Literal["gaussian", "copula"]
#: the accepted values of ``FairSteerer(marginals=...)``
MARGINALS: tuple[str, ...] = ("gaussian", "copula")
#: Singular values below this fraction of the largest count as zero (rank of a class-mean configuration).
RANK_RTOL = 1e-10
#: Eigenvalues of the whitened noise covariance ``I - G G^T`` below this are zero (a deterministic map).
NOISE_TOL = 1e-12


def check_target_options(target: Any, strength: Any, marginals: Any, lognormal_columns: Any = ()) -> float:
    """Validate ``FairSteerer``'s ``target``, ``strength`` and ``marginals``; return the strength as a float."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; use one of {TARGETS}")
    if marginals not in MARGINALS:
        raise ValueError(f"unknown marginals {marginals!r}; use one of {MARGINALS}")
    if marginals == "copula" and (isinstance(lognormal_columns, str) or len(lognormal_columns)):
        raise ValueError("marginals='copula' models every marginal itself; leave lognormal_columns empty")
    t = as_unit_weight(strength, "strength")
    if target == "ideal" and t != 1.0:
        warnings.warn(
            f"strength={t:g} is read by the shared targets only; target='ideal' steers every row fully "
            "(use target='shared' or 'shared_positive' to trade accuracy against the gaps)",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    return t


# ---------------------------------------------------------------------------------------------- the Gaussian math
def within_group_laws(model: GroupConditionalModel) -> tuple[np.ndarray, np.ndarray]:
    """Class means ``(k, m, d)`` and each group's within-class covariance ``S_a = sum_y q_ay S_ay`` ``(k, d, d)``."""
    k, m, d = model.n_groups, model.n_classes, model.dim
    means = np.array([[model.components[a][i].mean for i in range(m)] for a in range(k)], dtype=np.float64)
    covs = np.empty((k, d, d))
    for a in range(k):
        q = model.class_priors[a]
        covs[a] = symmetrize(sum(q[i] * model.components[a][i].cov for i in range(m)))
    return means, covs


def class_experiment(
    means: np.ndarray, cov: np.ndarray, chol: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The whitened class-mean differences ``D = L^{-1} [mu_1 - mu_0, ...]`` ``(d, m-1)`` and ``Q = D^T D``.

    Args:
        means: ``(m, d)`` class means of one group.
        cov: ``(d, d)`` its within-class covariance ``S = L L^T``.
        chol: the lower Cholesky factor ``L`` if already known.
    """
    L = cholesky(cov, "within-class covariance") if chol is None else chol
    D = solve_triangular(L, (means[1:] - means[0]).T, lower=True, check_finite=False)
    return D, symmetrize(D.T @ D)


def experiment_meet(Q1: np.ndarray, Q2: np.ndarray) -> np.ndarray:
    """The maximum-determinant common lower bound of two experiments (Loewner order).

    With ``Q1 = L L^T`` (Cholesky) and ``L^{-1} Q2 L^{-T} = V diag(lam) V^T``, the meet is
    ``L V diag(min(1, lam)) V^T L^T``: in the congruent frame both constraints are diagonal and the feasible set is
    invariant under sign flips of the coordinates, so by concavity of ``log det`` the optimum is diagonal, i.e.
    ``x_i <= min(1, lam_i)`` (docs/shared_target.md). ``Q1`` itself is returned (the same object) when
    ``Q1 <= Q2``, and ``Q2`` when ``Q2 <= Q1``.

    Raises:
        ValueError: neither matrix is positive definite (class means affinely dependent in both groups).
    """
    if Q1.shape == (1, 1):
        return Q1 if Q1[0, 0] <= Q2[0, 0] else Q2
    try:
        L, first = cholesky(Q1, "Q1"), True
    except ValueError:
        try:
            L, first = cholesky(Q2, "Q2"), False
        except ValueError:
            raise ValueError(
                "the class means of two groups are affinely dependent (a singular class experiment in both); "
                "drop a redundant class or steer a space with d >= m - 1"
            ) from None
    P, other = (Q1, Q2) if first else (Q2, Q1)
    if first and np.linalg.cond(Q2) < np.linalg.cond(Q1):  # whiten with the better-conditioned one (symmetric)
        try:
            L, P, other = cholesky(Q2, "Q2"), Q2, Q1
        except ValueError:
            pass
    half = solve_triangular(L, other, lower=True, check_finite=False)
    K = solve_triangular(L, half.T, lower=True, check_finite=False)
    lam, V = eigh_sym(K)
    if lam[0] >= 1.0:
        return P
    if lam[-1] <= 1.0:
        return other
    B = L @ V
    return symmetrize((B * np.minimum(lam, 1.0)) @ B.T)


#: :func:`unequal_class_laws` reports a class whose garbled laws differ between groups by more than this KL (nats)
#: plus four times its sampling noise
UNEQUAL_LAW_KL = 0.01


def unequal_class_laws(model: GroupConditionalModel, target: SharedTarget) -> tuple[int, float, float] | None:
    """The class whose garbled Gaussian laws differ most between two groups beyond sampling noise, as ``(class
    index, KL, noise)``; ``None`` when none does (or ``model.counts`` is unknown).

    The shared target makes every class mean and each group's pooled within-class covariance equal, not the
    classes' own covariances (heteroscedastic cells, docs/shared_target.md section 4). Per class and pair of groups:
    the larger of the two KLs between the garbled laws ``K_a(N(mu_ay, S_ay))``, against the mean KL between two
    estimates of one Gaussian from ``n_a`` and ``n_b`` rows, ``(d (d + 1) / 4 + d / 2) (1 / n_a + 1 / n_b)`` (cells
    with at most ``2 d`` rows are too noisy to judge); reported above ``UNEQUAL_LAW_KL + 4 noise``.
    """
    if model.counts is None:
        return None
    from .families.gaussian import Gaussian

    k, m, d = model.n_groups, model.n_classes, model.dim
    worst: tuple[int, float, float] | None = None
    for i in range(m):
        try:
            pushed = [Gaussian(*target.garblings[a].push(model.components[a][i].mean, model.components[a][i].cov))
                      for a in range(k)]  # fmt: skip
        except ValueError:  # a garbled law too close to singular to compare: no verdict
            continue
        for a in range(k):
            for b in range(a + 1, k):
                n_a, n_b = float(model.counts[a, i]), float(model.counts[b, i])
                if min(n_a, n_b) <= 2 * d:
                    continue
                kl = max(pushed[a].kl(pushed[b]), pushed[b].kl(pushed[a]))
                noise = (d * (d + 1) / 4 + d / 2) * (1 / n_a + 1 / n_b)
                if kl > UNEQUAL_LAW_KL + 4 * noise and (worst is None or kl - noise > worst[1] - worst[2]):
                    worst = (i, kl, noise)
    return worst


def _logdet_pseudo(Q: np.ndarray) -> float:
    lam = np.linalg.eigvalsh(symmetrize(Q))
    top = max(float(lam[-1]), 0.0)
    return float(np.sum(np.log(np.maximum(lam, 1e-300)))) if top > 0 else -math.inf


@dataclass(frozen=True, eq=False)
class Garbling:
    """``K(x) = A x + b + e``, ``e ~ N(0, R)``, ``R = F F^T`` (``F``: ``noise_factor``, ``(d, r)``, ``r`` may be 0).

    Attributes:
        linear: the deterministic part ``x -> A x + b`` (an :class:`~steerfair.maps.AffineMap`).
        noise_factor: ``(d, r)`` factor of the noise covariance ``R``; ``r = 0`` is a deterministic map.
    """

    linear: AffineMap
    noise_factor: np.ndarray

    @property
    def noise_cov(self) -> np.ndarray:
        """``R = F F^T`` (positive semi-definite by construction)."""
        F = self.noise_factor
        return symmetrize(F @ F.T)

    @property
    def is_deterministic(self) -> bool:
        """Whether the map adds no noise (``R = 0``)."""
        return self.noise_factor.shape[1] == 0

    def push(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mean and covariance of ``K(X)`` for ``X ~ N(mean, cov)``."""
        A = self.linear.A
        return A @ mean + self.linear.b, symmetrize(A @ cov @ A.T) + self.noise_cov

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rows ``X`` moved by ``K`` (fresh noise from ``rng``)."""
        out = self.linear(X)
        if not self.is_deterministic:
            out = out + rng.standard_normal((X.shape[0], self.noise_factor.shape[1])) @ self.noise_factor.T
        return out


@dataclass(frozen=True, eq=False)
class SharedTarget:
    """The common law per class ``T_y = N(means[y], cov)`` and each group's garbling onto it.

    Attributes:
        means: ``(m, d)`` target class means.
        cov: ``(d, d)`` target within-class covariance ``C``.
        experiment: ``(m-1, m-1)`` target experiment ``Q`` (Gram matrix of the whitened class-mean differences).
        reference: index of the frame group (the least separable; its own law is the target when ``greatest``).
        greatest: whether ``Q`` is the reference group's own experiment, dominated by every group's (then it is the
            most informative reachable target for every prior and cost, and the reference map is the identity).
        garblings: one :class:`Garbling` per group.
    """

    means: np.ndarray
    cov: np.ndarray
    experiment: np.ndarray
    reference: int
    greatest: bool
    garblings: tuple[Garbling, ...] = field(repr=False)


def solve_shared_target(means: Any, covs: Any, *, reference: int | None = None) -> SharedTarget:
    """The most informative common target every group can reach, and each group's garbling onto it.

    Args:
        means: ``(k, m, d)`` class means per group.
        covs: ``(k, d, d)`` within-class covariance per group (positive definite).
        reference: index of the frame group (default: the least separable, smallest ``log det Q_a``).

    Returns:
        SharedTarget: the target laws and the garblings (``A_a mu_ay + b_a = m_y`` and ``A_a S_a A_a^T + R_a = C``
        for every group and class, to round-off).
    """
    means = np.asarray(means, dtype=np.float64)
    covs = np.asarray(covs, dtype=np.float64)
    if means.ndim != 3 or means.shape[1] < 2 or covs.shape != (means.shape[0], means.shape[2], means.shape[2]):
        raise ValueError(f"means must be (k, m >= 2, d) and covs (k, d, d); got {means.shape} and {covs.shape}")
    k, m, d = means.shape
    if not (np.all(np.isfinite(means)) and np.all(np.isfinite(covs))):
        raise ValueError("means and covs must be finite (no NaN or infinite values)")
    if d < m - 1:  # every group's class experiment is singular: the meet is not defined (numerically it may seem so)
        raise ValueError(f"{m} class means in {d} dimensions are affinely dependent; steer a space with d >= m - 1")
    reference = None if reference is None else as_int(reference, "reference", low=0, high=k - 1)
    chols = [cholesky(covs[a], f"within-class covariance of group {a}") for a in range(k)]
    exps = [class_experiment(means[a], covs[a], chols[a]) for a in range(k)]
    order = sorted(range(k), key=lambda a: (_logdet_pseudo(exps[a][1]), a))
    r = order[0] if reference is None else reference
    Q = exps[r][1]
    for a in [r] + [a for a in order if a != r]:
        Q = experiment_meet(Q, exps[a][1])
    greatest = Q is exps[r][1]
    D_r = exps[r][0]
    E = D_r if greatest else _contract_configuration(D_r, exps[r][1], Q)  # E^T E = Q, the reference's frame
    L_C = chols[r]
    target_means = means[r].copy() if greatest else np.vstack([means[r, 0], means[r, 0] + (L_C @ E).T])
    garblings = []
    for a in range(k):
        if a == r and greatest:
            garblings.append(Garbling(AffineMap.identity(d), np.zeros((d, 0))))
        else:
            garblings.append(_garble_onto(means[a], chols[a], exps[a][0], E, L_C, target_means[0]))
    return SharedTarget(target_means, covs[r].copy(), Q, r, greatest, tuple(garblings))


def _contract_configuration(D: np.ndarray, Q_ref: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """A configuration ``E`` with ``E^T E = Q`` in the span of ``D`` (``D^T D = Q_ref >= Q``): with ``D = Y R`` (thin
    QR), ``E = Y H R`` where ``H = (R^{-T} Q R^{-1})^{1/2}`` is a symmetric contraction (``H = I`` when ``Q = Q_ref``).
    Singular ``R`` (``d < m - 1`` or collinear class means): ``E = D X`` with ``X`` the Gaussian OT factor
    (pseudo-inverses)."""
    Y, R = np.linalg.qr(D)
    if R.shape[0] < R.shape[1] or np.min(np.abs(np.diag(R))) <= RANK_RTOL * np.max(np.abs(np.diag(R))):
        return D @ ot_map_matrix(Q_ref, Q)
    half = solve_triangular(R, Q, trans="T", check_finite=False)  # R^{-T} Q
    M = solve_triangular(R, half.T, trans="T", check_finite=False)  # R^{-T} Q R^{-1} (symmetric)
    lam, V = eigh_sym(M)
    H = symmetrize((V * np.sqrt(np.clip(lam, 0.0, None))) @ V.T)
    return Y @ (H @ R)


def _orth_complement(D: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """SVD ``D = U s V^T`` (full ``U``), and the numerical rank; ``U[:, rank:]`` spans ``range(D)^perp``."""
    U, s, Vt = np.linalg.svd(D, full_matrices=True)
    top = float(s[0]) if s.size else 0.0
    rank = int(np.sum(s > RANK_RTOL * top)) if top > 0 else 0
    return U, s, Vt, rank


def _garble_onto(
    means: np.ndarray, L_a: np.ndarray, D: np.ndarray, E: np.ndarray, L_C: np.ndarray, m0: np.ndarray
) -> Garbling:
    """The garbling of one group: whitened contraction ``G = F + J`` with ``G D = E`` (``F = E D^+`` on the span of the
    class means, ``J`` the isometry of the complements nearest to the identity), ``A = L_C G L_a^{-1}``,
    ``R = L_C (I - G G^T) L_C^T``."""
    d = D.shape[0]
    U, s, Vt, rank = _orth_complement(D)
    F = (E @ (Vt[:rank].T / s[:rank])) @ U[:, :rank].T
    G = F
    N_a = U[:, rank:]
    if N_a.shape[1]:
        Ue, _, _, rank_e = _orth_complement(E)
        N_e = Ue[:, rank_e:]
        P, _, Wt = np.linalg.svd(N_e.T @ N_a, full_matrices=False)
        G = F + N_e @ (P @ Wt) @ N_a.T
    lam, V = eigh_sym(np.eye(d) - G @ G.T)
    if lam[0] < -1e-6:
        raise ValueError(
            f"the target experiment is not reachable from this group (contraction norm^2 {1 - lam[0]:.6g} > 1); "
            "this is a bug in the target solver, please report it"
        )
    keep = lam > NOISE_TOL
    noise = L_C @ (V[:, keep] * np.sqrt(lam[keep]))
    A = solve_triangular(L_a, (L_C @ G).T, lower=True, trans="T", check_finite=False).T  # L_C G L_a^{-1}
    return Garbling(AffineMap(A, m0 - A @ means[0]), noise)


# ------------------------------------------------------------------------------------------------------- the engine
@dataclass(frozen=True, eq=False)
class SharedTargetSteering:
    """The shared target of a fitted model, applied to rows by group (label-free), in working coordinates.

    Attributes:
        target: the solved :class:`SharedTarget` or :class:`~steerfair.shared_positive.PositiveTarget` (in working
            coordinates).
        coordinates: the working coordinates of the model it was fitted on.
    """

    target: SharedTarget | PositiveTarget
    coordinates: Coordinates = Coordinates()

    @classmethod
    def fit(
        cls,
        model: GroupConditionalModel,
        coordinates: Coordinates | None = None,
        *,
        reference: int | None = None,
        shrink_means: bool = False,
    ) -> SharedTargetSteering:
        """Solve the shared target of ``model`` (given in ``coordinates``; cells pooled per group over classes).

        ``shrink_means=True`` solves it for the denoised class means of
        :func:`~steerfair.shared_target_estimation.shrink_group_deviations` (needs ``model.counts``); the garbling is
        then exact for the shrunk cells. The default (``False``) uses the fitted means as they are.
        """
        if not isinstance(shrink_means, (bool, np.bool_)):
            raise ValueError(f"shrink_means must be True or False; got {shrink_means!r}")
        if getattr(model, "family", "normal") != "normal":
            raise ValueError(
                "the shared target garbles the features its model describes, and a log-normal model describes log X: "
                "fit the normal model of np.log(X) and steer log X (FairSteerer does this for you)"
            )
        means, covs = within_group_laws(model)
        if shrink_means:
            means = shrink_group_deviations(means, covs, model.counts)
        target = solve_shared_target(means, covs, reference=reference)
        left = unequal_class_laws(model, target)
        if left is not None:
            i, kl, noise = left
            warnings.warn(
                f"the shared target equalises every class mean and each group's pooled within-class covariance, not "
                f"each class's own covariance: after steering, class {label_repr(model.classes[i])} still differs "
                f"between groups by KL {kl:.3g} (sampling noise about {noise:.2g}), so TPR / FPR can still differ for "
                "a model "
                "trained afterwards (docs/shared_target.md, section 4); for two classes SharedScore equalises the "
                "whole law",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        return cls(target, coordinates or Coordinates())

    @staticmethod
    def draw(membership: Membership, rng: np.random.Generator, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """The rows to steer (each with probability ``strength``) and each one's group (drawn for soft rows)."""
        t = as_unit_weight(strength, "strength")
        if t == 0.0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        rows = np.arange(membership.n) if t == 1.0 else np.flatnonzero(rng.random(membership.n) < t)
        return rows, draw_groups(membership.rows(rows), rng)

    def transform(
        self,
        X: np.ndarray,
        membership: Membership,
        rng: np.random.Generator,
        strength: float = 1.0,
        copula: GaussianCopula | None = None,
        drawn: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Rows ``X`` (input coordinates) garbled by their group's map, each with probability ``strength``.

        The strength mixes channels: a row is steered with probability ``t`` and left exactly as it is otherwise, so
        the class-conditional law of every group becomes ``(1 - t) P_ay + t T_y`` and, for any fixed classifier,
        every rate gap is ``(1 - t)`` times its gap on unsteered rows (docs/shared_target.md). Soft memberships draw
        each row's group from its probabilities; hard labels use the group itself. With a ``copula`` (fitted on the
        rows ``X`` before the model), steered rows go to normal scores, are garbled there and come back through
        the copula's quantile functions; the other rows are not touched. ``drawn``: the steered rows and their
        groups from :meth:`draw` (to steer other columns of the same rows with the same groups).
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] != membership.n:
            raise ValueError(f"X must be 2-D with one row per membership row ({membership.n}); got shape {X.shape}")
        out = X.copy()
        rows, ga = self.draw(membership, rng, strength) if drawn is None else drawn
        if rows.size == 0:
            return out
        # the drawn group of each row, for the copula too (a soft row drew its group once, for the whole pipeline)
        sub = Membership.one_hot(ga, membership.labels)
        Xs = X[rows] if copula is None else copula.to_normal(X[rows], rng, sub)
        Z = self.coordinates.to_working(Xs)
        moved = Z.copy()
        for a, K in enumerate(self.target.garblings):
            sel = ga == a
            if np.any(sel):
                moved[sel] = K(Z[sel], rng)
        steered = self.coordinates.lift(Xs, Z, moved)
        out[rows] = steered if copula is None else copula.from_normal(steered)
        return out
