"""Every legend entry of the experiment plots lies inside the saved figure (none cut off an edge)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402

from steerfair.evaluation import privacy_tradeoff, tabular_benchmark  # noqa: E402
from steerfair.evaluation.bios_report import tradeoff_figure  # noqa: E402


def stat(rng: np.random.Generator) -> dict[str, float]:
    return {"mean": float(rng.uniform(0.05, 0.9)), "std": float(rng.uniform(0, 0.05))}


def assert_legend_inside(fig: Figure) -> None:
    """The figure's legend, and each of its entries' texts, lie inside the figure's box once drawn."""
    fig.canvas.draw()
    assert len(fig.legends) == 1
    legend: Legend = fig.legends[0]
    outer = fig.bbox
    boxes = [legend.get_window_extent(), *(t.get_window_extent() for t in legend.get_texts())]
    for box in boxes:
        assert box.x0 >= outer.x0 - 0.5 and box.x1 <= outer.x1 + 0.5, (box, outer)
        assert box.y0 >= outer.y0 - 0.5 and box.y1 <= outer.y1 + 0.5, (box, outer)
    assert [t.get_text() for t in legend.get_texts()]  # the entries are there


@pytest.mark.parametrize("panels", [1, 2, 3, 5])
def test_tabular_benchmark_legend_inside_figure(panels: int) -> None:
    rng = np.random.default_rng(panels)
    tasks: dict[str, dict[str, object]] = {}
    for p in range(panels):
        summary = {model: {m: {"eo_gap": stat(rng), "accuracy": stat(rng)} for m in tabular_benchmark.METHODS}
                   for model in tabular_benchmark.MODELS[: 1 + p % 2]}  # fmt: skip
        tasks[f"task{p}"] = {"summary": summary}
    fig = tabular_benchmark.figure({"tasks": tasks})
    assert_legend_inside(fig)
    assert {t.get_text() for t in fig.legends[0].get_texts()} == set(tabular_benchmark.METHODS)


def test_privacy_tradeoff_legend_inside_figure() -> None:
    rng = np.random.default_rng(0)
    metrics = ("eo_gap", "dp_gap", "accuracy")
    by_eps = {k: {m: {x: stat(rng) for x in metrics} for m in privacy_tradeoff.METHODS} for k in ("0.5", "2", "inf")}
    refs = {ref: {x: stat(rng) for x in metrics} for ref in ("raw", "non-private")}
    summary = {"by_epsilon": by_eps, **refs}
    fig = privacy_tradeoff.figure({"data": "adult", "summary": summary})
    assert_legend_inside(fig)


@pytest.mark.parametrize("panels", [1, 2])
def test_bios_tradeoff_legend_inside_figure(panels: int) -> None:
    rng = np.random.default_rng(panels)
    names = ("none", "steerfair", "mean_matching", "mimic", "leace", "inlp")
    runs = {
        f"run {p}": {
            "methods": {
                n: {"accuracy": stat(rng)["mean"], "rms_tpr_gap": stat(rng)["mean"], "noise_floor_rms": 0.02}
                for n in names
            }
        }
        for p in range(panels)
    }
    assert_legend_inside(tradeoff_figure(runs))


def test_saved_image_has_the_figure_size(tmp_path) -> None:
    """The saved PNG is the figure (no cropping that could hide a legend cut off the figure)."""
    rng = np.random.default_rng(0)
    summary = {"logistic": {m: {"eo_gap": stat(rng), "accuracy": stat(rng)} for m in tabular_benchmark.METHODS}}
    results = {"tasks": {"synthetic": {"summary": summary}}}
    path = tmp_path / "plot.png"
    tabular_benchmark.plot(results, path)
    import matplotlib.image

    height, width = matplotlib.image.imread(path).shape[:2]
    fig = tabular_benchmark.figure(results)
    assert (width, height) == (round(fig.get_figwidth() * 120), round(fig.get_figheight() * 120))
