"""Figure helpers shared by the experiment plots: a legend that always fits inside the figure.

A figure-level legend below the panels (``loc="outside lower center"`` of a constrained-layout figure) is
centred on the figure; when its entries in one row are wider than the figure, the first and last entries are
cut off the saved image. :func:`legend_below` lays the entries out in as many columns as fit the figure's width
(fewer columns, more rows), so every entry is inside the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.legend import Legend

__all__ = ["legend_below", "legend_inside_figure"]


def legend_inside_figure(fig: Figure, legend: Legend, *, tolerance: float = 0.5) -> bool:
    """Whether ``legend`` lies inside ``fig`` once drawn (window extents in pixels, ``tolerance`` pixels of slack).

    Args:
        fig: The figure (drawn by this call).
        legend: A legend of ``fig``.
        tolerance: Pixels the legend may overhang (rounding of the renderer).

    Returns:
        bool: ``True`` if the legend's drawn box lies within the figure's box.
    """
    fig.canvas.draw()
    box, outer = legend.get_window_extent(), fig.bbox
    return (
        box.x0 >= outer.x0 - tolerance
        and box.y0 >= outer.y0 - tolerance
        and box.x1 <= outer.x1 + tolerance
        and box.y1 <= outer.y1 + tolerance
    )


def legend_below(
    fig: Figure,
    handles: Sequence[Any],
    labels: Sequence[str],
    *,
    max_cols: int = 5,
    fontsize: float = 8,
    frameon: bool = True,
) -> Legend:
    """Add a figure legend below the panels in as many columns (at most ``max_cols``) as fit the figure's width.

    The figure must use the constrained layout (``layout="constrained"``), which makes room for the legend
    below the panels.

    Args:
        fig: A constrained-layout figure with an Agg (or other) canvas.
        handles: The legend's artists.
        labels: Their labels.
        max_cols: The most entries in one row.
        fontsize: The legend's font size.
        frameon: Draw a frame around the legend.

    Returns:
        Legend: the legend, inside the figure (as far as one column fits; a single entry wider than the
        figure is the only case left outside).
    """
    ncols = max(1, min(len(labels), max_cols))
    while True:
        legend = fig.legend(
            handles, labels, loc="outside lower center", ncols=ncols, fontsize=fontsize, frameon=frameon
        )
        if ncols == 1 or legend_inside_figure(fig, legend):
            return legend
        legend.remove()
        ncols -= 1
