"""The affine-equivalence family of ideal distributions and its nearest-point solvers.

Every group is an invertible affine image of shared class templates (docs/theory.md, section 12)::

    X | Y=i, A=a  ~  N(L_a nu_i + c_a, L_a Omega_i L_a^T),        L_a invertible,

with common class priors. This is the whole Gaussian ideal set that the theory page proves fair; the
isotropic-scale family of :mod:`.scale_family` is the special case ``L_a = gamma_a I``.

* affirmative action: the reference group's cells are the templates; each other group's
  ``(L_a, c_a)`` minimises its own weighted KL (``c_a`` in closed form, ``L_a`` by trust-region Newton-CG in
  the Fisher metric, :mod:`.affine_newton`);
* all subgroups: a few rounds of exact block-coordinate descent with every group's map free (templates in closed
  form, each group's map by the trust-region solver, the class prior in closed form, the gauge group's map moved
  into the templates after every round, Anderson extrapolation, :mod:`.anderson`), then trust-region Newton on the
  profile over every map at once (:mod:`.affine_profile_newton`), which sees the coupling that makes the rounds
  contract slowly; small
  problems are polished jointly by L-BFGS on the profile over the maps and the prior (templates and offsets
  in closed form, :func:`.affine_profile.affine_inner_closed_form`; envelope-theorem gradient).

The searches are local; they start from the isotropic solution, from an alignment of each group onto the
template group (:func:`steerfair.ideal.conditions.affine_alignment`) and (affirmative) from the diagonal
stationary point of the mean-free problem, and keep the best end (affirmative: for more than
:data:`EVERY_START_MAX_ENTRIES` entries per map only the start of lowest value is run; all subgroups: the
alternation runs from the start of lowest value, the joint polish up to :data:`ALL_STARTS_MAX_VARIABLES`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgWarning

from ..linalg import cholesky
from .affine_newton import RESUME_RADIUS, GroupMapProblem, newton_map
from .affine_profile import (
    Map,
    affine_inner_closed_form,
    cell_logdets,
    prior_given_cells,
    profile_terms,
    templates_and_offsets,
    total_kl,
)
from .affine_profile_newton import profile_newton
from .anderson import anderson_descent
from .scale_family import CellFactors

__all__ = [
    "AffineFamilyParams",
    "affirmative_affine",
    "all_subgroups_affine",
]


@dataclass(frozen=True)
class AffineFamilyParams:
    """A member of the affine family: cell ``(a, i)`` is
    ``N(linear_maps[a] template_means[i] + offsets[a], linear_maps[a] template_covs[i] linear_maps[a]^T)``.

    Attributes:
        linear_maps: ``(k, d, d)`` invertible maps ``L_a``.
        offsets: ``(k, d)`` offsets ``c_a``.
        template_means, template_covs: ``(m, d)`` and ``(m, d, d)`` class templates.
        objective: ``sum_ia w_ia KL(N~_ia || N_ia)`` at these parameters.
        grad_norm: Frobenius norm of the objective's gradient at the end: in the whitened map coordinates, except
            for all subgroups with two classes (solved in congruence coordinates), where it is the gradient in the
            maps ``L_a`` themselves.
        iterations: L-BFGS iterations (summed over groups and starts that were kept).
    """

    linear_maps: np.ndarray
    offsets: np.ndarray
    template_means: np.ndarray
    template_covs: np.ndarray
    objective: float
    grad_norm: float = 0.0
    iterations: int = 0

    def cell(self, a: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of cell ``(a, i)``."""
        L = self.linear_maps[a]
        S = L @ self.template_covs[i] @ L.T
        return L @ self.template_means[i] + self.offsets[a], 0.5 * (S + S.T)


def _whitening_frame(covs: Sequence[np.ndarray] | np.ndarray, w: np.ndarray) -> np.ndarray:
    """Cholesky factor of the ``w``-weighted average of ``covs`` (the coordinates the maps are optimised in)."""
    S = sum(wi * C for wi, C in zip(w / w.sum(), covs, strict=True))
    return cholesky(0.5 * (S + S.T), "pooled covariance")


