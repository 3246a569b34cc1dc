"""The accuracy ceiling of every label-free shared target on the benchmark's tables, beside what the shared target
reaches, in one run.

    OMP_NUM_THREADS=1 python recipes/shared_target_ceiling.py --out results/shared_ceiling --seeds 0 1 2 3 4

Why there is a ceiling (docs/shared_target.md): label-free maps carry every group's class-conditional laws onto one
common law ``Q_y = K_a P_a,y`` per class, so ``Q`` is a garbling of every group's experiment, and Bayes accuracy at any
class prior can only fall under garbling (Blackwell). A model trained on the steered rows, whatever it is, therefore
has accuracy on group ``a`` at most the Bayes accuracy, at group ``a``'s class prior, of the greatest common garbling
of the groups' experiments (for two classes: the pointwise minimum of their ROC curves). The overall ceiling weighs
the groups by their test shares; beside it, ``own``: the same with each group's own curve (no garbling). Both let
every group have its own operating point, which only a model that reads the group can have; a model that does not
read it has one TPR and one FPR for every group on a shared target, as every equalized-odds classifier does, and
``ceiling_one_point`` is their bound: one false-positive rate for all groups on the minimum curve.

Estimated per task, seed (the tabular benchmark's 70/30 split) and model kind (``lr``, ``gbm``) by one group-aware
model of that kind (:func:`ceiling_terms`). The estimates are limited by the model and the rows, and the best
threshold is read off the test rows (optimistic by about the gap between ``own`` and the raw model), so the
comparison that carries is the one within the estimator: ``own - ceiling``, the accuracy any label-free common law
must give up. Beside them, in the same run: the raw model, ``FairSteerer(target="shared")`` (the benchmark's
``steerfair (shared)``) and the same with ``discrete="passthrough"`` (one-hot and two-valued columns left as they
are, so no guarantee on them: it shows how much of the shared target's loss its discrete kernels cause), with their
EO gaps, :class:`steerfair.SharedScore` (the benchmark's ``steerfair (shared score)``: the greatest common garbling
of the groups' binned experiments of a cross-fitted score, docs/shared_target.md section 12), and fairlearn's
ThresholdOptimizer with equal TPR and with equalized odds (the same model kind on the raw rows, reading the group at
prediction: the strongest alternatives for one deployed model). Writes ``ceiling.json`` and ``ceiling.md`` (two
tables) under ``--out``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from steerfair.datasets import load_dataset
from steerfair.evaluation.output import run_task_seeds
from steerfair.evaluation.tabular_methods import Fold, fit_model, predict, prepare
from steerfair.metrics import equal_opportunity_gap, equalized_odds_gap

TASKS = ("adult/sex", "adult/race", "compas/race", "german/sex", "law/race")
MODELS = ("lr", "gbm")


def _prior(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.array([np.mean(y == c) for c in classes])


def _with_group(X: np.ndarray, groups: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Features, the group's indicators and their products with the features (each group its own slopes)."""
    ind = (groups[:, None] == levels[None, 1:]).astype(np.float64)
    return np.column_stack([X, ind, *(X * ind[:, [j]] for j in range(ind.shape[1]))])


