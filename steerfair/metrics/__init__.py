"""Group-fairness metrics for binary and multi-class classifiers.

Two families of metrics live here.

**Binary group metrics** (one positive label, any number of groups): per-group selection rate, true-positive
rate (TPR) and false-positive rate (FPR), and the usual gaps built from them -- demographic parity, equal
opportunity (TPR gap) and equalized odds (the larger of the TPR and FPR gaps) -- plus worst-group accuracy.
The gap functions take ``y_true, y_pred`` positionally and ``groups`` as a keyword, mirroring fairlearn's
``sensitive_features``; the scalar functions :func:`selection_rate`, :func:`true_positive_rate` and
:func:`false_positive_rate` take only ``(y_true, y_pred)`` so they can be passed to
``fairlearn.metrics.MetricFrame(metrics=...)``. One difference from fairlearn, on purpose: a group without
positives has an undefined TPR (fairlearn counts it as 0), so the equal-opportunity gap skips that group with a
warning (NaN when fewer than two groups are left) and the equalized-odds gap is then the FPR gap alone.

**Multi-class TPR gaps** (the Bios protocol of De-Arteaga et al. 2019, used by INLP, Ravfogel et al. 2020, and
MiMiC, Singh et al. 2024): for every class ``c`` the gap ``TPR_{a,c} - TPR_{b,c}`` between two groups, where
``TPR_{g,c}`` is the recall of class ``c`` among samples of group ``g`` whose true class is ``c``; its root mean
square over classes (:func:`rms_tpr_gap`); and the Pearson correlation between the per-class gaps and the
per-class share of group ``a`` (:func:`gap_share_correlation`, :func:`group_share_per_class`).

:func:`group_leakage` audits a steered table rather than a classifier: per class, how well the group can
still be predicted from the features (out of fold); the largest TPR gap any model of the discriminator's kind can
show on those rows is bounded below by its advantage.

:func:`bootstrap_ci` gives percentile bootstrap intervals for any of these, and :func:`fairness_report` bundles
the binary metrics into a printable / plottable :class:`FairnessReport`.

Inputs may be lists, numpy arrays or pandas Series (values are taken positionally; a Series' index is
ignored). Labels may be of any hashable type. Bad input -- mismatched lengths, missing values, empty input,
fewer than two groups, unknown options -- raises :class:`ValueError` naming the offending argument.
"""

from .bootstrap import bootstrap_ci
from .gaps import GapMethod, demographic_parity_gap, equal_opportunity_gap, equalized_odds_gap, worst_group_accuracy
from .leakage import ClassLeakage, group_leakage, plot_group_leakage
from .per_class import GapSign, gap_share_correlation, group_share_per_class, rms_tpr_gap, tpr_gaps_per_class
from .rates import GroupRates, false_positive_rate, group_rates, selection_rate, true_positive_rate
from .report import FairnessReport, fairness_report

__all__ = [
    "ClassLeakage",
    "FairnessReport",
    "GapMethod",
    "GapSign",
    "GroupRates",
    "bootstrap_ci",
    "demographic_parity_gap",
    "equal_opportunity_gap",
    "equalized_odds_gap",
    "fairness_report",
    "false_positive_rate",
    "gap_share_correlation",
    "group_leakage",
    "group_rates",
    "group_share_per_class",
    "plot_group_leakage",
    "rms_tpr_gap",
    "selection_rate",
    "tpr_gaps_per_class",
    "true_positive_rate",
    "worst_group_accuracy",
]
