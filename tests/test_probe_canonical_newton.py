"""``recipes/probe_canonical_newton.py`` measures a solver for the two-class all-subgroup affine ideal (issue 14); its
verdict is only worth something if it solves the library's problem with exact derivatives. These tests check that."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from _recipes import load_recipe
from hypothesis import given, settings
from hypothesis import strategies as st

from steerfair import solve_nearest_ideal


def _load_probe():  # type: ignore[no-untyped-def]
    recipes = str(Path(__file__).resolve().parents[1] / "recipes")
    sys.path.insert(0, recipes)  # the probe imports bench_solver
    try:
        return load_recipe("probe_canonical_newton")
    finally:
        sys.path.remove(recipes)


probe = _load_probe()


def _problem(d: int, seed: int):  # type: ignore[no-untyped-def]
    model = probe.random_model(d, seed)
    sol = solve_nearest_ideal(model, intervention="all", family="affine")
    return probe.Canonical.of(model, np.asarray(sol.class_priors)), sol


@settings(max_examples=8, deadline=None)
@given(d=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_the_canonical_objective_is_the_library_kl_and_stationary_at_its_solution(d: int, seed: int) -> None:
    pb, sol = _problem(d, seed)
    pt = probe.from_solution(pb, sol)
    assert probe.value(pb, pt) == pytest.approx(sol.feature_kl, rel=1e-9, abs=1e-12)
    # the library's solution is a stationary point of the canonical problem too
    assert np.linalg.norm(probe.gradient(pb, pt)) <= 1e-6 * max(1.0, np.linalg.norm(pt.K))


@settings(max_examples=8, deadline=None)
@given(d=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_gradient_and_hessian_products_match_finite_differences(d: int, seed: int) -> None:
    pb, _ = _problem(d, seed)
    pt = probe.start(pb)
    k = pb.shape[0]
    x = np.random.default_rng(seed).standard_normal(k * d * d + 2 * d)
    KE = np.einsum("aij,ajk->aik", pt.K, probe.unpack(x, k, d)[0])

    def at(t: float):  # type: ignore[no-untyped-def]
        # K (I + tE) is a straight line in K, so the second derivative along it is the Hessian form
        return probe.move(pb, pt, x, t, KE)

    eps = 1e-5
    slope = (probe.value(pb, at(eps)) - probe.value(pb, at(-eps))) / (2 * eps)
    assert slope == pytest.approx(float(probe.gradient(pb, pt) @ x), rel=1e-6, abs=1e-8)
    dgrad = (probe.gradient(pb, at(eps)) - probe.gradient(pb, at(-eps))) / (2 * eps)
    # the relative gradient at K (I + tE) is (I + tE)^T times the one in E at K: its derivative adds E^T g
    g_E = probe.unpack(probe.gradient(pb, pt), k, d)[0]
    E = probe.unpack(x, k, d)[0]
    correction = probe.pack(np.einsum("aji,ajk->aik", E, g_E), np.zeros(d), np.zeros(d))
    expected = probe.hessian_product(pb, pt)(x)
    assert np.allclose(dgrad - correction, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_newton_reaches_the_library_kl() -> None:
    pb, sol = _problem(6, 0)
    out = probe.newton_cg(pb, probe.start(pb))
    assert out["value"] == pytest.approx(sol.feature_kl, rel=1e-9)
    assert out["products"] > 0 and out["history"][0][1] > out["value"]


def test_the_probe_checks_its_output_before_any_work(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "probe_canonical_newton.json").write_text("{}")
    monkeypatch.setattr(probe, "solve_nearest_ideal", lambda *a, **k: pytest.fail("solved before the output check"))
    monkeypatch.setattr(sys, "argv", ["probe_canonical_newton.py", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exc:  # a usage error (exit code 2)
        probe.main()
    assert exc.value.code == 2
