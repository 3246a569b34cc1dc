"""Tabular benchmark: steerfair against pre-processing baselines on real datasets (offline).

Run it with ``python recipes/tabular_benchmark.py --out results/tabular`` (all tasks, 5 seeds) or
``steerfair demo`` (Adult / sex, logistic regression). For every task (dataset, sensitive attribute) and
seed, the data are split 70/30 (stratified by group and label, :meth:`TabularDataset.split`), every method
transforms the training and test features (groups known, as in the paper's protocol), and a downstream model
(logistic regression on standardised features, or histogram gradient boosting) is trained on the training
part. Reported on the test part: accuracy, demographic-parity gap, equal-opportunity (TPR) gap and
equalized-odds gap, mean and standard deviation over seeds.

Methods (the sensitive attribute is never a feature of the downstream model):

* ``raw``: unchanged features.
* ``steerfair``: :class:`steerfair.FairSteerer` on the continuous columns (one-hot columns pass through);
  training rows move by the exact per-(group, class) OT maps onto the KL-nearest ideal, test rows by the
  label-free per-group map (``test_mode="group"``).
* ``steerfair (label-free)``: training rows moved by the same per-group map as test rows
  (``train_maps="unlabeled"``; no label can leak into the features).
* ``steerfair+priors``: ``steerfair`` plus the ideal class-prior weights (:meth:`FairSteerer.sample_weight`).
* ``steerfair (posterior)``: test rows moved by the posterior mixture of the class maps.
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
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .. import metrics as M
from ..baselines import GaussianOTMatching, LeaceMatching, MeanMatching, reweighing_weights
from ..datasets import TabularDataset, load_dataset
from .output import check_output, result_names, write_results

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["METHODS", "MODELS", "TASKS", "Task", "figure", "markdown", "plot", "run", "run_task"]


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
#: The downstream classifiers trained on every steered table.
MODELS: tuple[str, ...] = ("logistic", "gbm")
#: Steerfair and the pre-processing baselines it is compared with.
METHODS: tuple[str, ...] = (
    "raw",
    "steerfair",
    "steerfair (label-free)",
    "steerfair+priors",
    "steerfair (posterior)",
    "reweighing",
    "correlation_remover",
    "mean_matching",
    "mimic",
    "leace",
)
METRICS: tuple[str, ...] = ("accuracy", "dp_gap", "eo_gap", "eodds_gap")

Prepared = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # X_train, X_test, sample weights


def _make_model(kind: str, seed: int) -> Any:
    """A fresh downstream classifier: ``"logistic"`` (standardised features) or ``"gbm"``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if kind == "gbm":
        return HistGradientBoostingClassifier(max_iter=200, random_state=seed)
    raise ValueError(f"unknown model {kind!r}; use one of {MODELS}")


def _steer_numeric(tr: TabularDataset, te: TabularDataset, make: Callable[[], Any]) -> tuple[np.ndarray, np.ndarray]:
    """Apply a group-matching baseline to the continuous columns only (one-hot columns pass through)."""
    Xtr, Xte, num = tr.to_numpy(), te.to_numpy(), tr.numeric_mask
    method = make()
    Xtr[:, num] = method.fit_transform(Xtr[:, num], tr.groups)
    Xte[:, num] = method.transform(Xte[:, num], te.groups)
    return Xtr, Xte


def _prepare(method: str, tr: TabularDataset, te: TabularDataset) -> Prepared:
    """Fit ``method`` on the training part; return the transformed training and test features and the weights."""
    from ..tabular import FairSteerer

    if method == "raw":
        return tr.to_numpy(), te.to_numpy(), None
    if method.startswith("steerfair"):
        mode: Literal["posterior", "group"] = "posterior" if method == "steerfair (posterior)" else "group"
        train_maps = "unlabeled" if method == "steerfair (label-free)" else "labeled"
        fs = FairSteerer(columns=tr.numeric_columns, test_mode=mode, train_maps=train_maps)
        Xtr = fs.fit_transform(tr.X, tr.y, groups=tr.groups).to_numpy(np.float64)
        Xte = fs.transform(te.X, groups=te.groups).to_numpy(np.float64)
        w = fs.sample_weight(tr.y, groups=tr.groups) if method == "steerfair+priors" else None
        return Xtr, Xte, w
    if method == "reweighing":
        return tr.to_numpy(), te.to_numpy(), reweighing_weights(tr.y, tr.groups)
    if method == "correlation_remover":
        from fairlearn.preprocessing import CorrelationRemover

        levels = np.unique(tr.groups)

        def with_group(d: TabularDataset) -> np.ndarray:
            return np.column_stack([d.to_numpy(), (d.groups[:, None] == levels[None, 1:]).astype(np.float64)])

        cr = CorrelationRemover(sensitive_feature_ids=list(range(tr.X.shape[1], tr.X.shape[1] + len(levels) - 1)))
        return cr.fit_transform(with_group(tr)), cr.transform(with_group(te)), None
    if method == "mean_matching":
        return (*_steer_numeric(tr, te, MeanMatching), None)
    if method == "mimic":
        return (*_steer_numeric(tr, te, GaussianOTMatching), None)
    if method == "leace":
        return (*_steer_numeric(tr, te, LeaceMatching), None)
    raise ValueError(f"unknown method {method!r}; use one of {METHODS}")


