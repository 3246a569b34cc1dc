"""Probe for issue 14: Newton-CG on the two-class all-subgroup affine ideal in canonical template coordinates.

    python recipes/probe_canonical_newton.py --out results/probe_canonical_newton

docs/theory.md section 12 writes a two-class stationary point in the templates' generalised eigenbasis: templates
``N(0, I)`` and ``N(delta, Lambda)`` (``Lambda`` diagonal), each group ``a`` an affine image ``x = B_a z + c_a``.
In group ``a``'s own congruence basis (``V_a^T P_a0 V_a = I``, ``V_a^T P_a1 V_a = diag(p_a)``) its map is
``K_a = V_a^-1 B_a`` and, with the offset in closed form, twice the feature KL is

    sum_a [ sum_jk K_ajk^2 (w_a0 + w_a1 p_aj lambda_k) + r_a^T H_a r_a - 2 W_a log|det K_a| - w_a1 sum_k log lambda_k ]
    + const,   r_a = K_a delta - (m_a1 - m_a0),   H_a = diag(w_a0 w_a1 p_a / (w_a0 + w_a1 p_a)).

In the relative coordinates ``K_a -> K_a (I + E_a)`` the log-determinant's Hessian is ``E -> W_a E^T`` exactly and a
Hessian-vector product costs two ``d x d`` products per group (about ``4 d^3`` flops, against about ``9 d^3`` for one
evaluation of the library's profile). This recipe measures whether that makes a fast solver: Newton-CG (Armijo line
search) preconditioned by the structure's cheap approximation, each group's entry pairs ``(E_jk, E_kj)`` as 2 x 2
blocks with ``K^T P_0 K``, ``K^T P_1 K`` and ``K^T H K`` replaced by their diagonals (the relative Newton
approximation of ICA solvers), ``log lambda`` and ``delta`` by their diagonal curvature. It reports, per dimension
and next to the library's ``solve_nearest_ideal(..., family="affine")`` on the same model (whose common class prior
it keeps fixed): the KL reached, Newton steps, Hessian-vector products, seconds, and for small ``d`` the eigenvalue
range of the preconditioned Hessian at the optimum (dense). Models: ``recipes/bench_solver.py``'s ``random_model``.

Writes ``probe_canonical_newton.{json,md,png}`` (atomically; ``--overwrite`` to replace).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg as sla
from bench_solver import random_model

from steerfair import GroupConditionalModel, solve_nearest_ideal
from steerfair.evaluation.arguments import distinct, nonnegative_int, parse_checked, positive_int
from steerfair.evaluation.output import check_output, result_names, write_results
from steerfair.ideal.affine_newton import stopping_tolerance


@dataclass(frozen=True)
class Canonical:
    """The problem in each group's congruence basis ``V_a`` (``bases``, (k, d, d)): precision ratios ``p`` (k, d), mean
    differences ``dm`` (k, d), cell weights ``w`` (k, 2), and the constant of twice the KL."""

    bases: np.ndarray
    p: np.ndarray
    dm: np.ndarray
    w: np.ndarray
    const: float

    @classmethod
    def of(cls, model: GroupConditionalModel, q: np.ndarray) -> Canonical:
        if model.n_classes != 2:
            raise ValueError(f"the canonical form needs two classes, got {model.n_classes}")
        w = model.group_priors[:, None] * np.asarray(q)[None, :]
        bases, p, dm, const = [], [], [], 0.0
        d = model.dim
        for a, (c0, c1) in enumerate(model.components):
            P0, P1 = np.linalg.inv(c0.cov), np.linalg.inv(c1.cov)
            pa, V = sla.eigh(0.5 * (P1 + P1.T), 0.5 * (P0 + P0.T))  # V^T P0 V = I, V^T P1 V = diag(pa)
            Vinv = V.T @ P0
            bases.append(V)
            p.append(pa)
            dm.append(Vinv @ (c1.mean - c0.mean))
            ld_v = 2.0 * np.linalg.slogdet(V)[1]
            ld0, ld1 = np.linalg.slogdet(c0.cov)[1] - ld_v, np.linalg.slogdet(c1.cov)[1] - ld_v
            const += -w[a].sum() * d + w[a, 0] * ld0 + w[a, 1] * ld1
        return cls(np.array(bases), np.array(p), np.array(dm), w, const)

    @property
    def shape(self) -> tuple[int, int]:
        return self.p.shape  # type: ignore[return-value]

    def h(self) -> np.ndarray:
        w0, w1 = self.w[:, :1], self.w[:, 1:]
        return w0 * w1 * self.p / (w0 + w1 * self.p)

    def trace_weights(self, a: int, lam: np.ndarray) -> np.ndarray:
        return self.w[a, 0] + self.w[a, 1] * self.p[a][:, None] * lam[None, :]


@dataclass
class Point:
    K: np.ndarray  # (k, d, d)
    logdets: np.ndarray  # (k,) log|det K_a|
    v: np.ndarray  # log lambda
    delta: np.ndarray


def from_solution(pb: Canonical, sol: Any) -> Point:
    """An affine-family :class:`~steerfair.ideal.solve.IdealSolution` in canonical coordinates: ``Lambda`` and the
    basis ``T`` from the templates' pencil (``Omega_0 = T T^T``, ``Omega_1 = T Lambda T^T``), ``K_a = V_a^-1 L_a T``,
    ``delta = T^-1 (nu_1 - nu_0)``."""
    (O0, O1), (n0, n1) = sol.template_covs, sol.template_means
    lam, Winv = sla.eigh(O1, O0)  # Winv^T O0 Winv = I, so T = Winv^-T
    T = np.linalg.inv(Winv.T)
    K = np.array([np.linalg.solve(V, L @ T) for V, L in zip(pb.bases, sol.linear_maps, strict=True)])
    return Point(K, np.array([np.linalg.slogdet(Ka)[1] for Ka in K]), np.log(lam), Winv.T @ (n1 - n0))


def pack(E: np.ndarray, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return np.concatenate([E.ravel(), v, delta])


def unpack(x: np.ndarray, k: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = k * d * d
    return x[:n].reshape(k, d, d), x[n : n + d], x[n + d :]


def value(pb: Canonical, pt: Point) -> float:
    """The feature KL (half of the sum above)."""
    lam, h = np.exp(pt.v), pb.h()
    total = pb.const
    for a in range(pb.shape[0]):
        r = pt.K[a] @ pt.delta - pb.dm[a]
        total += float(np.sum(pt.K[a] ** 2 * pb.trace_weights(a, lam)) + r @ (h[a] * r))
        total -= 2.0 * pb.w[a].sum() * pt.logdets[a] + pb.w[a, 1] * pt.v.sum()
    return 0.5 * total


def gradient(pb: Canonical, pt: Point) -> np.ndarray:
    """In ``(E_a, log lambda, delta)`` at ``E = 0``."""
    k, d = pb.shape
    lam, h = np.exp(pt.v), pb.h()
    gE, gv, gd = np.empty((k, d, d)), np.zeros(d), np.zeros(d)
    for a in range(k):
        Ka = pt.K[a]
        u = Ka.T @ (h[a] * (Ka @ pt.delta - pb.dm[a]))
        gE[a] = Ka.T @ (Ka * pb.trace_weights(a, lam)) + np.outer(u, pt.delta)
        gE[a][np.diag_indices(d)] -= pb.w[a].sum()
        gv += 0.5 * pb.w[a, 1] * (lam * (pb.p[a] @ Ka**2) - 1.0)
        gd += u
    return pack(gE, gv, gd)


def hessian_product(pb: Canonical, pt: Point):  # type: ignore[no-untyped-def]
    """The exact Hessian-vector product at ``pt`` (two ``d x d`` products per group)."""
    k, d = pb.shape
    lam, h = np.exp(pt.v), pb.h()
    parts = []
    for a in range(k):
        Ka = pt.K[a]
        u = Ka.T @ (h[a] * (Ka @ pt.delta - pb.dm[a]))
        parts.append((pb.trace_weights(a, lam), u, Ka.T @ (pb.p[a][:, None] * Ka)))

    def product(x: np.ndarray) -> np.ndarray:
        P, pv, pd = unpack(x, k, d)
        oE, ov, od = np.empty((k, d, d)), np.zeros(d), np.zeros(d)
        for a in range(k):
            A, u, G1 = parts[a]
            Ka, w1 = pt.K[a], pb.w[a, 1]
            KP = Ka @ P[a]
            GhPd = Ka.T @ (h[a] * (KP @ pt.delta))
            Ghpd = Ka.T @ (h[a] * (Ka @ pd))
            oE[a] = Ka.T @ (KP * A) + np.outer(GhPd + Ghpd, pt.delta) + pb.w[a].sum() * P[a].T
            oE[a] += w1 * G1 * (lam * pv)[None, :] + np.outer(u, pd)
            ov += 0.5 * w1 * lam * np.diag(G1) * pv + w1 * lam * np.einsum("i,ij,ij->j", pb.p[a], Ka, KP)
            od += Ghpd + P[a].T @ u + GhPd
        return pack(oE, ov, od)

    return product


def preconditioner(pb: Canonical, pt: Point, floor: float = 1e-3):  # type: ignore[no-untyped-def]
    """The inverse of the pair-block approximation (determinants floored at ``floor`` times their product part)."""
    k, d = pb.shape
    lam, h = np.exp(pt.v), pb.h()
    blocks, hv, hd = [], np.zeros(d), np.zeros(d)
    for a in range(k):
        K2 = pt.K[a] ** 2
        g0, g1, gh = K2.sum(axis=0), pb.p[a] @ K2, h[a] @ K2
        A = pb.w[a, 0] * g0[:, None] + pb.w[a, 1] * g1[:, None] * lam[None, :] + gh[:, None] * pt.delta[None, :] ** 2
        W = pb.w[a].sum()
        blocks.append((A, W, np.maximum(A * A.T - W**2, floor * A * A.T)))
        hv += 0.5 * pb.w[a, 1] * lam * g1
        hd += gh

    def apply(x: np.ndarray) -> np.ndarray:
        G, gv, gd = unpack(x, k, d)
        out = np.empty_like(G)
        for a, (A, W, det) in enumerate(blocks):
            out[a] = (A.T * G[a] - W * G[a].T) / det
            out[a][np.diag_indices(d)] = np.diag(G[a]) / (np.diag(A) + W)
        return pack(out, gv / hv, gd / hd)

    return apply


def start(pb: Canonical) -> Point:
    """The mean-free start: template ratios the weighted geometric mean of the groups' sorted ones, each group's map
    the signed permutation pairing them in order (docs/theory.md), ``delta`` by least squares."""
    k, d = pb.shape
    W = pb.w.sum(axis=1)
    v = np.average(np.sort(-np.log(pb.p), axis=1), axis=0, weights=W)
    K = np.zeros((k, d, d))
    for a in range(k):
        ranks = np.empty(d, dtype=int)
        ranks[np.argsort(-np.log(pb.p[a]))] = np.arange(d)
        A = pb.trace_weights(a, np.exp(v))
        K[a][np.arange(d), ranks] = np.where(pb.dm[a] < 0, -1.0, 1.0) * np.sqrt(W[a] / A[np.arange(d), ranks])
    h = pb.h()
    M = sum(K[a].T @ (h[a][:, None] * K[a]) for a in range(k))
    b = sum(K[a].T @ (h[a] * pb.dm[a]) for a in range(k))
    delta = np.linalg.solve(M, b)
    return Point(K, np.array([np.linalg.slogdet(Ka)[1] for Ka in K]), v, delta)


def move(pb: Canonical, pt: Point, x: np.ndarray, alpha: float, KE: np.ndarray) -> Point:
    k, d = pb.shape
    E, dv, dd = unpack(x, k, d)
    logdets = pt.logdets + np.array([np.linalg.slogdet(np.eye(d) + alpha * Ea)[1] for Ea in E])
    return Point(pt.K + alpha * KE, logdets, pt.v + alpha * dv, pt.delta + alpha * dd)


def newton_cg(pb: Canonical, pt: Point, *, max_steps: int = 60, max_cg: int = 200, rtol: float = 1e-15) -> dict:
    """Inexact Newton (forcing term ``min(0.5, sqrt(g^T M^-1 g))``), PCG with the pair-block preconditioner, Armijo
    backtracking. Stops at the library's test (``g^T M^-1 g`` below
    :func:`~steerfair.ideal.affine_newton.stopping_tolerance`) or when the line search fails. History: (products so
    far, value)."""
    f, products = value(pb, pt), 0
    history = [(0, f)]
    steps = 0
    for steps in range(max_steps):  # noqa: B007
        g = gradient(pb, pt)
        pre = preconditioner(pb, pt)
        z = pre(g)
        gz = float(g @ z)
        if gz < stopping_tolerance(rtol, f, pb.shape[1]):
            break
        H = hessian_product(pb, pt)
        eta = min(0.5, np.sqrt(gz))
        x, r = np.zeros_like(g), -g
        zr = pre(r)
        p, rz = zr, float(r @ zr)
        for i in range(max_cg):
            Hp = H(p)
            products += 1
            pHp = float(p @ Hp)
            if pHp <= 0.0:  # negative curvature: take the preconditioned gradient if nothing else
                x = p if i == 0 else x
                break
            al = rz / pHp
            x, r = x + al * p, r - al * Hp
            zr = pre(r)
            rz_new = float(r @ zr)
            if rz_new < eta**2 * gz:
                break
            p, rz = zr + (rz_new / rz) * p, rz_new
        slope = float(g @ x)
        KE = np.einsum("aij,ajk->aik", pt.K, unpack(x, *pb.shape)[0])
        alpha = 1.0
        while alpha > 1e-12:
            trial = move(pb, pt, x, alpha, KE)
            f_trial = value(pb, trial)
            if np.isfinite(f_trial) and f_trial <= f + 1e-4 * alpha * slope:
                break
            alpha *= 0.5
        else:
            break
        pt, f = trial, f_trial
        history.append((products, f))
    return {"value": f, "steps": steps, "products": products, "history": history, "point": pt}


def preconditioned_spectrum(pb: Canonical, pt: Point) -> tuple[float, float]:
    """Smallest and largest eigenvalue of ``M^-1 H`` (dense; small ``d`` only)."""
    n = pb.shape[0] * pb.shape[1] ** 2 + 2 * pb.shape[1]
    H, pre = hessian_product(pb, pt), preconditioner(pb, pt)
    cols = np.eye(n)
    MH = np.array([pre(H(c)) for c in cols]).T
    ev = np.linalg.eigvals(MH).real
    return float(ev.min()), float(ev.max())


def banded_spectrum(pb: Canonical, pt: Point, band: int) -> tuple[float, float]:
    """Eigenvalue range of ``M^-1 H`` for an exact banded preconditioner: ``M`` the Hessian restricted to the
    entries ``E_a,jk`` with ``|j - k| <= band`` (template eigenvalues in increasing order) together with ``log
    lambda`` and ``delta``, plus the exact 2 x 2 blocks of the other pairs ``(E_a,jk, E_a,kj)`` (dense; small ``d``)."""
    k, d = pb.shape
    n = k * d * d + 2 * d
    product = hessian_product(pb, pt)
    H = np.array([product(c) for c in np.eye(n)])
    H = 0.5 * (H + H.T)
    index = np.arange(k * d * d).reshape(k, d, d)
    j, i = np.meshgrid(np.arange(d), np.arange(d))
    inside = np.ones(n, dtype=bool)
    inside[: k * d * d] = np.broadcast_to(np.abs(i - j) <= band, (k, d, d)).ravel()
    keep = np.outer(inside, inside)
    outside = ~inside[: k * d * d].reshape(k, d, d)
    rows, cols = index[outside], np.transpose(index, (0, 2, 1))[outside]
    keep[rows, rows] = keep[rows, cols] = True
    ev = np.linalg.eigvals(np.linalg.solve(np.where(keep, H, 0.0), H)).real
    return float(ev.min()), float(ev.max())


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "| d | library KL | library s | canonical KL | relative difference | Newton steps | Hessian-vector products "
        "| products to 1e-9 relative | canonical s | M^-1 H eigenvalues |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        spec = "-" if r["spectrum"] is None else f"{r['spectrum'][0]:.3g} - {r['spectrum'][1]:.3g}"
        lines.append(
            f"| {r['d']} | {r['library_kl']:.12g} | {r['library_seconds']:.2f} | {r['canonical_kl']:.12g} | "
            f"{r['relative_difference']:.1e} | {r['steps']} | {r['products']} | {r['products_to_1e-9']} | "
            f"{r['canonical_seconds']:.2f} | {spec} |"
        )
    if res.get("banded"):
        lines += ["", "| d | band | M^-1 H eigenvalues | condition |", "|---|---|---|---|"]
        for r in res["banded"]:
            lines.append(f"| {r['d']} | {r['band']} | {r['min']:.3g} - {r['max']:.3g} | {r['max'] / r['min']:.3g} |")
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in res["rows"]:
        n, f = np.array(r["history"]).T
        ax.semilogy(n, np.maximum(f - r["library_kl"], 1e-16), marker=".", label=f"d = {r['d']}")
    ax.set_xlabel("Hessian-vector products")
    ax.set_ylabel("KL above the library's solution")
    ax.set_title("Newton-CG in canonical coordinates, pair-block preconditioner")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--seed", type=nonnegative_int, default=0)
    ap.add_argument("--spectrum-max-d", type=int, default=8, help="dense spectrum only up to this d")
    ap.add_argument("--max-steps", type=positive_int, default=60)
    ap.add_argument("--bands", type=int, nargs="*", default=[0, 1, 2, 3], help="banded preconditioners to measure")
    ap.add_argument("--band-d", type=int, default=16, help="the dimension of the banded measurement (dense)")
    ap.add_argument("--out", type=Path, default=Path("results/probe_canonical_newton"))
    ap.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")

    def check(args: argparse.Namespace) -> None:  # before any work
        if any(d < 2 for d in args.dims):
            raise ValueError("--dims: every dimension must be at least 2")
        if args.band_d < 2 or any(b < 0 for b in args.bands):
            raise ValueError("--band-d must be at least 2 and --bands non-negative")
        distinct(args.dims, "--dims")
        distinct(args.bands, "--bands")
        check_output(args.out, result_names("probe_canonical_newton"), overwrite=args.overwrite)

    args = parse_checked(ap, argv, check)
    rows = []
    solve_nearest_ideal(random_model(4, seed=1), intervention="all", family="affine")  # imports and warm-up
    for d in args.dims:
        model = random_model(d, args.seed)
        t = time.perf_counter()
        lib = solve_nearest_ideal(model, intervention="all", family="affine")
        t_lib = time.perf_counter() - t
        t = time.perf_counter()
        pb = Canonical.of(model, np.asarray(lib.class_priors))
        out = newton_cg(pb, start(pb), max_steps=args.max_steps)
        t_can = time.perf_counter() - t
        spectrum = preconditioned_spectrum(pb, out["point"]) if d <= args.spectrum_max_d else None
        row = {
            "d": d,
            "library_kl": float(lib.feature_kl),
            "library_seconds": t_lib,
            "canonical_kl": out["value"],
            "relative_difference": (out["value"] - lib.feature_kl) / abs(lib.feature_kl),
            "steps": out["steps"],
            "products": out["products"],
            "products_to_1e-9": next(
                (n for n, f in out["history"] if f - lib.feature_kl <= 1e-9 * lib.feature_kl), None
            ),  # fmt: skip
            "canonical_seconds": t_can,
            "spectrum": spectrum,
            "history": out["history"],
        }
        rows.append(row)
        print({k: v for k, v in row.items() if k != "history"}, flush=True)
    banded = []
    if args.bands:
        model = random_model(args.band_d, args.seed)
        lib = solve_nearest_ideal(model, intervention="all", family="affine")
        pb = Canonical.of(model, np.asarray(lib.class_priors))
        for band in args.bands:
            lo, hi = banded_spectrum(pb, from_solution(pb, lib), band)
            banded.append({"d": args.band_d, "band": band, "min": lo, "max": hi})
            print(banded[-1], flush=True)
    res = {"seed": args.seed, "rows": rows, "banded": banded, "note": "class prior fixed at the library solution's"}
    write_results(args.out, "probe_canonical_newton", res, markdown, plot, overwrite=args.overwrite,
                  config=vars(args))  # fmt: skip
    print(markdown(res))


if __name__ == "__main__":
    main()
