"""Trust-region Newton-CG on the all-subgroup profile: every free group's map at once, templates and offsets optimal.

The all-subgroup objective over the affine family (docs/theory.md, section 12) with the templates and offsets at
their closed-form optimum for the maps (:mod:`.affine_profile`) is a smooth function of the maps of the non-gauge
groups alone; its gradient is the envelope theorem's (:func:`.affine_profile.profile_terms`). Block-coordinate
descent (templates, then each group's map) contracts slowly near the minimum, because moving one group's map moves the
templates every other group is fitted to (about 0.45 per round on the benchmark's models); a Newton method on the
profile sees that coupling (its squared gradient fell 12-60x per step at d = 1024; docs/benchmarks.md).

Each step works in every free group's relative coordinates ``L_a -> U_a X_a (I + G_a) V_a^T`` of its
:class:`~steerfair.ideal.affine_newton.GroupMapProblem` at the current templates, moves along the Cayley retraction,
and is chosen by Steihaug-Toint truncated CG (:func:`~steerfair.ideal.affine_newton.steihaug_cg`) preconditioned by
the block-diagonal Fisher metric of the groups' fixed-template problems. The gradient is evaluated without the maps'
inverses: in relative coordinates the log-determinant's part is ``-W_a I`` and its Hessian ``G -> W_a G^T``, both
exact, so a Hessian-vector product is a forward difference of the rest of the gradient (one profile evaluation with
no factorisation of the maps; its ``O(eps)`` error only perturbs the inexact Newton step, never the values and
gradients the trust region and the stopping test use). Differencing the whole gradient instead (its log-det part
``-W_a L_a^-T`` is large and cancels the rest at the minimum), CG met negative curvature after the first step on the
benchmark's model at d = 1024 and six boundary steps in a row were rejected; with the exact part, none were. The
common class prior is a Newton variable too, as ``q = softmax(theta)`` (its gradient from the envelope theorem, its
block of the preconditioner the prior's curvature ``diag(q) - q q^T``). Updating it in closed form between map steps
instead (a block minimisation) made the tail linear on three classes: the squared gradient fell about 3.5x per step
against 10-100x now, and three groups and classes at d = 32 took 2,326 CG products against 1,656. A step is accepted
only where the value falls, so it never rises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .affine_newton import GroupMapProblem, cayley, steihaug_cg, stopping_tolerance
from .affine_profile import LogDetPart, prior_given_cells, templates_and_offsets, total_kl
from .scale_family import CellFactors

__all__ = ["ProfileNewtonResult", "profile_newton"]

#: forward-difference step of the Hessian-vector products, relative to the direction's Frobenius norm
FD_STEP = 1e-6
#: the trust radius below which :func:`profile_newton` stops
RADIUS_FLOOR = 1e-14


@dataclass(frozen=True)
class ProfileNewtonResult:
    """End of :func:`profile_newton`: the maps (``maps[gauge] = I``), the class prior, the value, the squared Fisher
    norm of the last gradient, the Newton steps and CG iterations, and whether the stopping test was met."""

    maps: np.ndarray
    q: np.ndarray
    value: float
    grad_fisher: float
    iterations: int
    cg_iterations: int
    converged: bool


def profile_newton(
    stats: CellFactors,
    maps: np.ndarray,
    q: np.ndarray,
    gauge: int,
    group_priors: np.ndarray,
    class_priors: np.ndarray,
    logdets: np.ndarray,
    *,
    max_iter: int = 200,
    max_cg: int = 100,
    rtol: float = 1e-15,
    radius: float = 1.0,
    callback: Callable[[float], None] | None = None,
) -> ProfileNewtonResult:
    """Minimise the all-subgroup profile over the non-gauge maps and the class prior from ``maps``, ``q``.

    Stops when the squared preconditioned norm of the profile gradient (maps and ``theta``) falls below
    :func:`~steerfair.ideal.affine_newton.stopping_tolerance` (``rtol * max(1, |value|)``, at least the value's
    rounding floor) and the class prior's closed-form update lowers the value by no more than that, when
    the trust radius collapses, or after ``max_iter`` steps.

    Args:
        stats: the original cells, with all precisions (weights replaced by ``pi_a q_i``).
        maps: ``(k, d, d)`` starting maps with ``maps[gauge] = I``.
        q: ``(m,)`` the starting class prior.
        gauge: the group whose map stays ``I`` (its offset 0).
        group_priors: ``(k,)`` ``pi_a``.
        class_priors: ``(k, m)`` the original ``q_ia``.
        logdets: ``(k, m)`` ``log det S_ai``.
        max_iter: Newton steps at most.
        max_cg: CG iterations per step at most.
        rtol: relative stopping threshold.
        radius: the initial trust radius (block Fisher norm).
        callback: called with the value after every Newton step (a progress report; it must not raise).

    Returns:
        The :class:`ProfileNewtonResult`; its value is never above the start's.
    """
    k, m, d = stats.shape
    free = [a for a in range(k) if a != gauge]
    nf = len(free)
    L = np.array(maps, dtype=np.float64)
    log_class_priors = np.log(class_priors)

    def evaluate(
        L: np.ndarray, q: np.ndarray, log_det: LogDetPart = "value"
    ) -> tuple[float, np.ndarray, dict[int, np.ndarray], np.ndarray]:
        """Value, per-cell KLs, the map gradients without their ``-W_a L_a^-T`` term (``-W_a I`` in the relative
        coordinates; :func:`.affine_profile.profile_terms`) and the gradient in ``theta`` (``q = softmax(theta)``;
        the envelope theorem: ``d/dq_i = sum_a pi_a (log q_i - log q_ia + 1 + KL_ai)``, whose ``+1`` the softmax
        removes, as it removes the per-group shift that ``log_det="none"`` leaves in ``KL_ai``)."""
        maps_l = [None if a == gauge else L[a] for a in range(k)]
        f, F, grads = total_kl(stats, maps_l, gauge, q, group_priors, class_priors, logdets, log_det=log_det)
        gq = group_priors @ (np.log(q)[None, :] - log_class_priors + F)
        return f, F, grads, q * (gq - q @ gq)

    def prior_update(F: np.ndarray) -> np.ndarray:
        return prior_given_cells(F, group_priors, class_priors)

    def safe_evaluate(
        L: np.ndarray, q: np.ndarray, log_det: LogDetPart = "value"
    ) -> tuple[float, np.ndarray, dict[int, np.ndarray], np.ndarray] | None:
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                out = evaluate(L, q, log_det)
        except (ValueError, np.linalg.LinAlgError):
            return None
        return out if np.isfinite(out[0]) else None

    def softmax_step(q: np.ndarray, t: np.ndarray) -> np.ndarray:
        z = np.log(q) + t
        e = np.exp(z - z.max())
        return e / e.sum()

    def split(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return v[: nf * d * d].reshape(nf, d, d), v[nf * d * d :]

    free_weights = group_priors[free]  # W_a = pi_a sum_i q_i
    log_det_grad = np.concatenate([np.ravel([w_a * np.eye(d) for w_a in free_weights]), np.zeros(m)])
    f, F, grads, gtheta = evaluate(L, q)
    n_iter = n_cg = 0
    converged, moved = False, True
    gpre = np.inf
    while n_iter < max_iter:
        if moved:  # the frame (templates, bases, metric) of the current point; kept while steps are rejected
            w = group_priors[:, None] * q[None, :]
            _, nu, omega, t_logdets = templates_and_offsets(
                dataclasses.replace(stats, weights=w), [None if a == gauge else L[a] for a in range(k)], gauge
            )
            problems = [
                GroupMapProblem(stats.precs[a], stats.means[a], logdets[a], w[a], nu, omega, t_logdets) for a in free
            ]
            X = [p.to_x(L[a]) for p, a in zip(problems, free, strict=True)]
            B = [p.U @ Xa if p.u_diag is None else p.u_diag[:, None] * Xa for p, Xa in zip(problems, X, strict=True)]
            # dL = B G V^T

            def to_relative(
                gr: dict[int, np.ndarray], gt: np.ndarray, B: list = B, problems: list = problems
            ) -> np.ndarray:
                maps_part = [Bj.T @ gr[a] @ p.V for Bj, p, a in zip(B, problems, free, strict=True)]
                return np.concatenate([np.ravel(maps_part), gt])

            def pre(R: np.ndarray, problems: list = problems, q: np.ndarray = q) -> np.ndarray:
                Rm, Rt = split(R)
                maps_part = [p.fisher_inv(Rj) for p, Rj in zip(problems, Rm, strict=True)]
                # the prior's curvature in theta, diag(q) - q q^T (the gradient's entries sum to 0)
                return np.concatenate([np.ravel(maps_part), Rt / q])

            g_smooth = to_relative(grads, gtheta)
            g = g_smooth - log_det_grad  # the log-det part is -W_a I in relative coordinates
            pre_g = pre(g)
            gpre = float(np.vdot(g, pre_g))
            moved = False
        tol = stopping_tolerance(rtol, f, d)
        if gpre <= tol:
            q_new = prior_update(F)
            f_q, F_q, grads_q, gtheta_q = evaluate(L, q_new)
            if f - f_q <= tol:
                converged = True
                break
            q, f, F, grads, gtheta, moved = q_new, f_q, F_q, grads_q, gtheta_q, True  # lower by more than the tolerance
            continue
        n_iter += 1
        eta = min(0.1, max(gpre, 0.0) ** 0.25)

        def hvp(P: np.ndarray, L: np.ndarray = L, B: list = B, problems: list = problems, q: np.ndarray = q,
                g: np.ndarray = g_smooth, to_relative: Callable[..., np.ndarray] = to_relative,
                ) -> np.ndarray:  # fmt: skip
            eps = FD_STEP / max(float(np.linalg.norm(P)), 1e-300)
            Pm, Pt = split(P)
            Le = L.copy()
            for j, a in enumerate(free):
                Le[a] = L[a] + eps * (B[j] @ Pm[j] @ problems[j].V.T)
            got = safe_evaluate(Le, softmax_step(q, eps * Pt), "none")
            if got is None:
                return np.zeros_like(P)  # CG treats a zero product as non-positive curvature: a boundary step
            # the smooth part by a forward difference; the log-det part exactly: -W_a (I + eps P_a)^-T -> W_a P_a^T
            exact = np.concatenate([np.ravel([w_a * Pj.T for w_a, Pj in zip(free_weights, Pm, strict=True)]), 0 * Pt])
            return (to_relative(got[2], got[3]) - g) / eps + exact

        s, Hs, s_norm, it = steihaug_cg(hvp, g, pre, radius, eta, max_cg, pre_g)
        n_cg += it
        predicted = -(float(np.vdot(g, s)) + 0.5 * float(np.vdot(s, Hs)))
        sm, st = split(s)
        Ln = L.copy()
        try:
            for j, (p, a) in enumerate(zip(problems, free, strict=True)):
                Ln[a] = p.to_map(cayley(sm[j], X[j])[0])[0]
            qn = softmax_step(q, st)
            got = safe_evaluate(Ln, qn)
        except np.linalg.LinAlgError:
            got = None
        fn = got[0] if got is not None else np.inf
        rho = (f - fn) / predicted if predicted > 0.0 else -1.0
        if rho < 0.25:
            radius = 0.25 * min(radius, s_norm) if np.isfinite(fn) else 0.25 * s_norm
        elif rho > 0.75 and s_norm >= 0.99 * radius:
            radius *= 2.0
        if got is not None and rho > 1e-4 and fn < f:
            L, q, (f, F, grads, gtheta), moved = Ln, qn, got, True
        if callback is not None:
            callback(f)
        if radius < RADIUS_FLOOR:
            converged = gpre <= stopping_tolerance(np.sqrt(rtol), f, d)
            break
    return ProfileNewtonResult(L, q, f, gpre, n_iter, n_cg, converged)
