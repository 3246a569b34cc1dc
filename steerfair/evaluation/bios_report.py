"""Tables and plots of Bios protocol results."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..files import atomic_write_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["markdown", "plot_gaps", "plot_tradeoff", "tradeoff_figure"]

_LABELS = {
    "none": "none (no steering)",
    "steerfair": "steerfair (ideal templates)",
    "mean_matching": "mean matching",
    "mimic": "Gaussian OT (MiMiC)",
    "leace": "LEACE",
    "inlp": "INLP",
}


def _pm(s: dict[str, Any], key: str, digits: int = 3, spread: bool = True) -> str:
    """``mean ± std`` of a summarised metric (``-`` where it is undefined: NaN, or None from JSON); the mean alone
    without ``spread`` (one seed has no spread to show)."""
    value = s.get(key)
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.{digits}f} ± {s.get(key + '_std', 0.0):.{digits}f}" if spread else f"{value:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """A markdown table: test accuracy, RMS TPR gap (gold and predicted gender), noise floor, excess RMS over the
    floor, correlation of the
    gaps with the share of women, and the gender-probe accuracy after steering (mean ± std over seeds; the mean alone
    for one seed).

    Args:
        results: The output of :func:`~steerfair.evaluation.bios_protocol.run_protocol`.

    Returns:
        str: The table.
    """
    gold, pred = results["methods"], results["methods_predicted_gender"]
    base = gold.get("none")
    many = results.get("config", {}).get("seeds", 2) != 1

    def pm(s: dict[str, Any], key: str, digits: int = 3) -> str:
        return _pm(s, key, digits, many)

    lines = [
        "| method | accuracy | RMS TPR gap | vs none | noise floor | excess RMS | corr(gap, % women) | gender probe | "
        "accuracy (pred. gender) | RMS (pred. gender) | excess RMS (pred. gender) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in gold.items():
        ratio = f"{s['rms_tpr_gap'] / base['rms_tpr_gap']:.2f}x" if base else "-"
        p = pred[name]
        lines.append(
            f"| {_LABELS.get(name, name)} | {pm(s, 'accuracy', 4)} | {pm(s, 'rms_tpr_gap')} | {ratio} | "
            f"{s['noise_floor_rms']:.3f} | {pm(s, 'excess_rms_tpr_gap')} | {pm(s, 'gap_share_corr', 2)} | "
            f"{s['gender_probe_accuracy']:.3f} | {pm(p, 'accuracy', 4)} | {pm(p, 'rms_tpr_gap')} | "
            f"{pm(p, 'excess_rms_tpr_gap')} |"
        )
    return "\n".join(lines)


def plot_gaps(
    results: dict[str, Any], path: str | Path, methods: tuple[str, ...] = ("none", "steerfair", "mimic")
) -> Path:
    """Scatter of the per-occupation TPR gap (test, gold gender, mean over seeds) against the share of women,
    one panel per method, with the occupations named.

    Args:
        results: The output of :func:`~steerfair.evaluation.bios_protocol.run_protocol`.
        path: The image file written (atomically; its suffix gives the format).
        methods: The methods shown (those present in the results; when none of them is, the first three that are).

    Returns:
        Path: ``path``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    chosen = [m for m in methods if m in results["methods"]] or list(results["methods"])[:3]
    if not chosen:
        raise ValueError("the results hold no method to plot")
    share = results["share"]
    fig, axes = plt.subplots(1, len(chosen), figsize=(5.2 * len(chosen), 4.6), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], chosen, strict=True):
        s = results["methods"][name]
        gaps = s["tpr_gaps"]
        xs = [share[c] for c in gaps]
        ys = [gaps[c] for c in gaps]
        ax.axhline(0, color="0.6", lw=0.8)
        ax.scatter(xs, ys, s=18, color="C3" if name == "none" else "C0")
        for c, x, y in zip(gaps, xs, ys, strict=True):
            ax.annotate(c, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points", color="0.3")
        ax.set_title(f"{_LABELS.get(name, name)}\nRMS {s['rms_tpr_gap']:.3f}, acc {s['accuracy']:.3f}", fontsize=9)
        ax.set_xlabel("share of women in the occupation (train)")
    axes[0][0].set_ylabel("TPR gap (female - male), test")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


def plot_tradeoff(runs: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """Draw :func:`tradeoff_figure` into ``path`` (the format from its suffix; parent folders are created).

    Args:
        runs: ``{title: results}``, one panel each.
        path: The image file written (atomically; its suffix gives the format).

    Returns:
        Path: ``path``.

    Raises:
        ValueError: If ``runs`` is empty.
    """
    fig = tradeoff_figure(runs)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_file(out, lambda tmp: fig.savefig(tmp, dpi=130))  # a kill while drawing keeps an earlier image
    return out


def tradeoff_figure(runs: dict[str, dict[str, Any]]) -> Figure:
    """Accuracy against RMS TPR gap (test, gold gender, mean ± std over seeds) of every method, one panel per run
    (``{title: results}``), with what the numbers are judged against: the noise floor (dashed), half the
    unsteered gap (dotted) and the band of accuracy within 1 point of the unsteered classifier (shaded). The
    legend lies below the panels, inside the figure.

    Args:
        runs: ``{title: results}``, one panel each.

    Returns:
        Figure: the figure (on an Agg canvas).

    Raises:
        ValueError: If ``runs`` is empty.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plots import legend_below

    if not runs:
        raise ValueError("runs is empty")
    fig = Figure(figsize=(4.6 * len(runs), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(runs), squeeze=False)
    for ax, (title, res) in zip(axes[0], runs.items(), strict=True):
        methods = res["methods"]
        base = methods.get("none")
        if base is not None:
            acc0, rms0 = base["accuracy"], base["rms_tpr_gap"]
            ax.axvspan(acc0 - 0.01, acc0 + 0.01, color="0.92", zorder=0, label="accuracy within 1 pt")
            ax.axhline(0.5 * rms0, color="0.4", ls=":", lw=1, label="half the unsteered gap")
        floor = max(s["noise_floor_rms"] for s in methods.values())
        ax.axhline(floor, color="C3", ls="--", lw=1, label="noise floor")
        for j, (name, s) in enumerate(methods.items()):
            err = {"xerr": s.get("accuracy_std", 0.0), "yerr": s.get("rms_tpr_gap_std", 0.0)}
            ax.errorbar(s["accuracy"], s["rms_tpr_gap"], **err, fmt="o", ms=5, color=f"C{j}",
                        label=_LABELS.get(name, name), capsize=2)  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("accuracy (test)")
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("RMS TPR gap (test)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    legend_below(fig, handles, labels, max_cols=5, fontsize=7, frameon=False)
    return fig
