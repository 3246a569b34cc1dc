"""The tabular benchmark's report: the verdict, the markdown tables and the Pareto plot.

Everything here is computed from a results dict of :func:`steerfair.evaluation.tabular_benchmark.run` (``"tasks"``:
``{name: {"summary": {model: {method: {metric: {"mean", "std"}}}}, "per_seed": ...}}``); nothing is hard-coded.

The verdict (:func:`verdict`), per task and downstream model:

* the raw model's EO gap and its seed-to-seed spread (the sample standard deviation, ``ddof=1``, min and max over
  seeds);
* the EO gap's noise floor (``eo_floor`` of the raw model's seeds,
  :func:`~steerfair.evaluation.tabular_benchmark.eo_noise_floor`), and whether the target lies below it;
* the best steerfair variant (every method whose name starts with ``steerfair``): among the variants that meet the
  target (:data:`TARGET`: EO gap at most 0.5x raw with accuracy at least raw - 1.5 points, required for LR and GBM
  where the raw EO gap stands out of its seed-to-seed spread, i.e. its mean exceeds its standard deviation),
  the one with the smallest EO gap; if none meets it, the smallest EO gap among those within the accuracy
  tolerance; if none is, the smallest EO gap (ties: the more accurate, then the name; a variant whose mean is
  undefined, NaN, is not ranked);
* the steerfair defaults (:data:`DEFAULTS`) that lose more than :data:`DEFAULT_LOSS_PT` points of accuracy;
* whether that variant is within :data:`NEAR_CONSTANT_PT` points of the majority-class accuracy (then its small gap
  may only mean that it predicts one class for almost every row);
* whether ThresholdOptimizer is better than that best variant (a smaller EO gap, at an accuracy at most
  :data:`TO_TOLERANCE_PT` points below the variant's or within the target's accuracy tolerance of raw), and by how
  much.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DEFAULTS", "DEFAULT_LOSS_PT", "METRICS", "NEAR_CONSTANT_PT", "TARGET", "TO_TOLERANCE_PT", "figure",
           "markdown", "overview", "plot", "verdict", "verdict_markdown"]  # fmt: skip

#: The scores of every (task, seed, model, method): accuracy and the DP, EO (TPR) and equalized-odds gaps.
METRICS: tuple[str, ...] = ("accuracy", "dp_gap", "eo_gap", "eodds_gap")
#: The acceptance target of the best steerfair variant, and the models it is required for.
TARGET: dict[str, Any] = {"eo_ratio": 0.5, "accuracy_drop_pt": 1.5, "models": ("lr", "gbm", "logistic")}
#: The steerfair methods run at their default settings (the ideal target; the shared targets with the copula;
#: ``SharedScore``).
DEFAULTS: tuple[str, ...] = (
    "steerfair", "steerfair (shared)", "steerfair (shared positive)", "steerfair (shared score)"
)  # fmt: skip
#: A default that loses more accuracy than this (points) is flagged.
DEFAULT_LOSS_PT = 3.0
#: ThresholdOptimizer counts as better with a smaller EO gap at an accuracy at most this many points below the best
#: steerfair variant's (or at least raw - ``TARGET["accuracy_drop_pt"]``).
TO_TOLERANCE_PT = 0.5
#: A best variant less than this many points more accurate than predicting the majority class for everyone is marked:
#: its small gap may only mean that it predicts one class for (almost) every row.
NEAR_CONSTANT_PT = 0.5
_EPS = 1e-12


def _mean(s: dict[str, Any], metric: str) -> float:
    return float(s[metric]["mean"])


def verdict(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (task, model) with a ``raw`` result: the figures of the module docstring."""
    rows: list[dict[str, Any]] = []
    for name, res in results["tasks"].items():
        for model, by in res["summary"].items():
            raw = by.get("raw")
            if raw is None:
                continue
            raw_eo, raw_acc = _mean(raw, "eo_gap"), _mean(raw, "accuracy")
            seeds = [float(s["eo_gap"]) for s in res.get("per_seed", {}).get(model, {}).get("raw", [])]
            row: dict[str, Any] = {
                "task": name, "model": model, "raw_eo": raw_eo, "raw_eo_std": float(raw["eo_gap"]["std"]),
                "raw_eo_min": min(seeds, default=raw_eo), "raw_eo_max": max(seeds, default=raw_eo),
                "raw_accuracy": raw_acc, "required": model in TARGET["models"],
            }  # fmt: skip
            # the target is asked only where the raw gap stands out of its seed-to-seed spread (mean > std)
            row["above_spread"] = raw_eo > row["raw_eo_std"]
            floors = [float(s["eo_floor"]) for s in res.get("per_seed", {}).get(model, {}).get("raw", [])
                      if "eo_floor" in s]  # fmt: skip
            if floors:  # a target below the noise floor: even an exactly fair method measures more on average
                row["eo_floor"] = sum(floors) / len(floors)
                row["below_floor"] = TARGET["eo_ratio"] * raw_eo < row["eo_floor"]
            row["required"] = row["required"] and row["above_spread"]

            def within(s: dict[str, Any], raw_acc: float = raw_acc) -> bool:
                return _mean(s, "accuracy") >= raw_acc - TARGET["accuracy_drop_pt"] / 100 - _EPS

            def meets(s: dict[str, Any], raw_eo: float = raw_eo) -> bool:
                return within(s) and _mean(s, "eo_gap") <= TARGET["eo_ratio"] * raw_eo + _EPS

            # a variant with an undefined mean (a group without positives in some test split) is not ranked: NaN
            # compares False, so it could win or lose by its place in the dict
            variants = {
                m: s for m, s in by.items()
                if m.startswith("steerfair") and np.isfinite(_mean(s, "eo_gap")) and np.isfinite(_mean(s, "accuracy"))
            }  # fmt: skip
            pool = (
                {m: s for m, s in variants.items() if meets(s)}
                or {m: s for m, s in variants.items() if within(s)}
                or variants
            )
            if pool:
                # ties: the more accurate, then the name
                best = min(pool, key=lambda m: (_mean(pool[m], "eo_gap"), -_mean(pool[m], "accuracy"), m))
                b = variants[best]
                row.update(
                    best=best, best_eo=_mean(b, "eo_gap"), best_accuracy=_mean(b, "accuracy"),
                    best_ratio=_mean(b, "eo_gap") / raw_eo if raw_eo > 0 else float("nan"),
                    best_drop_pt=100 * (raw_acc - _mean(b, "accuracy")), meets=meets(b),
                    near_constant=_mean(b, "accuracy") < res.get("majority_accuracy", 0.0) + NEAR_CONSTANT_PT / 100,
                )  # fmt: skip
            row["default_losses"] = {
                m: 100 * (raw_acc - _mean(by[m], "accuracy"))
                for m in DEFAULTS
                if m in by and 100 * (raw_acc - _mean(by[m], "accuracy")) > DEFAULT_LOSS_PT + _EPS
            }
            to = by.get("threshold_optimizer")
            if to is not None and pool:
                d_eo = row["best_eo"] - _mean(to, "eo_gap")  # > 0: ThresholdOptimizer's gap is smaller
                d_acc = 100 * (_mean(to, "accuracy") - row["best_accuracy"])  # > 0: ThresholdOptimizer more accurate
                affordable = d_acc >= -TO_TOLERANCE_PT - _EPS or within(to)
                row.update(to_eo=_mean(to, "eo_gap"), to_eo_lower_by=d_eo, to_accuracy_higher_pt=d_acc,
                           to_better=d_eo > _EPS and affordable)  # fmt: skip
            rows.append(row)
    return rows


