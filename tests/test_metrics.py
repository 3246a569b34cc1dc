"""Group metrics: agree with brute-force definitions and with fairlearn, respect their invariances."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair import metrics as M

seeds = st.integers(0, 100_000)


def binary_case(seed: int, n: int = 400, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, k, n)
    y = (rng.random(n) < 0.3 + 0.1 * g).astype(int)
    p = np.where(rng.random(n) < 0.8, y, 1 - y)
    # make sure every group has both labels so every rate is defined
    for a in range(k):
        idx = np.flatnonzero(g == a)[:2]
        y[idx] = [0, 1]
    return y, p, np.array([f"g{v}" for v in g])


def brute(y, p, g, pos=1):
    out = {}
    for a in np.unique(g):
        m = g == a
        out[a] = dict(
            sel=np.mean(p[m] == pos),
            tpr=np.mean(p[m & (y == pos)] == pos),
            fpr=np.mean(p[m & (y != pos)] == pos),
            acc=np.mean(p[m] == y[m]),
        )
    return out


def spread(d, key):
    v = [r[key] for r in d.values()]
    return max(v) - min(v)


@given(seed=seeds, k=st.integers(2, 4))
@settings(max_examples=30, deadline=None)
def test_binary_gaps_equal_their_definitions(seed: int, k: int) -> None:
    y, p, g = binary_case(seed, k=k)
    b = brute(y, p, g)
    assert M.demographic_parity_gap(y, p, groups=g) == pytest.approx(spread(b, "sel"), abs=1e-15)
    assert M.equal_opportunity_gap(y, p, groups=g) == pytest.approx(spread(b, "tpr"), abs=1e-15)
    assert M.equalized_odds_gap(y, p, groups=g) == pytest.approx(max(spread(b, "tpr"), spread(b, "fpr")), abs=1e-15)
    assert M.worst_group_accuracy(y, p, groups=g) == pytest.approx(min(r["acc"] for r in b.values()), abs=1e-15)
    rep = M.fairness_report(y, p, g)
    assert rep.accuracy == pytest.approx(np.mean(y == p))
    assert rep.eo_gap == pytest.approx(spread(b, "tpr"))
    # gaps are invariant to relabelling the groups and to permuting the rows
    perm = np.random.default_rng(seed).permutation(len(y))
    relabel = np.array([{"g0": "z", "g1": "a"}.get(v, v + "_") for v in g])
    assert M.demographic_parity_gap(y[perm], p[perm], groups=relabel[perm]) == pytest.approx(spread(b, "sel"))
    # a perfect classifier has no EO / equalized-odds gap
    assert M.equalized_odds_gap(y, y, groups=g) == 0.0


@given(seed=seeds)
@settings(max_examples=15, deadline=None)
def test_agrees_with_fairlearn(seed: int) -> None:
    fl = pytest.importorskip("fairlearn.metrics")
    y, p, g = binary_case(seed)
    assert M.demographic_parity_gap(y, p, groups=g) == pytest.approx(
        fl.demographic_parity_difference(y, p, sensitive_features=g), abs=1e-12
    )
    assert M.equalized_odds_gap(y, p, groups=g) == pytest.approx(
        fl.equalized_odds_difference(y, p, sensitive_features=g), abs=1e-12
    )
    assert M.demographic_parity_gap(y, p, groups=g, method="max_ratio") == pytest.approx(
        fl.demographic_parity_ratio(y, p, sensitive_features=g), abs=1e-12
    )
    # the scalar rate functions plug into MetricFrame
    mf = fl.MetricFrame(
        metrics={"sel": M.selection_rate, "tpr": M.true_positive_rate, "fpr": M.false_positive_rate},
        y_true=y,
        y_pred=p,
        sensitive_features=g,
    )
    r = M.group_rates(y, p, g)
    np.testing.assert_allclose(mf.by_group["sel"].to_numpy(), r.selection_rate)
    np.testing.assert_allclose(mf.by_group["tpr"].to_numpy(), r.tpr)
    np.testing.assert_allclose(mf.by_group["fpr"].to_numpy(), r.fpr)


@given(seed=seeds, n_classes=st.integers(3, 8))
@settings(max_examples=25, deadline=None)
def test_multiclass_tpr_gaps(seed: int, n_classes: int) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    y = rng.integers(0, n_classes, n)
    g = np.where(rng.random(n) < 0.3 + 0.4 * (y % 2), "F", "M")
    p = np.where(rng.random(n) < 0.7, y, rng.integers(0, n_classes, n))
    gaps = M.tpr_gaps_per_class(y, p, g, group_a="F", group_b="M")
    for c, gap in gaps.items():
        tf = np.mean(p[(y == c) & (g == "F")] == c)
        tm = np.mean(p[(y == c) & (g == "M")] == c)
        assert gap == pytest.approx(tf - tm, abs=1e-15)
    # antisymmetric in the two groups; absolute sign is |signed|
    swapped = M.tpr_gaps_per_class(y, p, g, group_a="M", group_b="F")
    absolute = M.tpr_gaps_per_class(y, p, g, group_a="F", group_b="M", sign="absolute")
    for c in gaps:
        assert swapped[c] == pytest.approx(-gaps[c])
        assert absolute[c] == pytest.approx(abs(gaps[c]))
    v = np.array(list(gaps.values()))
    assert M.rms_tpr_gap(y, p, g, group_a="F", group_b="M") == pytest.approx(np.sqrt(np.mean(v**2)))
    # excluding a class removes exactly that class from the RMS
    kept = np.array([gaps[c] for c in gaps if c != 0])
    assert M.rms_tpr_gap(y, p, g, group_a="F", group_b="M", exclude=0) == pytest.approx(np.sqrt(np.mean(kept**2)))
    share = M.group_share_per_class(y, g, "F")
    for c in share:
        assert share[c] == pytest.approx(np.mean(g[y == c] == "F"))
    r = M.gap_share_correlation(gaps, share)
    assert r == pytest.approx(np.corrcoef(v, [share[c] for c in gaps])[0, 1], abs=1e-12)
    # correlation is invariant to affine rescaling of the gaps with a positive factor
    scaled = {c: 3.0 * x + 1.0 for c, x in gaps.items()}
    assert M.gap_share_correlation(scaled, share) == pytest.approx(r, abs=1e-12)


def test_bootstrap_interval_brackets_and_is_reproducible() -> None:
    y, p, g = binary_case(1, n=600, k=2)
    point, lo, hi = M.bootstrap_ci(M.demographic_parity_gap, y, p, g, n_boot=200, seed=3)
    assert lo <= hi
    again = M.bootstrap_ci(M.demographic_parity_gap, y, p, g, n_boot=200, seed=3)
    assert (point, lo, hi) == again
    # a smooth statistic (overall accuracy as a group metric) is bracketed by its interval
    acc = lambda yt, yp, groups: float(np.mean(yt == yp))  # noqa: E731
    pt, lo2, hi2 = M.bootstrap_ci(acc, y, p, g, n_boot=300, seed=0)
    assert lo2 <= pt <= hi2
    # a wider nominal coverage gives a wider interval
    _, lo3, hi3 = M.bootstrap_ci(acc, y, p, g, n_boot=300, seed=0, alpha=0.01)
    assert lo3 <= lo2 and hi3 >= hi2


def test_report_table_and_plot(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    y, p, g = binary_case(5)
    rep = M.fairness_report(y, p, g)
    text = str(rep)
    assert "equal opportunity gap" in text and "g2" in text
    rep.plot(tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 1000
    d = rep.to_dict()
    assert len(d["per_group"]) == 3


def test_bad_input_is_refused() -> None:
    y, p, g = binary_case(0)
    with pytest.raises(ValueError, match="length|rows|same"):
        M.demographic_parity_gap(y[:-1], p, groups=g)
    with pytest.raises(ValueError):
        M.demographic_parity_gap(y, p, groups=np.full(len(y), "only"))
    with pytest.raises(ValueError, match="method"):
        M.demographic_parity_gap(y, p, groups=g, method="nope")
    yn = y.astype(float)
    yn[3] = np.nan
    with pytest.raises(ValueError):
        M.equal_opportunity_gap(yn, p, groups=g)
    with pytest.raises(ValueError, match="group_a"):
        M.tpr_gaps_per_class(y, p, g, group_a="missing", group_b="g0")
    with pytest.raises(ValueError):
        M.bootstrap_ci(M.demographic_parity_gap, y, p, g, alpha=1.5)
    # an undefined TPR in one group is skipped with a warning, not silently averaged
    y2 = y.copy()
    y2[g == "g0"] = 0
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        gap = M.equal_opportunity_gap(y2, p, groups=g)
    assert math.isfinite(gap) and any("undefined" in str(w.message) for w in rec)


@given(seed=st.integers(0, 2**16), threshold=st.floats(0.2, 0.8))
@settings(max_examples=20, deadline=None)
def test_scores_in_place_of_predicted_labels_are_refused_and_thresholded_scores_are_labels(
    seed: int, threshold: float
) -> None:
    """Every label metric counts predicted labels: probabilities would never equal ``pos_label`` and give rates and
    gaps of 0 without an error, so they are refused; the same scores thresholded are ordinary labels."""
    rng = np.random.default_rng(seed)
    n = 200
    y, groups = rng.integers(0, 2, n), rng.integers(0, 2, n)
    scores = np.clip(0.5 * y + 0.25 * groups + rng.uniform(0.0, 0.5, n), 1e-3, 1 - 1e-3)
    assert np.any(scores != np.round(scores))
    calls = [
        lambda p: M.equal_opportunity_gap(y, p, groups=groups),
        lambda p: M.demographic_parity_gap(y, p, groups=groups),
        lambda p: M.equalized_odds_gap(y, p, groups=groups),
        lambda p: M.fairness_report(y, p, groups),
        lambda p: M.true_positive_rate(y, p),
        lambda p: M.selection_rate(y, p),
    ]
    labels = (scores >= threshold).astype(int)
    for call in calls:
        with pytest.raises(ValueError, match="y_pred has non-integer values"):
            call(scores)
        call(labels)  # integer labels, and the same as floats 0.0 / 1.0
    assert M.equal_opportunity_gap(y, labels.astype(float), groups=groups) == M.equal_opportunity_gap(
        y, labels, groups=groups
    )
    with pytest.raises(ValueError, match="groups has non-integer values"):
        M.equal_opportunity_gap(y, labels, groups=groups + rng.uniform(0.1, 0.9, n))


def test_new_user_pass_inputs_are_refused_or_read_right() -> None:
    """A list mixing strings and NaN became a group called "nan" (a gap of 0.5 where the rows without it give 0);
    the single rates gave 0.0 / NaN for a pos_label absent from string labels; a numpy alpha was refused, a negative
    seed crashed in numpy; a report with a numpy pos_label was not JSON-serialisable; mixed-type groups crashed in
    np.unique inside group_leakage."""
    import json

    with pytest.raises(ValueError, match="groups contains 1 missing value"):
        M.demographic_parity_gap([1, 0, 1, 0, 1, 1], [1, 0, 0, 0, 1, 0], groups=["a", "a", np.nan, "b", "b", "b"])
    with pytest.raises(ValueError, match="y_pred contains 1 missing value"):
        M.fairness_report(["y", "n", "y", "n"], ["y", "n", np.nan, "n"], ["a", "a", "b", "b"], pos_label="y")
    for rate in (M.selection_rate, M.true_positive_rate, M.false_positive_rate):
        with pytest.raises(ValueError, match="pos_label=1 occurs in neither"):
            rate(["yes", "no"], ["yes", "yes"])
    y, p, g = [1, 0, 1, 0] * 20, [1, 0, 0, 1] * 20, [0, 0, 1, 1] * 20
    a = M.bootstrap_ci(M.demographic_parity_gap, y, p, g, alpha=np.float32(0.05), n_boot=50)
    assert a == M.bootstrap_ci(M.demographic_parity_gap, y, p, g, alpha=0.05, n_boot=50)
    with pytest.raises(ValueError, match="seed must be at least 0"):
        M.bootstrap_ci(M.demographic_parity_gap, y, p, g, seed=-1, n_boot=50)
    report = M.fairness_report(np.array(y), np.array(p), np.array(g), pos_label=np.int64(1))
    assert json.loads(json.dumps(report.to_dict()))["pos_label"] == 1
    groups = np.empty(40, dtype=object)
    groups[:] = [1, "one"] * 20
    with pytest.raises(ValueError, match="groups mix value types"):
        M.group_leakage(np.random.default_rng(0).normal(size=(40, 2)), [0, 0, 1, 1] * 10, groups)


def test_predictions_of_another_label_type_are_refused_not_scored_as_zero() -> None:
    """A classifier fitted on "0" / "1" scored against 0 / 1 gave accuracy 0 and every gap 0, without an error."""
    with pytest.raises(ValueError, match="y_pred holds text labels .* y_true number labels"):
        M.fairness_report([0, 1, 0, 1], ["0", "1", "1", "1"], ["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="pos_label must be one label"):
        M.equal_opportunity_gap([0, 1, 0, 1], [0, 1, 1, 1], groups=list("aabb"), pos_label=[1])
    # booleans and integers are one kind (True == 1)
    assert M.fairness_report([True, False, True, False], [1, 0, 1, 1], list("aabb")).accuracy == 0.75


def test_report_plot_marks_undefined_rates_instead_of_drawing_zero(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Group "a" has no positives (TPR undefined), group "c" a TPR of 0: only the defined one is a bar."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the undefined rates are also announced)
        rep = M.fairness_report([0, 0, 1, 1, 0, 1], [0, 1, 1, 1, 0, 0], list("aabbcc"))
    assert np.isnan(rep.per_group.tpr[0]) and rep.per_group.tpr[2] == 0.0
    pg = rep.per_group
    undefined = int(sum(np.sum(~np.isfinite(v)) for v in (pg.selection_rate, pg.tpr, pg.fpr)))
    assert undefined == 2  # a's TPR, b's FPR (b has no negatives)
    fig = rep.plot(tmp_path / "r.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["n/a"] * undefined
    assert len(ax.patches) == 3 * 3 - undefined  # three rates for three groups, less the undefined ones
    assert (tmp_path / "r.png").stat().st_size > 0


def test_bootstrap_drops_resamples_that_measure_another_gap() -> None:
    """A resample in which a small group loses its only positive (its TPR is then skipped) or, unstratified, a group
    vanishes, measures a gap over the other groups; those are dropped with a warning instead of silently widening
    the interval (before: (0.52, 0.077, 0.667) with no warning where the full-data gap is 0.52)."""
    rng = np.random.default_rng(0)
    n = 200
    yt, yp, g = rng.integers(0, 2, n), rng.integers(0, 2, n), rng.integers(0, 3, n)
    g[:3], yt[:3] = 9, [1, 0, 0]
    with pytest.warns(UserWarning, match="lost a group or a group's rate"):
        point, lo, hi = M.bootstrap_ci(M.equal_opportunity_gap, yt, yp, g, n_boot=300)
    assert lo <= point <= hi
    with pytest.warns(UserWarning, match="lost a group"):
        M.bootstrap_ci(M.demographic_parity_gap, yt, yp, np.r_[[5, 5], g[2:]], n_boot=300, stratify=False)
    with pytest.raises(ValueError, match="stratify"):
        M.bootstrap_ci(M.demographic_parity_gap, yt, yp, g, stratify="no")


def test_scores_in_an_object_column_are_refused_and_constant_gaps_have_no_correlation() -> None:
    with pytest.raises(ValueError, match="non-integer values"):
        M.demographic_parity_gap([0, 1, 1, 0], pd.Series([0.2, 0.8, 0.6, 0.1], dtype=object), groups=[0, 0, 1, 1])
    with pytest.raises(ValueError, match="constant"):
        M.gap_share_correlation({0: 0.1, 1: 0.1, 2: 0.1}, {0: 0.2, 1: 0.3, 2: 0.5})  # centred: rounding noise


def test_scalar_rates_work_per_group_in_a_metric_frame_on_multi_class_data() -> None:
    """fairlearn's MetricFrame calls a rate on each group's rows; a class absent from one group is a rate of 0 or
    undefined there, not an error (a label of the wrong kind is still refused)."""
    from functools import partial

    from fairlearn.metrics import MetricFrame

    yt, yp, g = [0, 1, 2, 2, 0, 1, 0, 1], [0, 1, 2, 1, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1, 1, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = MetricFrame(
            metrics=partial(M.true_positive_rate, pos_label=2), y_true=yt, y_pred=yp, sensitive_features=g
        )
    assert frame.by_group[0] == 0.5 and np.isnan(frame.by_group[1])
    with pytest.raises(ValueError, match="occurs in neither"):
        M.true_positive_rate(["yes", "no"], ["yes", "yes"])


def test_a_number_and_its_string_are_two_groups() -> None:
    """np.asarray([1, "1"]) makes both the string "1": a list mixing them became one group, with a gap of 0."""
    y, p = [1, 0, 1, 0, 1, 0, 1, 0], [1, 1, 1, 1, 0, 0, 0, 0]
    assert M.demographic_parity_gap(y, p, groups=[1, 1, 1, 1, "1", "1", "1", "1"]) == pytest.approx(1.0)


def test_group_leakage_takes_a_generator_and_names_a_bad_random_state() -> None:
    rng = np.random.default_rng(0)
    X, y, g = rng.normal(size=(300, 3)), rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = M.group_leakage(X, y, g, random_state=np.random.default_rng(5))
        b = M.group_leakage(X, y, g, random_state=np.random.default_rng(5))
    assert {c: v.auc for c, v in a.items()} == {c: v.auc for c, v in b.items()}
    with pytest.raises(ValueError, match="random_state"):
        M.group_leakage(X, y, g, random_state="a")
