"""The exactness certificate: analytic group-wise rates of the Bayes-optimal classifiers.

For binary labels the group-aware cost-sensitive Bayes classifier with cost ratio ``c`` predicts the
positive class iff ``P(Y=1 | x, a) >= c``, i.e. iff the log-odds

    l_a(x) = log N(x; mu_1a, S_1a) - log N(x; mu_0a, S_0a) + log(q_1a / q_0a) >= logit(c).

Under ``X ~ N(mu_ya, S_ya)`` the log-odds is a quadratic form in a standard normal vector, i.e. a
*generalized chi-square* variable ``sum_k lam_k (w_k + m_k)^2 + s Z + c``. Its distribution function
is computed without Monte Carlo:

* all ``lam_k = 0`` (equal covariances): the normal CDF;
* one non-zero ``lam_k`` and no normal part (every 1-D problem): the exact two-root normal CDF;
* otherwise: Gil-Pelaez inversion of the characteristic function, integrated numerically with
  QUADPACK: an adaptive rule on ``[0, a]``; on the tail ``[a, inf)`` the integrand directly (on pieces of
  doubling length) where it turns slowly: up to ``SLOW_CYCLES / |c - x|``, or up to the truncation point
  where ``|phi|`` is negligible when its phase turns by at most ``DIRECT_RADIANS`` there; beyond, the smooth
  amplitude and phase against ``cos`` / ``sin`` of ``(c - x) u`` by oscillatory-weight rules (QAWO up to the
  truncation point, QAWF when there is none). A RuntimeWarning is raised if the quadrature's error estimate
  exceeds 1e-7.

A direction whose quadratic coefficient is tiny next to its linear one (``|lam| <= SQUARE_DROP |beta|``) is
taken as linear (part of ``s Z``): completing its square would put ``beta^2 / (4 lam)`` into ``c`` and lose the
threshold to rounding. Distinct laws are evaluated once per certificate; groups with identical cells (an ideal
model) share their laws, so their rates coincide. Measured accuracy: 1e-9 or better against the non-central
chi-square CDF and against 1-D conditioning integrals, and near the law's constant, for nearly equal class
covariances and for spread eigenvalues against exact integrals and Monte Carlo (tests/test_exactness.py).
Before those rules, a Fourier rule started where its cycles span decades of ``u``, and completed squares of
nearly linear directions, gave rates off by up to 0.38 with small error estimates and no warning.

``bayes_gap`` reports the worst gap over a dense grid of costs. Multi-class models are certified on all
pairwise binary restrictions (``Y in {i, j}``, priors renormalised within each group), i.e. for cost
matrices supported on two classes. Log-normal models are certified on their underlying normals: the
coordinatewise log is a monotone bijection and leaves every Bayes decision unchanged.
"""

from __future__ import annotations

import cmath
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logit, ndtr

from ..families import Gaussian
from ..linalg import eigh_sym
from ..model import GroupConditionalModel
from ..validation import as_int, as_number
from ..warning_location import user_stacklevel
from .conditions import is_ideal

__all__ = [
    "cell_eo_gap_bound",
    "Certificate",
    "bayes_certificate",
    "bayes_gap",
    "bayes_error",
    "transfer_bounds",
    "CERTIFIED_CRITERIA",
]

CERTIFIED_CRITERIA = ("equal_opportunity", "demographic_parity", "equalized_odds")
GIL_PELAEZ_WARN_ABS = 1e-7  # warn when the quadrature's own error estimate exceeds this
#: the Gil-Pelaez tail is integrated directly up to SLOW_CYCLES / |c - x| (radians of the slow factor), by Fourier
#: rules beyond
SLOW_CYCLES = 200.0
#: a quadratic direction of the log-odds law with ``|lam| <= SQUARE_DROP |beta|`` is treated as linear (log_odds_law)
SQUARE_DROP = 1.5e-9
#: with a finite truncation point, the tail is integrated directly when the integrand's phase turns by at most this
DIRECT_RADIANS = 2000.0