def _scores(y: np.ndarray, p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """Accuracy and the DP / EO / equalized-odds gaps of predictions ``p``."""
    rep = M.fairness_report(y, p, g)
    return {"accuracy": rep.accuracy, "dp_gap": rep.dp_gap, "eo_gap": rep.eo_gap, "eodds_gap": rep.eodds_gap}


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
        progress: Optional progress bar (``update(1)`` per fit).

    Returns:
        dict: Per-seed scores, their means and stds per (model, method), dataset facts and transform timings.
    """
    ds = load_dataset(task.dataset, sensitive=task.sensitive)
    per_seed: dict[str, dict[str, list[dict[str, float]]]] = {m: {k: [] for k in methods} for m in models}
    timings: dict[str, list[float]] = {k: [] for k in methods}
    for seed in seeds:
        tr, te = ds.split(0.3, seed=seed)
        for method in methods:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # regularisation notices, convergence chatter
                Xtr, Xte, w = _prepare(method, tr, te)
            timings[method].append(time.perf_counter() - t0)
            for model in models:
                clf = _make_model(model, seed)
                fit_kw = (
                    {}
                    if w is None
                    else ({"logisticregression__sample_weight": w} if model == "logistic" else {"sample_weight": w})
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    clf.fit(Xtr, tr.y, **fit_kw)
                per_seed[model][method].append(_scores(te.y, clf.predict(Xte), te.groups))
                if progress is not None:
                    progress.update(1)
    summary = {
        model: {
            method: {
                k: {
                    "mean": float(np.mean([s[k] for s in rows])),
                    "std": float(np.std([s[k] for s in rows])),
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
        models: Downstream models.
        methods: Methods compared.
        show_progress: Show a progress bar.
        overwrite: Replace earlier results in ``out`` (otherwise they raise a ``ValueError``, before any work).

    Returns:
        dict: ``{"protocol", "tasks": {name: run_task(...)}, "seconds"}``.
    """
    from tqdm.auto import tqdm

    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed")
    if out is not None:
        check_output(out, result_names("tabular_benchmark"), overwrite=overwrite)
    config = {
        "tasks": [t.name for t in tasks], "seeds": [int(s) for s in seeds], "models": list(models),
        "methods": list(methods),
    }  # fmt: skip
    total = len(tasks) * len(seeds) * len(models) * len(methods)
    results: dict[str, Any] = {"protocol": __doc__.split("\n\n")[1], "tasks": {}}
    t0 = time.perf_counter()
    with tqdm(total=total, desc="tabular benchmark", unit="fit", disable=not show_progress) as bar:
        for task in tasks:
            bar.set_postfix_str(task.name)
            results["tasks"][task.name] = run_task(task, seeds=seeds, models=models, methods=methods, progress=bar)
    results["seconds"] = time.perf_counter() - t0
    if out is not None:
        write_results(out, "tabular_benchmark", results, markdown, plot, overwrite=overwrite, config=config)
    return results


def _cell(s: dict[str, float]) -> str:
    """``mean ± std``."""
    return f"{s['mean']:.3f} ± {s['std']:.3f}"


def markdown(results: dict[str, Any]) -> str:
    """One table per (task, downstream model): methods in rows, metrics (mean ± std over seeds) in columns."""
    lines: list[str] = []
    for name, res in results["tasks"].items():
        for model, by_method in res["summary"].items():
            raw = by_method.get("raw")
            lines += [
                f"### {name}, {model} ({len(res['seeds'])} seeds, n={res['n_rows']:,})",
                "",
                "| method | accuracy | DP gap | EO gap | EOdds gap | EO gap / raw |",
                "|---|---|---|---|---|---|",
            ]
            for method, s in by_method.items():
                ratio = f"{s['eo_gap']['mean'] / raw['eo_gap']['mean']:.2f}" if raw and raw["eo_gap"]["mean"] else "-"
                cells = [_cell(s[k]) for k in METRICS]
                lines.append(f"| {method} | " + " | ".join(cells) + f" | {ratio} |")
            lines.append("")
    return "\n".join(lines).rstrip()


def figure(results: dict[str, Any]) -> Figure:
    """Accuracy against EO gap (mean ± std over seeds), one panel per (task, model); the legend below, inside."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plots import legend_below

    panels = [(n, m) for n, r in results["tasks"].items() for m in r["summary"]]
    cols = min(len(panels), 4)
    rows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    markers = dict(zip(METHODS, "o*pP^sDvXh", strict=False))
    for i, (name, model) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        for method, s in results["tasks"][name]["summary"][model].items():
            ax.errorbar(
                s["eo_gap"]["mean"],
                s["accuracy"]["mean"],
                xerr=s["eo_gap"]["std"],
                yerr=s["accuracy"]["std"],
                fmt=markers.get(method, "o"),
                ms=9 if method.startswith("steerfair") else 6,
                label=method,
                capsize=2,
            )
        ax.set_title(f"{name}, {model}", fontsize=9)
        ax.set_xlabel("equal-opportunity gap (lower is fairer)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    legend_below(fig, handles, labels, max_cols=5, fontsize=8)
    return fig


def plot(results: dict[str, Any], path: str | Path) -> None:
    """Draw :func:`figure` into ``path`` (the format from its suffix)."""
    figure(results).savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    """Command line of ``recipes/tabular_benchmark.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/tabular", help="output folder")
    parser.add_argument("--tasks", nargs="*", default=[t.name for t in TASKS], help="dataset/sensitive pairs")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1; got {args.seeds}")
    tasks = [Task(*t.split("/", 1)) for t in args.tasks]
    try:
        check_output(args.out, result_names("tabular_benchmark"), overwrite=args.overwrite)
    except ValueError as exc:
        parser.error(str(exc))
    res = run(
        args.out, tasks, seeds=range(args.seeds), models=args.models, methods=args.methods, overwrite=args.overwrite
    )
    print(markdown(res))
    print(f"\nwrote {args.out}/tabular_benchmark.{{json,md,png}} in {res['seconds']:.0f} s")
    return 0
