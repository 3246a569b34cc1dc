"""The binary group-fairness metrics of one classifier bundled into a printable / plottable report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .gaps import spread
from .inputs import equals_elementwise, prepare
from .rates import GroupRates, group_rates

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["FairnessReport", "fairness_report"]


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "nan" if not np.isfinite(v) else f"{float(v):.4f}"
    return str(v)


@dataclass(frozen=True, eq=False)
class FairnessReport:
    """Summary of the binary group-fairness metrics of one classifier.

    Attributes:
        accuracy (float): Overall accuracy.
        dp_gap (float): Demographic-parity gap (max minus min selection rate).
        eo_gap (float): Equal-opportunity gap (max minus min TPR).
        eodds_gap (float): Equalized-odds gap (larger of the TPR and FPR gaps).
        worst_group_accuracy (float): Smallest per-group accuracy.
        per_group (GroupRates): The per-group table.
    """

    accuracy: float
    dp_gap: float
    eo_gap: float
    eodds_gap: float
    worst_group_accuracy: float
    per_group: GroupRates = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable for JSON-serialisable group labels)."""
        return {
            "accuracy": float(self.accuracy),
            "dp_gap": float(self.dp_gap),
            "eo_gap": float(self.eo_gap),
            "eodds_gap": float(self.eodds_gap),
            "worst_group_accuracy": float(self.worst_group_accuracy),
            "pos_label": self.per_group.pos_label.item()
            if isinstance(self.per_group.pos_label, np.generic)
            else self.per_group.pos_label,
            "per_group": self.per_group.rows(),
        }

    def __str__(self) -> str:
        lines = [
            "| metric | value |",
            "|---|---|",
            f"| accuracy | {_fmt(self.accuracy)} |",
            f"| demographic parity gap | {_fmt(self.dp_gap)} |",
            f"| equal opportunity gap | {_fmt(self.eo_gap)} |",
            f"| equalized odds gap | {_fmt(self.eodds_gap)} |",
            f"| worst-group accuracy | {_fmt(self.worst_group_accuracy)} |",
            "",
            "| group | count | accuracy | selection rate | TPR | FPR |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.per_group.rows():
            cells = [row["group"], row["count"], row["accuracy"], row["selection_rate"], row["tpr"], row["fpr"]]
            lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
        return "\n".join(lines)

    def plot(self, path: Any = None) -> Figure:
        """Grouped bar chart of per-group selection rate, TPR and FPR.

        A rate that is undefined (a group without positives has no TPR) is marked "n/a" instead of a bar. Uses
        matplotlib's Agg canvas directly (no pyplot state, no global backend switch).

        Args:
            path (str or path-like, optional): If given, the figure is saved there (format from the extension).

        Returns:
            matplotlib.figure.Figure: The figure.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:  # pragma: no cover
            raise ImportError("FairnessReport.plot needs matplotlib: pip install 'steerfair[plot]'") from exc
        pg = self.per_group
        names = [str(v) for v in pg.groups.tolist()]
        x = np.arange(len(names))
        width = 0.27
        fig = Figure(figsize=(max(4.0, 1.2 * len(names) + 2.0), 3.5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        series = [("selection rate", pg.selection_rate), ("TPR", pg.tpr), ("FPR", pg.fpr)]
        for j, (label, vals) in enumerate(series):
            vals = np.asarray(vals, dtype=np.float64)
            at = x + (j - 1) * width
            defined = np.isfinite(vals)
            ax.bar(at[defined], vals[defined], width, label=label, color=f"C{j}")
            for xi in at[~defined]:  # a rate of a group with no rows of its class: marked, not drawn as 0
                ax.text(xi, 0.02, "n/a", ha="center", va="bottom", rotation=90, fontsize=7, color=f"C{j}")
        ax.set_xticks(x, names)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel("group")
        ax.set_ylabel("rate")
        ax.set_title(
            f"DP gap {_fmt(self.dp_gap)}, EO gap {_fmt(self.eo_gap)}, EOdds gap {_fmt(self.eodds_gap)}", fontsize=9
        )
        ax.legend(fontsize=8)
        if path is not None:
            fig.savefig(path)
        return fig


def fairness_report(y_true: Any, y_pred: Any, groups: Any, *, pos_label: Any = 1) -> FairnessReport:
    """Compute every binary group-fairness metric at once.

    Args:
        y_true, y_pred (array-like of shape (n,)): True and predicted labels.
        groups (array-like of shape (n,)): Group of every sample; at least two distinct values.
        pos_label (hashable, default 1): The positive label.

    Returns:
        FairnessReport: Overall accuracy, the DP / EO / equalized-odds gaps, worst-group accuracy and the per-group
            table.
    """
    yt, yp, g = prepare(y_true, y_pred, groups)
    r = group_rates(yt, yp, g, pos_label=pos_label)
    eo = spread(r.tpr, r.groups, "max_minus_min", "true-positive rate")
    fp = spread(r.fpr, r.groups, "max_minus_min", "false-positive rate")
    finite = [v for v in (eo, fp) if math.isfinite(v)]
    return FairnessReport(
        accuracy=float(np.mean(equals_elementwise(yt, yp))),
        dp_gap=spread(r.selection_rate, r.groups, "max_minus_min", "selection rate"),
        eo_gap=eo,
        eodds_gap=max(finite) if finite else math.nan,
        worst_group_accuracy=float(np.min(r.accuracy)),
        per_group=r,
    )
