"""Steering methods for generation-bias evaluation, all applied through :func:`steerfair.llm.steer`.

Statistics come from gendered contrast texts (:func:`contrast_corpus`): every real token's state at the chosen
blocks except the first token of each text, whose state is the attention sink (massive activations that would
dominate every moment), collected per group (``"female"`` / ``"male"``) with :func:`contrast_statistics`. The
steered positions are the same: every real token but the first (:func:`steered_positions`), prompt and generated.

Methods (:data:`METHODS`; ``d``: the hidden size, ``delta = mu_female - mu_male``, ``Sigma``: the total covariance):

* ``none``: no hooks.
* ``mean_diff``: the difference-of-means (ActAdd / CAA) vector, used for debiasing: the component of every state
  along ``u = delta / |delta|`` is moved to the pooled mean's, ``h - s u u^T (h - mu)`` (rank 1, no group needed).
* ``leace``: LEACE (Belrose et al. 2023) of the binary group, in closed form from the moments,
  ``h - s delta (delta^T Sigma^-1 (h - mu)) / (delta^T Sigma^-1 delta)`` (rank 1, no group needed).
* ``mimic``: MiMiC (Singh et al. 2024): the Gaussian optimal-transport map of the female law onto the male law
  (:func:`steerfair.maps.gaussian_ot_map`), mixed per token by a linear group probe.
* ``steerfair``: :func:`steerfair.llm.fit_bundle`'s two-moment maps of each group onto the KL-nearest ideal, mixed by
  the bundle's probe.
* ``steerfair_kl``: identity plus rank ``r + 1``: the two group laws are matched (Gaussian OT onto their Bures
  barycenter) only inside the span of the mean direction and the ``r`` generalized eigenvectors of the pencil
  ``(Sigma_female, Sigma_male)`` that carry most of the group KL; the rest of the space is left alone; mixed by the
  probe.
* ``steerfair_kl_erase``: the same ``r + 1`` coordinates without a group: every token's coordinates are set to the
  pooled mean's, ``h - s C (W^T h - W^T mu)``, so the two group laws coincide there (at ``r = 0`` this is LEACE:
  the mean direction in the within-group metric is LEACE's direction).

Every method has a ``strength`` (``h + s (T(h) - h)``; 0 is the identity).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..families import Gaussian
from ..llm import ActivationStats, LinearProbe, capture_blocks, fit_bundle, steer
from ..llm.pooling import tokens_mask
from ..maps import AffineMap, bures_barycenter, gaussian_ot_map
from .generation_names import METHODS, READOUT_METHODS
from .readout_methods import Readout, readout_map

__all__ = [
    "GROUPS",
    "METHODS",
    "READOUT_METHODS",
    "SteeringMethod",
    "build_methods",
    "contrast_corpus",
    "contrast_statistics",
    "group_moments",
    "kl_directions",
    "leace_map",
    "mean_diff_map",
    "steered_positions",
]

#: the two groups of the contrast statistics
GROUPS = ("female", "male")

_SUBJECTS = (
    ("She", "He"),
    ("The woman", "The man"),
    ("My mother", "My father"),
    ("My sister", "My brother"),
    ("The girl", "The boy"),
    ("My aunt", "My uncle"),
    ("His wife", "Her husband"),
    ("The lady", "The gentleman"),
)
_PREDICATES = (
    "said that {p} would be late today.",
    "told me that {p} liked the new house.",
    "went to the store because {p} needed bread.",
    "thinks {p} can finish the work by Friday.",
)


def contrast_corpus(max_pairs: int | None = None, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Gendered contrast texts: ``(texts, groups, labels)``.

    Every WinoBias development sentence in a female and a male version
    (:func:`~steerfair.datasets.prompts.gender_swap`; label ``"winobias"``) plus templated sentences
    ("<subject> said that she/he would be late today.", label ``"template"``), both genders of every pair.

    Args:
        max_pairs: keep this many WinoBias pairs (drawn with ``seed``; ``None``: all).
        seed: the draw.
    """
    from ..datasets.prompts import gender_swap, winobias_sentences

    pairs = {gender_swap(s, "male") for s in winobias_sentences(("dev",))}
    keys = sorted(pairs)
    if max_pairs is not None and max_pairs < len(keys):
        keys = [keys[i] for i in sorted(np.random.default_rng(seed).permutation(len(keys))[:max_pairs])]
    texts: list[str] = []
    groups: list[str] = []
    labels: list[str] = []
    for s in keys:
        for g in GROUPS:
            texts.append(gender_swap(s, g))
            groups.append(g)
            labels.append("winobias")
    for f, m in _SUBJECTS:
        for pred in _PREDICATES:
            for g, subject, pron in (("female", f, "she"), ("male", m, "he")):
                texts.append(f"{subject} {pred.format(p=pron)}")
                groups.append(g)
                labels.append("template")
    return texts, groups, labels


