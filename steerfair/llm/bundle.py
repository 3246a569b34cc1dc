"""A fitted steering bundle: per-layer, per-group maps onto the ideal, a group probe, and metadata.

``fit_bundle(stats)`` turns streamed activation statistics (:class:`steerfair.llm.stats.ActivationStats`)
into label-free per-group maps for each layer (the group OT map of :mod:`steerfair.steering`: the group's
two-moment law onto the ideal group law) plus a linear group probe (LDA from the same moments). The bundle
is what :func:`steerfair.llm.steer` accepts, and it saves to safetensors + a JSON sidecar (no pickle).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..maps import AffineMap
from ..steering import fit_steering
from .hooks import LinearProbe

__all__ = ["SteeringBundle", "fit_bundle"]

_FORMAT = "steerfair.steering_bundle"
_VERSION = 1


@dataclass(frozen=True, eq=False)
class SteeringBundle:
    """Maps per layer and group, optional probes per layer, and what they were fitted for.

    Attributes:
        maps: ``{layer index: {group: AffineMap}}``.
        groups: the group labels, in the order of every layer's maps.
        probes: ``{layer index: LinearProbe}`` (may be empty).
        layer_path: the module path of the blocks (``None``: automatic discovery).
        metadata: model name, criterion, intervention, pooling, KL per layer, ...
    """

    maps: dict[int, dict[Any, AffineMap]]
    groups: tuple[Any, ...]
    probes: dict[int, LinearProbe] = field(default_factory=dict)
    layer_path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> list[int]:
        """The steered layer indices."""
        return sorted(self.maps)

    def layer_maps(self) -> dict[int, dict[Any, AffineMap]]:
        """The maps in the form :func:`steerfair.llm.attach` takes."""
        return self.maps

    def to_low_rank(self, rank: int | None = None) -> SteeringBundle:
        """The same bundle with every map in identity-plus-rank-``rank`` form (truncated SVD of ``A - I``)."""
        maps = {layer: {g: T.to_low_rank(rank) for g, T in m.items()} for layer, m in self.maps.items()}
        meta = {**self.metadata, "low_rank": rank}
        return SteeringBundle(maps, self.groups, self.probes, self.layer_path, meta)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``path`` (safetensors, float64) and ``path + ".json"`` (groups, layers, metadata)."""
        from safetensors.numpy import save_file

        try:
            json.dumps(list(self.groups))
        except TypeError as exc:
            raise ValueError(f"group labels must be JSON-serialisable to save a bundle: {exc}") from None
        tensors: dict[str, np.ndarray] = {}
        for layer, m in self.maps.items():
            for j, T in enumerate(m.values()):
                tensors.update(T.state_dict(prefix=f"layer{layer}.group{j}."))
        for layer, p in self.probes.items():
            tensors[f"probe{layer}.W"] = p.W
            tensors[f"probe{layer}.c"] = p.c
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata={"format": _FORMAT})
        side = {
            "format": _FORMAT,
            "version": _VERSION,
            "groups": [g.item() if hasattr(g, "item") else g for g in self.groups],
            "layers": self.layers,
            "probe_layers": sorted(self.probes),
            "layer_path": self.layer_path,
            "metadata": self.metadata,
        }
        with open(f"{os.fspath(path)}.json", "w") as fh:
            json.dump(side, fh, indent=2, default=str)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SteeringBundle:
        """Read a bundle written by :meth:`save` (tensors and JSON only; nothing is executed)."""
        from safetensors import safe_open

        with open(f"{os.fspath(path)}.json") as fh:
            side = json.load(fh)
        if side.get("format") != _FORMAT:
            raise ValueError(f"{path}.json is not a steerfair steering bundle")
        with safe_open(str(path), framework="numpy") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        groups = tuple(side["groups"])
        maps = {
            int(layer): {
                g: AffineMap.from_state_dict(tensors, prefix=f"layer{layer}.group{j}.") for j, g in enumerate(groups)
            }
            for layer in side["layers"]
        }
        probes = {
            int(layer): LinearProbe(tensors[f"probe{layer}.W"], tensors[f"probe{layer}.c"], groups)
            for layer in side["probe_layers"]
        }
        return cls(maps, groups, probes, side.get("layer_path"), side.get("metadata", {}))


