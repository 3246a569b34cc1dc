"""The data of the privacy trade-off: UCI Adult / sex, arrays from a file, or the BUG stand-in encoded by MiniLM,
with the steering estimator each is steered with (``FairSteerer``, or the Bios protocol's template steering)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..covariance import Shrinkage

__all__ = ["FeatureData", "TemplateSteerer", "load_adult_sex", "load_bug_features", "load_features"]


@dataclass(frozen=True)
class FeatureData:
    """Features, labels and groups, with the columns to steer (``None``: every continuous column).

    Attributes:
        name: Name used in the results.
        X: A DataFrame or an ``(n, d)`` array.
        y: Labels, one per row.
        groups: True sensitive attribute, one per row.
        columns: Columns steered by ``FairSteerer`` (``None``: every continuous column).
        shrinkage: Covariance shrinkage of ``FairSteerer``.
        method: ``"fair_steerer"`` or ``"template"`` (the Bios protocol's ``IdealTemplateSteering``).
        rank: ``method="template"``: steer inside the top-``rank`` principal subspace.
    """

    name: str
    X: Any  # DataFrame or (n, d) array
    y: np.ndarray
    groups: np.ndarray
    columns: list[Any] | None = None
    shrinkage: Shrinkage = None
    method: str = "fair_steerer"  # or "template": the Bios protocol's IdealTemplateSteering
    rank: int | None = None  # method="template": steer inside the top-``rank`` principal subspace

    def __post_init__(self) -> None:
        if self.method not in ("fair_steerer", "template"):
            raise ValueError(f"method must be 'fair_steerer' or 'template'; got {self.method!r}")

    def steerer(self, group_epsilon: float | None = None) -> Any:
        """A fresh steering estimator with ``fit_transform(X, y, groups=...)`` and ``transform(X, groups=None)``."""
        if self.method == "template":
            return TemplateSteerer(rank=self.rank, group_epsilon=group_epsilon)
        from ..tabular import FairSteerer

        # the values themselves (not the copula's jittered scores): the study isolates the privacy channel
        return FairSteerer(
            columns=self.columns, shrinkage=self.shrinkage, group_epsilon=group_epsilon, marginals="gaussian"
        )

    def split(self, seed: int, test_size: float = 0.3) -> tuple[tuple[Any, np.ndarray, np.ndarray], ...]:
        """Split stratified jointly by group and label.

        Args:
            seed: Seed of the shuffling.
            test_size: Fraction of every (group, label) stratum in the test part.

        Returns:
            tuple: ``((X_train, y_train, groups_train), (X_test, y_test, groups_test))``.
        """
        rng = np.random.default_rng(seed)
        test = np.zeros(len(self.y), dtype=bool)
        keys = np.unique(np.column_stack([self.groups.astype(str), self.y.astype(str)]), axis=0)
        for g, c in keys:
            idx = np.flatnonzero((self.groups.astype(str) == g) & (self.y.astype(str) == c))
            test[rng.permutation(idx)[: int(round(test_size * len(idx)))]] = True
        parts = []
        for mask in (~test, test):
            rows = np.flatnonzero(mask)
            X = self.X.iloc[rows] if hasattr(self.X, "iloc") else self.X[rows]
            parts.append((X, self.y[rows], self.groups[rows]))
        return tuple(parts)


def load_adult_sex() -> FeatureData:
    """UCI Adult with sex as the sensitive attribute; the six continuous columns are steered."""
    from ..datasets import load_adult

    ds = load_adult("sex")
    return FeatureData("adult/sex", ds.X, np.asarray(ds.y), np.asarray(ds.groups), list(ds.numeric_columns))


def load_features(path: str | Path) -> FeatureData:
    """Arrays ``X`` ``(n, d)``, ``y`` ``(n,)`` and ``groups`` ``(n,)`` from ``.npz`` (no pickle) or ``.safetensors``.

    Every column of ``X`` is steered (OAS-shrunk covariances: encodings are high-dimensional). In a
    safetensors file ``y`` and ``groups`` must be numeric codes.

    Args:
        path: The ``.npz`` or ``.safetensors`` file.

    Returns:
        FeatureData: Named after the file's stem.

    Raises:
        ValueError: If an array is missing or the shapes disagree.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        arrays = load_file(str(path))
    else:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    missing = [k for k in ("X", "y", "groups") if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the array(s) {missing}; it needs X, y and groups")
    X = np.asarray(arrays["X"], dtype=np.float64)
    y, g = np.asarray(arrays["y"]), np.asarray(arrays["groups"])
    if X.ndim != 2 or y.shape != (X.shape[0],) or g.shape != (X.shape[0],):
        raise ValueError(f"X must be (n, d) and y, groups (n,); got {X.shape}, {y.shape}, {g.shape}")
    return FeatureData(path.stem, X, y, g, list(range(X.shape[1])), "oas")


def load_bug_features(cache: str | Path | None, rank: int = 128) -> FeatureData:  # pragma: no cover - needs the cache
    """The BUG stand-in encoded by MiniLM (:func:`~steerfair.evaluation.bios_run.encoded_features`; cached on
    disk), steered as the Bios protocol does (:class:`TemplateSteerer`, inside the top-``rank`` principal subspace).
    """
    from .bios_run import encoded_features

    X, y, g = encoded_features("minilm", "bug", cache_dir=cache)
    X = np.asarray(X, dtype=np.float64)
    return FeatureData("bug", X, np.asarray(y), np.asarray(g), None, "oas", method="template", rank=rank)


class TemplateSteerer:
    """:class:`steerfair.representations.IdealTemplateSteering` behind ``FairSteerer``'s interface.

    ``fit_transform`` moves the training rows with the label-free transform (the Bios protocol's default
    ``train_mode="test"``: the classifier never sees gender, and train and test rows move alike).
    """

    def __init__(self, rank: int | None = 128, group_epsilon: float | None = None) -> None:
        from ..representations import IdealTemplateSteering

        self.method = IdealTemplateSteering(rank=rank, group_epsilon=group_epsilon)

    def fit_transform(self, X: Any, y: Any, groups: Any, group_labels: Any = None) -> np.ndarray:
        """Fit on ``(X, y, groups)`` (reports when private) and steer ``X`` without its labels.

        ``group_labels`` is accepted for ``FairSteerer`` compatibility; the group domain is the reported values."""
        self.method.fit(X, y, groups)
        return self.method.transform(X, groups)

    def transform(self, X: Any, groups: Any = None) -> np.ndarray:
        """Steer rows; ``groups=None`` uses the fitted model's ``P(A | x)``."""
        return self.method.transform(X, groups)
