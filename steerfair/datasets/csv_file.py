"""User data: a CSV file or a DataFrame wrapped as a :class:`~steerfair.datasets.TabularDataset`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .container import TabularDataset, assemble

__all__ = ["load_csv"]


def load_csv(
    path_or_dataframe: str | Path | pd.DataFrame,
    *,
    label: str,
    sensitive: str,
    numeric_columns: Sequence[str] | None = None,
    positive_label: Any = None,
    categorical_columns: Sequence[str] | None = None,
    include_sensitive: bool = False,
    name: str | None = None,
    read_csv_kwargs: dict[str, Any] | None = None,
) -> TabularDataset:
    """Wrap a user CSV file or DataFrame as a :class:`TabularDataset`.

    Preprocessing (fixed): rows with a missing value in any used column are dropped; numeric columns are cast to
    ``float64``; categorical columns are one-hot encoded as ``"column=value"`` (all levels kept).

    Args:
        path_or_dataframe (str, Path or pandas.DataFrame): A CSV path (read with :func:`pandas.read_csv`) or a DataFrame
            (not modified).
        label (str): Label column.
        sensitive (str): Protected-attribute column; its values (as strings) become ``groups``.
        numeric_columns (sequence of str, optional): Continuous feature columns. Default: every numeric, non-boolean
            column other than ``label`` and ``sensitive``.
        positive_label (optional): Label value mapped to ``y = 1`` (every other value maps to 0). If omitted, the label
            must already be 0/1 or boolean.
        categorical_columns (sequence of str, optional): Columns to one-hot encode. Default: every remaining column
            other than ``label`` and ``sensitive``.
        include_sensitive (bool, default False): One-hot encode the sensitive column into ``X`` as well.
        name (str, optional): Dataset name; defaults to the file stem or ``"custom"``.
        read_csv_kwargs (dict, optional): Extra keyword arguments for :func:`pandas.read_csv`.

    Returns:
        TabularDataset: The dataset.

    Raises:
        KeyError: If ``label``, ``sensitive`` or a listed column is not in the data.
        ValueError: If the label is not binary, or a class or group is missing.
    """
    if isinstance(path_or_dataframe, pd.DataFrame):
        df = path_or_dataframe.copy()
        source = "a user DataFrame"
        default_name = "custom"
    else:
        path = Path(path_or_dataframe)
        df = pd.read_csv(path, **(read_csv_kwargs or {}))
        source = str(path)
        default_name = path.stem
    df.columns = [str(c) for c in df.columns]
    for col, what in ((label, "label"), (sensitive, "sensitive")):
        if col not in df.columns:
            raise KeyError(f"{what} column {col!r} not found; columns are {list(df.columns)}")
    if label == sensitive:
        raise ValueError(f"label and sensitive name the same column {label!r}; the group must be its own column")
    others = [c for c in df.columns if c not in (label, sensitive)]
    if numeric_columns is None:
        numeric = [
            c
            for c in others
            if pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])
            and (categorical_columns is None or c not in categorical_columns)
        ]
    else:
        numeric = [str(c) for c in numeric_columns]
    if categorical_columns is None:
        categorical = [c for c in others if c not in numeric]
    else:
        categorical = [str(c) for c in categorical_columns]
    unknown = [c for c in [*numeric, *categorical] if c not in df.columns]
    if unknown:
        raise KeyError(f"columns not found: {unknown}")
    if set(numeric) & set(categorical):
        raise ValueError(f"columns both numeric and categorical: {sorted(set(numeric) & set(categorical))}")
    if label in numeric or label in categorical:
        raise ValueError(f"the label column {label!r} cannot be a feature")
    if sensitive in numeric or sensitive in categorical:
        raise ValueError(
            f"the sensitive column {sensitive!r} is listed as a feature; leave it out of numeric_columns / "
            "categorical_columns (include_sensitive=True one-hot encodes it into X)"
        )
    repeated = sorted({c for c in [*numeric, *categorical] if [*numeric, *categorical].count(c) > 1})
    if repeated:
        raise ValueError(f"columns listed twice: {repeated}")
    used = [label, sensitive, *numeric, *categorical]
    n_before = len(df)
    missing = df[used].isna().mean().sort_values(ascending=False)
    df = df[used].dropna().reset_index(drop=True)
    if df.empty:
        worst = {c: f"{share:.0%}" for c, share in missing.head(3).items() if share > 0}
        raise ValueError(
            f"no rows are left after dropping the rows with a missing value in a used column (of {n_before}; "
            f"most missing: {worst}); pass numeric_columns / categorical_columns without those columns, or impute them"
        )
    bad = [c for c in numeric if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise ValueError(f"numeric_columns must be numeric, got non-numeric columns {bad}")
    lab = df[label]
    if positive_label is None:
        values = set(pd.unique(lab).tolist())
        if not values <= {0, 1}:  # True == 1 and False == 0, so booleans pass too
            raise ValueError(
                f"label column {label!r} has values {sorted(map(str, values))[:10]}; pass positive_label= to say "
                "which value is the positive class"
            )
        y = lab.astype(np.int64).to_numpy()
    else:
        y = (lab == positive_label).to_numpy().astype(np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError(f"the label needs both classes after preprocessing, got only {np.unique(y).tolist()}")
    groups = df[sensitive].astype(str).to_numpy()
    if len(np.unique(groups)) < 2:
        raise ValueError(f"the sensitive column {sensitive!r} needs at least two groups")
    if include_sensitive and sensitive not in categorical:
        categorical = [*categorical, sensitive]
    description = (
        f"User data from {source}: {n_before} rows, {n_before - len(df)} with missing values dropped. "
        f"Label y = 1 iff {label!r} "
        + ("is 1/True. " if positive_label is None else f"== {positive_label!r}. ")
        + f"Numeric columns (float64): {numeric}. One-hot columns: {categorical}. Groups: {sensitive!r}."
    )
    return assemble(name or default_name, df, y, groups, numeric, categorical, sensitive, description)