def verdict_markdown(rows: list[dict[str, Any]]) -> str:
    """The verdict as a markdown table with a one-line count of the target met."""
    lines = [
        "| task | model | raw EO gap: mean ± std [min, max] over seeds | EO noise floor | raw accuracy | "
        "best steerfair variant | its EO gap (x raw) | its accuracy change | meets target | defaults losing > "
        f"{DEFAULT_LOSS_PT:g} pt | ThresholdOptimizer vs best steerfair |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spread = f"{r['raw_eo']:.3f} ± {r['raw_eo_std']:.3f} [{r['raw_eo_min']:.3f}, {r['raw_eo_max']:.3f}]"
        if "best" in r:
            yes = "yes" if r["meets"] else "no"
            if not r["meets"] and r.get("below_floor"):
                yes = f"no: the target {TARGET['eo_ratio'] * r['raw_eo']:.3f} is below the noise floor"
            mark = " (near the constant classifier)" if r.get("near_constant") else ""
            why = "" if r.get("above_spread", True) else ": raw gap within its seed spread"
            best = [r["best"] + mark, f"{r['best_eo']:.3f} ({r['best_ratio']:.2f}x)", f"{-r['best_drop_pt']:+.1f} pt",
                    yes if r["required"] else f"({yes}; not required{why})"]  # fmt: skip
        else:
            best = ["-", "-", "-", "-"]
        losses = ", ".join(f"{m} {-v:+.1f} pt" for m, v in r["default_losses"].items()) or "none"
        if "to_better" not in r:
            to = "-"
        elif r["to_better"]:
            to = f"better: EO gap {r['to_eo_lower_by']:.3f} lower, accuracy {r['to_accuracy_higher_pt']:+.1f} pt"
        else:
            to = f"not better (EO gap {-r['to_eo_lower_by']:+.3f}, accuracy {r['to_accuracy_higher_pt']:+.1f} pt)"
        floor = f"{r['eo_floor']:.3f}" if "eo_floor" in r else "-"
        cells = [r["task"], r["model"], spread, floor, f"{r['raw_accuracy']:.3f}", *best, losses, to]
        lines.append("| " + " | ".join(cells) + " |")
    required = [r for r in rows if r["required"] and "best" in r]
    met = sum(bool(r["meets"]) for r in required)
    floored = sum(bool(not r["meets"] and r.get("below_floor")) for r in required)
    lines += [
        "",
        f"Target (best steerfair variant: EO gap <= {TARGET['eo_ratio']:g}x raw with accuracy >= raw - "
        f"{TARGET['accuracy_drop_pt']:g} pt; LR and GBM, where the raw EO gap's mean exceeds its standard deviation "
        f"over seeds): met on {met} of {len(required)} (task, model) pairs"
        + (f"; on {floored} of the others the target is below the noise floor" if floored else "")
        + ". EO noise floor: the raw model's mean EO gap over random reassignments of the group labels among the "
        "positive test rows (pure test-split noise: what an exactly fair method measures on average). "
        f"ThresholdOptimizer 'better': a smaller EO gap at an accuracy at most {TO_TOLERANCE_PT:g} pt below the best "
        f"steerfair variant's or at least raw - {TARGET['accuracy_drop_pt']:g} pt; the signed differences are "
        f"ThresholdOptimizer minus that variant. 'Near the constant classifier': less than {NEAR_CONSTANT_PT:g} pt "
        "more accurate than predicting the majority class for every row, so a small gap says little.",
    ]
    return "\n".join(lines)


def overview(results: dict[str, Any]) -> str:
    """One table per model: tasks in rows, methods in columns, cells ``accuracy / EO gap`` (means over seeds)."""
    lines: list[str] = []
    tasks = results["tasks"]
    models = list(dict.fromkeys(m for r in tasks.values() for m in r["summary"]))
    for model in models:
        methods = list(dict.fromkeys(k for r in tasks.values() for k in r["summary"].get(model, {})))
        lines += [f"**{model}** (accuracy / EO gap, means over seeds)", "",
                  "| task | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]  # fmt: skip
        for name, r in tasks.items():
            by = r["summary"].get(model, {})
            cells = [f"{_mean(by[k], 'accuracy'):.3f} / {_mean(by[k], 'eo_gap'):.3f}" if k in by else "-"
                     for k in methods]  # fmt: skip
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip()


def _cell(s: dict[str, float]) -> str:
    """``mean ± std``."""
    return f"{s['mean']:.3f} ± {s['std']:.3f}"


def markdown(results: dict[str, Any]) -> str:
    """The verdict, then one table per (task, downstream model): methods in rows, metrics (mean ± std) in columns."""
    lines: list[str] = ["## Verdict", "", verdict_markdown(verdict(results)), "", "## Overview", "",
                        overview(results), "", "## Per task and model", ""]  # fmt: skip
    for name, res in results["tasks"].items():
        for model, by_method in res["summary"].items():
            raw = by_method.get("raw")
            lines += [
                f"### {name}, {model} ({len(res['seeds'])} seed{'s' * (len(res['seeds']) != 1)}, n={res['n_rows']:,})",
                "",
                "| method | accuracy | DP gap | EO gap | EOdds gap | EO gap / raw |",
                "|---|---|---|---|---|---|",
            ]
            for method, s in by_method.items():
                ratio = f"{s['eo_gap']['mean'] / raw['eo_gap']['mean']:.2f}" if raw and raw["eo_gap"]["mean"] else "-"
                cells = [_cell(s[k]) for k in METRICS]
                lines.append(f"| {method} | " + " | ".join(cells) + f" | {ratio} |")
            picked = res.get("per_seed", {}).get(model, {}).get("steerfair (shared, picked)", [])
            if picked:
                strengths = ", ".join(f"{s['strength']:g}" for s in picked)
                lines += ["", f"steerfair (shared, picked): strength per seed {strengths} (budget: half the raw "
                          "model's EO gap on a validation split of the training rows)"]  # fmt: skip
            lines.append("")
    return "\n".join(lines).rstrip()


_MARKERS = "os^vDP*XphH<>d8"


def figure(results: dict[str, Any]) -> Figure:
    """Accuracy against EO gap (mean ± std over seeds): one row of panels per task, one panel per model; the dashed
    staircase joins the Pareto-optimal methods (no other has both a smaller mean EO gap and a higher accuracy), and
    the grey band is the EO noise floor (when the results have one)."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plots import legend_below

    tasks = results["tasks"]
    cols = max(len(r["summary"]) for r in tasks.values())
    rows = len(tasks)
    if rows * cols > 4 and cols == 1:  # one model: wrap the tasks
        cols, rows = min(rows, 4), (rows + 3) // 4
    methods = list(dict.fromkeys(m for r in tasks.values() for by in r["summary"].values() for m in by))
    colors = colormaps["tab20"] if len(methods) > 10 else colormaps["tab10"]
    style = {m: (colors(i % colors.N), _MARKERS[i % len(_MARKERS)]) for i, m in enumerate(methods)}
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows + 0.25 * (len(methods) // 4 + 1)), layout="constrained")
    FigureCanvasAgg(fig)
    handles: dict[str, Any] = {}
    panels = [(n, m) for n, r in tasks.items() for m in r["summary"]]
    one_model = max(len(r["summary"]) for r in tasks.values()) == 1
    for i, (name, model) in enumerate(panels):
        if one_model:
            row, col = divmod(i, cols)
        else:
            row, col = list(tasks).index(name), list(tasks[name]["summary"]).index(model)
        ax = fig.add_subplot(rows, cols, row * cols + col + 1)
        for method, s in tasks[name]["summary"][model].items():
            color, marker = style[method]
            h = ax.errorbar(
                s["eo_gap"]["mean"], s["accuracy"]["mean"], xerr=s["eo_gap"]["std"], yerr=s["accuracy"]["std"],
                fmt=marker, color=color, ms=9 if method.startswith("steerfair") else 6, label=method, capsize=2,
            )  # fmt: skip
            handles.setdefault(method, h)
        front = _pareto_front(tasks[name]["summary"][model])
        ax.plot(*front, color="0.6", lw=1, ls="--", zorder=0)
        raw_seeds = tasks[name].get("per_seed", {}).get(model, {}).get("raw", [])
        floors = [s["eo_floor"] for s in raw_seeds if "eo_floor" in s]
        if floors:  # what an exactly fair method measures on average on these test rows
            handles.setdefault("EO noise floor", ax.axvspan(0.0, sum(floors) / len(floors), color="0.88", zorder=0))
        ax.set_title(f"{name}, {model}", fontsize=9)
        ax.set_xlabel("equal-opportunity gap (lower is fairer)", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        ax.grid(alpha=0.3)
    names = methods + [k for k in handles if k not in methods]
    legend_below(fig, [handles[m] for m in names], names, max_cols=5, fontsize=8)
    return fig


def _pareto_front(by: dict[str, Any]) -> tuple[list[float], list[float]]:
    """The methods no other method beats on both mean EO gap and mean accuracy, as a staircase by EO gap."""
    pts = sorted((_mean(s, "eo_gap"), -_mean(s, "accuracy")) for s in by.values())
    xs: list[float] = []
    ys: list[float] = []
    for eo, neg_acc in pts:
        if not ys or -neg_acc > ys[-1]:
            if xs:
                xs.append(eo)
                ys.append(ys[-1])
            xs.append(eo)
            ys.append(-neg_acc)
    return xs, ys


def plot(results: dict[str, Any], path: str | Path) -> None:
    """Draw :func:`figure` into ``path`` (the format from its suffix)."""
    figure(results).savefig(path, dpi=120)