@dataclass(frozen=True)
class GeneralizedChiSquare:
    """``sum_k lam_k (w_k + m_k)^2 + s Z + c`` with independent standard normals ``w_k, Z``."""

    lam: np.ndarray
    m: np.ndarray
    s: float
    c: float

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """``P(Q <= x)`` for each threshold in ``x``."""
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        if self.lam.size == 0:
            if self.s == 0:
                return (x >= self.c).astype(float)
            return ndtr((x - self.c) / self.s)
        if self.lam.size == 1 and self.s == 0:
            lam, m = float(self.lam[0]), float(self.m[0])
            r = (x - self.c) / lam
            root = np.sqrt(np.clip(r, 0.0, None))
            inside = np.where(r > 0, ndtr(root - m) - ndtr(-root - m), 0.0)  # P((w+m)^2 <= r)
            return inside if lam > 0 else 1.0 - inside
        return self._gil_pelaez(x)

    def log_abs_cf(self, u: np.ndarray) -> np.ndarray:
        """``log |phi(u)|``, non-increasing in ``|u|``: each factor decays like ``(1 + 4 lam^2 u^2)^(-1/4)``."""
        u = np.asarray(u, dtype=np.float64)[..., None]
        t = 4.0 * self.lam**2 * u**2
        out = np.sum(-0.25 * np.log1p(t) - 0.5 * t * self.m**2 / (1.0 + t), axis=-1)
        return out - 0.5 * self.s**2 * u[..., 0] ** 2

    def _truncation(self, a: float, log_eps: float = -40.0) -> float:
        """A point beyond which the Gil-Pelaez integrand is negligible, or ``inf``.

        For ``u >= U``: ``|phi(u)| <= |phi(U)| (U/u)^(r/2)``, so the tail is at most ``|phi(U)| * 2 / r``
        (or ``|phi(U)| * exp(-s^2 (u^2 - U^2) / 2)``-small with a normal part). Doubling from ``a``, the
        first ``U`` with ``log |phi(U)| < -40`` is returned when it is below ``2^14 a``; otherwise the tail
        is left to the Fourier-integral rule.
        """
        U = a
        for _ in range(15):
            if float(self.log_abs_cf(np.array(U))) < log_eps:
                return U
            U *= 2.0
        return np.inf

    def _gil_pelaez(self, x: np.ndarray) -> np.ndarray:
        """Gil-Pelaez: ``F(x) = 1/2 - (1/pi) int_0^inf Im[phi(u) e^{-iux}] / u du``.

        With ``phi(u) = R(u) exp(i (psi(u) + c u))`` the integrand is
        ``R(u)/u * sin(psi(u) + (c - x) u)``; ``R`` decays and ``psi`` saturates, so the tail
        ``[a, inf)`` is split into two Fourier integrals (QUADPACK QAWF) of smooth functions against
        ``cos``/``sin`` of ``(c - x) u``, and ``[0, a]`` is integrated directly.
        """
        from scipy import integrate  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

        lam, m, s, c = self.lam, self.m, self.s, self.c
        terms = [(float(lk), float(mk) ** 2) for lk, mk in zip(lam, m, strict=True)]
        half_s2 = 0.5 * s * s

        if len(terms) <= 64:  # scalar complex arithmetic beats numpy on short vectors

            def logphi0(u: float) -> complex:
                acc: complex = -half_s2 * u * u
                for lk, m2 in terms:
                    z = 1.0 - 2j * lk * u
                    acc += -0.5 * cmath.log(z) + 1j * lk * u * m2 / z
                return acc

        else:

            def logphi0(u: float) -> complex:
                z = 1.0 - 2j * lam * u
                return complex(np.sum(-0.5 * np.log(z) + 1j * lam * u * m * m / z) - half_s2 * u * u)

        def sin_part(u: float) -> float:
            v = logphi0(u)
            return math.exp(v.real) / u * math.sin(v.imag)

        def cos_part(u: float) -> float:
            v = logphi0(u)
            return math.exp(v.real) / u * math.cos(v.imag)

        mean = float(np.sum(lam * (1.0 + m * m))) + c
        a = 1.0 / max(float(np.max(np.abs(lam))), 1e-12)
        a = min(a, 1.0 / s) if s > 0 else a
        u_max = self._truncation(a)
        out = np.empty_like(x)
        worst_err = 0.0
        for j, xj in enumerate(x):
            w = c - xj

            def full(u: float, w: float = w, xj: float = xj) -> float:
                if u == 0.0:
                    return mean - xj
                v = logphi0(u)
                return math.exp(v.real) / u * math.sin(v.imag + w * u)

            with warnings.catch_warnings():  # accuracy is judged from the error estimates below
                warnings.simplefilter("ignore", integrate.IntegrationWarning)
                head, e_head = integrate.quad(full, 0.0, a, epsabs=1e-13, epsrel=1e-12, limit=200)
                # up to SLOW_CYCLES / |w| the factor sin(w u) turns slowly: integrate directly, on pieces of
                # doubling length (the integrand varies on the scales 1 / |lam_k|); beyond it, Fourier rules. A
                # Fourier rule started where its cycles span decades of u returned wrong values with small error
                # estimates (the CDF jumped by 0.06 between x = c and x = c + 1e-5).
                start = max(a, SLOW_CYCLES / abs(w)) if w != 0.0 else math.inf
                if np.isfinite(u_max) and abs(logphi0(u_max).imag + w * u_max - logphi0(a).imag - w * a) <= (
                    DIRECT_RADIANS
                ):  # the whole integrand turns slowly on [a, u_max] although its two phases do not (a direction
                    # whose quadratic part is tiny next to its mean: lam m^2 u against the constant's w u)
                    start = u_max
                direct_end = min(start, u_max)
                tail, e_tail = 0.0, 0.0
                if not np.isfinite(direct_end):  # w = 0 (or nearly) and no truncation: R(u) / u is integrable
                    tail, e_tail = integrate.quad(full, a, math.inf, epsabs=1e-13, epsrel=1e-12, limit=2000)
                elif direct_end > a:
                    edges = np.geomspace(a, direct_end, int(np.ceil(np.log2(direct_end / a))) + 2)
                    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                        t_piece, e_piece = integrate.quad(full, lo, hi, epsabs=1e-14, epsrel=1e-12, limit=400)
                        tail, e_tail = tail + t_piece, e_tail + e_piece
                if direct_end < u_max:
                    a_tail = direct_end
                    # split sin(psi(u) + w u) into smooth parts against cos / sin of |w| u: QUADPACK's
                    # oscillatory rules (QAWO on [a, u_max], QAWF on [a, inf)). A plain adaptive rule over
                    # thousands of periods can return a wrong value with a small error estimate.
                    sgn, om = (1.0 if w > 0 else -1.0), abs(w)
                    osc, e_osc = np.nan, np.inf
                    # QAWF's cycle extrapolation can fail when asked for more than it can reach, and then
                    # returns a poor value; retry with looser targets and keep the best error estimate.
                    for eps in (1e-13, 1e-11, 1e-9):
                        opts = {"limit": 2000} if np.isfinite(u_max) else {"limlst": 200, "limit": 2000}
                        t_cos, e_cos = integrate.quad(
                            sin_part, a_tail, u_max, weight="cos", wvar=om, epsabs=eps, **opts
                        )
                        t_sin, e_sin = integrate.quad(
                            cos_part, a_tail, u_max, weight="sin", wvar=om, epsabs=eps, **opts
                        )
                        if e_cos + e_sin < e_osc:
                            osc, e_osc = t_cos + sgn * t_sin, e_cos + e_sin
                        if e_osc <= 10.0 * eps:
                            break
                    tail, e_tail = tail + osc, e_tail + e_osc
            worst_err = max(worst_err, (e_head + e_tail) / np.pi)
            out[j] = 0.5 - (head + tail) / np.pi
        if worst_err > GIL_PELAEZ_WARN_ABS:
            warnings.warn(
                f"generalized chi-square CDF: quadrature error estimate {worst_err:.1e} exceeds "
                f"{GIL_PELAEZ_WARN_ABS:.0e}; certified rates are accurate to about that much",
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )
        return np.clip(out, 0.0, 1.0)


