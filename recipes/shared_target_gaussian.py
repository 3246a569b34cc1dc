"""Acceptance run of the shared target (issue 15) on Gaussian groups of different separability.

    OMP_NUM_THREADS=1 python recipes/shared_target_gaussian.py --out results/shared_target

Two groups with Mahalanobis separations 2.8 and 1.2 (different frames and base rates), ``d = 2..5``. Train and test
rows are steered with ``FairSteerer(target="shared")`` and, beside it, ``FairSteerer(target="shared_positive")`` and
``SharedScore`` (``--targets`` picks; labels unknown at test time: the maps are per group and label-free), with
fairlearn's ThresholdOptimizer (equal TPR, and equalized odds; the same model on the raw rows, the group given at
prediction) as the alternatives; logistic regression,
histogram gradient boosting, kNN and an MLP (scikit-learn) are trained on the steered training table and evaluated
on ``--n-test`` Monte Carlo test rows. Writes ``gaussian.json`` (every number, with the Monte Carlo standard error
of a rate difference) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier

from steerfair import FairSteerer
from steerfair.datasets import separability_groups
from steerfair.evaluation.arguments import distinct, nonnegative_int, parse_checked, positive_int
from steerfair.evaluation.output import check_output
from steerfair.files import atomic_write
from steerfair.metrics import group_rates
from steerfair.shared_score import SharedScore

#: The label-free targets compared: one common law per class (equalized odds), for the positive class only, and
#: ``SharedScore`` (one score column on the greatest common garbling of the groups' experiments).
TARGETS = ("shared", "shared_positive", "shared_score")
#: also measurable (``--targets``): the two label-free maps behind the Gaussian-copula front end
#: (``marginals="copula"``, which real tables with atoms need), whose class laws in normal-score space are not Gaussian
COPULA_TARGETS = ("shared (copula)", "shared_positive (copula)")


def models(seed: int) -> dict[str, Any]:
    """The downstream models (scikit-learn defaults unless stated)."""
    return {
        "LR": LogisticRegression(),
        "GBM": HistGradientBoostingClassifier(random_state=seed),
        "kNN": KNeighborsClassifier(n_neighbors=50),
        "MLP": MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=200, early_stopping=True, random_state=seed),
    }


def threshold_optimizer(model: Any, X_tr: np.ndarray, y_tr: np.ndarray, g_tr: np.ndarray, X_te: np.ndarray,
                        g_te: np.ndarray, seed: int, constraints: str = "true_positive_rate_parity",
                        ) -> np.ndarray:  # fmt: skip
    """fairlearn's ThresholdOptimizer (``constraints``: equal TPR, or ``"equalized_odds"``) around ``model`` on the raw
    rows; the group is given at prediction."""
    from fairlearn.postprocessing import ThresholdOptimizer

    to = ThresholdOptimizer(estimator=model, constraints=constraints, predict_method="predict_proba")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        to.fit(X_tr, y_tr, sensitive_features=g_tr)
    return np.asarray(to.predict(X_te, sensitive_features=g_te, random_state=seed))


def evaluate(model: Any, A: np.ndarray, y_tr: np.ndarray, B: np.ndarray, y_te: np.ndarray, g_te: np.ndarray,
             pred: np.ndarray | None = None) -> dict:  # fmt: skip
    if pred is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = model.fit(A, y_tr).predict(B)
    r = group_rates(y_te, pred, g_te)
    return {
        "accuracy": float(np.mean(pred == y_te)),
        "tpr": r.tpr.tolist(),
        "fpr": r.fpr.tolist(),
        "eo_gap": float(np.ptp(r.tpr)),
        "fpr_gap": float(np.ptp(r.fpr)),
    }


def turned_groups(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two Gaussian groups in two dimensions whose classes separate along different coordinates: group 0 with
    identity covariance and the positive class shifted by (2.5, 0), group 1 with correlation 0.8 and the shift
    (0, 1.5); base rates 0.45 and 0.30 (one covariance per group, so each coordinate's law in a group is a two-class
    mixture: the Gaussian copula's normal scores then make the class laws non-Gaussian)."""
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < np.where(g == 0, 0.45, 0.30)).astype(int)
    covs, shifts = [np.eye(2), np.array([[1.0, 0.8], [0.8, 1.0]])], [np.array([2.5, 0.0]), np.array([0.0, 1.5])]
    X = np.empty((n, 2))
    for a in (0, 1):
        rows = g == a
        X[rows] = rng.multivariate_normal(np.zeros(2), covs[a], int(rows.sum())) + y[rows, None] * shifts[a]
    return X, y, g


#: the data ``--data`` chooses: the separability groups of the acceptance (any ``--dims``), or two turned groups (d = 2)
DATA = ("separability", "turned")