class _Whitened:
    """Map coordinates ``L_a = B_a X_a C^-1`` (``B_a``, ``C`` pooled Cholesky factors of the group's and the
    templates' covariances): there a map between similar groups is near-orthogonal and the objective's
    curvature is of order one, which is what L-BFGS needs."""

    def __init__(self, B: dict[int, np.ndarray], C: np.ndarray) -> None:
        from scipy.linalg import solve_triangular

        self.B, self.C = B, C
        self._tri = solve_triangular
        self.groups = sorted(B)
        d = C.shape[0]
        self.Cinv = solve_triangular(C, np.eye(d), lower=True, check_finite=False)

    def to_maps(self, x: np.ndarray) -> dict[int, np.ndarray]:
        d = self.C.shape[0]
        X = x.reshape(len(self.groups), d, d)
        return {a: self.B[a] @ X[j] @ self.Cinv for j, a in enumerate(self.groups)}

    def from_maps(self, maps: dict[int, np.ndarray]) -> np.ndarray:
        out = []
        for a in self.groups:
            # X = B^-1 L C
            out.append(self._tri(self.B[a], maps[a] @ self.C, lower=True, check_finite=False))
        return np.concatenate([X.ravel() for X in out])

    def grad(self, grads: dict[int, np.ndarray]) -> np.ndarray:
        # dJ/dX = B^T G C^-T
        return np.concatenate([(self.B[a].T @ grads[a] @ self.Cinv.T).ravel() for a in self.groups])


#: L-BFGS-B options, and how often a run that stopped short of ``gtol`` is restarted from where it ended
RESTARTS = 5
_LBFGS = {"maxiter": 5000, "maxcor": 20, "gtol": 1e-11, "ftol": 0.0, "maxls": 50}
#: up to this many variables every start is run to its end and the better end kept; above it only the start
#: with the lower value is run (half the time; the result is still never above any start)
ALL_STARTS_MAX_VARIABLES = 256
#: affirmative action runs every start to its end up to this many entries per map (d = 64; a trust-region solve
#: there takes about 0.05 s), above it only the start of lowest value
EVERY_START_MAX_ENTRIES = 64 * 64
#: trust-region steps per group and round of the all-subgroup block-coordinate descent (``None``: to
#: convergence, resumed from the group's last trust radius); to convergence measured fastest (d = 128, two groups
#: and classes: 11-19 rounds against 79 with one step per round, the same KL to 1e-12)
INNER_NEWTON: int | None = None
#: rounds of the all-subgroup descent mixed by Anderson extrapolation (d = 256, two groups and classes: 15 rounds
#: against 25 plain; d = 32, three groups and classes: 143 against 426; the same KL to 1e-12)
ANDERSON_MEMORY = 3
#: block-coordinate rounds before the all-subgroup descent switches to Newton on the profile
#: (:func:`.affine_profile_newton.profile_newton`): d = 128 and 256, two groups and classes, about twice as fast as
#: rounds alone to the same KL (the rounds contract by about 0.45 each near the minimum; Newton converges in 2-10 steps)
ALTERNATION_ROUNDS = 3
#: the group blocks of those opening rounds are solved to this relative Fisher-norm tolerance, not to rounding: the
#: Newton tail finishes the whole problem (d = 256, two groups and classes: 1.75 s against 2.31 s, the same KL to
#: 1e-12 relative; three groups and classes end in the same local minimum)
OPENING_RTOL = 1e-8
#: the dense BFGS polish keeps an ``n x n`` inverse Hessian: only up to this many variables (d = 64, two groups)
POLISH_MAX_VARIABLES = 4096

#: a progress report: what the solver is doing (``"group 1"``, ``"round 2"``, ``"Newton"``) and the value of its
#: objective there
Report = Callable[[str, float], None]

#: ``fg(maps, extra) -> (value, gradient per group, gradient of the extra variables)``
ObjectiveWithGradient = Callable[[dict[int, np.ndarray], np.ndarray], tuple[float, dict[int, np.ndarray], np.ndarray]]