def log_odds_law(pos: Gaussian, neg: Gaussian, log_prior_odds: float, data: Gaussian) -> GeneralizedChiSquare:
    """Law of ``log N(x; pos) - log N(x; neg) + log_prior_odds`` for ``x ~ data``."""
    L = data.chol
    A1 = solve_triangular(pos.chol, L, lower=True, check_finite=False)  # L1^-1 L
    A0 = solve_triangular(neg.chol, L, lower=True, check_finite=False)
    Q = 0.5 * (A0.T @ A0 - A1.T @ A1)
    r1 = solve_triangular(pos.chol, data.mean - pos.mean, lower=True, check_finite=False)
    r0 = solve_triangular(neg.chol, data.mean - neg.mean, lower=True, check_finite=False)
    b = A0.T @ r0 - A1.T @ r1
    logdet = float(np.sum(np.log(np.diag(neg.chol))) - np.sum(np.log(np.diag(pos.chol))))
    const = 0.5 * float(r0 @ r0 - r1 @ r1) + logdet + log_prior_odds
    lam, V = eigh_sym(Q)
    beta = V.T @ b
    tol = 1e-12 * max(float(np.max(np.abs(lam))), 1e-300) if lam.size else 0.0
    # a direction whose quadratic coefficient is tiny next to its linear one is taken as linear: completing the
    # square there puts beta^2 / (4 lam) into the constant, whose rounding (eps |beta| / (4 lam) in units of the
    # law's spread) swamps the threshold (a CDF off by 0.38 in 1-D at lam / beta = 5e-14); dropping lam changes
    # the CDF by at most about 26 lam / |beta|. The cut balances the two: both below about 4e-8.
    nz = (np.abs(lam) > max(tol, 1e-14)) & (np.abs(lam) > SQUARE_DROP * np.abs(beta))
    lam_nz, beta_nz = lam[nz], beta[nz]
    m = beta_nz / (2 * lam_nz)
    s = float(np.sqrt(np.sum(beta[~nz] ** 2)))
    c = const - float(np.sum(beta_nz**2 / (4 * lam_nz)))
    order = np.lexsort((m * m, lam_nz))  # canonical order: identical laws give identical arithmetic
    return GeneralizedChiSquare(lam_nz[order], np.abs(m[order]), s, c)


