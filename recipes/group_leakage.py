"""Real tables: how well the group can still be told apart within each class after steering, beside the EO gap of
the models trained on the steered rows.

    OMP_NUM_THREADS=1 python recipes/group_leakage.py --out results/leakage --seeds 0 1 2

For every task and seed (the tabular benchmark's 70/30 split and its methods ``raw``, ``steerfair (shared
positive)`` and ``steerfair (shared)``), :func:`steerfair.metrics.group_leakage` is measured on the steered *test*
rows with two discriminators (histogram gradient boosting, logistic regression on standardised features), and LR
and gradient boosting are trained on the steered training rows and scored on the test rows (accuracy, EO gap),
beside fairlearn's ThresholdOptimizer (equal TPR, the same models on the raw rows, the group read at prediction).
The TPR gap of any model is its own advantage as a group discriminator among the positives, so where a
discriminator of a kind still finds the group among steered positives, models of that kind can have a gap.
Writes ``leakage.json`` (every number) and ``leakage.md`` (means over seeds) under ``--out``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from steerfair.datasets import load_dataset
from steerfair.evaluation.output import run_task_seeds
from steerfair.evaluation.tabular_methods import Fold, fit_model, predict, prepare
from steerfair.metrics import equal_opportunity_gap, group_leakage

TASKS = ("adult/sex", "adult/race", "compas/race", "german/sex", "law/race")
METHODS = ("raw", "steerfair (shared positive)", "steerfair (shared)")
DISCRIMINATORS = {
    "gbm": lambda seed: HistGradientBoostingClassifier(random_state=seed),
    "lr": lambda seed: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
}


def run_seed(task: str, seed: int) -> dict[str, Any]:
    """Leakage per class and discriminator, and the downstream models' accuracy / EO gap, for every method."""
    dataset, sensitive = task.split("/")
    tr, te = load_dataset(dataset, sensitive=sensitive).split(0.3, seed=seed)
    fold, out = Fold(tr, te, seed), {}
    for method in METHODS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Xtr, Xte, _ = prepare(method, fold)
            row: dict[str, Any] = {"leakage": {}, "models": {}}
            for name, make in DISCRIMINATORS.items():
                leak = group_leakage(Xte, te.y, te.groups, estimator=make(seed), random_state=seed)
                row["leakage"][name] = {str(k): vars(v) | {"label": str(k)} for k, v in leak.items()}
            for kind in ("lr", "gbm"):
                pred = fit_model(kind, seed, Xtr, tr.y).predict(Xte)
                gap = float(equal_opportunity_gap(te.y, pred, groups=te.groups))
                row["models"][kind] = {"accuracy": float(np.mean(pred == te.y)), "eo_gap": gap}
        out[method] = row
        pos, gaps = {k: row["leakage"][k]["1"] for k in DISCRIMINATORS}, row["models"]
        print(f"{task} seed {seed} {method}: positives' advantage gbm {pos['gbm']['advantage']:.3f} "
              f"(floor {pos['gbm']['floor']:.3f}) lr {pos['lr']['advantage']:.3f}; EO gap "
              f"lr {gaps['lr']['eo_gap']:.3f} gbm {gaps['gbm']['eo_gap']:.3f}", flush=True)  # fmt: skip
    to = {}  # the alternative: ThresholdOptimizer (equal TPR) on the raw rows; it steers no features (no leakage)
    for kind in ("lr", "gbm"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred, _ = predict("threshold_optimizer", kind, fold)
        to[kind] = {"accuracy": float(np.mean(pred == te.y)),
                    "eo_gap": float(equal_opportunity_gap(te.y, pred, groups=te.groups))}  # fmt: skip
    out["threshold_optimizer"] = {"models": to}
    return out


def markdown(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Means over seeds: per task and method, the positives' and negatives' advantage (floor) per discriminator and
    the downstream EO gaps."""
    lines = [
        "| task | method | positives: GBM advantage (floor) | LR advantage | negatives: GBM advantage | "
        "EO gap LR | EO gap GBM | accuracy LR / GBM |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, seeds in runs.items():
        for method in METHODS:
            rows = [s[method] for s in seeds]

            def mean(get: Any, rows: list[dict[str, Any]] = rows) -> float:
                return float(np.mean([get(r) for r in rows]))

            lines.append(
                f"| {task} | {method} | {mean(lambda r: r['leakage']['gbm']['1']['advantage']):.3f} "
                f"({mean(lambda r: r['leakage']['gbm']['1']['floor']):.3f}) | "
                f"{mean(lambda r: r['leakage']['lr']['1']['advantage']):.3f} | "
                f"{mean(lambda r: r['leakage']['gbm']['0']['advantage']):.3f} | "
                f"{mean(lambda r: r['models']['lr']['eo_gap']):.3f} | "
                f"{mean(lambda r: r['models']['gbm']['eo_gap']):.3f} | "
                f"{mean(lambda r: r['models']['lr']['accuracy']):.3f} / "
                f"{mean(lambda r: r['models']['gbm']['accuracy']):.3f} |"
            )
        to = [s["threshold_optimizer"]["models"] for s in seeds]
        cells = [f"{np.mean([t[k]['eo_gap'] for t in to]):.3f}" for k in ("lr", "gbm")]
        acc = " / ".join(f"{np.mean([t[k]['accuracy'] for t in to]):.3f}" for k in ("lr", "gbm"))
        lines.append(f"| {task} | threshold_optimizer (raw rows) | - | - | - | {cells[0]} | {cells[1]} | {acc} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    run_task_seeds(
        argv,
        description=__doc__.split("\n\n")[0],
        script="recipes/group_leakage.py",
        tasks=TASKS,
        default_out="results/leakage",
        stem="leakage",
        run_seed=run_seed,
        markdown=markdown,
    )


if __name__ == "__main__":
    main()