def _minimise(
    fg: ObjectiveWithGradient, frame: _Whitened, starts: Sequence[dict[int, np.ndarray]], extra0: np.ndarray
) -> tuple[dict[int, np.ndarray], np.ndarray, float, float, int]:
    """L-BFGS from each start in whitened coordinates (plus ``extra`` variables); the best end:
    ``(maps, extra, value, gradient norm, iterations)``."""
    from scipy import optimize  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

    best: tuple[dict[int, np.ndarray], np.ndarray, float, float, int] | None = None
    n_extra = len(extra0)

    def split(x: np.ndarray) -> tuple[dict[int, np.ndarray], np.ndarray]:
        return frame.to_maps(x[: len(x) - n_extra]), x[len(x) - n_extra :]

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        for nudge in (0.0, 1e-9, 1e-6):  # a trial step exactly onto the singular set: evaluate beside it
            try:
                with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", LinAlgWarning)
                    v, g, ge = fg(*split(x + nudge * (1.0 + np.abs(x))))
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(v):
                return v, np.concatenate([frame.grad(g), ge])
        return 1e300, np.zeros_like(x)

    points = [np.concatenate([frame.from_maps(start), extra0]) for start in starts]
    if points and len(points[0]) > ALL_STARTS_MAX_VARIABLES:
        points = [min(points, key=lambda p: fun(p)[0])]
    for x in points:
        v, g = fun(x)
        nit = 0
        for _ in range(RESTARTS):  # L-BFGS-B can stop early on a line search that met the singular set
            res = optimize.minimize(fun, x, jac=True, method="L-BFGS-B", options=_LBFGS)
            nit += int(res.nit)
            v_new, g_new = fun(res.x)
            if v_new > v:
                break
            improved = v - v_new > 1e-15 * max(abs(v_new), 1.0)
            x, v, g = res.x, v_new, g_new
            if np.max(np.abs(g)) <= 10 * _LBFGS["gtol"] or not improved:
                break
        # L-BFGS-B stalled (its line search met the singular set): polish with BFGS (small problems only)
        if np.max(np.abs(g)) > 1e-8 and len(x) <= POLISH_MAX_VARIABLES:
            res = optimize.minimize(fun, x, jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 2000})
            nit += int(res.nit)
            v_new, g_new = fun(res.x)
            if v_new < v:
                x, v, g = res.x, v_new, g_new
        if best is None or v < best[2]:
            maps, extra = split(x)
            best = (maps, extra, float(v), float(np.linalg.norm(g)), nit)
    assert best is not None
    return best


def affirmative_affine(
    stats: CellFactors, reference: int, starts: Sequence[dict[int, np.ndarray]], report: Report | None = None
) -> AffineFamilyParams:
    """Affirmative action over the affine family: the reference group's cells are the templates and each
    other group's ``(L_a, c_a)`` minimises ``sum_i w_ai KL(N(L nu_i + c, L Omega_i L^T) || N(mu_ai, S_ai))``.

    For fixed ``L`` the offset is in closed form; ``L`` is found by trust-region Newton-CG in the Fisher
    metric (:func:`steerfair.ideal.affine_newton.newton_map`) from the given starts and the diagonal
    stationary point of the mean-free problem (:meth:`GroupMapProblem.matched_start`). Problems with at
    most :data:`EVERY_START_MAX_ENTRIES` entries per map run every start and keep the best end; larger
    ones run only the start of lowest value. Either way the result is never above any start.

    Args:
        stats: the original cells, with precisions of every non-reference group.
        reference: the group that is kept.
        starts: starting maps ``{group: L}`` (each must cover every non-reference group).
        report: called after every trust-region step with ``"group a"`` and the total so far (the groups solved
            before it and its current value).

    Returns:
        The parameters (the reference group's map is the identity).
    """
    k, m, d = stats.shape
    nu, omega = stats.means[reference], np.array(stats.covs.row(reference))
    logdets = cell_logdets(stats)
    maps = np.tile(np.eye(d), (k, 1, 1))
    offsets = np.zeros((k, d))
    total, gnorm, iters = 0.0, 0.0, 0
    for a in range(k):
        if a == reference:
            continue
        problem = GroupMapProblem(
            stats.precs[a], stats.means[a], logdets[a], stats.weights[a], nu, omega, logdets[reference]
        )
        points = [problem.to_x(s[a]) for s in starts] + [problem.matched_start()]
        if d * d > EVERY_START_MAX_ENTRIES:
            points = [min(points, key=problem.value)]
        # the running total: the groups solved so far and this group's value
        step = None if report is None else (lambda f, a=a, done=total: report(f"group {a}", done + f))
        best = min((newton_map(problem, X0, callback=step) for X0 in points), key=lambda r: r.value)
        maps[a], offsets[a] = problem.to_map(best.X)
        total, gnorm, iters = total + best.value, float(np.hypot(gnorm, best.grad_norm)), iters + best.iterations
    return AffineFamilyParams(maps, offsets, nu.copy(), omega, total, gnorm, iters)


