"""Posterior group probabilities of individuals whose group was reported through randomized response.

Bayes' rule with the channel: ``P(A = a | report r, x) ∝ P(A = a | x) C[a, r]``. The prior ``P(A | x)``
can be uniform (the default), a population vector (e.g. the reports' maximum-likelihood group shares,
:func:`report_shares`), per-row probabilities from a fitted
:class:`~steerfair.GroupConditionalModel` (:func:`model_group_proba`), or a group probe trained on the
privatised reports (:class:`PrivateGroupProbe`, forward-corrected so that it estimates ``P(A | x)``, not
``P(report | x)``). The posteriors are what the steering maps are mixed with at application time.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp

from ..model import GroupConditionalModel
from ..validation import as_float_array, as_int, as_labels, as_matrix
from ..warning_location import user_stacklevel
from .mechanisms import check_epsilon, encode_categories, invertible_rr_probabilities, rr_channel

__all__ = ["PrivateGroupProbe", "forward_corrected_loss", "model_group_proba", "posterior_group_proba", "report_shares"]


def posterior_group_proba(
    reports: Any,
    epsilon: float,
    prior: Any = None,
    *,
    categories: Sequence[Any] | np.ndarray | None = None,
    n_categories: int | None = None,
) -> np.ndarray:
    """``P(A = a | report)`` per row, shape ``(n, k)``, for reports privatised with ``epsilon``.

    Args:
        reports: the privatised group of each row.
        epsilon: their privacy level (``inf``: the posterior is the one-hot report).
        prior: ``P(A)``: ``None`` (uniform: each row's posterior is its report's likelihood alone, whatever else
            is in the batch), ``"reports"`` (the maximum-likelihood group shares of these reports,
            :func:`report_shares`: every row's posterior then depends on the whole batch, and a small batch can
            put a share at 0), a ``(k,)`` vector of probabilities or weights proportional to them (e.g.
            :func:`report_shares` of a whole population's reports), or ``(n, k)`` per-row probabilities
            ``P(A | x)`` (e.g. from :func:`model_group_proba` or :meth:`PrivateGroupProbe.predict_proba`).
        categories, n_categories: the domain, in column order.
    """
    eps = check_epsilon(epsilon)
    codes, cats = encode_categories(reports, categories, n_categories, name="reports")
    k, n = len(cats), codes.shape[0]
    P0: np.ndarray
    if prior is None:
        P0 = np.full((n, k), 1.0 / k)
    elif isinstance(prior, str):
        if prior != "reports":
            raise ValueError(f"prior must be None, 'reports', a (k,) vector or (n, k) probabilities; got {prior!r}")
        P0 = np.broadcast_to(report_shares(codes, eps, n_categories=k), (n, k))
    else:
        P0 = np.asarray(as_float_array(prior, "prior", finite=False))
        if P0.shape == (k,):
            P0 = np.broadcast_to(P0, (n, k))
        if P0.shape != (n, k) or not np.all(np.isfinite(P0)) or np.any(P0 < 0):
            raise ValueError(f"prior must be finite, non-negative, of shape ({k},) or ({n}, {k})")
        if np.any(P0.sum(axis=1) <= 0):
            raise ValueError(
                "every prior row must have positive mass (rows are probabilities, or weights proportional to them)"
            )
    C = rr_channel(eps, k)
    post = P0 * C[:, codes].T
    total = post.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("the prior gives zero probability to a reported value at epsilon=inf")
    return post / total


def report_shares(
    reports: Any,
    epsilon: float,
    *,
    categories: Sequence[Any] | np.ndarray | None = None,
    n_categories: int | None = None,
    tol: float = 1e-12,
    max_iter: int = 10_000,
) -> np.ndarray:
    """The maximum-likelihood group shares ``pi`` of randomised reports: ``argmax sum_j log (pi^T C)[r_j]`` over
    the simplex.

    The report frequencies ``f`` have expectation ``C^T pi``, so where the de-biased shares ``(C^-T) f`` are all
    positive they are the maximum (the multinomial likelihood is maximal at ``C^T pi = f``); a share below 0, which
    a small batch or a rare group produces, is where the constrained maximum differs. It is found by EM
    (``pi <- mean_j P(A | r_j; pi)``, monotone in the likelihood), started from uniform shares. An empty batch gives
    uniform shares; ``epsilon = inf`` the report frequencies (the reports are the groups).

    Args:
        reports: the privatised group of each row (labels, or codes with ``n_categories``).
        epsilon: the privacy level of the reports.
        categories, n_categories: the domain, in column order (see :func:`encode_categories`).
        tol: stop when no share moves by more than this.
        max_iter: EM iterations at most (the likelihood is concave in ``pi``; EM is slow only on the boundary).

    Returns:
        ``(k,)`` shares in the domain's order.
    """
    epsilon = check_epsilon(epsilon)
    codes, cats = encode_categories(reports, categories, n_categories, name="reports")
    k = len(cats)
    counts = np.bincount(codes, minlength=k).astype(np.float64)
    n = counts.sum()
    if n == 0:
        return np.full(k, 1.0 / k)
    f = counts / n
    if math.isinf(epsilon):
        return f
    p, q = invertible_rr_probabilities(epsilon, k)
    direct = (f - q) / (p - q)  # C^-T f, closed form (C is symmetric)
    if np.all(direct > 0):
        return direct / direct.sum()
    C = rr_channel(epsilon, k)
    pi = np.full(k, 1.0 / k)
    for _ in range(max_iter):
        new = pi * (C @ (f / (C.T @ pi)))  # mean posterior over the reports, grouped by report value
        new /= new.sum()
        if np.max(np.abs(new - pi)) <= tol:
            return new
        pi = new
    return pi


def model_group_proba(model: GroupConditionalModel, X: Any, y: Any = None) -> np.ndarray:
    """``P(A = a | x)`` (or ``P(A = a | x, y)`` when ``y`` is given) under a fitted model, shape ``(n, k)``.

    ``p(x | a) = sum_i q_ia N(x; mu_ia, S_ia)`` in the model's working space; the log-normal Jacobian is
    common to all groups and cancels.
    """
    Z = model.features(X)
    n = Z.shape[0]
    if y is None:
        lj = np.empty((n, model.n_groups))
        for a in range(model.n_groups):
            per = np.column_stack(
                [np.log(model.class_priors[a, i]) + model.components[a][i].logpdf(Z) for i in range(model.n_classes)]
            )
            lj[:, a] = np.log(model.group_priors[a]) + logsumexp(per, axis=1)
    else:
        yi = model.class_index(as_labels(np.asarray(y), "y", n))
        lj = np.empty((n, model.n_groups))
        for a in range(model.n_groups):
            for i in np.unique(yi):
                sel = yi == i
                lj[sel, a] = (
                    np.log(model.group_priors[a])
                    + np.log(model.class_priors[a, i])
                    + model.components[a][i].logpdf(Z[sel])
                )
    return np.exp(lj - logsumexp(lj, axis=1, keepdims=True))


def forward_corrected_loss(
    theta: np.ndarray, Xs: np.ndarray, Ccol: np.ndarray, w: np.ndarray, lam: float
) -> tuple[float, np.ndarray]:
    """Loss and gradient of the forward-corrected softmax regression.

    ``theta`` packs ``W`` ``(d, k)`` (row-major) and ``b`` ``(k,)``; ``Ccol[j, a] = C[a, r_j]``; ``w`` are
    normalised row weights. Loss: ``-sum_j w_j log sum_a softmax(x_j W + b)_a C[a, r_j] + lam ||W||^2 / 2``.
    """
    d, k = Xs.shape[1], Ccol.shape[1]
    W = theta[: d * k].reshape(d, k)
    b = theta[d * k :]
    logits = Xs @ W + b
    logits -= logits.max(axis=1, keepdims=True)
    P = np.exp(logits)
    P /= P.sum(axis=1, keepdims=True)
    Q = np.maximum(np.sum(P * Ccol, axis=1), 1e-300)  # P(report r_j | x_j)
    loss = -float(w @ np.log(Q)) + 0.5 * lam * float(np.sum(W * W))
    g = -(w / Q)[:, None] * Ccol  # d loss / d P
    dZ = P * (g - np.sum(P * g, axis=1, keepdims=True))  # through the softmax
    grad = np.concatenate([(Xs.T @ dZ + lam * W).ravel(), dZ.sum(axis=0)])
    return loss, grad


class PrivateGroupProbe:
    """Multinomial logistic model of ``P(A | x)`` trained on randomised group reports.

    Forward loss correction (Natarajan et al. 2013; Patrini et al. 2017): the likelihood of a report is
    ``P(r | x) = sum_a softmax(x W + b)_a C[a, r]`` with the known channel ``C``, so the softmax estimates
    the true-group probabilities. Features are standardised; the penalty is ``||W||^2 / (2 C_reg n)``
    (scikit-learn's ``C`` convention). Fitted with L-BFGS on the exact gradient.

    Args:
        epsilon: privacy level of the reports (``inf``: plain multinomial logistic regression).
        categories: the group domain in column order (default: sorted reported values).
        C: inverse regularisation strength.
        max_iter: L-BFGS iterations.
    """

    def __init__(
        self,
        epsilon: float,
        *,
        categories: Sequence[Any] | np.ndarray | None = None,
        C: float = 1.0,
        max_iter: int = 500,
    ) -> None:
        self.epsilon = check_epsilon(epsilon)
        self.categories = categories
        if isinstance(C, (bool, np.bool_)) or not (
            isinstance(C, (int, float, np.integer, np.floating)) and math.isfinite(C) and C > 0
        ):
            raise ValueError(f"C must be a positive number; got {C!r}")
        self.C = float(C)
        self.max_iter = as_int(max_iter, "max_iter", low=1)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn's convention, so the probe can be cloned)."""
        return {"epsilon": self.epsilon, "categories": self.categories, "C": self.C, "max_iter": self.max_iter}

    def set_params(self, **params: Any) -> PrivateGroupProbe:
        """Set constructor arguments (validated as the constructor does); returns ``self``."""
        unknown = set(params) - set(self.get_params())
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {sorted(unknown)}; PrivateGroupProbe takes {sorted(self.get_params())}"
            )
        self.__init__(**{**self.get_params(), **params})  # type: ignore[misc]
        return self

    def fit(self, X: Any, reports: Any, sample_weight: Any = None) -> PrivateGroupProbe:
        """Fit on features ``X`` ``(n, d)`` and privatised group reports; returns ``self``."""
        X = as_matrix(X, "X", min_rows=2)
        codes, cats = encode_categories(reports, self.categories, name="reports")
        n, d = X.shape
        if codes.shape[0] != n:
            raise ValueError(f"reports has {codes.shape[0]} entries but X has {n} rows")
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (n,) or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("sample_weight must be finite, non-negative, one per row, with positive total")
        w = w / w.sum()
        k = len(cats)
        self.classes_ = cats
        self.mean_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        Xs = (X - self.mean_) / self.scale_
        C = rr_channel(self.epsilon, k)
        Ccol = C[:, codes].T  # (n, k): C[a, r_j]
        lam = 1.0 / (self.C * n)
        from scipy.optimize import minimize  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

        res = minimize(
            forward_corrected_loss,
            np.zeros(d * k + k),
            args=(Xs, Ccol, w, lam),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter},
        )
        self.coef_ = res.x[: d * k].reshape(d, k)
        self.intercept_ = res.x[d * k :]
        self.n_iter_ = int(res.nit)
        if not res.success:
            warnings.warn(
                f"PrivateGroupProbe: L-BFGS stopped after {self.n_iter_} iterations without converging "
                f"({res.message}); raise max_iter (now {self.max_iter})",
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """``P(A = a | x)`` per row, columns in ``classes_`` order."""
        if not hasattr(self, "coef_"):
            raise ValueError("PrivateGroupProbe is not fitted; call fit first")
        X = as_matrix(X, "X", dim=self.coef_.shape[0])
        logits = ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