def fit_bundle(
    stats: Any,
    *,
    layers: list[int] | None = None,
    criterion: str = "equal_opportunity",
    intervention: str = "all",
    shrinkage: Any = None,
    reg: Any = "auto",
    probe: bool = True,
    rank: int | None = None,
    layer_path: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> SteeringBundle:
    """Fit the per-group steering maps (and group probes) of every layer from activation statistics.

    Args:
        stats: an ``ActivationStats`` with labels (>= 2 classes) and >= 2 groups.
        layers: subset of ``stats.layers``; default all.
        criterion, intervention: passed to :func:`steerfair.fit_steering`.
        shrinkage, reg: covariance regularisation (``from_moments``; Ledoit-Wolf needs samples).
        probe: also fit an LDA group probe per layer (for inference without the group).
        rank: steer only inside the top-``rank`` principal subspace of the layer's pooled activations
            (``None``: the full space). The ideal is solved for the projected moments and each map becomes
            ``h -> h + P (A_r - I) P^T h + P b_r`` (identity plus rank ``rank``, stored low-rank); directions
            outside the subspace, where a small corpus gives (near-)singular covariances, are left alone.
    """
    chosen = list(stats.layers) if layers is None else list(layers)
    unknown = [layer for layer in chosen if layer not in list(stats.layers)]
    if unknown:
        raise ValueError(f"layers {unknown} have no statistics (collected: {list(stats.layers)})")
    maps: dict[int, dict[Any, AffineMap]] = {}
    probes: dict[int, LinearProbe] = {}
    kls: dict[str, float] = {}
    groups: tuple[Any, ...] = ()
    if rank is not None and not (isinstance(rank, int) and 1 <= rank <= stats.dim):
        raise ValueError(f"rank must be an integer in 1..{stats.dim}; got {rank!r}")
    for layer in chosen:
        if rank is None:
            model = stats.to_model(layer, shrinkage=shrinkage, reg=reg)
            P = None
        else:
            model, P = _projected_model(stats, layer, rank, shrinkage, reg)
        steering = fit_steering(model, criterion, intervention)  # type: ignore[arg-type]
        groups = tuple(model.groups.tolist())
        if P is None:
            maps[layer] = {g: steering.group_maps[a] for a, g in enumerate(groups)}
        else:
            maps[layer] = {
                g: AffineMap.low_rank(P @ (T.A - np.eye(rank)), P, P @ T.b)
                for g, T in zip(groups, steering.group_maps, strict=True)
            }
        kls[str(layer)] = float(steering.solution.kl)
        if probe:
            li = list(stats.layers).index(layer)
            n = stats.counts[li].sum(dim=1).double().numpy()  # (k,)
            s = stats.sums[li].sum(dim=1).double().numpy()  # (k, d)
            o = stats.outer[li].sum(dim=1).double().numpy()  # (k, d, d)
            mu = s / n[:, None]
            covs = o / n[:, None, None] - mu[:, :, None] * mu[:, None, :]
            probes[layer] = LinearProbe.from_moments(groups, n, mu, covs)
    meta = {"criterion": criterion, "intervention": intervention, "rank": rank, "kl": kls, **(metadata or {})}
    return SteeringBundle(maps, groups, probes, layer_path, meta)


def _projected_model(stats: Any, layer: int, rank: int, shrinkage: Any, reg: Any) -> tuple[Any, np.ndarray]:
    """The group/label model of the layer's moments projected on the top-``rank`` principal directions."""
    from ..linalg import eigh_sym
    from ..model import GroupConditionalModel

    li = list(stats.layers).index(layer)
    counts = stats.counts[li].double().numpy()  # (k, m)
    sums = stats.sums[li].double().numpy()  # (k, m, d)
    outer = stats.outer[li].double().numpy()  # (k, m, d, d)
    n = counts.sum()
    mu = sums.sum(axis=(0, 1)) / n
    pooled = outer.sum(axis=(0, 1)) / n - np.outer(mu, mu)
    _, vecs = eigh_sym(pooled)
    P = np.ascontiguousarray(vecs[:, ::-1][:, :rank])  # (d, r), leading directions first
    if np.any(counts <= 0):
        raise ValueError("every (group, label) cell needs samples to fit a bundle")
    means = np.einsum("kmd,dr->kmr", sums, P) / counts[..., None]
    second = np.einsum("dr,kmde,es->kmrs", P, outer, P) / counts[..., None, None]
    covs = second - means[..., :, None] * means[..., None, :]
    covs = 0.5 * (covs + np.swapaxes(covs, -1, -2))
    labels = stats.labels if stats.labels is not None else (None,)
    model = GroupConditionalModel.from_moments(
        list(stats.groups), list(labels), counts, means, covs, shrinkage=shrinkage, reg=reg
    )
    return model, P
