"""The paper's ideality conditions (Definition 3.1, Propositions 3.2 / 3.3) as checks."""

from __future__ import annotations

import numpy as np

from ..linalg import psd_sqrt_and_rsqrt
from ..model import GroupConditionalModel

__all__ = ["ideality_violations", "is_ideal"]


def _rel(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(x - ref) / max(1.0, float(np.linalg.norm(ref))))


def ideality_violations(model: GroupConditionalModel) -> dict[str, float]:
    """Worst relative violation of each sufficient condition of Proposition 3.2.

    For every ordered pair of classes ``(i, j)`` and every group ``a`` (compared with group 0):

    * ``"standardized_mean_difference"``: ``S_ia^{-1/2} (mu_ia - mu_ja)`` must not depend on ``a``;
    * ``"covariance_ratio"``: ``S_ia^{1/2} S_ja^{-1} S_ia^{1/2}`` must not depend on ``a``;
    * ``"class_prior_ratio"``: ``q_ia / q_ja`` must not depend on ``a``.

    Square roots are the symmetric ones (computed with ``eigh``). Violations are
    ``||X_a - X_0|| / max(1, ||X_0||)`` (Frobenius / Euclidean norms; log-ratios for priors).
    Log-normal models are checked on the underlying normals (the log map preserves the conditions).
    """
    k, m = model.n_groups, model.n_classes
    roots = [[psd_sqrt_and_rsqrt(model.components[a][i].cov) for i in range(m)] for a in range(k)]
    smd = cov = prior = 0.0
    logq = np.log(model.class_priors)
    for i in range(m):
        for j in range(m):
            if i == j:
                continue
            ref_d = ref_r = None
            for a in range(k):
                ci, cj = model.components[a][i], model.components[a][j]
                sqrt_i, rsqrt_i = roots[a][i]
                _, rsqrt_j = roots[a][j]
                D = rsqrt_i @ (ci.mean - cj.mean)
                R = sqrt_i @ (rsqrt_j @ rsqrt_j) @ sqrt_i
                if a == 0:
                    ref_d, ref_r = D, R
                    continue
                smd = max(smd, _rel(D, ref_d))
                cov = max(cov, _rel(R, ref_r))
            ratios = logq[:, i] - logq[:, j]
            prior = max(prior, float(np.max(np.abs(ratios - ratios[0]))))
    return {"standardized_mean_difference": smd, "covariance_ratio": cov, "class_prior_ratio": prior}


def is_ideal(model: GroupConditionalModel, tol: float = 1e-8) -> bool:
    """True when every condition of Proposition 3.2 holds to relative tolerance ``tol``.

    The conditions are sufficient for exact fairness of every cost-sensitive Bayes-optimal
    classifier (demographic parity, equal opportunity and equalized odds at once); for univariate
    Gaussians with binary labels and groups they are also necessary (Proposition 3.3).
    """
    if not isinstance(model, GroupConditionalModel):
        raise TypeError(f"is_ideal expects a GroupConditionalModel; got {type(model).__name__}")
    if tol < 0:
        raise ValueError(f"tol must be non-negative; got {tol}")
    return all(v <= tol for v in ideality_violations(model).values())
