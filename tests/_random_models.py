"""Builders of random SPD matrices and random group-conditional models for tests."""

from __future__ import annotations

import numpy as np

from steerfair import Gaussian, GroupConditionalModel


def random_spd(rng: np.random.Generator, d: int, cond: float = 10.0) -> np.ndarray:
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    evals = np.exp(rng.uniform(0, np.log(cond), d)) * rng.uniform(0.3, 3.0)
    S = (Q * evals) @ Q.T
    return 0.5 * (S + S.T)


def random_model(
    seed: int, d: int = 3, k: int = 2, m: int = 2, family: str = "normal", spread: float = 2.0
) -> GroupConditionalModel:
    rng = np.random.default_rng(seed)
    comps = tuple(
        tuple(Gaussian(rng.normal(scale=spread, size=d), random_spd(rng, d)) for _ in range(m)) for _ in range(k)
    )
    gp = rng.dirichlet(np.full(k, 5.0))
    cp = rng.dirichlet(np.full(m, 5.0), size=k)
    return GroupConditionalModel(np.arange(k), np.arange(m), gp, cp, comps, family)
