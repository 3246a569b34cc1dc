"""Steering with private or uncertain sensitive attributes (docs/privacy.md).

* :mod:`.mechanisms`: k-ary randomized response (``epsilon``-local DP) and its channel;
* :mod:`.channel_inversion`: unbiased channel-inversion estimates of group sizes, per-group sums and second
  moments; PSD repair; :class:`~steerfair.GroupConditionalModel` / steering fits from privatised groups
  (and, optionally, privatised labels);
* :mod:`.posterior`: posterior group probabilities given a report (and features) for soft application;
  a group probe trained on reports;
* :mod:`.central`: the Gaussian mechanism on the sufficient statistics with (epsilon, delta) accounting,
  for releasing fitted maps.

Example::

    from steerfair import privacy

    reports = privacy.randomized_response(groups, epsilon=1.0, categories=["F", "M"])  # user side: secret randomness
    model = privacy.fit_private_model(X, y, reports, epsilon=1.0, categories=["F", "M"])
    steer = steerfair.fit_steering(model)
    P = privacy.posterior_group_proba(reports, 1.0, prior=privacy.model_group_proba(model, X, y), categories=["F", "M"])
    X_fair = steer.transform(X, y=y, group_proba=P)      # probability-weighted mixture of the group maps
"""

from .central import DPStatistics, dp_fit_model, dp_fit_steering, dp_statistics, gaussian_delta, gaussian_sigma
from .channel_inversion import (
    CellStatistics,
    activation_statistics,
    cell_statistics,
    debias_statistics,
    debiased_membership,
    fit_private_model,
    fit_private_steering,
    ldp_statistics,
    private_membership,
    psd_repair,
)
from .mechanisms import (
    check_delta,
    check_epsilon,
    encode_categories,
    randomized_response,
    rr_channel,
    rr_keep_probability,
    rr_probabilities,
    rr_variance_inflation,
)
from .posterior import PrivateGroupProbe, model_group_proba, posterior_group_proba, report_shares
from .reports import ReportedGroups, group_reader

__all__ = [
    "CellStatistics",
    "DPStatistics",
    "PrivateGroupProbe",
    "ReportedGroups",
    "activation_statistics",
    "cell_statistics",
    "check_delta",
    "check_epsilon",
    "debias_statistics",
    "debiased_membership",
    "dp_fit_model",
    "dp_fit_steering",
    "dp_statistics",
    "encode_categories",
    "fit_private_model",
    "fit_private_steering",
    "gaussian_delta",
    "gaussian_sigma",
    "group_reader",
    "ldp_statistics",
    "model_group_proba",
    "posterior_group_proba",
    "report_shares",
    "private_membership",
    "psd_repair",
    "randomized_response",
    "rr_channel",
    "rr_keep_probability",
    "rr_probabilities",
    "rr_variance_inflation",
]