def all_subgroups_affine(
    stats: CellFactors,
    gauge: int,
    starts: Sequence[dict[int, np.ndarray]],
    group_priors: np.ndarray,
    class_priors: np.ndarray,
    q0: np.ndarray,
    report: Report | None = None,
) -> tuple[AffineFamilyParams, np.ndarray]:
    """All subgroups over the affine family, with the common class prior optimised jointly.

    The objective is the whole ``KL(ideal || original)``: ``sum_a pi_a KL(q || q_a) + sum_ai pi_a q_i KL_ai``.
    From the given start of lowest value, :data:`ALTERNATION_ROUNDS` rounds of accelerated block-coordinate descent
    (:func:`_alternate`) make the large moves and trust-region Newton on the profile
    (:func:`.affine_profile_newton.profile_newton`) converges from there (should its trust region stall, the rounds
    finish to a relative decrease below ``1e-13``). Problems with at most :data:`ALL_STARTS_MAX_VARIABLES` map
    variables are then polished (and the given starts tried) by L-BFGS on the profile over the maps of the
    non-gauge groups and ``q = softmax(theta)`` (templates and offsets in closed form for the weights
    ``pi_a q_i``, :func:`.affine_profile.affine_inner_closed_form`); the gradient is the envelope theorem's: in
    ``L_a`` as in :func:`.affine_profile.profile_terms`, in ``q_i`` ``sum_a pi_a (log q_i - log q_ia + 1 + KL_ai)``.

    Args:
        stats: the original cells, with all precisions (its weights are replaced by ``pi_a q_i``).
        gauge: the group with ``L = I`` and ``c = 0`` (fixes the templates' frame; not the ideal).
        starts: starting maps ``{group: L}`` for every non-gauge group.
        group_priors: ``(k,)`` ``pi_a``.
        class_priors: ``(k, m)`` the original ``q_ia``.
        q0: ``(m,)`` the starting class prior.
        report: called after every block-coordinate round (``"round r"``) and Newton step (``"Newton"``) with the
            whole KL there.

    Returns:
        ``(params, q)``: the parameters (``objective``: the feature part) and the class prior.
    """
    k, m, d = stats.shape
    logdets = cell_logdets(stats)
    free = [a for a in range(k) if a != gauge]
    logq = np.log(class_priors)

    def full(L_by_group: dict[int, np.ndarray]) -> list[Map]:
        return [None if a == gauge else L_by_group[a] for a in range(k)]

    def weighted(theta: np.ndarray) -> tuple[CellFactors, np.ndarray]:
        q = np.exp(theta - theta.max())
        q /= q.sum()
        return dataclasses.replace(stats, weights=group_priors[:, None] * q[None, :]), q

    def fg(L_by_group: dict[int, np.ndarray], theta: np.ndarray) -> tuple[float, dict[int, np.ndarray], np.ndarray]:
        q = weighted(theta)[1]
        value, F, g = total_kl(stats, full(L_by_group), gauge, q, group_priors, class_priors, logdets)
        gq = group_priors @ (np.log(q)[None, :] - logq + F)  # the +1 of d/dq vanishes under the softmax
        return value, g, q * (gq - q @ gq)

    start = min(starts, key=lambda s: fg(s, np.log(q0))[0])
    # the large first moves by block-coordinate rounds, the rest by Newton on the profile (coupled blocks)
    maps0, q_alt, n_alt = _alternate(
        stats,
        full(start),
        gauge,
        group_priors,
        class_priors,
        q0,
        logdets,
        max_rounds=ALTERNATION_ROUNDS,
        inner_rtol=OPENING_RTOL,
        report=report,
    )
    step = None if report is None else (lambda f: report("Newton", f))
    tail = profile_newton(stats, maps0, q_alt, gauge, group_priors, class_priors, logdets, callback=step)
    maps0, q_alt, n_alt = tail.maps, tail.q, n_alt + tail.iterations
    if not tail.converged:  # the trust region stalled: finish with the (monotone) rounds
        maps0, q_alt, n_more = _alternate(
            stats, list(maps0), gauge, group_priors, class_priors, q_alt, logdets, report=report
        )
        n_alt += n_more
    alt_start = {a: maps0[a] for a in free}
    if (k - 1) * d * d <= ALL_STARTS_MAX_VARIABLES:  # small: polish jointly (and try the given starts too)
        B = {a: _whitening_frame(stats.covs.row(a), stats.weights[a]) for a in free}
        frame = _Whitened(B, _whitening_frame(stats.covs.row(gauge), stats.weights[gauge]))
        best_maps, theta, _, g, n = _minimise(fg, frame, [alt_start, *starts], np.log(q_alt))
        n += n_alt
    else:
        best_maps, theta, n = alt_start, np.log(q_alt), n_alt
        g = float(np.linalg.norm(np.concatenate([frame_g.ravel() for frame_g in fg(best_maps, theta)[1].values()])))
    st, q = weighted(theta)
    offsets, nu, omega = affine_inner_closed_form(st, full(best_maps), gauge)
    maps = np.array([np.eye(d) if a == gauge else best_maps[a] for a in range(k)])
    F, _ = profile_terms(st, full(best_maps), gauge, logdets)
    return AffineFamilyParams(maps, offsets, nu, omega, float(np.sum(st.weights * F)), g, n), q


