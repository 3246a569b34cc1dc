"""How a hook applies a layer's maps: kernels over torch tensors, strength interpolation, and the normalisation of
the accepted ``maps`` forms and of a bundle's garbling noise factors (used by :mod:`.hooks`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..maps import AffineMap

__all__ = ["LayerMaps", "LayerNoise", "interpolate", "layer_noise", "map_kernel", "normalise_maps"]

#: One layer's maps: a map for every row, or one per group.
LayerMaps = AffineMap | Mapping[Any, AffineMap]
#: Noise factors of a layer's maps, in the order of the maps (``None`` or ``(d, 0)``: deterministic).
LayerNoise = Sequence[np.ndarray | None]


def map_kernel(
    T: AffineMap,
    device: torch.device,
    dtype: torch.dtype,
    noise: Callable[[int], torch.Tensor] | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``h -> T(h)`` (plus ``noise(n)``, ``n`` rows, for a garbling) as a closure over tensors on ``device``
    (computed in float32 for half precision)."""
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    params = T.torch_params(device, compute)
    d = T.d_in
    if noise is not None:
        deterministic = map_kernel(T, device, compute)

        def garbled(h: torch.Tensor) -> torch.Tensor:
            x = deterministic(h.to(compute)).reshape(-1, d)
            return (x + noise(x.shape[0])).view(h.shape).to(dtype)

        return garbled
    if not T.is_low_rank:
        AT, b = params

        def dense(h: torch.Tensor) -> torch.Tensor:
            x = h.reshape(-1, d).to(compute)
            return torch.addmm(b, x, AT).view(h.shape).to(dtype)

        return dense
    UT, V, b = params
    if UT.shape[0] == 0:  # identity or translation: h + b (exactly h for the identity)

        def shift(h: torch.Tensor) -> torch.Tensor:
            return (h.to(compute) + b).to(dtype)

        return shift

    def low_rank(h: torch.Tensor) -> torch.Tensor:  # h + (h V) U^T + b, never forming the d x d matrix
        x = h.reshape(-1, d).to(compute)
        return torch.addmm(x + b, x @ V, UT).view(h.shape).to(dtype)

    return low_rank


def interpolate(T: AffineMap, strength: float) -> AffineMap:
    """``x -> x + strength * (T(x) - x)``: the identity at 0, ``T`` at 1 (low-rank maps stay low-rank)."""
    if strength == 1.0:
        return T
    U, V = T.U, T.V
    if U is not None and V is not None:  # low-rank
        return AffineMap.low_rank(strength * U, V, strength * T.b)
    d = T.d_in
    return AffineMap(np.eye(d) + strength * (T.A - np.eye(d)), strength * T.b)


def normalise_maps(maps: Any, keys: list[Any], ids: list[int], dim: int | None) -> dict[int, LayerMaps]:
    """``{block index: AffineMap or {group: AffineMap}}`` from any accepted ``maps`` form.

    A mapping counts as per-layer when one of the requested layer keys (or their normalised indices)
    is among its keys; otherwise it is a per-group mapping used at every requested layer (wrap per-group
    maps with integer group labels as ``{layer: {group: map}}`` to avoid the ambiguity).
    """
    if isinstance(maps, AffineMap):
        out: dict[int, Any] = dict.fromkeys(ids, maps)
    elif isinstance(maps, Mapping) and maps:
        if any(k in maps for k in keys) or any(i in maps for i in ids):
            out = {}
            for key, idx in zip(keys, ids, strict=True):
                if key in maps:
                    out[idx] = maps[key]
                elif idx in maps:
                    out[idx] = maps[idx]
                else:
                    raise ValueError(f"no map for layer {key!r} (maps are given for {list(maps)!r})")
        elif all(isinstance(v, (Mapping, AffineMap)) for v in maps.values()) and any(
            isinstance(v, Mapping) for v in maps.values()
        ):  # {layer: maps} for other layers than the requested ones
            raise ValueError(f"no map for layer(s) {keys!r}: maps are given for layers {list(maps)!r}")
        else:
            out = dict.fromkeys(ids, maps)
    else:
        raise TypeError("maps must be an AffineMap, {group: AffineMap}, {layer: maps} or a SteeringBundle")
    for idx, spec in out.items():
        values = [spec] if isinstance(spec, AffineMap) else list(spec.values()) if isinstance(spec, Mapping) else [spec]
        if not values:
            raise ValueError(f"layer {idx}: empty group map")
        for T in values:
            if not isinstance(T, AffineMap):
                raise TypeError(f"layer {idx}: expected AffineMap values; got {type(T).__name__}")
            if dim is not None and (T.d_in != dim or T.d_out != dim):
                raise ValueError(f"layer {idx}: map is {T.d_out}x{T.d_in} but the model's hidden size is {dim}")
    return out


def layer_noise(
    noise: Mapping[Any, Mapping[Any, np.ndarray]],
    spec: dict[int, LayerMaps],
    keys: list[Any],
    ids: list[int],
    strength: float,
) -> dict[int, LayerNoise]:
    """A bundle's noise factors per block index, in the order of each layer's group maps, times ``strength``."""
    out: dict[int, LayerNoise] = {}
    for key, idx in zip(keys, ids, strict=True):
        by_group = noise.get(key, noise.get(idx))
        if not by_group:
            continue
        m = spec[idx]
        if not isinstance(m, Mapping) or set(by_group) != set(m):
            raise ValueError(f"layer {key!r}: the noise factors do not belong to the layer's group maps")
        out[idx] = [strength * np.asarray(by_group[g], dtype=np.float64) for g in m]
    return out
