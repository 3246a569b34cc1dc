"""The paper's Gaussian case study, reproduced with steerfair (section "Case Study on Gaussian Distributions").

Run it with ``python recipes/synthetic_gaussian.py --out results/synthetic [--overwrite]`` or
``steerfair demo --synthetic``.

Binary group A (0 = disadvantaged, 1 = advantaged) and binary label Y, univariate Gaussian
class-conditionals (plus one multivariate setting). For each setting we compare the original
distribution with the steered ones:

* ``affirmative``: steerfair's affirmative-action ideal (only group 0 moves; Theorem 4.1 / Cor. 4.2);
* ``all``: steerfair's all-subgroup ideal (Proposition 4.3);
* ``affirmative_affine``, ``all_affine``: the same over the affine-equivalence family (``family="affine"``:
  every group an invertible affine image of shared class templates; docs/theory.md, section 12);
* ``reweighing``: Kamiran-Calders prior equalisation only (features unchanged);
* ``mean_matching``: shift group 0's features so its mean equals group 1's;
* ``ot_matching``: Gaussian OT of group 0's (moment-matched) feature law onto group 1's (MiMiC-style).

Every metric is computed analytically (normal CDFs over the exact decision regions of the quadratic
log-odds in 1-D; the steerfair certificate for the worst gap over all costs), except the JS divergence
in the multivariate setting (Monte Carlo, labelled). Writes JSON and a markdown table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import integrate
from scipy.special import ndtr

from steerfair import (
    Gaussian,
    GroupConditionalModel,
    bayes_certificate,
    bayes_error,
    bayes_gap,
    gaussian_ot_map,
    mean_shift_map,
    solve_nearest_ideal,
)
from steerfair.ideal.exactness import cell_eo_gap_bound
from steerfair.steering import mixture_moments

from .arguments import parse_checked
from .output import atomic_write_file, check_output, run_record, to_json


@dataclass(frozen=True)
class Setting:
    """A two-group, two-class univariate (or multivariate) Gaussian setting."""

    name: str
    means: list  # [group][class] -> mean (scalar or vector)
    sds: list  # [group][class] -> sd (scalar) or covariance
    q1: tuple[float, float]  # P(Y=1 | A=a)
    pa: tuple[float, float]  # P(A=a)


SETTINGS = [
    Setting("unequal separation", [[0.0, 1.5], [0.0, 2.5]], [[1.0, 1.0], [1.0, 1.0]], (0.3, 0.5), (0.4, 0.6)),
    Setting("unequal variances", [[0.0, 2.0], [0.0, 2.0]], [[1.5, 1.0], [1.0, 1.0]], (0.4, 0.4), (0.4, 0.6)),
    Setting("shifted group", [[1.0, 2.5], [0.0, 2.5]], [[1.2, 1.4], [1.0, 1.0]], (0.25, 0.45), (0.3, 0.7)),
    Setting("prior gap only", [[0.0, 2.0], [0.0, 2.0]], [[1.0, 1.0], [1.0, 1.0]], (0.2, 0.5), (0.5, 0.5)),
    Setting(
        "multivariate (d=3)",
        [[[0.0, 0.0, 0.0], [1.0, 0.5, 0.0]], [[0.0, 0.0, 0.0], [1.5, 1.0, 0.5]]],
        [
            [np.diag([1.5, 1.0, 1.0]), [[1.0, 0.3, 0.0], [0.3, 1.2, 0.2], [0.0, 0.2, 0.8]]],
            [np.eye(3), [[1.0, 0.2, 0.0], [0.2, 1.0, 0.0], [0.0, 0.0, 1.0]]],
        ],
        (0.3, 0.5),
        (0.4, 0.6),
    ),
]


def build(s: Setting) -> GroupConditionalModel:
    """The group/class-conditional Gaussian model of a setting."""
    comps = []
    for a in range(2):
        row = []
        for i in range(2):
            m = np.atleast_1d(np.asarray(s.means[a][i], dtype=float))
            sd = np.asarray(s.sds[a][i], dtype=float)
            if sd.ndim == 0 and not sd > 0:
                raise ValueError(f"setting {s.name!r}: the standard deviation of cell ({a}, {i}) must be positive")
            cov = sd.reshape(1, 1) ** 2 if sd.ndim == 0 else sd
            row.append(Gaussian(m, cov))
        comps.append(tuple(row))
    cp = np.array([[1 - s.q1[0], s.q1[0]], [1 - s.q1[1], s.q1[1]]])
    return GroupConditionalModel(np.arange(2), np.arange(2), np.array(s.pa), cp, tuple(comps))


# ----------------------------------------------------------------------------- exact 1-D rates
def region_prob(coef: tuple[float, float, float], m: float, s: float) -> float:
    """P(A x^2 + B x + C >= 0) for x ~ N(m, s^2), exactly."""
    A, B, C = coef
    Phi = lambda x: float(ndtr((x - m) / s))  # noqa: E731
    if abs(A) < 1e-14:
        if abs(B) < 1e-14:
            return 1.0 if C >= 0 else 0.0
        r = -C / B
        return 1.0 - Phi(r) if B > 0 else Phi(r)
    disc = B * B - 4 * A * C
    if disc <= 0:
        return 1.0 if A > 0 else 0.0
    r1, r2 = sorted([(-B - np.sqrt(disc)) / (2 * A), (-B + np.sqrt(disc)) / (2 * A)])
    return Phi(r1) + 1.0 - Phi(r2) if A > 0 else Phi(r2) - Phi(r1)


def log_odds_coef(model: GroupConditionalModel, a: int, tau: float = 0.0) -> tuple[float, float, float]:
    """Coefficients of ``log q1 N1(x) - log q0 N0(x) - tau`` for group ``a`` (1-D)."""
    m0, m1 = (float(model.components[a][i].mean[0]) for i in range(2))
    v0, v1 = (float(model.components[a][i].cov[0, 0]) for i in range(2))
    q0, q1 = model.class_priors[a]
    A = -0.5 / v1 + 0.5 / v0
    B = m1 / v1 - m0 / v0
    C = -0.5 * m1 * m1 / v1 + 0.5 * m0 * m0 / v0 + 0.5 * np.log(v0 / v1) + np.log(q1 / q0) - tau
    return A, B, C


def _bayes_rates(data: GroupConditionalModel, positive_prob: Callable[[int, Gaussian], float]) -> dict:
    """Group-wise TPR / FPR / positive rate / error, and the overall error and DP / EO gaps, of a classifier on
    ``data``, from ``positive_prob(a, cell)``: the probability that it predicts 1 on a 1-D Gaussian cell of group
    ``a``."""
    out: dict[str, Any] = {"tpr": [], "fpr": [], "pr": [], "err": []}
    for a in range(2):
        c0, c1 = data.components[a]
        tpr, fpr = positive_prob(a, c1), positive_prob(a, c0)
        q0, q1 = data.class_priors[a]
        out["tpr"].append(tpr)
        out["fpr"].append(fpr)
        out["pr"].append(q1 * tpr + q0 * fpr)
        out["err"].append(q1 * (1 - tpr) + q0 * fpr)
    out["error"] = float(np.dot(data.group_priors, out["err"]))
    out["dp_gap"] = abs(out["pr"][1] - out["pr"][0])
    out["eo_gap"] = abs(out["tpr"][1] - out["tpr"][0])
    return out


def _mean_sd(cell: Gaussian) -> tuple[float, float]:
    """Mean and standard deviation of a 1-D Gaussian."""
    return float(cell.mean[0]), float(np.sqrt(cell.cov[0, 0]))


def rates_1d(classifier: GroupConditionalModel, data: GroupConditionalModel, tau: float = 0.0) -> dict:
    """Group-wise TPR/FPR/positive rate/error of ``classifier``'s Bayes rule evaluated on ``data``.

    Args:
        classifier: The 1-D model whose group-aware Bayes rule (threshold ``tau`` on the log-odds) is evaluated.
        data: The 1-D model the rule is evaluated on.
        tau: Threshold on the log-odds.

    Returns:
        dict: Per-group lists ``tpr``, ``fpr``, ``pr``, ``err`` and the scalars ``error``, ``dp_gap``, ``eo_gap``.
    """
    coefs = [log_odds_coef(classifier, a, tau) for a in range(2)]
    return _bayes_rates(data, lambda a, cell: region_prob(coefs[a], *_mean_sd(cell)))


def blind_rates_1d(classifier: GroupConditionalModel, data: GroupConditionalModel) -> dict:
    """Rates of the *group-blind* Bayes classifier of ``classifier`` (it sees x only: predict 1 iff
    ``sum_a P(a, Y=1) N_1a(x) >= sum_a P(a, Y=0) N_0a(x)``), evaluated on ``data``.

    The decision boundary of a mixture is found by bracketing sign changes on a dense grid and
    refining each root with Brent's method (1e-12); probabilities are then exact normal CDFs.

    Returns:
        dict: As :func:`rates_1d`.
    """
    from scipy.optimize import brentq

    def score(x: float) -> float:
        X = np.array([[x]])
        pos = sum(classifier.joint[a, 1] * np.exp(classifier.components[a][1].logpdf(X)[0]) for a in range(2))
        neg = sum(classifier.joint[a, 0] * np.exp(classifier.components[a][0].logpdf(X)[0]) for a in range(2))
        return float(np.log(pos) - np.log(neg))

    centers = [float(c.mean[0]) for row in classifier.components for c in row]
    spread = max(float(np.sqrt(c.cov[0, 0])) for row in classifier.components for c in row)
    grid = np.linspace(min(centers) - 12 * spread, max(centers) + 12 * spread, 4001)
    vals = np.array([score(x) for x in grid])
    roots = [brentq(score, grid[j], grid[j + 1], xtol=1e-12) for j in range(len(grid) - 1) if vals[j] * vals[j + 1] < 0]
    # a boundary on a grid node (score exactly 0 there, e.g. a symmetric setting) has no sign change across an
    # interval: it is a root where the sign differs on its two sides (it was missed, and the whole line predicted 1)
    roots += [float(grid[j]) for j in range(1, len(grid) - 1) if vals[j] == 0.0 and vals[j - 1] * vals[j + 1] < 0]
    edges = [-np.inf, *sorted(roots), np.inf]
    # intervals where the classifier predicts 1
    pos_intervals = [
        (lo, hi)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        if score(0.5 * (max(lo, grid[0]) + min(hi, grid[-1]))) >= 0
    ]

    def prob(m: float, s: float) -> float:
        return float(sum(ndtr((hi - m) / s) - ndtr((lo - m) / s) for lo, hi in pos_intervals))

    return _bayes_rates(data, lambda a, cell: prob(*_mean_sd(cell)))


def js_1d(p: GroupConditionalModel, q: GroupConditionalModel) -> float:
    """Jensen-Shannon divergence of the joint laws of (X, Y, A), by adaptive quadrature (1-D)."""
    total = 0.0
    for a in range(2):
        for i in range(2):
            wp, wq = p.joint[a, i], q.joint[a, i]
            P, Q = p.components[a][i], q.components[a][i]

            def f(x: float, P: Gaussian = P, Q: Gaussian = Q, wp: float = wp, wq: float = wq) -> float:
                lp = np.log(wp) + P.logpdf(np.array([[x]]))[0]
                lq = np.log(wq) + Q.logpdf(np.array([[x]]))[0]
                lm = np.logaddexp(lp, lq) - np.log(2)
                return 0.5 * (np.exp(lp) * (lp - lm) + np.exp(lq) * (lq - lm))

            val, _ = integrate.quad(f, -np.inf, np.inf, epsabs=1e-12, limit=400)
            total += val
    return float(total)


def js_mc(p: GroupConditionalModel, q: GroupConditionalModel, n: int = 200_000, seed: int = 0) -> float:
    """JS divergence by Monte Carlo (multivariate settings only)."""

    def logdens(model: GroupConditionalModel, X: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
        out = np.empty(len(X))
        for a in range(2):
            for i in range(2):
                sel = (g == a) & (y == i)
                out[sel] = np.log(model.joint[a, i]) + model.components[a][i].logpdf(X[sel])
        return out

    total = 0.0
    for first, second in ((p, q), (q, p)):
        X, y, g = first.sample(n, seed)
        l1, l2 = logdens(first, X, y, g), logdens(second, X, y, g)
        total += 0.5 * float(np.mean(l1 - (np.logaddexp(l1, l2) - np.log(2))))
    return total


# ----------------------------------------------------------------------------- interventions
def baseline_models(model: GroupConditionalModel) -> dict[str, GroupConditionalModel]:
    """Reweighing, mean matching and OT matching of group 0 onto group 1."""
    sol_all = solve_nearest_ideal(model, intervention="all")
    out = {"reweighing": model.with_components(model.components, class_priors=sol_all.ideal.class_priors)}
    src = mixture_moments(model.components[0], model.class_priors[0])
    dst = mixture_moments(model.components[1], model.class_priors[1])
    for name, amap in (("mean_matching", mean_shift_map(src, dst)), ("ot_matching", gaussian_ot_map(src, dst))):
        comps = [tuple(c.pushforward(amap) for c in model.components[0]), model.components[1]]
        out[name] = model.with_components(comps)
    return out


def evaluate(setting: Setting) -> dict:
    """Every intervention of one setting: KL and JS to the original law, Bayes error and gaps (group-aware and, in
    1-D, group-blind), the same classifier deployed on the original law, and the certificate's worst gaps.

    Returns:
        dict: ``{"setting": name, "params": ..., "results": {method: metrics}}``.
    """
    model = build(setting)
    d = model.dim
    models = {"original": model}
    for iv in ("affirmative", "all"):
        models[iv] = solve_nearest_ideal(model, intervention=iv, reference=1).ideal
    # the whole Gaussian ideal set (docs/theory.md, section 12)
    models["affirmative_affine"] = solve_nearest_ideal(
        model, "equal_opportunity", "affirmative", reference=1, family="affine"
    ).ideal
    models["all_affine"] = solve_nearest_ideal(model, "equal_opportunity", "all", reference=1, family="affine").ideal
    models.update(baseline_models(model))
    rows = {}
    for name, m in models.items():
        kl = m.kl(model)
        js = js_1d(m, model) if d == 1 else js_mc(m, model)
        row: dict[str, Any] = {"kl": kl, "js": js, "js_method": "quad" if d == 1 else "mc"}
        if d == 1:
            own = rates_1d(m, m)  # Bayes classifier of the steered law, on that law
            row.update({"bayes_error": own["error"], "dp_gap": own["dp_gap"], "eo_gap": own["eo_gap"]})
            blind = blind_rates_1d(m, m)
            row.update(
                {"blind_error": blind["error"], "blind_dp_gap": blind["dp_gap"], "blind_eo_gap": blind["eo_gap"]}
            )
            orig = rates_1d(m, model)  # the same classifier deployed on the original law
            row.update(
                {
                    "error_on_original": orig["error"],
                    "eo_gap_on_original": orig["eo_gap"],
                    "error_shift": abs(orig["error"] - own["error"]),
                    "bound_error_shift": float(np.sqrt(2 * kl)),
                    "bound_eo_gap": cell_eo_gap_bound(m, model),
                }
            )
        else:  # analytic rates from the certificate (generalized chi-square laws of the log-odds)
            eo = bayes_certificate(m, "equal_opportunity", costs=np.array([0.5]))
            dp = bayes_certificate(m, "demographic_parity", costs=np.array([0.5]))
            on_orig = bayes_certificate(m, "equal_opportunity", costs=np.array([0.5]), data=model)
            row.update(
                {
                    "bayes_error": bayes_error(m),
                    "dp_gap": dp.gap,
                    "eo_gap": eo.gap,
                    "error_on_original": bayes_error(m, data=model),
                    "eo_gap_on_original": on_orig.gap,
                    "bound_error_shift": float(np.sqrt(2 * kl)),
                    "bound_eo_gap": cell_eo_gap_bound(m, model),
                }
            )
            row["error_shift"] = abs(row["error_on_original"] - row["bayes_error"])
        row["worst_eo_gap_all_costs"] = bayes_gap(m, "equal_opportunity")
        row["worst_dp_gap_all_costs"] = bayes_gap(m, "demographic_parity")
        rows[name] = row
    return {"setting": setting.name, "params": setting.__dict__, "results": rows}


def markdown(results: list[dict]) -> str:
    """One markdown table per setting: methods in rows, metrics in columns."""
    cols = [
        "bayes_error",
        "dp_gap",
        "eo_gap",
        "worst_eo_gap_all_costs",
        "worst_dp_gap_all_costs",
        "blind_error",
        "blind_dp_gap",
        "blind_eo_gap",
        "kl",
        "js",
    ]
    lines = []
    for res in results:
        lines.append(f"\n**{res['setting']}**\n")
        lines.append("| method | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
        for name, row in res["results"].items():
            vals = [("—" if row.get(c) is None else f"{row[c]:.4f}") for c in cols]
            lines.append(f"| {name} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def run(
    out: Path | None = None,
    settings: list[Setting] | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Evaluate every setting; write ``synthetic_gaussian.json`` and ``.md`` under ``out`` if given.

    Args:
        out: Output folder, or ``None`` to write nothing.
        settings: The settings (default: :data:`SETTINGS`).
        overwrite: Replace earlier results in ``out`` (otherwise they raise a ``ValueError``, before any work).
        progress: A progress bar over the settings on stderr (tqdm; about 10 s per setting on 2 cores).

    Returns:
        list[dict]: One :func:`evaluate` result per setting.
    """
    names = RESULT_FILES
    if out is not None:
        out = check_output(out, names, overwrite=overwrite)
    chosen = SETTINGS if settings is None else settings
    from tqdm.auto import tqdm

    results = [evaluate(s) for s in tqdm(chosen, desc="case study", unit="setting", disable=not progress)]
    if out is not None:
        check_output(out, names, overwrite=overwrite)
        table = markdown(results)
        # a list of per-setting results (the established format); each records the run that produced it
        run = run_record({"settings": [s.name for s in chosen]})
        text = to_json([{**r, "run": run} for r in results])
        atomic_write_file(out / names[1], lambda p: p.write_text(table))
        atomic_write_file(out / names[0], lambda p: p.write_text(text))
    return results


#: the files :func:`run` writes
RESULT_FILES = ("synthetic_gaussian.json", "synthetic_gaussian.md")


def main(argv: list[str] | None = None) -> None:
    """Command line of ``recipes/synthetic_gaussian.py``: run every setting, print and write the tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("results/synthetic"))
    ap.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    args = parse_checked(
        ap, argv, lambda a: check_output(a.out, RESULT_FILES, overwrite=a.overwrite)
    )  # a usage error before any work
    print(markdown(run(args.out, overwrite=args.overwrite)))