def _alternate(
    stats: CellFactors,
    maps: list[Map],
    gauge: int,
    group_priors: np.ndarray,
    class_priors: np.ndarray,
    q: np.ndarray,
    logdets: np.ndarray,
    *,
    max_rounds: int = 500,
    rtol: float = 1e-13,
    inner_rtol: float = 1e-15,
    report: Report | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Block-coordinate descent for all subgroups, accelerated by Anderson extrapolation.

    One round, from maps with ``L_gauge = I`` and a class prior: offsets and templates in closed form, each
    group's ``(L_a, c_a)`` (the gauge's too) by the trust-region solver given the templates, the class prior in
    closed form given the cells, then every map right-multiplied by ``L_gauge^-1`` (the same ideal). Every block
    is an exact minimisation, so a round never raises the total KL; :func:`.anderson.anderson_descent` mixes the
    last rounds' maps and log-prior where that lowers the profiled KL further (templates and offsets optimal).

    ``inner_rtol`` is each group block's stopping tolerance (:func:`~steerfair.ideal.affine_newton.newton_map`);
    ``report`` is called after every round with ``"round r"`` and the whole KL there.

    Returns:
        ``(maps, q, trust-region iterations)`` with ``maps[gauge] = I``.
    """
    k, m, d = stats.shape
    free = [a for a in range(k) if a != gauge]
    radii = np.ones(k)  # each group's trust radius, carried from round to round
    iters = rounds = 0

    def unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        L = np.tile(np.eye(d), (k, 1, 1))
        L[free] = x[: len(free) * d * d].reshape(len(free), d, d)
        z = x[len(free) * d * d :]
        qx = np.exp(z - z.max())
        return L, qx / qx.sum()

    def pack(L: np.ndarray, qx: np.ndarray) -> np.ndarray:
        Lg_inv = np.linalg.inv(L[gauge])
        return np.concatenate([np.array([L[a] @ Lg_inv for a in free]).ravel(), np.log(qx)])

    def objective(x: np.ndarray) -> float:
        L, qx = unpack(x)
        maps_x = [None if a == gauge else L[a] for a in range(k)]
        return total_kl(stats, maps_x, gauge, qx, group_priors, class_priors, logdets)[0]

    def one_round(x: np.ndarray) -> tuple[np.ndarray, bool]:
        nonlocal iters, rounds
        L, qx = unpack(x)
        w = group_priors[:, None] * qx[None, :]
        _, nu, omega, t_logdets = templates_and_offsets(dataclasses.replace(stats, weights=w), list(L), gauge)
        F = np.zeros((k, m))
        converged = True
        for a in range(k):
            problem = GroupMapProblem(stats.precs[a], stats.means[a], logdets[a], w[a], nu, omega, t_logdets)
            res = newton_map(
                problem,
                problem.to_x(L[a]),
                max_iter=INNER_NEWTON or 500,
                radius=max(radii[a], RESUME_RADIUS),
                min_iter=1,
                rtol=inner_rtol,
            )
            L[a] = problem.to_map(res.X)[0]
            F[a] = problem.cell_terms(res.X)
            iters += res.iterations
            radii[a] = res.radius
            converged = converged and res.converged
        q_new = prior_given_cells(F, group_priors, class_priors)
        rounds += 1
        if report is not None:  # the cells' KLs at the round's maps, with the prior's part at the new class prior
            w_new = group_priors[:, None] * q_new[None, :]
            prior = float(group_priors @ ((np.log(q_new)[None, :] - np.log(class_priors)) @ q_new))
            report(f"round {rounds}", float(np.sum(w_new * F)) + prior)
        return pack(L, q_new), converged

    L0 = np.array(
        [np.eye(d) if M is None else (float(M) * np.eye(d) if np.ndim(M) == 0 else np.asarray(M)) for M in maps]
    )
    res = anderson_descent(one_round, objective, pack(L0, q), memory=ANDERSON_MEMORY, max_rounds=max_rounds, rtol=rtol)
    L, q = unpack(res.x)
    return L, q, iters
