"""Privacy trade-off: steering from randomised sensitive attributes (epsilon-local DP) vs the non-private fit.

Run it with ``python recipes/privacy_tradeoff.py --out results/privacy`` (Adult / sex, 5 seeds,
epsilon in {0.5, 1, 2, 4, 8, inf}). For every seed the data are split 70/30 (stratified by group and label);
the sensitive attribute of every training *and* test row is privatised with k-ary randomized response at
epsilon (fresh randomness per seed), as a user-side mechanism would. A logistic regression (standardised
features) is trained on the steered training features; accuracy and the demographic-parity and
equal-opportunity gaps are measured on the test part with the *true* groups (the sensitive attribute is
never a feature of the downstream model).

Methods per epsilon:

* ``private``: ``FairSteerer(group_epsilon=eps)``: the model of the continuous columns is fitted by
  channel inversion (unbiased group sizes, sums, second moments; PSD repair), training rows move by the
  posterior-weighted mixture of their (group, class) maps, test rows by the posterior-weighted mixture of
  the group maps, with the posterior ``P(A | x, report)`` from a group probe trained on the reports
  (forward-corrected loss);
* ``private (probe only)``: the same fit, test rows moved with ``P(A | x)`` from the probe (no report needed
  at test time);
* ``naive``: the reports used as if they were the true groups (``FairSteerer()`` on the reports).

References (no privacy): ``raw`` (unsteered features) and ``non-private`` (``FairSteerer()`` on the true
groups). At ``epsilon = inf`` ``private`` is the non-private fit exactly.

On the BUG stand-in (``--data bug``: 33 occupations, MiniLM encodings) the steering method is the Bios
protocol's (:class:`~steerfair.evaluation.privacy_data.TemplateSteerer`:
``IdealTemplateSteering(group_epsilon=eps)``, posterior group
probabilities from the fitted model and the report; "probe only" uses the model's ``P(A | x)``) and the
classifier is the protocol's multinomial logistic regression; the gaps are RMS over occupations.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .arguments import distinct, existing_file, fraction, parse_checked, positive_float, positive_int
from .output import check_output, result_names, write_results
from .privacy_data import FeatureData, load_adult_sex, load_bug_features, load_features

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["EPSILONS", "METHODS", "FeatureData", "figure", "load_features", "markdown", "plot", "run", "run_seed"]

#: The local-DP budgets of the trade-off (``inf``: attributes reported truthfully).
EPSILONS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, math.inf)
#: The steering variants compared at each epsilon.
METHODS: tuple[str, ...] = ("private", "private (probe only)", "naive")
REFERENCES: tuple[str, ...] = ("raw", "non-private")
METRICS: tuple[str, ...] = ("accuracy", "dp_gap", "eo_gap")
MULTICLASS_C = 0.01  # as steerfair.evaluation.bios_protocol.ProtocolConfig.C


# --------------------------------------------------------------------------------------------- scoring
def _scores(y: np.ndarray, pred: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """Accuracy, DP gap and EO gap; for more than two classes the gaps are RMS over classes."""
    from .. import metrics as M

    classes = np.unique(y)
    if len(classes) == 2:
        rep = M.fairness_report(y, pred, g, pos_label=classes[1])
        return {"accuracy": rep.accuracy, "dp_gap": rep.dp_gap, "eo_gap": rep.eo_gap}
    levels = np.unique(g)
    sel_gaps, tpr_gaps = [], []
    for c in classes:
        rates = [np.mean(pred[g == a] == c) for a in levels]
        sel_gaps.append(max(rates) - min(rates))
        tprs = [np.mean(pred[(g == a) & (y == c)] == c) for a in levels if np.any((g == a) & (y == c))]
        if len(tprs) == len(levels):
            tpr_gaps.append(max(tprs) - min(tprs))
    return {
        "accuracy": float(np.mean(pred == y)),
        "dp_gap": float(np.sqrt(np.mean(np.square(sel_gaps)))),
        "eo_gap": float(np.sqrt(np.mean(np.square(tpr_gaps)))),
    }


def _classifier(n_classes: int) -> Any:
    """Logistic regression: scikit-learn for two classes; for more, the Bios protocol's multinomial model."""
    if n_classes > 2:
        from .bios_classifier import SoftmaxRegression

        return SoftmaxRegression(C=MULTICLASS_C)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _evaluate(Xtr: Any, ytr: np.ndarray, Xte: Any, yte: np.ndarray, gte: np.ndarray, seed: int) -> dict[str, float]:
    """Train the classifier on ``(Xtr, ytr)`` and score it on the test part with the true groups."""
    clf = _classifier(len(np.unique(ytr)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(np.asarray(Xtr, dtype=np.float64), ytr)
    return _scores(yte, clf.predict(np.asarray(Xte, dtype=np.float64)), gte)


def _subsample(
    part: tuple[Any, np.ndarray, np.ndarray], fraction: float, seed: int
) -> tuple[Any, np.ndarray, np.ndarray]:
    """A ``fraction`` of the rows of every (group, label) stratum of a split part."""
    X, y, g = part
    rng = np.random.default_rng([seed, 10_000])
    keep = []
    for key in np.unique(np.column_stack([g.astype(str), y.astype(str)]), axis=0):
        idx = np.flatnonzero((g.astype(str) == key[0]) & (y.astype(str) == key[1]))
        keep.append(rng.permutation(idx)[: max(int(round(fraction * len(idx))), 2)])
    rows = np.sort(np.concatenate(keep))
    return (X.iloc[rows] if hasattr(X, "iloc") else X[rows]), y[rows], g[rows]


def run_seed(
    data: FeatureData, seed: int, epsilons: Sequence[float], progress: Any = None, train_fraction: float = 1.0
) -> dict[str, Any]:
    """All methods at every epsilon for one split.

    Args:
        data: The data.
        seed: Split and randomisation seed.
        epsilons: Privacy levels (``math.inf``: no privacy).
        progress: Optional progress bar (``update(1)`` per fit).
        train_fraction: ``< 1`` subsamples the training part (stratified; the test part is kept whole).

    Returns:
        dict: ``{"raw": s, "non-private": s, "by_epsilon": {eps: {method: s}}}``.

    Raises:
        ValueError: If ``train_fraction`` is not in ``(0, 1]``.
    """
    from ..privacy import randomized_response

    train, (Xte, yte, gte) = data.split(seed)
    if not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction must lie in (0, 1]; got {train_fraction}")
    Xtr, ytr, gtr = train if train_fraction == 1 else _subsample(train, train_fraction, seed)
    cats = np.unique(data.groups)

    def tick() -> None:
        if progress is not None:
            progress.update(1)

    out: dict[str, Any] = {"raw": _evaluate(Xtr, ytr, Xte, yte, gte, seed)}
    tick()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fs = data.steerer()
        Ztr = fs.fit_transform(Xtr, ytr, groups=gtr)
        Zte = fs.transform(Xte, groups=gte)
    out["non-private"] = _evaluate(Ztr, ytr, Zte, yte, gte, seed)
    tick()
    out["by_epsilon"] = {}
    for j, eps in enumerate(epsilons):
        rng = np.random.default_rng([seed, j])
        rtr = randomized_response(gtr, eps, seed=rng, categories=cats)
        rte = randomized_response(gte, eps, seed=rng, categories=cats)
        res: dict[str, Any] = {"report_accuracy": float(np.mean(rtr == gtr))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            priv = data.steerer(eps)
            try:
                Ptr = priv.fit_transform(Xtr, ytr, groups=rtr, group_labels=cats)
            except ValueError as exc:  # too few rows for this epsilon: an estimated cell is empty or degenerate
                res["private"] = res["private (probe only)"] = None
                res["error"] = str(exc)
            else:
                res["fit_seconds"] = time.perf_counter() - t0
                Pte = priv.transform(Xte, groups=rte)
                Pte_probe = priv.transform(Xte)
            naive = data.steerer()
            Ntr = naive.fit_transform(Xtr, ytr, groups=rtr)
            Nte = naive.transform(Xte, groups=rte)
        if "error" not in res:
            res["private"] = _evaluate(Ptr, ytr, Pte, yte, gte, seed)
            res["private (probe only)"] = _evaluate(Ptr, ytr, Pte_probe, yte, gte, seed)
        res["naive"] = _evaluate(Ntr, ytr, Nte, yte, gte, seed)
        out["by_epsilon"][_key(eps)] = res
        tick()
    return out


def _key(eps: float) -> str:
    """The results key of an epsilon (``"inf"`` for no privacy)."""
    return "inf" if math.isinf(eps) else f"{eps:g}"


def _summary(rows: list[dict[str, float] | None]) -> dict[str, Any]:
    """Mean and std over the seeds whose fit succeeded (``n_ok`` of them; NaN if none did)."""
    ok = [r for r in rows if r is not None]
    out: dict[str, Any] = {
        k: {
            "mean": float(np.mean([r[k] for r in ok])) if ok else math.nan,
            "std": float(np.std([r[k] for r in ok])) if ok else math.nan,
        }
        for k in METRICS
    }
    out["n_ok"] = len(ok)
    return out


def run(
    out: str | Path | None,
    data: FeatureData | None = None,
    *,
    seeds: Sequence[int] = range(5),
    epsilons: Sequence[float] = EPSILONS,
    train_fraction: float = 1.0,
    show_progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the trade-off; with ``out`` write ``privacy_tradeoff.{json,md,png}`` there.

    Args:
        out: Output folder, or ``None`` to write nothing.
        data: The data (default: Adult / sex).
        seeds: Split seeds.
        epsilons: Privacy levels.
        train_fraction: Fraction of the training part used.
        show_progress: Show a progress bar.
        overwrite: Replace earlier results in ``out`` (otherwise they raise a ``ValueError``, before any work).

    Returns:
        dict: The protocol, per-seed results and their summary (mean and std over seeds).
    """
    from tqdm.auto import tqdm

    from ..privacy import rr_variance_inflation

    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed")
    if out is not None:
        check_output(out, result_names("privacy_tradeoff"), overwrite=overwrite)
    data = load_adult_sex() if data is None else data
    k = len(np.unique(data.groups))
    t0 = time.perf_counter()
    per_seed = []
    with tqdm(total=len(seeds) * (2 + len(epsilons)), desc=f"privacy trade-off ({data.name})", unit="fit",
              disable=not show_progress) as bar:  # fmt: skip
        for seed in seeds:
            per_seed.append(run_seed(data, seed, epsilons, bar, train_fraction))
    summary: dict[str, Any] = {ref: _summary([s[ref] for s in per_seed]) for ref in REFERENCES}
    summary["by_epsilon"] = {}
    for eps in epsilons:
        key = _key(eps)
        rows = [s["by_epsilon"][key] for s in per_seed]
        summary["by_epsilon"][key] = {m: _summary([r[m] for r in rows]) for m in METHODS}
        summary["by_epsilon"][key]["report_accuracy"] = float(np.mean([r["report_accuracy"] for r in rows]))
        summary["by_epsilon"][key]["vif"] = rr_variance_inflation(eps, k)
    results = {
        "protocol": __doc__.split("\n\n")[1],
        "data": data.name,
        "n_rows": len(data.y),
        "n_train": int(round(0.7 * len(data.y) * train_fraction)),
        "train_fraction": train_fraction,
        "groups": {str(g): int(c) for g, c in zip(*np.unique(data.groups, return_counts=True), strict=True)},
        "seeds": list(seeds),
        "epsilons": [_key(e) for e in epsilons],
        "summary": summary,
        "per_seed": per_seed,
        "seconds": time.perf_counter() - t0,
    }
    if out is not None:
        config = {"data": data.name, "seeds": [int(x) for x in seeds], "epsilons": [_key(e) for e in epsilons],
                  "train_fraction": train_fraction}  # fmt: skip
        write_results(out, "privacy_tradeoff", results, markdown, plot, overwrite=overwrite, config=config)
    return results


def _pm(s: dict[str, float]) -> str:
    """``mean ± std``, or ``fit fails``."""
    return "fit fails" if math.isnan(s["mean"]) else f"{s['mean']:.3f} ± {s['std']:.3f}"


def markdown(results: dict[str, Any]) -> str:
    """The table: one row per (epsilon, method), mean ± std over seeds, plus the two references."""
    s = results["summary"]
    lines = [
        f"### {results['data']}, logistic regression ({len(results['seeds'])} seeds, n={results['n_rows']:,}, "
        f"~{results['n_train']:,} training rows)",
        "",
        "| epsilon | RR keeps group | VIF | method | accuracy | DP gap | EO gap |",
        "|---|---|---|---|---|---|---|",
    ]
    for ref in REFERENCES:
        lines.append(f"| - | - | - | {ref} | " + " | ".join(_pm(s[ref][k]) for k in METRICS) + " |")
    for key, by in s["by_epsilon"].items():
        for m in METHODS:
            note = (
                ""
                if by[m]["n_ok"] == len(results["seeds"])
                else f" ({by[m]['n_ok']}/{len(results['seeds'])} seeds fit)"
            )
            lines.append(
                f"| {key} | {by['report_accuracy']:.3f} | {by['vif']:.2f} | {m}{note} | "
                + " | ".join(_pm(by[m][k]) for k in METRICS)
                + " |"
            )
    return "\n".join(lines)


def figure(results: dict[str, Any]) -> Figure:
    """EO gap, DP gap and accuracy against epsilon (mean ± std over seeds); references as horizontal bands."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plots import legend_below

    s = results["summary"]
    keys = list(s["by_epsilon"])
    finite = [float(k) for k in keys if k != "inf"]
    xs = [float(k) if k != "inf" else (max(finite) * 2.5 if finite else 1.0) for k in keys]
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    titles = {"eo_gap": "equal-opportunity gap", "dp_gap": "demographic-parity gap", "accuracy": "accuracy"}
    styles = {"private": "o-", "private (probe only)": "s--", "naive": "^:"}
    colors = {"private": "tab:blue", "private (probe only)": "tab:orange", "naive": "tab:red"}
    for j, metric in enumerate(("eo_gap", "dp_gap", "accuracy")):
        ax = fig.add_subplot(1, 3, j + 1)
        for ref, color in (("raw", "0.4"), ("non-private", "tab:green")):
            mu, sd = s[ref][metric]["mean"], s[ref][metric]["std"]
            ax.axhline(mu, color=color, lw=1.2, ls="-" if ref == "non-private" else "-.", label=ref)
            ax.axhspan(mu - sd, mu + sd, color=color, alpha=0.12)
        for m in METHODS:
            mu = [s["by_epsilon"][k][m][metric]["mean"] for k in keys]
            sd = [s["by_epsilon"][k][m][metric]["std"] for k in keys]
            ax.errorbar(xs, mu, yerr=sd, fmt=styles[m], color=colors[m], capsize=2, ms=5, label=m)
        ax.set_xscale("log")
        ax.set_xticks(xs, keys)
        ax.minorticks_off()
        ax.set_xlabel("epsilon (local DP of the sensitive attribute)")
        ax.set_title(titles[metric], fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{results['data']}: steering from randomised sensitive attributes", fontsize=10)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    legend_below(fig, handles, labels, max_cols=len(labels), fontsize=8)
    return fig


def plot(results: dict[str, Any], path: str | Path) -> None:
    """Draw :func:`figure` into ``path`` (the format from its suffix)."""
    figure(results).savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    """Command line of ``recipes/privacy_tradeoff.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/privacy", help="output folder")
    parser.add_argument("--data", default="adult", choices=("adult", "bug"), help="embedded dataset")
    parser.add_argument(
        "--features",
        type=existing_file,
        default=None,
        help=".npz / .safetensors with arrays X, y, groups (overrides --data)",
    )
    parser.add_argument("--cache", default=None, help="encoding cache folder for --data bug")
    parser.add_argument("--rank", type=positive_int, default=128, help="--data bug: principal subspace to steer")
    parser.add_argument("--seeds", type=positive_int, default=5, help="number of seeds (0..N-1)")
    parser.add_argument("--train-fraction", type=fraction, default=1.0, help="subsample the training part")
    parser.add_argument(
        "--epsilons", nargs="+", type=positive_float, default=list(EPSILONS),
        help="privacy levels, each above 0 ('inf' = no privacy)",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")

    def check(args: argparse.Namespace) -> None:
        distinct(args.epsilons, "--epsilons")
        if args.features is None and args.data == "bug":
            from ..llm.models import ALIAS_HIDDEN_SIZES
            from .bios_run import check_cache_dir

            if args.rank > ALIAS_HIDDEN_SIZES["minilm"]:
                raise ValueError(f"--rank {args.rank} exceeds MiniLM's dimension {ALIAS_HIDDEN_SIZES['minilm']}")
            check_cache_dir(args.cache)
        check_output(args.out, result_names("privacy_tradeoff"), overwrite=args.overwrite)

    args = parse_checked(parser, argv, check)
    eps = list(args.epsilons)
    if args.features is not None:
        data = load_features(args.features)
    elif args.data == "bug":
        data = load_bug_features(args.cache, args.rank)
    else:
        data = load_adult_sex()
    res = run(
        args.out, data, seeds=range(args.seeds), epsilons=eps, train_fraction=args.train_fraction,
        overwrite=args.overwrite,
    )  # fmt: skip
    print(markdown(res))
    print(f"\nwrote {args.out}/privacy_tradeoff.{{json,md,png}} in {res['seconds']:.0f} s")
    return 0