@dataclass(frozen=True)
class Certificate:
    """Group-wise rates of the group-aware Bayes classifiers over a grid of costs.

    Attributes:
        costs: cost ratios ``c`` (predict positive iff ``P(Y=1|x,a) >= c``), shape ``(n,)``.
        tpr, fpr, positive_rate: ``(k, n)`` rates per group (binary models; for multi-class the
            rates of the worst pair). Only those the criterion reads are computed: with
            ``"equal_opportunity"`` the ``fpr`` and ``positive_rate`` are NaN.
        gaps: the criterion's gap (max - min over groups) per cost.
        gap: the worst gap; ``worst_cost`` where it occurs; ``pair`` the class pair (multi-class).
    """

    criterion: str
    costs: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray
    positive_rate: np.ndarray
    gaps: np.ndarray
    gap: float
    worst_cost: float
    pair: tuple[int, int]


class _LawCache:
    """Distribution functions of log-odds laws, each distinct law evaluated once.

    Groups whose cells coincide (as on an ideal model) share their laws, so they also share the
    arithmetic: their rates agree bit for bit. Laws are keyed by their parameters rounded to 12
    significant digits: an ideal model's groups give laws that agree to rounding error (~1e-15), and
    the Gil-Pelaez quadrature of two such laws can otherwise differ by its own error estimate (up to
    ``GIL_PELAEZ_WARN_ABS``, with a warning) although the laws are the same.
    """

    def __init__(self, thresholds: np.ndarray) -> None:
        self.thresholds = thresholds
        self._store: dict[bytes, np.ndarray] = {}

    def survival(self, law: GeneralizedChiSquare) -> np.ndarray:
        params = np.concatenate([law.lam, law.m, [law.s, law.c]])
        key = " ".join(f"{v:.11e}" for v in params + 0.0).encode()  # + 0.0: no separate key for -0.0
        if key not in self._store:
            self._store[key] = 1.0 - law.cdf(self.thresholds)
        return self._store[key]