def run(
    d: int, seed: int, n_train: int, n_test: int, targets: tuple[str, ...] = TARGETS, data: str = "separability"
) -> dict:
    rng = np.random.default_rng(seed)
    if data == "turned":
        (X_tr, y_tr, g_tr), (X_te, y_te, g_te) = turned_groups(n_train, rng), turned_groups(n_test, rng)
    else:
        X_tr, y_tr, g_tr = separability_groups(n_train, d, rng)
        X_te, y_te, g_te = separability_groups(n_test, d, rng)
    steered = {}
    for target in targets:
        steer: Any = SharedScore(random_state=seed)
        if target in COPULA_TARGETS:
            steer = FairSteerer(target=target.split()[0], marginals="copula", random_state=seed)  # type: ignore[arg-type]
        elif target != "shared_score":
            steer = FairSteerer(target=target, random_state=seed)  # type: ignore[arg-type]
        steered[target] = steer.fit_transform(X_tr, y_tr, groups=g_tr), steer.transform(X_te, groups=g_te)
    se = {}
    for name, cls in (("tpr", 1), ("fpr", 0)):
        n = [int(np.sum((y_te == cls) & (g_te == a))) for a in (0, 1)]
        se[name] = float(np.sqrt(0.25 * (1 / n[0] + 1 / n[1])))  # worst case p(1-p) = 1/4
    out: dict[str, Any] = {"d": d, "seed": seed, "mc_se_max": se, "raw": {}, **{t: {} for t in targets},
                           "threshold_optimizer": {}, "threshold_optimizer_eodds": {}}  # fmt: skip
    for name, model in models(seed).items():
        out["raw"][name] = evaluate(sklearn.clone(model), X_tr, y_tr, X_te, y_te, g_te)
        for key, constraints in (("threshold_optimizer", "true_positive_rate_parity"),
                                 ("threshold_optimizer_eodds", "equalized_odds")):  # fmt: skip
            to_pred = threshold_optimizer(sklearn.clone(model), X_tr, y_tr, g_tr, X_te, g_te, seed, constraints)
            out[key][name] = evaluate(None, X_tr, y_tr, X_te, y_te, g_te, to_pred)
        for target, (A, B) in steered.items():
            t0 = time.perf_counter()
            out[target][name] = evaluate(sklearn.clone(model), A, y_tr, B, y_te, g_te)
            out[target][name]["seconds"] = time.perf_counter() - t0
        keys = ("raw", *targets, "threshold_optimizer", "threshold_optimizer_eodds")
        cells = [f"{key}: acc {out[key][name]['accuracy']:.4f} EO {out[key][name]['eo_gap']:.4f} "
                 f"FPR {out[key][name]['fpr_gap']:.4f}" for key in keys]  # fmt: skip
        print(f"d={d} seed={seed} {name:4s} " + " | ".join(cells), flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/shared_target")
    parser.add_argument("--dims", type=positive_int, nargs="+", default=[2, 3, 4, 5])
    parser.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0])
    parser.add_argument("--n-train", type=positive_int, default=100_000)
    parser.add_argument("--n-test", type=positive_int, default=200_000)
    parser.add_argument("--targets", nargs="+", choices=[*TARGETS, *COPULA_TARGETS], default=list(TARGETS))
    parser.add_argument("--data", choices=DATA, default="separability", help="turned: two groups in d = 2")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")

    def check(args: argparse.Namespace) -> None:
        for option in ("dims", "seeds", "targets"):
            distinct(getattr(args, option), f"--{option}")
        if args.data == "turned" and args.dims != [2]:
            raise ValueError("--data turned has two dimensions: pass --dims 2")
        check_output(Path(args.out), ["gaussian.json"], overwrite=args.overwrite)

    args = parse_checked(parser, argv, check)
    t0 = time.perf_counter()
    targets = tuple(args.targets)
    runs = [run(d, s, args.n_train, args.n_test, targets, args.data) for d in args.dims for s in args.seeds]
    worst = {  # the largest gap of every method over every run and model
        t: {k: max(r[t][m][k] for r in runs for m in r[t]) for k in ("eo_gap", "fpr_gap")}
        for t in (*targets, "threshold_optimizer", "threshold_optimizer_eodds")
    }
    report = {
        "command": " ".join(["python recipes/shared_target_gaussian.py", *(sys.argv[1:] if argv is None else argv)]),
        "settings": vars(args),
        "versions": {"python": platform.python_version(), "sklearn": sklearn.__version__, "numpy": np.__version__},
        "seconds": time.perf_counter() - t0,
        "worst": worst,
        "runs": runs,
    }
    path = Path(args.out) / "gaussian.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write({str(path): json.dumps(report, indent=1).encode()})
    for t, w in worst.items():
        print(f"largest gaps of {t}: EO {w['eo_gap']:.4f}, FPR {w['fpr_gap']:.4f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
