"""Reference solvers written as cvxpy programs (slow; for validating the fast path).

Both programs are the same convex problems that :mod:`.scale_family` and :mod:`.line_search` solve
analytically; a solver status other than ``optimal`` raises :class:`SolverFailedError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .scale_family import CellFactors, ScaleFamilyParams

__all__ = ["SolverFailedError", "affirmative_cvxpy", "all_inner_cvxpy"]

#: Interior-point tolerances. The affirmative program (second-order and exponential cones) solves to
#: 1e-12; the all-subgroup inner program has PSD cones, where CLARABEL reports "optimal" down to
#: about 1e-11 (tighter runs end "optimal_inaccurate").
_OPTS_CONIC = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "max_iter": 500}
_OPTS_SDP = {
    "tol_gap_abs": 1e-11,
    "tol_gap_rel": 1e-11,
    "tol_feas": 1e-11,
    "max_iter": 500,
    "static_regularization_enable": False,
}


class SolverFailedError(RuntimeError):
    """The convex solver did not report an optimal solution."""


def _solve(problem: Any, opts: dict[str, float]) -> str:
    """Solve with CLARABEL at the given tolerances, relaxing them by 10x (down to 1e-9) while the
    solver only reaches "optimal_inaccurate"; anything but "optimal" in the end raises."""
    import warnings

    import cvxpy as cp

    tol = float(opts["tol_feas"])
    status = "not solved"
    while tol <= 1e-9 * (1 + 1e-9):
        run = {**opts, "tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                problem.solve(solver=cp.CLARABEL, **run)
        except cp.error.SolverError as exc:  # pragma: no cover - depends on solver build
            raise SolverFailedError(f"cvxpy solver failed: {exc}") from exc
        status = problem.status
        if status == cp.OPTIMAL:
            return status
        if status != cp.OPTIMAL_INACCURATE:
            break
        tol *= 10.0
    raise SolverFailedError(f"cvxpy reported status {status!r} (expected 'optimal')")


def _psd_const(P: np.ndarray) -> Any:
    import cvxpy as cp

    return cp.psd_wrap(0.5 * (P + P.T))


def _value(var: Any) -> np.ndarray:
    # a cvxpy variable's value, which is None until a solve has set it
    if var.value is None:
        raise SolverFailedError("cvxpy returned no value for a variable")
    return np.asarray(var.value)


def affirmative_cvxpy(stats: CellFactors, reference: int) -> tuple[ScaleFamilyParams, str]:
    """Affirmative action as one convex program per non-reference group (variables ``gamma, c``)."""
    import cvxpy as cp

    k, m, d = stats.shape
    nu, omega = stats.means[reference], stats.covs[reference]
    gammas, offsets = np.ones(k), np.zeros((k, d))
    status = "optimal"
    for a in range(k):
        if a == reference:
            continue
        g = cp.Variable(pos=True)
        c = cp.Variable(d)
        w = stats.weights[a]
        terms = []
        for i in range(m):
            P = stats.precs[a, i]
            t = float(np.sum(P * omega[i]))
            r = g * nu[i] + c - stats.means[a, i]
            terms.append(w[i] * (0.5 * t * cp.square(g) + 0.5 * cp.quad_form(r, _psd_const(P))))
        obj = cp.sum(cp.hstack(terms)) - d * float(w.sum()) * cp.log(g)
        status = _solve(cp.Problem(cp.Minimize(obj)), _OPTS_CONIC)
        gammas[a], offsets[a] = float(_value(g)), np.asarray(c.value)
    return ScaleFamilyParams(gammas, offsets, nu.copy(), omega), status


def all_inner_cvxpy(stats: CellFactors, gammas: np.ndarray, gauge: int = 0) -> ScaleFamilyParams:
    """For fixed ``gammas``: templates ``Omega_i`` (PSD variables), ``nu_i`` and offsets by cvxpy."""
    import cvxpy as cp

    k, m, d = stats.shape
    w = stats.weights
    Om = [cp.Variable((d, d), PSD=True) for _ in range(m)]
    nu = [cp.Variable(d) for _ in range(m)]
    cs = [cp.Variable(d) if a != gauge else None for a in range(k)]
    terms = []
    for i in range(m):
        Hi = sum(w[a, i] * gammas[a] ** 2 * stats.precs[a, i] for a in range(k))
        terms.append(0.5 * cp.trace(Hi @ Om[i]) - 0.5 * float(w[:, i].sum()) * cp.log_det(Om[i]))
        for a in range(k):
            off = cs[a] if cs[a] is not None else np.zeros(d)
            r = gammas[a] * nu[i] + off - stats.means[a, i]
            terms.append(0.5 * w[a, i] * cp.quad_form(r, _psd_const(stats.precs[a, i])))
    _solve(cp.Problem(cp.Minimize(cp.sum(cp.hstack(terms)))), _OPTS_SDP)
    offsets = np.array([np.zeros(d) if c is None else np.asarray(c.value) for c in cs])
    templ_cov = np.array([0.5 * (V + V.T) for V in map(_value, Om)])
    return ScaleFamilyParams(
        np.asarray(gammas, dtype=float).copy(), offsets, np.array([v.value for v in nu]), templ_cov
    )
