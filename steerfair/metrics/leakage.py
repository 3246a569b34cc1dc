"""How well the group can still be told apart within each class: an audit of the shared targets' premise.

The shared targets (:mod:`steerfair.shared_target`, :mod:`steerfair.shared_positive`) promise equal TPR (and FPR)
for *every* downstream model when, after steering, ``X | Y=y, A=a`` has one law for all groups ``a``. On Gaussian
cells that holds by construction; on a real table it holds only as far as the steering map's model of the cells
(two moments of the normal scores) is right. :func:`group_leakage` measures what is left: for each class, a
discriminator (by default histogram gradient boosting, the kind of model that reads what a linear model misses)
is trained to predict the group from the features among that class's rows, and scored out of fold.

Why this is the right quantity. For a classifier ``h`` and two groups ``a, b``, the TPR gap
``P(h=1 | Y=1, a) − P(h=1 | Y=1, b)`` is exactly the advantage of ``h`` used as a group discriminator among the
positives. So the largest gap any threshold of a discriminator's score shows between two groups (its Kolmogorov-
Smirnov distance, :attr:`ClassLeakage.advantage`) is an EO gap that a model of that kind *can* have on those
rows, and if no discriminator of a family finds an advantage above the sampling floor, no model of that family
has a TPR gap above it either. The measurement is a lower bound on what the family can find (one fitted
discriminator, finite rows), not a certificate.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .inputs import as_1d, check_lengths, unique_values

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ClassLeakage", "group_leakage", "plot_group_leakage"]


@dataclass(frozen=True)
class ClassLeakage:
    """The group leakage among one class's rows.

    Attributes:
        label: The class.
        n: Its number of rows.
        auc: Out-of-fold ROC AUC of the discriminator (two groups; one-vs-rest macro average for more). 0.5 is
            no leakage.
        advantage: The largest ``|P(s > t | a) − P(s > t | b)|`` over pairs of groups ``a, b`` and thresholds
            ``t`` of the discriminator's out-of-fold score ``s`` for group ``a`` (Kolmogorov-Smirnov distance):
            the largest TPR gap (for the positive class) that thresholding that score shows.
        floor: The mean ``advantage`` over random reassignments of the groups among these rows with the scores
            kept (group sizes kept): what sampling alone gives. Leakage shows as ``advantage`` well above it.
    """

    label: Hashable
    n: int
    auc: float
    advantage: float
    floor: float


def _ks(s: np.ndarray, in_a: np.ndarray, in_b: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between the scores of two row sets (over every threshold)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(s[in_a], s[in_b], method="asymp").statistic)


def _advantage(proba: np.ndarray, g: np.ndarray, levels: np.ndarray) -> float:
    """Largest KS distance, over ordered pairs of groups, of the score "probability of group a"."""
    best = 0.0
    for i, a in enumerate(levels):
        for b in levels:
            if a != b:
                best = max(best, _ks(proba[:, i], g == a, g == b))
    return best


def _check_X(X: Any) -> np.ndarray:
    if X is None:
        raise ValueError("X must be a 2-D array of features; got None")
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    try:
        arr = np.asarray(X, dtype=np.float64) if not hasattr(X, "to_numpy") else X.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must hold numbers only (encode non-numeric columns first): {exc}") from None
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"X must be 2-D (rows x features, at least one feature); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("X contains NaN or infinite values; impute or drop them first")
    return arr


def group_leakage(
    X: Any,
    y: Any,
    groups: Any,
    *,
    estimator: Any = None,
    cv: int = 5,
    permutations: int = 20,
    random_state: int | np.random.Generator | None = 0,
    skip_small: bool = False,
) -> dict[Hashable, ClassLeakage]:
    """Per class, how well the group can be predicted from ``X`` among that class's rows (out of fold).

    Args:
        X: Features, ``(n, d)``, e.g. a table steered by ``FairSteerer(target="shared_positive")``.
        y: Class labels, ``(n,)`` (the true labels of the rows, as the guarantee is about ``X | Y``).
        groups: Group labels, ``(n,)``; at least two groups in every class.
        estimator: A scikit-learn classifier with ``predict_proba`` (cloned per fold). Default:
            ``HistGradientBoostingClassifier(random_state=random_state)``, which reads interactions and atoms.
        cv: Stratified folds per class (each group needs at least ``cv`` rows in every class).
        permutations: Random group reassignments behind :attr:`ClassLeakage.floor`.
        random_state: Seed (or numpy ``Generator``) of the folds, the reassignments and the default estimator.
        skip_small: Leave out, with a warning that names them, the classes with rows of one group only or a group
            with fewer than ``cv`` rows (many small classes, as in Bios), instead of raising.

    Returns:
        ``{class: ClassLeakage}`` for every class of ``y`` (every measurable one with ``skip_small``), in sorted
        order.

    Raises:
        ValueError: For mismatched lengths, missing values, non-finite features, and (unless ``skip_small``) a
            class with rows of one group only or a group with fewer than ``cv`` rows in a class (the message names
            the class and group).
    """
    import warnings

    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    Xa = _check_X(X)
    ya, ga = as_1d(y, "y"), as_1d(groups, "groups")
    check_lengths(X=np.empty(Xa.shape[0]), y=ya, groups=ga)
    if isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or cv < 2:
        raise ValueError(f"cv must be an integer >= 2 (folds per class); got {cv!r}")
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) or permutations < 1:
        raise ValueError(f"permutations must be a positive integer; got {permutations!r}")
    from ..random_state import as_generator, is_seed

    rng = as_generator(random_state)  # names a bad random_state; a Generator is used as is
    seed: int | None = None  # the seed the folds and the default estimator take
    if isinstance(random_state, (int, np.integer)) and is_seed(random_state):
        seed = int(random_state)
    elif random_state is not None:
        seed = int(rng.integers(2**31 - 1))
    if estimator is None:
        estimator = HistGradientBoostingClassifier(random_state=seed)
    elif not hasattr(estimator, "predict_proba"):
        name = type(estimator).__name__
        raise ValueError(f"estimator must have predict_proba (a probabilistic classifier); got {name}")
    out: dict[Hashable, ClassLeakage] = {}
    skipped: list[str] = []
    try:
        np.unique(ga)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in ga.tolist()})
        raise ValueError(f"groups mix value types ({', '.join(kinds)}); give every group label one type") from None
    for label in unique_values(ya):
        rows = ya == label
        label = label.item() if isinstance(label, np.generic) else label
        g = ga[rows]
        levels, counts = np.unique(g, return_counts=True)
        if skip_small and (levels.size < 2 or counts.min() < cv):
            skipped.append(repr(label))
            continue
        if levels.size < 2:
            raise ValueError(
                f"class {label!r} has rows of one group only ({levels[0]!r}); leakage needs two groups in every "
                "class of y"
            )
        if counts.min() < cv:
            small = levels[int(np.argmin(counts))]
            raise ValueError(
                f"group {small!r} has {int(counts.min())} row(s) of class {label!r}, fewer than cv={cv}; "
                "lower cv or pass more rows"
            )
        folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
        proba = cross_val_predict(clone(estimator), Xa[rows], g, cv=folds, method="predict_proba")
        if levels.size == 2:
            auc = float(roc_auc_score(g == levels[1], proba[:, 1]))
        else:
            auc = float(roc_auc_score(g, proba, multi_class="ovr", average="macro", labels=levels))
        floor = float(np.mean([_advantage(proba, rng.permutation(g), levels) for _ in range(permutations)]))
        out[label] = ClassLeakage(label, int(rows.sum()), auc, _advantage(proba, g, levels), floor)
    if skipped:
        warnings.warn(f"group_leakage left out {len(skipped)} class(es) with too few rows of some group for "
                      f"cv={cv}: {', '.join(skipped)}", stacklevel=2)  # fmt: skip
    if not out:
        raise ValueError(f"no class of y has at least cv={cv} rows of two groups; lower cv or pass more rows")
    return out


def plot_group_leakage(leakage: dict[Hashable, ClassLeakage], path: Any = None, *, title: str | None = None) -> Figure:
    """Bar chart of :func:`group_leakage`: each class's advantage, with its sampling floor marked.

    Args:
        leakage: The result of :func:`group_leakage` (or several merged: one bar per key).
        path: If given, the figure is saved there (format from the extension).
        title: Optional title.

    Returns:
        matplotlib.figure.Figure: The figure (Agg canvas; no pyplot state).
    """
    if not leakage or not all(isinstance(v, ClassLeakage) for v in leakage.values()):
        raise ValueError("leakage must be the non-empty result of group_leakage ({class: ClassLeakage})")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover
        raise ImportError("plot_group_leakage needs matplotlib: pip install 'steerfair[plot]'") from exc
    names, rows = [str(k) for k in leakage], list(leakage.values())
    x = np.arange(len(rows))
    fig = Figure(figsize=(max(4.0, 0.45 * len(rows) + 2.0), 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(x, [r.advantage for r in rows], 0.6, label="advantage (largest gap a threshold of the score shows)")
    ax.scatter(x, [r.floor for r in rows], marker="_", s=400, color="black", zorder=3, label="sampling floor")
    ax.set_xticks(x, names, rotation=90 if len(rows) > 8 else 0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("class")
    ax.set_ylabel("group advantage")
    ax.set_title(title or "How well the group is predicted within each class", fontsize=9)
    ax.legend(fontsize=7)
    if path is not None:
        fig.savefig(path)
    return fig