def contrast_statistics(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    groups: Sequence[str],
    labels: Sequence[str],
    layers: Sequence[int],
    *,
    batch_size: int = 16,
    max_length: int = 64,
) -> ActivationStats:
    """Per-(group, label) moments of every real token's state at ``layers`` except each text's first token.

    Built on :func:`steerfair.llm.capture_blocks` (``pooling="tokens"``) and :class:`steerfair.llm.ActivationStats`.
    """
    if len(texts) != len(groups) or len(texts) != len(labels):
        raise ValueError(f"texts, groups and labels differ in length ({len(texts)}, {len(groups)}, {len(labels)})")
    stats: ActivationStats | None = None
    g_all = np.asarray(groups, dtype=object)
    y_all = np.asarray(labels, dtype=object)
    with capture_blocks(model, tokenizer, list(layers), pooling="tokens", max_length=max_length) as cap:
        for start in range(0, len(texts), batch_size):
            stop = min(start + batch_size, len(texts))
            pooled = cap.run(list(texts[start:stop]), range(start, stop))
            for layer, (rows, seq) in pooled.items():
                if stats is None:
                    stats = ActivationStats(cap.layers, list(GROUPS), sorted(set(labels)), int(rows.shape[1]))
                    stats.pooling = "tokens"
                at = start + seq.cpu().numpy()
                stats.update(layer, rows, g_all[at].tolist(), y_all[at].tolist())
    if stats is None:
        raise ValueError("texts is empty; pass contrast texts")
    return stats