def _binary_rates(
    comps: list[tuple[Gaussian, Gaussian]],
    priors: np.ndarray,
    cache: _LawCache,
    need_fpr: bool = True,
    data: list[tuple[Gaussian, Gaussian]] | None = None,
    data_priors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rates of the Bayes classifiers of ``comps``/``priors`` on ``data`` (default: the same cells)."""
    data = comps if data is None else data
    data_priors = priors if data_priors is None else data_priors
    k, n = len(comps), len(cache.thresholds)
    tpr, fpr = np.empty((k, n)), np.full((k, n), np.nan)
    for a, ((neg, pos), (dneg, dpos)) in enumerate(zip(comps, data, strict=True)):
        lpo = float(np.log(priors[a, 1]) - np.log(priors[a, 0]))
        tpr[a] = cache.survival(log_odds_law(pos, neg, lpo, dpos))
        if need_fpr:
            fpr[a] = cache.survival(log_odds_law(pos, neg, lpo, dneg))
    pr = data_priors[:, 1, None] * tpr + data_priors[:, 0, None] * fpr
    return tpr, fpr, pr


def _check_compatible(
    model: GroupConditionalModel, data: GroupConditionalModel, names: tuple[str, str] = ("model", "data")
) -> None:
    if not isinstance(data, GroupConditionalModel):
        raise TypeError(f"{names[1]} must be a GroupConditionalModel; got {type(data).__name__}")
    if (
        data.n_groups != model.n_groups
        or data.n_classes != model.n_classes
        or data.dim != model.dim
        or data.family != model.family
        or not np.array_equal(np.asarray(data.groups), np.asarray(model.groups))
        or not np.array_equal(np.asarray(data.classes), np.asarray(model.classes))
    ):
        raise ValueError(f"{names[0]} and {names[1]} must share groups, classes, dimension and family")


def _gaps(criterion: str, tpr: np.ndarray, fpr: np.ndarray, pr: np.ndarray) -> np.ndarray:
    spread = lambda r: r.max(axis=0) - r.min(axis=0)  # noqa: E731
    if criterion == "equal_opportunity":
        return spread(tpr)
    if criterion == "demographic_parity":
        return spread(pr)
    return np.maximum(spread(tpr), spread(fpr))


def _cost_grid(costs: np.ndarray | None, n_costs: int) -> np.ndarray:
    if costs is None:
        return np.linspace(0.005, 0.995, as_int(n_costs, "n_costs", low=2))
    c = np.atleast_1d(np.asarray(costs, dtype=np.float64))
    if c.ndim != 1 or c.size == 0 or np.any(~np.isfinite(c)) or np.any(c <= 0) or np.any(c >= 1):
        raise ValueError("costs must be a non-empty 1-D array of cost ratios strictly between 0 and 1")
    return c


def bayes_certificate(
    model: GroupConditionalModel,
    criterion: str = "equal_opportunity",
    *,
    costs: np.ndarray | None = None,
    n_costs: int = 199,
    data: GroupConditionalModel | None = None,
) -> Certificate:
    """Rates of the group-aware cost-sensitive Bayes classifiers of ``model`` and their worst gap.

    Args:
        model: a :class:`GroupConditionalModel` (binary or multi-class; normal or log-normal).
        criterion: ``"equal_opportunity"`` (TPR gap), ``"demographic_parity"`` (positive-rate gap) or
            ``"equalized_odds"`` (max of the TPR and FPR gaps).
        costs: cost ratios in ``(0, 1)``; default a uniform grid of ``n_costs`` points in [0.005, 0.995].
        data: evaluate the classifiers of ``model`` on the cells of another model over the same groups and
            classes (e.g. the Bayes classifiers of an ideal model deployed on the original distribution).

    Example:
        >>> import steerfair as sf
        >>> cert = sf.bayes_certificate(model, "equal_opportunity")  # doctest: +SKIP
        >>> cert.gap, cert.worst_cost  # doctest: +SKIP
    """
    if not isinstance(model, GroupConditionalModel):
        raise TypeError(f"expected a GroupConditionalModel; got {type(model).__name__}")
    if criterion not in CERTIFIED_CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; use one of {CERTIFIED_CRITERIA}")
    if data is not None:
        _check_compatible(model, data)
    grid = _cost_grid(costs, n_costs)
    cache = _LawCache(logit(grid))
    best: Certificate | None = None
    m = model.n_classes
    for i in range(m):
        for j in range(i + 1, m):
            comps = [(model.components[a][i], model.components[a][j]) for a in range(model.n_groups)]
            pri = model.class_priors[:, [i, j]]
            pri = pri / pri.sum(axis=1, keepdims=True)
            dcomps, dpri = None, None
            if data is not None:
                dcomps = [(data.components[a][i], data.components[a][j]) for a in range(data.n_groups)]
                dpri = data.class_priors[:, [i, j]] / data.class_priors[:, [i, j]].sum(axis=1, keepdims=True)
            need_fpr = criterion != "equal_opportunity"
            tpr, fpr, pr = _binary_rates(comps, pri, cache, need_fpr, dcomps, dpri)
            gaps = _gaps(criterion, tpr, fpr, pr)
            w = int(np.argmax(gaps))
            cert = Certificate(criterion, grid, tpr, fpr, pr, gaps, float(gaps[w]), float(grid[w]), (i, j))
            if best is None or cert.gap > best.gap:
                best = cert
    assert best is not None
    return best


def bayes_gap(model: GroupConditionalModel, criterion: str = "equal_opportunity", *, n_costs: int = 199) -> float:
    """Worst group gap of the Bayes-optimal classifiers over a dense grid of costs (~0 on an ideal model)."""
    return bayes_certificate(model, criterion, n_costs=n_costs).gap


def bayes_error(model: GroupConditionalModel, cost: float = 0.5, *, data: GroupConditionalModel | None = None) -> float:
    """Misclassification rate of the group-aware Bayes classifier of ``model`` at cost ratio ``cost``.

    Binary labels. With ``data`` the classifier of ``model`` is evaluated on ``data``'s distribution.
    """
    if not isinstance(model, GroupConditionalModel):
        raise TypeError(f"model must be a GroupConditionalModel; got {type(model).__name__}")
    if model.n_classes != 2:
        raise ValueError("bayes_error is implemented for binary labels")
    data = model if data is None else data
    _check_compatible(model, data)
    c = as_number(cost, "cost")
    if not 0.0 < c < 1.0:
        raise ValueError(
            f"cost must lie strictly between 0 and 1 (predict positive iff P(Y=1 | x, a) >= cost); got {c}"
        )
    grid = _cost_grid(np.array([c]), 1)
    comps = [(model.components[a][0], model.components[a][1]) for a in range(model.n_groups)]
    dcomps = [(data.components[a][0], data.components[a][1]) for a in range(data.n_groups)]
    tpr, fpr, _ = _binary_rates(comps, model.class_priors, _LawCache(logit(grid)), True, dcomps, data.class_priors)
    per_group = data.class_priors[:, 1] * (1 - tpr[:, 0]) + data.class_priors[:, 0] * fpr[:, 0]
    return float(data.group_priors @ per_group)


def transfer_bounds(
    ideal: GroupConditionalModel, original: GroupConditionalModel, *, n_costs: int = 99
) -> dict[str, float]:
    """Proposition 4.4, bounds and measured values side by side.

    For ``h~`` a Bayes-optimal classifier of ``ideal``: ``|err(h~, D) - err(h~, D~)| <= sqrt(2 KL)`` (Pinsker on the
    joint law, ``KL = KL(ideal || original)``: ``"error_bound"``). The equal-opportunity gap of ``h~`` on ``D`` is at
    most ``"eo_gap_bound"``: a group's TPR moves by at most the total variation between its positive cells,
    ``sqrt(KL_ay / 2)`` (Pinsker per cell), so the gap is at most the sum of the two largest of those (the largest
    over the classes; at most 1). The paper states ``sqrt(8 KL)`` (``"paper_eo_gap_bound"``); that bound does not
    hold when the ideal differs from the original in a rare cell (a cell of probability 0.04 with KL 0.0225 overall:
    bound 0.424, measured gap 0.546), because the joint KL weighs a cell by its probability and a TPR does not.
    The measured values are the worst over the cost grid: every cost for the gap, every fourth for the error terms
    (binary labels only). ``ideal`` should be ideal (its own gap 0); a warning says when it is not.
    """
    if not isinstance(ideal, GroupConditionalModel):
        raise TypeError(f"ideal must be a GroupConditionalModel; got {type(ideal).__name__}")
    _check_compatible(ideal, original, ("ideal", "original"))
    if not is_ideal(ideal):
        warnings.warn(
            "ideal is not ideal (is_ideal is False): the bounds assume its own gaps are 0",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    kl = ideal.kl(original)
    out = {
        "kl": kl,
        "error_bound": float(np.sqrt(2 * kl)),
        "eo_gap_bound": cell_eo_gap_bound(ideal, original),
        "paper_eo_gap_bound": float(np.sqrt(8 * kl)),
    }
    costs = np.linspace(0.01, 0.99, as_int(n_costs, "n_costs", low=2))
    out["eo_gap_on_original"] = bayes_certificate(ideal, "equal_opportunity", costs=costs, data=original).gap
    if ideal.n_classes == 2:
        diffs = [abs(bayes_error(ideal, c, data=original) - bayes_error(ideal, c)) for c in costs[::4]]
        out["error_shift"] = float(max(diffs))
    return out


def cell_eo_gap_bound(ideal: GroupConditionalModel, original: GroupConditionalModel) -> float:
    """An upper bound on the equal-opportunity gap on ``original`` of any classifier with equal TPRs on ``ideal``.

    A group's TPR for class ``y`` on the two laws differs by at most the total variation between its ``(a, y)``
    cells, at most ``sqrt(KL(ideal_ay || original_ay) / 2)`` (Pinsker); the gap between two groups is at most the sum
    of the two largest such terms. The largest over the classes, capped at 1.
    """
    _check_compatible(ideal, original, ("ideal", "original"))
    best = 0.0
    for i in range(ideal.n_classes):
        tv = sorted(
            (float(np.sqrt(max(ideal.components[a][i].kl(original.components[a][i]), 0.0) / 2.0))
             for a in range(ideal.n_groups)),
            reverse=True,
        )  # fmt: skip
        best = max(best, tv[0] + tv[1] if len(tv) > 1 else 0.0)
    return float(min(best, 1.0))
