"""Tabular benchmark: steerfair against pre-, in- and post-processing baselines on real datasets (offline).

Run it with ``python recipes/tabular_benchmark.py --out results/tabular`` (all tasks, models and methods, 5 seeds)
or ``steerfair demo`` (Adult / sex, logistic regression). For every task (dataset, sensitive attribute) and seed,
the data are split 70/30 (stratified by group and label, :meth:`~steerfair.datasets.TabularDataset.split`); every
method is fitted on the training part with the groups known, and a downstream model (``lr``: logistic regression on
standardised features; ``gbm``: histogram gradient boosting; ``mlp``: one hidden layer of 32, early stopping,
standardised features) is trained on it. The groups are known at test time but never a feature of the downstream
model. Reported on the test part: accuracy, demographic-parity gap, equal-opportunity (TPR) gap and equalized-odds
gap, mean and sample standard deviation (``ddof=1``) over seeds, the EO gap's noise floor (:func:`eo_noise_floor`,
from the raw model), a verdict per task and model, and a Pareto plot (accuracy against EO gap).

Methods (:mod:`steerfair.evaluation.tabular_methods`):

* ``raw``: unchanged features.
* ``steerfair``: :class:`steerfair.FairSteerer` (the ideal target, default settings, ``random_state=seed``) on the
  continuous columns (one-hot columns pass through); training rows move by the exact per-(group, class) OT maps onto
  the KL-nearest ideal, test rows by the label-free per-group map (``test_mode="group"``). The default
  ``marginals="auto"`` steers normal scores (the copula) on these tables, whose columns have atoms.
* ``steerfair (gaussian)``: the same with ``marginals="gaussian"`` (the values themselves: the labelled maps send
  atoms to class-specific values, which trees read the label off).
* ``steerfair (affine)``: the same with ``family="affine"``: the nearest ideal over every invertible affine image of
  shared class templates (a lower KL than the paper's scale family; docs/theory.md section 12).
* ``steerfair (label-free)``: training rows moved by the same per-group map as test rows (``train_maps="unlabeled"``).
* ``steerfair+priors``: ``steerfair`` plus the ideal class-prior weights (:meth:`FairSteerer.sample_weight`).
* ``steerfair (posterior)``: test rows moved by the posterior mixture of the class maps.
* ``steerfair (shared)``: ``FairSteerer(target="shared", marginals="copula", random_state=seed)``: one label-free
  garbling per group onto a common law per class, every column (copula front end; discrete columns as
  ``FairSteerer``'s default ``discrete`` handles them), train and test rows alike.
* ``steerfair (shared, gaussian)``: the same with ``marginals="gaussian"``.
* ``steerfair (shared positive)``: ``FairSteerer(target="shared_positive", marginals="copula", random_state=seed)``:
  one invertible label-free map per group carries its positive class onto the largest group's (every column through
  the copula), so any downstream model has equal TPR across groups (:mod:`steerfair.shared_positive`).
* ``steerfair (shared score)``: :class:`steerfair.shared_score.SharedScore` (``random_state=seed``; every column):
  one column, a cross-fitted group-aware score garbled per group onto the greatest common garbling of the groups'
  binned experiments, so any model trained on it has equal TPR and FPR across groups.
* ``steerfair (shared, picked)``: the shared target at the strength :func:`steerfair.shared_target.pick_strength`
  picks, per model, on a 70/30 split of the training part (budget: half the raw model's validation EO gap;
  candidates 0, 0.25, 0.5, 0.75, 1).
* ``threshold_optimizer``: fairlearn's ``ThresholdOptimizer`` (true-positive-rate parity) on the same base model,
  predicting with the group.
* ``threshold_optimizer (equalized odds)``: the same with equal TPR *and* FPR (fairlearn's ``"equalized_odds"``),
  the notion the all-class shared target guarantees: what exact equalized odds costs the same model when the group
  is read at prediction.
* ``exponentiated_gradient``: fairlearn's ``ExponentiatedGradient`` (TruePositiveRateParity, eps 0.02, fairlearn's
  50 iterations at most, 3 on Adult) around the same model; it needs a model whose ``fit`` takes ``sample_weight``.
* ``reweighing``: Kamiran-Calders weights, features unchanged.
* ``correlation_remover``: fairlearn's ``CorrelationRemover`` (alpha=1) on all columns.
* ``mean_matching``, ``mimic`` (Gaussian OT onto the largest group), ``leace``: group matching of the
  continuous columns, :mod:`steerfair.baselines`.

The ideal distribution is the same for demographic parity and equal opportunity (Definition 3.1 asks that
the Bayes classifier be fair for *every* cost, and Propositions 3.2/3.3 give one set of conditions for both
notions), so one steerfair fit serves both columns of the table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics as M
from ..datasets import load_dataset
from .arguments import distinct
from .output import check_output, result_names, write_results
from .tabular_methods import (
    MODEL_DEPENDENT,
    MODELS,
    PREPROCESSING,
    Fold,
    canonical_model,
    check_models,
    fit_model,
    predict,
    prepare,
)
from .tabular_report import METRICS, figure, markdown, plot, verdict

__all__ = ["METHODS", "MODELS", "SENSITIVE", "TASKS", "Task", "eo_noise_floor", "figure", "markdown", "plot", "run",
           "run_task", "verdict"]  # fmt: skip


@dataclass(frozen=True)
class Task:
    """A dataset and the sensitive attribute to be fair about."""

    dataset: str
    sensitive: str

    @property
    def name(self) -> str:
        """``"dataset/sensitive"``."""
        return f"{self.dataset}/{self.sensitive}"


#: The (dataset, sensitive attribute) pairs of the benchmark.
TASKS: tuple[Task, ...] = (
    Task("adult", "sex"),
    Task("adult", "race"),
    Task("compas", "race"),
    Task("german", "sex"),
    Task("law", "race"),
)
#: The sensitive attributes each bundled dataset offers.
SENSITIVE: dict[str, tuple[str, ...]] = {
    "adult": ("sex", "race"), "compas": ("race", "sex"), "german": ("sex", "age"), "law": ("sex", "race"),
}  # fmt: skip
#: Every method: the pre-processing ones, then those fitted once per downstream model.
METHODS: tuple[str, ...] = PREPROCESSING + MODEL_DEPENDENT


def eo_noise_floor(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, *, permutations: int = 200) -> float:
    """The EO gap that sampling noise alone gives these test rows: the mean EO gap of ``pred`` over random
    reassignments of the group labels among the positive rows (group sizes kept). Each reassignment's groups have the
    same TPR in law, so its gap is pure test-split noise; a method that removed the gap exactly would measure about
    this much on average. Seeded (0), so the figure is repeatable."""
    pos = np.flatnonzero(y == 1)
    hit, g = np.asarray(pred)[pos] == 1, np.asarray(groups)[pos]
    levels = np.unique(g)
    if levels.size < 2:
        return float("nan")
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(permutations):
        perm = rng.permutation(g)
        rates = [hit[perm == a].mean() for a in levels]
        gaps.append(max(rates) - min(rates))
    return float(np.mean(gaps))


def _scores(y: np.ndarray, p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """Accuracy and the DP / EO / equalized-odds gaps of predictions ``p``."""
    rep = M.fairness_report(y, p, g)
    return {"accuracy": rep.accuracy, "dp_gap": rep.dp_gap, "eo_gap": rep.eo_gap, "eodds_gap": rep.eodds_gap}


def _check(models: Sequence[str], methods: Sequence[str]) -> list[str]:
    """The models' canonical names; a ``ValueError`` for an unknown model or method, or an impossible pair."""
    kinds = [canonical_model(m) for m in models]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; use any of {list(METHODS)}")
    if not kinds or not methods:
        raise ValueError("pass at least one model and one method")
    distinct(kinds, "models (lr and logistic are one model)")
    distinct(list(methods), "methods")
    check_models(methods, kinds)
    return kinds