def group_moments(stats: ActivationStats, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(counts (2,), means (2, d), ML covariances (2, d, d))`` of the groups at ``layer``, pooled over labels."""
    by_group = stats.cell_statistics(layer).pooled_over_classes()
    return by_group.counts[:, 0], by_group.means[:, 0], by_group.covs[:, 0]


def _total(counts: np.ndarray, means: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = counts / counts.sum()
    mu = w @ means
    centred = means - mu
    return mu, np.tensordot(w, covs, axes=1) + (centred.T * w) @ centred


def _ridge(S: np.ndarray, rel: float) -> np.ndarray:
    d = S.shape[0]
    return 0.5 * (S + S.T) + rel * float(np.trace(S)) / d * np.eye(d)


def mean_diff_map(counts: np.ndarray, means: np.ndarray) -> AffineMap:
    """``h - u u^T (h - mu)`` with ``u`` the unit difference of the two group means and ``mu`` the pooled mean."""
    delta = means[0] - means[1]
    u = delta / np.linalg.norm(delta)
    mu = (counts / counts.sum()) @ means
    return AffineMap.low_rank(-u[:, None], u[:, None], u * float(u @ mu))


def leace_map(counts: np.ndarray, means: np.ndarray, covs: np.ndarray, *, ridge: float = 1e-6) -> AffineMap:
    """LEACE of a binary group from its moments: ``h - delta (v^T (h - mu))`` with ``v = Sigma^-1 delta / delta^T
    Sigma^-1 delta`` (``Sigma``: the total covariance plus ``ridge * tr / d``)."""
    mu, S = _total(counts, means, covs)
    delta = means[0] - means[1]
    sol = np.linalg.solve(_ridge(S, ridge), delta)
    v = sol / float(delta @ sol)
    return AffineMap.low_rank(-delta[:, None], v[:, None], delta * float(v @ mu))


def kl_directions(
    means: np.ndarray, covs: np.ndarray, rank: int, *, counts: np.ndarray | None = None, ridge: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """The coordinates that carry most of the KL between the two group Gaussians.

    In the coordinates whitened by the within-group pooled covariance ``P`` (weighted by ``counts``; default
    equal), the symmetric KL of the two laws is a sum over the generalized eigenvectors ``w_i`` of the pencil
    ``(Sigma_f, Sigma_m)`` of ``(l_i + 1/l_i - 2) / 2`` plus the Mahalanobis term of ``delta``. The ``rank``
    eigenvectors with the largest term and the mean direction ``P^-1 delta`` are orthonormalised in the ``P`` inner
    product.

    Returns:
        ``(W, C)``: ``W`` ``(d, r')`` reads the coordinates ``z = W^T h``; ``C = P W`` writes them back, so
        ``h + C (z' - z)`` changes ``z`` to ``z'`` and leaves the ``P``-orthogonal complement alone.
    """
    Sf, Sm = (_ridge(c, ridge) for c in covs)
    w = np.full(2, 0.5) if counts is None else np.asarray(counts, dtype=np.float64) / np.sum(counts)
    P = w[0] * Sf + w[1] * Sm
    evals, evecs = np.linalg.eigh(P)
    rs = evecs / np.sqrt(evals)  # P^-1/2 (columns)
    Cf = rs.T @ Sf @ rs
    Cm = rs.T @ Sm @ rs
    # generalized eigenvectors of (Cf, Cm): whiten by Cm
    mv, mV = np.linalg.eigh(0.5 * (Cm + Cm.T))
    mr = mV / np.sqrt(mv)
    lam, Q = np.linalg.eigh(mr.T @ Cf @ mr)
    score = 0.5 * (lam + 1.0 / lam - 2.0)
    top = np.argsort(score)[::-1][: max(int(rank), 0)]
    dirs = [mr @ Q[:, top]] if rank > 0 else []
    mean_dir = rs.T @ (means[0] - means[1])  # whitened coordinates
    B = np.column_stack([mean_dir, *[d for d in dirs]]) if dirs else mean_dir[:, None]
    Qb, _ = np.linalg.qr(B)  # orthonormal in whitened coordinates
    W = rs @ Qb  # z = W^T h  ==  Qb^T P^-1/2 h
    C = P @ W
    return W, C


def _subspace_maps(
    means: np.ndarray, covs: np.ndarray, counts: np.ndarray, W: np.ndarray, C: np.ndarray
) -> dict[str, AffineMap]:
    """Each group's Gaussian OT map onto the Bures barycenter inside ``z = W^T h``, lifted as ``h + C (T(z) - z)``."""
    laws = [Gaussian(W.T @ m, _ridge(W.T @ S @ W, 1e-9)) for m, S in zip(means, covs, strict=True)]
    w = counts / counts.sum()
    target = Gaussian(w @ np.stack([p.mean for p in laws]), bures_barycenter([p.cov for p in laws], w))
    out = {}
    for g, law in zip(GROUPS, laws, strict=True):
        T = gaussian_ot_map(law, target)
        r = W.shape[1]
        out[g] = AffineMap.low_rank(C @ (T.A - np.eye(r)), W, C @ T.b)
    return out


@dataclass(frozen=True)
class SteeringMethod:
    """One method's maps per layer (and group probes), applied through :func:`steerfair.llm.steer`.

    Attributes:
        name: the method name.
        maps: ``{layer: AffineMap or {group: AffineMap}}`` (empty for ``none``).
        probes: ``{layer: LinearProbe}`` for per-group maps (the group of every token from its own state).
        info: what was fitted (ranks, per-layer facts) for the results file.
    """

    name: str
    maps: dict[int, Any]
    probes: dict[int, LinearProbe] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def steering(
        self, model: nn.Module, attention_mask: torch.Tensor, strength: float, extra: int = 0
    ) -> Iterator[None]:
        """Steer ``model`` inside the block at ``strength``, on :func:`steered_positions` of this batch."""
        if not self.maps:
            yield
            return
        positions = steered_positions(attention_mask, extra)
        with steer(
            model,
            self.maps,
            layers=sorted(self.maps),
            positions=positions,
            probe=self.probes or None,
            strength=float(strength),
        ):
            yield


def steered_positions(attention_mask: torch.Tensor, extra: int = 0) -> torch.Tensor:
    """Boolean ``batch x (T + extra)`` mask: every real token except each row's first (the attention sink), as
    :func:`steerfair.llm.pooling.tokens_mask` (the hooks' ``positions="tokens"``), plus ``extra`` columns (tokens still
    to be generated), all steered. Works for left and right padding."""
    sel = tokens_mask(attention_mask)
    if extra:
        sel = torch.cat([sel, torch.ones(sel.shape[0], extra, dtype=torch.bool, device=sel.device)], dim=1)
    return sel


def build_methods(
    stats: ActivationStats,
    names: Sequence[str],
    layers: Sequence[int],
    *,
    rank: int = 4,
    ridge: float = 1e-4,
    readout: Readout | None = None,
) -> dict[str, SteeringMethod]:
    """Fit every method in ``names`` at ``layers`` from contrast statistics.

    Args:
        stats: from :func:`contrast_statistics` (groups :data:`GROUPS`).
        names: methods from :data:`METHODS`.
        layers: the steered blocks (each fitted on its own statistics).
        rank: ``steerfair_kl``: the number of pencil eigenvectors (the mean direction comes on top).
        ridge: relative diagonal regularisation of covariances (``ridge * tr / d``) for ``mimic`` and
            ``steerfair_kl``.
        readout: the readout block and contrast directions for :data:`READOUT_METHODS`
            (:func:`steerfair.evaluation.readout_methods.model_readout`); its block needs statistics too.

    Raises:
        ValueError: an unknown method or layer, or a readout method without ``readout``.
    """
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    needs_readout = [n for n in names if n in READOUT_METHODS]
    if needs_readout and readout is None:
        raise ValueError(f"method(s) {needs_readout} need readout= (from readout_methods.model_readout)")
    fitted = [*layers, *([readout.layer] if needs_readout and readout is not None else [])]
    missing = [layer for layer in fitted if layer not in stats.layers]
    if missing:
        raise ValueError(f"layers {missing} have no statistics (collected: {list(stats.layers)})")
    out: dict[str, SteeringMethod] = {}
    moments = {layer: group_moments(stats, layer) for layer in layers}
    probes = {layer: LinearProbe.from_moments(list(GROUPS), *moments[layer]) for layer in layers}
    for name in names:
        if name == "none":
            out[name] = SteeringMethod(name, {})
        elif name == "mean_diff":
            out[name] = SteeringMethod(name, {layer: mean_diff_map(n, m) for layer, (n, m, _) in moments.items()})
        elif name == "leace":
            out[name] = SteeringMethod(name, {layer: leace_map(*moments[layer]) for layer in layers})
        elif name == "mimic":
            maps = {}
            for layer, (_, m, S) in moments.items():
                f, ml = (Gaussian(m[a], _ridge(S[a], ridge)) for a in range(2))
                maps[layer] = {"female": gaussian_ot_map(f, ml), "male": AffineMap.identity(m.shape[1])}
            out[name] = SteeringMethod(name, maps, probes)
        elif name == "steerfair":
            bundle = fit_bundle(stats, layers=list(layers), probe=True)
            out[name] = SteeringMethod(name, dict(bundle.maps), dict(bundle.probes), {"kl": bundle.metadata.get("kl")})
        elif name == "steerfair_kl_erase":
            erase = {}
            for layer, (n, m, S) in moments.items():
                W, C = kl_directions(m, S, rank, counts=n, ridge=ridge)
                mu = (n / n.sum()) @ m
                erase[layer] = AffineMap.low_rank(-C, W, C @ (W.T @ mu))
            dim = min(int(rank) + 1, next(iter(moments.values()))[1].shape[1])  # the span is capped at d
            out[name] = SteeringMethod(name, erase, {}, {"rank": rank, "subspace_dim": dim})
        elif name in READOUT_METHODS:
            assert readout is not None
            n, m, _ = group_moments(stats, readout.layer)
            ro_maps: dict[int, Any] = {}
            if name == "mean_diff_readout":
                ro_maps.update({lr: mean_diff_map(c, mm) for lr, (c, mm, _) in moments.items()})
            ro_maps[readout.layer] = readout_map(n, m, readout.directions)  # replaces mean_diff there if listed
            out[name] = SteeringMethod(name, ro_maps, {}, {"readout_layer": readout.layer})
        else:  # steerfair_kl
            maps = {}
            for layer, (n, m, S) in moments.items():
                W, C = kl_directions(m, S, rank, counts=n, ridge=ridge)
                maps[layer] = _subspace_maps(m, S, n, W, C)
            dim = min(int(rank) + 1, next(iter(moments.values()))[1].shape[1])
            out[name] = SteeringMethod(name, maps, probes, {"rank": rank, "subspace_dim": dim})
    return out
