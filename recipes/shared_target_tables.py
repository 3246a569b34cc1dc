"""Real tables: raw vs ``target="ideal"`` vs ``target="shared"`` (Gaussian / copula marginals, discrete columns kept,
through the copula or garbled by categorical kernels; full strength, and for the copula a strength picked on a
validation split) vs fairlearn's ThresholdOptimizer, side by side in one run.

    OMP_NUM_THREADS=1 python recipes/shared_target_tables.py --out results/shared_target --seeds 0 1 2

Every method is trained on the same 70 % split and evaluated on the same 30 % (groups known at test time, labels not).
The strength picker sees only a 70/30 split of the training part, with the budget set to half the raw model's
validation EO gap. Writes ``tables.json`` (every row) and ``tables.md`` (means over seeds) under ``--out``.

The tabular benchmark (``recipes/tabular_benchmark.py``) runs the same protocol for the ideal target, the shared
target with copula and Gaussian marginals (``FairSteerer``'s default ``discrete``), the picked strength and
ThresholdOptimizer, with more tasks, models and baselines, a verdict and a Pareto plot; the variants over
``discrete=`` and the ``tables.{json,md}`` format cited by docs/shared_target.md are this script's.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from steerfair import FairSteerer
from steerfair.datasets import load_adult, load_compas, load_law
from steerfair.evaluation.output import parse_task_seeds, run_record, to_json
from steerfair.files import atomic_write
from steerfair.metrics import equal_opportunity_gap, equalized_odds_gap
from steerfair.shared_target import pick_strength

TASKS: dict[str, Callable[[], Any]] = {
    "adult_sex": lambda: load_adult(sensitive="sex"),
    "compas_race": lambda: load_compas(sensitive="race"),
    "law_race": lambda: load_law(sensitive="race"),
}
MODELS: dict[str, Callable[[int], Any]] = {
    "LR": lambda s: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "GBM": lambda s: HistGradientBoostingClassifier(random_state=s),
}
#: shared-target variants: (marginals, discrete); one-hot / two-valued columns unchanged, through the copula, or
#: garbled by categorical kernels (steerfair/categorical_garbling.py). Copula variants also get a picked strength.
VARIANTS: dict[str, tuple[str, str]] = {
    "gaussian": ("gaussian", "passthrough"),
    "gaussian_kernel": ("gaussian", "kernel"),
    "copula": ("copula", "copula"),
    "copula_kernel": ("copula", "kernel"),
}
FILES = ("tables.json", "tables.md")


def score(y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Accuracy, equal-opportunity gap and equalized-odds gap."""
    return {
        "acc": float(np.mean(pred == y)),
        "eo": float(equal_opportunity_gap(y, pred, groups=groups)),
        "eodds": float(equalized_odds_gap(y, pred, groups=groups)),
    }


def run_one(ds: Any, seed: int, model: Any) -> dict[str, Any]:
    """Every method on one split of one task with one downstream model."""
    tr, te = ds.split(0.3, seed)
    fit_part, val = tr.split(0.3, seed + 100)
    res: dict[str, Any] = {"raw": score(te.y, clone(model).fit(tr.X, tr.y).predict(te.X), te.groups)}
    st = FairSteerer(marginals="gaussian")  # the ideal target on the values (the default before marginals="auto")
    A = st.fit_transform(tr.X, tr.y, groups=tr.groups)
    res["ideal"] = score(te.y, clone(model).fit(A, tr.y).predict(st.transform(te.X, groups=te.groups)), te.groups)
    raw_val = clone(model).fit(fit_part.X, fit_part.y).predict(val.X)
    budget = 0.5 * equal_opportunity_gap(val.y, raw_val, groups=val.groups)
    for name, (marginals, discrete) in VARIANTS.items():
        base = FairSteerer(target="shared", marginals=marginals, discrete=discrete, random_state=seed)
        st = clone(base).fit(tr.X, tr.y, groups=tr.groups)
        A, B = st.transform(tr.X, groups=tr.groups), st.transform(te.X, groups=te.groups)
        res[f"shared_{name}"] = score(te.y, clone(model).fit(A, tr.y).predict(B), te.groups)
        if marginals != "copula":
            continue
        choice = pick_strength(
            base, model, fit_part.X, fit_part.y, fit_part.groups, val.X, val.y, val.groups,
            budget=budget, strengths=[0.0, 0.25, 0.5, 0.75, 1.0], gap="equal_opportunity",
        )  # fmt: skip
        st.set_params(strength=choice.strength)
        A, B = st.transform(tr.X, groups=tr.groups), st.transform(te.X, groups=te.groups)
        picked = score(te.y, clone(model).fit(A, tr.y).predict(B), te.groups)
        res[f"shared_{name}_picked"] = {**picked, "strength": choice.strength}
    from fairlearn.postprocessing import ThresholdOptimizer

    to = ThresholdOptimizer(
        estimator=clone(model), constraints="true_positive_rate_parity", predict_method="predict_proba"
    )
    to.fit(tr.X, tr.y, sensitive_features=tr.groups)
    pred = to.predict(te.X, sensitive_features=te.groups, random_state=seed)
    res["threshold_optimizer"] = score(te.y, pred, te.groups)
    return {"budget": budget, **res}


def markdown(rows: list[dict[str, Any]]) -> str:
    """Means over seeds: accuracy / EO gap per task, model and method."""
    methods = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    lines = ["| task | model | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for task in dict.fromkeys(r["task"] for r in rows):
        for name in dict.fromkeys(r["model"] for r in rows):
            sel = [r for r in rows if r["task"] == task and r["model"] == name]
            cells = [f"{np.mean([r[m]['acc'] for r in sel]):.3f} / {np.mean([r[m]['eo'] for r in sel]):.3f}"
                     for m in methods]  # fmt: skip
            lines.append(f"| {task} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\naccuracy / EO gap, means over seeds {sorted({r['seed'] for r in rows})}\n"


def main(argv: list[str] | None = None) -> None:
    description = (__doc__ or "").split("\n\n")[0]
    args = parse_task_seeds(argv, description, sorted(TASKS), "results/shared_target", FILES)
    out = Path(args.out)
    warnings.filterwarnings("ignore")
    rows: list[dict[str, Any]] = []
    for task in args.tasks:
        ds = TASKS[task]()
        for seed in args.seeds:
            for name, make in MODELS.items():
                t0 = time.perf_counter()
                row = {"task": task, "seed": seed, "model": name, **run_one(ds, seed, make(seed))}
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
                print(task, seed, name, " | ".join(f"{k} {v['acc']:.3f}/{v['eo']:.3f}" for k, v in row.items()
                                                    if isinstance(v, dict)), flush=True)  # fmt: skip
    table = markdown(rows)
    record = {"rows": rows, "run": run_record(vars(args))}
    atomic_write({str(out / FILES[1]): table.encode(), str(out / FILES[0]): to_json(record).encode()})
    print(table)


if __name__ == "__main__":
    main()