def _check_tasks(tasks: Sequence[Task]) -> None:
    """A ``ValueError`` for an unknown dataset or sensitive attribute, or no task at all."""
    if not tasks:
        raise ValueError("pass at least one task")
    distinct([t.name for t in tasks], "tasks")
    for t in tasks:
        if t.sensitive not in SENSITIVE.get(t.dataset, ()):
            known = ", ".join(f"{d}/{a}" for d, attrs in SENSITIVE.items() for a in attrs)
            raise ValueError(f"unknown task {t.name!r}; use any of {known}")


class _Progress:
    """A progress line on stderr (used when tqdm's bar is off), printed at most every few seconds."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.t0, self.last = total, 0, time.perf_counter(), 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last > 5 or self.done == self.total:
            self.last = now
            print(f"tabular benchmark: {self.done}/{self.total} fits, {now - self.t0:.0f} s", file=sys.stderr)


def run_task(
    task: Task,
    *,
    seeds: Sequence[int] = range(5),
    models: Sequence[str] = MODELS,
    methods: Sequence[str] = METHODS,
    progress: Any = None,
) -> dict[str, Any]:
    """Run every (model, method) on every seed of one task.

    Args:
        task: The dataset and sensitive attribute.
        seeds: Split seeds.
        models: Downstream models (:data:`MODELS`).
        methods: Methods compared (:data:`METHODS`).
        progress: Optional progress bar (``update(1)`` per fitted model).

    Returns:
        dict: Per-seed scores (with what a method chose, e.g. the picked strength), their means and stds per
        (model, method), dataset facts and timings (seconds per seed: the transform for pre-processing methods,
        the transform and every model's fit for the others).
    """
    kinds = _check(models, methods)
    ds = load_dataset(task.dataset, sensitive=task.sensitive)
    per_seed: dict[str, dict[str, list[dict[str, float]]]] = {m: {k: [] for k in methods} for m in kinds}
    timings: dict[str, list[float]] = {k: [] for k in methods}
    majority: list[float] = []  # the accuracy of predicting the test part's majority class for everyone
    for seed in seeds:
        tr, te = ds.split(0.3, seed=seed)
        majority.append(float(max(te.y.mean(), 1 - te.y.mean())))
        fold = Fold(tr, te, int(seed))
        for method in methods:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # regularisation notices, convergence chatter
                prepared = prepare(method, fold) if method in PREPROCESSING else None
            timings[method].append(time.perf_counter() - t0)
            for model in kinds:
                t1 = time.perf_counter()
                extra: dict[str, float] = {}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if prepared is not None:
                        Xtr, Xte, w = prepared
                        pred = fit_model(model, int(seed), Xtr, tr.y, w).predict(Xte)
                    else:
                        pred, extra = predict(method, model, fold)
                        timings[method][-1] += time.perf_counter() - t1
                if method == "raw":  # the EO gap that test-split noise alone gives (the verdict's noise floor)
                    extra = {**extra, "eo_floor": eo_noise_floor(te.y, pred, te.groups)}
                per_seed[model][method].append({**_scores(te.y, pred, te.groups), **extra})
                if progress is not None:
                    progress.update(1)
    summary = {
        model: {
            method: {
                k: {
                    "mean": float(np.mean([s[k] for s in rows])),
                    "std": float(np.std([s[k] for s in rows], ddof=1)) if len(rows) > 1 else 0.0,
                }
                for k in METRICS
            }
            for method, rows in by_method.items()
        }
        for model, by_method in per_seed.items()
    }
    return {
        "task": task.name,
        "n_rows": len(ds),
        "n_features": len(ds.feature_names),
        "n_continuous": len(ds.numeric_columns),
        "groups": {str(g): int(c) for g, c in zip(*np.unique(ds.groups, return_counts=True), strict=True)},
        "seeds": list(seeds),
        "majority_accuracy": float(np.mean(majority)),
        "summary": summary,
        "per_seed": per_seed,
        "transform_seconds": {k: float(np.mean(v)) for k, v in timings.items()},
    }


def run(
    out: str | Path | None,
    tasks: Sequence[Task] = TASKS,
    *,
    seeds: Sequence[int] = range(5),
    models: Sequence[str] = MODELS,
    methods: Sequence[str] = METHODS,
    show_progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; with ``out`` write ``tabular_benchmark.{json,md,png}`` there.

    Args:
        out: Output folder, or ``None`` to write nothing.
        tasks: The tasks (default: :data:`TASKS`).
        seeds: Split seeds.
        models: Downstream models (:data:`MODELS`; ``"logistic"`` is ``"lr"``).
        methods: Methods compared.
        show_progress: Show a progress bar (tqdm on a terminal, otherwise a line on stderr every few seconds).
        overwrite: Replace earlier results in ``out`` (otherwise they raise a ``ValueError``, before any work).

    Returns:
        dict: ``{"protocol", "tasks": {name: run_task(...)}, "verdict", "seconds"}``.
    """
    from tqdm.auto import tqdm

    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed")
    kinds = _check(models, methods)
    _check_tasks(tasks)
    if out is not None:
        check_output(out, result_names("tabular_benchmark"), overwrite=overwrite)
    config = {
        "tasks": [t.name for t in tasks], "seeds": [int(s) for s in seeds], "models": kinds,
        "methods": list(methods),
    }  # fmt: skip
    total = len(tasks) * len(seeds) * len(kinds) * len(methods)
    results: dict[str, Any] = {"protocol": (__doc__ or "").split("\n\n")[1], "tasks": {}}
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()
    with tqdm(total=total, desc="tabular benchmark", unit="fit", disable=not (show_progress and tty)) as bar:
        line = _Progress(total) if show_progress and not tty else None
        for task in tasks:
            bar.set_postfix_str(task.name)
            results["tasks"][task.name] = run_task(
                task, seeds=seeds, models=kinds, methods=methods, progress=line or bar
            )
    results["verdict"] = verdict(results)
    results["seconds"] = time.perf_counter() - t0
    if out is not None:
        write_results(out, "tabular_benchmark", results, markdown, plot, overwrite=overwrite, config=config)
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line of ``recipes/tabular_benchmark.py``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", default="results/tabular", help="output folder")
    parser.add_argument("--tasks", nargs="+", default=[t.name for t in TASKS], help="dataset/sensitive pairs")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=[*MODELS, "logistic"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, metavar="METHOD",
                        help=f"any of {', '.join(repr(m) for m in METHODS)} (default: all)")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1; got {args.seeds}")
    tasks = []
    for t in args.tasks:
        dataset, _, sensitive = t.partition("/")
        if not dataset or not sensitive:
            parser.error(f"--tasks takes dataset/sensitive pairs such as adult/sex; got {t!r}")
        tasks.append(Task(dataset, sensitive))
    try:
        _check(args.models, args.methods)
        _check_tasks(tasks)
        check_output(args.out, result_names("tabular_benchmark"), overwrite=args.overwrite)
    except ValueError as exc:
        parser.error(str(exc))
    res = run(
        args.out, tasks, seeds=range(args.seeds), models=args.models, methods=args.methods, overwrite=args.overwrite
    )
    print(markdown(res))
    print(f"\nwrote {args.out}/tabular_benchmark.{{json,md,png}} in {res['seconds']:.0f} s")
    return 0