def _roc_hull(y: np.ndarray, score: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The upper concave hull of the ROC curve of ``score`` on the rows ``y`` (reachable by randomising between
    thresholds), evaluated at the false-positive rates ``grid``."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, score)
    hull: list[tuple[float, float]] = []
    for point in sorted(zip(fpr, tpr, strict=True)):  # monotone chain, upper hull
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (point[1] - y1) - (y2 - y1) * (point[0] - x1) >= 0:  # hull[-1] lies on or below the chord
                hull.pop()
            else:
                break
        hull.append(point)
    hx, hy = np.array(hull).T
    return np.interp(grid, hx, hy)


def ceiling_terms(kind: str, seed: int, fold: Fold) -> dict[str, Any]:
    """Per group: the accuracy at its class prior of the greatest common garbling of the groups' experiments, and
    the test-share-weighted overall ceiling (two classes).

    For two classes an experiment is its ROC curve, one experiment garbles another where its curve lies below, and
    the greatest common garbling's curve is the pointwise minimum of the groups' (docs/shared_target.md). Each
    group's curve is estimated on its test rows from the scores of one group-aware model (the features, the group's
    indicators and their products, trained on every training row: a model per group underestimates the small groups'
    experiments), taking the concave hull; group ``a``'s ceiling is
    ``max_f q_a(1) min_b ROC_b(f) + q_a(0) (1 - f)``. That bound lets each group have its own operating point ``f``,
    which only a model that reads the group can have; a model that does not read the group has the same TPR and FPR
    in every group on a shared target, and so does every equalized-odds classifier of these scores, so for them the
    bound is ``ceiling_one_point = max_f sum_a share_a (q_a(1) min_b ROC_b(f) + q_a(0) (1 - f))``.
    """
    tr, te = fold.train, fold.test
    classes = np.unique(tr.y)
    if len(classes) != 2:
        raise ValueError(f"the ROC ceiling needs two classes, got {len(classes)}")
    levels = np.unique(tr.groups)
    clf = fit_model(kind, seed, _with_group(tr.to_numpy(), tr.groups, levels), tr.y)
    score = clf.predict_proba(_with_group(te.to_numpy(), te.groups, levels))[:, list(clf.classes_).index(classes[1])]
    grid = np.linspace(0.0, 1.0, 20001)
    curves = {b: _roc_hull(te.y[te.groups == b] == classes[1], score[te.groups == b], grid) for b in levels}
    meet = np.min(np.array(list(curves.values())), axis=0)
    per_group: dict[str, Any] = {}
    for a in levels:
        q1 = float(np.mean(tr.y[tr.groups == a] == classes[1]))
        own = float(np.max(q1 * curves[a] + (1 - q1) * (1 - grid)))
        ceiling = float(np.max(q1 * meet + (1 - q1) * (1 - grid)))
        per_group[str(a)] = {"own": own, "ceiling": ceiling, "share": float(np.mean(te.groups == a)), "prior": q1}
    overall = sum(g["share"] * g["ceiling"] for g in per_group.values())
    own_overall = sum(g["share"] * g["own"] for g in per_group.values())
    # one operating point for every group: what a model that does not read the group reaches on a shared target
    # (its TPR and FPR are the same in every group), and what any equalized-odds classifier of these scores reaches
    one_point = sum(
        g["share"] * (g["prior"] * meet + (1 - g["prior"]) * (1 - grid)) for g in per_group.values()
    )  # fmt: skip
    return {"groups": per_group, "ceiling": float(overall), "own": float(own_overall),
            "ceiling_one_point": float(np.max(one_point))}  # fmt: skip


def run_seed(task: str, seed: int) -> dict[str, Any]:
    """Raw and shared-target accuracy and EO gap, the estimated ceiling, and the shared target with its discrete
    columns passed through (no guarantee on them: where the construction's loss comes from), per model kind."""
    from steerfair import FairSteerer

    dataset, sensitive = task.split("/")
    tr, te = load_dataset(dataset, sensitive=sensitive).split(0.3, seed=seed)
    fold, out = Fold(tr, te, seed), {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        steered = {
            "shared": prepare("steerfair (shared)", fold)[:2],
            "shared_score": prepare("steerfair (shared score)", fold)[:2],
        }
        passthrough = FairSteerer(target="shared", marginals="copula", discrete="passthrough", random_state=seed)
        passthrough.fit(tr.X, tr.y, groups=tr.groups)
        steered["shared_passthrough"] = tuple(
            np.asarray(passthrough.transform(d.X, groups=d.groups), dtype=np.float64) for d in (tr, te)
        )
        for kind in MODELS:
            preds = {"raw": fit_model(kind, seed, tr.to_numpy(), tr.y).predict(te.to_numpy())}
            for name, (Xtr, Xte) in steered.items():
                preds[name] = fit_model(kind, seed, Xtr, tr.y).predict(Xte)
            # the strongest alternatives in the same run: ThresholdOptimizer (equal TPR; equal TPR and FPR), raw
            # rows, the group read at prediction
            preds["threshold_optimizer"] = predict("threshold_optimizer", kind, fold)[0]
            preds["threshold_optimizer_eodds"] = predict("threshold_optimizer (equalized odds)", kind, fold)[0]
            row: dict[str, Any] = {}
            for name, pred in preds.items():
                row[f"{name}_accuracy"] = float(np.mean(pred == te.y))
                row[f"{name}_eo_gap"] = float(equal_opportunity_gap(te.y, pred, groups=te.groups))
                row[f"{name}_eodds_gap"] = float(equalized_odds_gap(te.y, pred, groups=te.groups))
            out[kind] = {**row, **ceiling_terms(kind, seed, fold)}
            print(f"{task} seed {seed} {kind}: raw {row['raw_accuracy']:.3f} shared {row['shared_accuracy']:.3f} "
                  f"passthrough {row['shared_passthrough_accuracy']:.3f} score {row['shared_score_accuracy']:.3f} "
                  f"ceiling {out[kind]['ceiling']:.3f}", flush=True)  # fmt: skip
    return out


def markdown(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Means over seeds per task and model (differences in points, mean ± standard deviation over seeds)."""
    lines = [
        "| task | model | raw | own (no garbling) | ceiling | shared target | own - ceiling (pt) | shared - raw (pt) "
        "| shared - ceiling (pt) | EO gap raw / shared | shared, discrete passed through: accuracy / EO gap "
        "| ThresholdOptimizer: accuracy / EO gap |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pts(x: np.ndarray) -> str:
        return f"{100 * x.mean():+.1f} ± {100 * x.std():.1f}"

    for task, seeds in runs.items():
        for kind in MODELS:
            keys = ("raw_accuracy", "own", "ceiling", "shared_accuracy", "raw_eo_gap", "shared_eo_gap",
                    "shared_passthrough_accuracy", "shared_passthrough_eo_gap", "threshold_optimizer_accuracy",
                    "threshold_optimizer_eo_gap")  # fmt: skip
            raw, own, ceil, shared, raw_gap, gap, pt_acc, pt_gap, to_acc, to_gap = (
                np.array([s[kind][k] for s in seeds]) for k in keys
            )
            lines.append(
                f"| {task} | {kind} | {raw.mean():.3f} | {own.mean():.3f} | {ceil.mean():.3f} | {shared.mean():.3f} | "
                f"{pts(own - ceil)} | {pts(shared - raw)} | {pts(shared - ceil)} | {raw_gap.mean():.3f} / "
                f"{gap.mean():.3f} | {pt_acc.mean():.3f} / {pt_gap.mean():.3f} | "
                f"{to_acc.mean():.3f} / {to_gap.mean():.3f} |"
            )
    return "\n".join(lines) + "\n\n" + score_markdown(runs)


#: The methods of the second table: label-free shared targets and the post-processing alternatives.
SCORE_METHODS = (("raw", "raw"), ("shared", "FairSteerer(target='shared')"), ("shared_score", "SharedScore"),
                 ("threshold_optimizer", "ThresholdOptimizer (equal TPR)"),
                 ("threshold_optimizer_eodds", "ThresholdOptimizer (equalized odds)"))  # fmt: skip

#: The three figures of every method's cell, and the keys of SharedScore's two differences.
METRIC_KEYS = ("accuracy", "eo_gap", "eodds_gap")
SCORE_GAP_KEYS = ("shared_score_accuracy", "raw_accuracy", "ceiling_one_point")


def score_markdown(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Accuracy / EO gap / equalized-odds gap of the label-free targets and ThresholdOptimizer (means over seeds),
    the estimated ceiling at one operating point for every group, ``SharedScore``'s accuracy change against raw and
    its distance to that ceiling."""
    head = " | ".join(label for _, label in SCORE_METHODS)
    lines = [
        f"| task | model | {head} | ceiling, one operating point | SharedScore - raw (pt) "
        "| SharedScore - that ceiling (pt) |",
        "|---|---|" + "---|" * (len(SCORE_METHODS) + 3),
    ]
    for task, seeds in runs.items():
        for kind in MODELS:
            cells = []
            for name, _ in SCORE_METHODS:
                acc, eo, eodds = (np.mean([s[kind][f"{name}_{m}"] for s in seeds]) for m in METRIC_KEYS)
                cells.append(f"{acc:.3f} / {eo:.3f} / {eodds:.3f}")
            score, raw, ceil = (np.array([s[kind][k] for s in seeds]) for k in SCORE_GAP_KEYS)
            lines.append(
                f"| {task} | {kind} | {' | '.join(cells)} | {ceil.mean():.3f} | {100 * (score - raw).mean():+.1f} ± "
                f"{100 * (score - raw).std():.1f} | {100 * (score - ceil).mean():+.1f} ± "
                f"{100 * (score - ceil).std():.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    run_task_seeds(
        argv,
        description=__doc__.split("\n\n")[0],
        script="recipes/shared_target_ceiling.py",
        tasks=TASKS,
        default_out="results/shared_ceiling",
        stem="ceiling",
        run_seed=run_seed,
        markdown=markdown,
        default_seeds=(0, 1, 2, 3, 4),
    )


if __name__ == "__main__":
    main()
