"""The Gaussian case study: its analytic 1-D rates agree with the certificate, and the ideals are exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from steerfair import bayes_certificate
from steerfair.cli import main as cli_main
from steerfair.evaluation import case_study as cs


def test_one_dimensional_rates_equal_the_certificate() -> None:
    for setting in cs.SETTINGS[:4]:
        model = cs.build(setting)
        own = cs.rates_1d(model, model)
        cert = bayes_certificate(model, "demographic_parity", costs=np.array([0.5]))
        np.testing.assert_allclose(own["tpr"], cert.tpr[:, 0], atol=1e-12)
        np.testing.assert_allclose(own["pr"], cert.positive_rate[:, 0], atol=1e-12)


def test_ideals_are_exact_and_bounds_hold(tmp_path) -> None:  # noqa: ANN001
    results = cs.run(tmp_path, settings=[cs.SETTINGS[0]])
    rows = results[0]["results"]
    for name in ("affirmative", "all", "affirmative_affine", "all_affine"):
        row = rows[name]
        assert row["worst_eo_gap_all_costs"] <= 1e-9 and row["worst_dp_gap_all_costs"] <= 1e-9
        assert row["error_shift"] <= row["bound_error_shift"]
        assert row["eo_gap_on_original"] <= row["bound_eo_gap"]
        assert row["kl"] > 0
    assert rows["all"]["kl"] <= rows["affirmative"]["kl"] + 1e-12  # nearest over a larger set
    for iv in ("affirmative", "all"):  # the affine family contains the isotropic one
        assert rows[f"{iv}_affine"]["kl"] <= rows[iv]["kl"] * (1 + 1e-9)
    assert rows["original"]["worst_eo_gap_all_costs"] > 0.1
    assert json.loads((tmp_path / "synthetic_gaussian.json").read_text())[0]["setting"] == cs.SETTINGS[0].name


def test_cli_rejects_unknown_commands() -> None:
    with pytest.raises(SystemExit):
        cli_main(["no-such-command"])


@pytest.mark.parametrize("boundary_on_a_node", [True, False])
def test_the_group_blind_boundary_is_found_on_a_grid_node_too(boundary_on_a_node: bool) -> None:
    """Two identical groups N(0, 1) vs N(2, 1), equal priors: the group-blind rule thresholds at 1, error
    Phi(-1). The root-finding grid has a node at exactly 1 for these means, where the score is 0 and no interval
    changes sign: the boundary was missed and the error reported as 0.5 (every row predicted positive)."""
    from scipy.special import ndtr

    shift = 0.0 if boundary_on_a_node else 1e-3
    setting = cs.Setting("twins", [[0.0, 2.0 + shift], [0.0, 2.0 + shift]], [[1.0, 1.0], [1.0, 1.0]],
                         (0.5, 0.5), (0.5, 0.5))  # fmt: skip
    model = cs.build(setting)
    blind = cs.blind_rates_1d(model, model)
    assert blind["error"] == pytest.approx(float(ndtr(-(2.0 + shift) / 2)), abs=1e-9)
    with pytest.raises(ValueError, match="must be positive"):
        cs.build(cs.Setting("bad", [[0.0, 1.0], [0.0, 1.0]], [[1.0, -1.0], [1.0, 1.0]], (0.5, 0.5), (0.5, 0.5)))
