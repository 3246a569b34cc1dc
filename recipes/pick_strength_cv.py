"""The shared target's strength picked on one validation split against 5-fold cross-validation, side by side.

    OMP_NUM_THREADS=1 python recipes/pick_strength_cv.py --out results/pick_strength --seeds 0 1 2 3 4

For every task, model and seed (the tabular benchmark's 70/30 split), ``pick_strength`` chooses the strength of
``FairSteerer(target="shared", marginals="copula")`` for a budget of half the raw model's EO gap, measured the same
way as the candidates: on a 70/30 split of the training rows (the benchmark's ``steerfair (shared, picked)``), or
on the pooled out-of-fold predictions of 5 folds of all training rows (``cv=5``). The steerer at the chosen
strength is then refitted on all training rows and the model scored on the test rows. The question is how often
the test EO gap is within half the raw model's test gap, and at what accuracy. Writes ``pick_strength.json`` and
``pick_strength.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict

from steerfair import FairSteerer
from steerfair.datasets import load_dataset
from steerfair.evaluation.arguments import distinct, nonnegative_int, parse_checked
from steerfair.evaluation.output import check_output, run_record, to_json
from steerfair.evaluation.tabular_methods import PICK, fit_model, make_model
from steerfair.files import atomic_write
from steerfair.metrics import equal_opportunity_gap
from steerfair.shared_target import pick_strength, strength_folds

TASKS = ("compas/race", "law/race", "german/sex")


def run_seed(task: str, kind: str, seed: int) -> dict[str, Any]:
    """Raw, split-picked and CV-picked test accuracy / EO gap for one task, model and seed."""
    dataset, sensitive = task.split("/")
    tr, te = load_dataset(dataset, sensitive=sensitive).split(0.3, seed=seed)
    base = FairSteerer(target="shared", marginals="copula", random_state=seed)
    strengths = list(PICK["strengths"])
    raw = fit_model(kind, seed, tr.to_numpy(), tr.y).predict(te.to_numpy())
    out: dict[str, Any] = {"raw": _score(te, raw)}
    t0 = time.perf_counter()
    fit_part, val = tr.split(PICK["val_size"], seed + 100)
    raw_val = fit_model(kind, seed, fit_part.to_numpy(), fit_part.y).predict(val.to_numpy())
    budget = PICK["budget_fraction"] * float(equal_opportunity_gap(val.y, raw_val, groups=val.groups))
    split = pick_strength(base, make_model(kind, seed), fit_part.X, fit_part.y, fit_part.groups, val.X, val.y,
                          val.groups, budget=budget, strengths=strengths, gap="equal_opportunity")  # fmt: skip
    out["split"] = _deploy(split.strength, base, kind, seed, tr, te) | {"budget": budget, "seconds": 0.0}
    out["split"]["seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    folds = strength_folds(tr.y, tr.groups, 5, seed)  # the folds pick_strength(cv=5, random_state=seed) uses
    raw_oof = cross_val_predict(make_model(kind, seed), tr.to_numpy(), tr.y, cv=folds)
    budget = PICK["budget_fraction"] * float(equal_opportunity_gap(tr.y, raw_oof, groups=tr.groups))
    cv = pick_strength(base, make_model(kind, seed), tr.X, tr.y, tr.groups, budget=budget, strengths=strengths,
                       gap="equal_opportunity", cv=5, random_state=seed)  # fmt: skip
    out["cv"] = _deploy(cv.strength, base, kind, seed, tr, te) | {"budget": budget}
    out["cv"]["seconds"] = time.perf_counter() - t0
    for name in ("split", "cv"):
        out[name]["meets"] = bool(out[name]["eo_gap"] <= 0.5 * out["raw"]["eo_gap"])
    return out


def _score(te: Any, pred: np.ndarray) -> dict[str, float]:
    gap = float(equal_opportunity_gap(te.y, pred, groups=te.groups))
    return {"accuracy": float(np.mean(pred == te.y)), "eo_gap": gap}


def _deploy(strength: float, base: Any, kind: str, seed: int, tr: Any, te: Any) -> dict[str, Any]:
    """Refit the steerer at ``strength`` on all training rows, train the model, score the test rows."""
    fs = clone(base).set_params(strength=strength).fit(tr.X, tr.y, groups=tr.groups)
    Xtr = np.asarray(fs.transform(tr.X, groups=tr.groups), dtype=np.float64)
    Xte = np.asarray(fs.transform(te.X, groups=te.groups), dtype=np.float64)
    return {"strength": strength, **_score(te, fit_model(kind, seed, Xtr, tr.y).predict(Xte))}


def markdown(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    lines = ["| task | model | raw | one split: accuracy / EO gap (seeds meeting 0.5x raw) | strengths | "
             "5-fold CV: accuracy / EO gap (seeds meeting) | strengths |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for task, by_model in runs.items():
        for kind, seeds in by_model.items():
            cells = [f"{np.mean([s['raw']['accuracy'] for s in seeds]):.3f} / "
                     f"{np.mean([s['raw']['eo_gap'] for s in seeds]):.3f}"]  # fmt: skip
            for name in ("split", "cv"):
                acc = np.mean([s[name]["accuracy"] for s in seeds])
                gap = np.mean([s[name]["eo_gap"] for s in seeds])
                met = sum(s[name]["meets"] for s in seeds)
                cells += [f"{acc:.3f} / {gap:.3f} ({met} of {len(seeds)})",
                          ", ".join(f"{s[name]['strength']:g}" for s in seeds)]  # fmt: skip
            lines.append(f"| {task} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/pick_strength")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--models", nargs="+", default=["lr", "gbm"], choices=["lr", "gbm", "mlp"])
    parser.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")

    def check(args: argparse.Namespace) -> None:
        for option in ("seeds", "tasks", "models"):
            distinct(getattr(args, option), f"--{option}")
        check_output(Path(args.out), ["pick_strength.json", "pick_strength.md"], overwrite=args.overwrite)

    args = parse_checked(parser, argv, check)
    out = Path(args.out)
    t0 = time.perf_counter()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for task in args.tasks:
        for kind in args.models:
            for seed in args.seeds:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = run_seed(task, kind, seed)
                runs.setdefault(task, {}).setdefault(kind, []).append(r)
                print(f"{task} {kind} seed {seed}: raw {r['raw']['eo_gap']:.3f} | split s={r['split']['strength']:g} "
                      f"{r['split']['accuracy']:.3f}/{r['split']['eo_gap']:.3f} | cv s={r['cv']['strength']:g} "
                      f"{r['cv']['accuracy']:.3f}/{r['cv']['eo_gap']:.3f}", flush=True)  # fmt: skip
    report = {"command": " ".join(["python recipes/pick_strength_cv.py", *(sys.argv[1:] if argv is None else argv)]),
              "run": run_record(vars(args)), "seconds": time.perf_counter() - t0, "runs": runs}  # fmt: skip
    table = markdown(runs)
    atomic_write({str(out / "pick_strength.json"): to_json(report).encode(),
                  str(out / "pick_strength.md"): table.encode()})  # fmt: skip
    print(table + f"wrote {out}/pick_strength.{{json,md}} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
