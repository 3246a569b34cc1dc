"""Inject affine steering maps into the hidden states of a Hugging Face model (forward and ``generate``).

``steer(model, maps, layers=...)`` is a context manager; ``attach(...)`` returns a handle for long-lived
use (``handle.remove()``). Hooks are registered on the transformer blocks (see :mod:`.layers`); the model's
modules and parameters are never modified, and removing the hooks restores bit-identical outputs.

A map per layer is either one :class:`steerfair.AffineMap` (every row moves with it) or a mapping
``{group: AffineMap}``: each batch row then moves with its group's map, or, when the group is uncertain,
with the probability-weighted mixture ``sum_a P(a | row) T_a(h)``. Row-group weights come from
``groups=`` (one label per batch row), ``group_proba=`` (``batch x k``), or a ``probe`` (a
:class:`LinearProbe`: ``P(a | h)`` per token from the hidden state itself, the "group unknown at
inference" case). ``handle.set_groups(...)`` changes them between calls.

Positions: ``"all"`` tokens; ``"tokens"`` (every real token but each row's first, prompt and generated: the states
``collect(..., pooling="tokens")`` describes; a decoder's first state is its attention sink); ``"last"`` (the last real
token of each row in a full forward, the new token in a cached decoding step); ``"prompt"`` / ``"generated"`` (absolute
positions before / from the prompt length, which is the length of the last forward that started without a KV cache, so
they need ``use_cache=True``, the default of ``generate``; decoding without a cache warns once); or a boolean
``batch x T`` mask over absolute positions (positions beyond ``T`` are not steered). The past length of a decoding
step is read from ``cache_position`` or from the KV cache itself (``past_key_values`` in transformers 4.x, ``cache``
in 5.x). ``"tokens"`` and ``"last"`` read each row's padding from a 2-D attention mask (a 4-D one, as ``generate``
passes with ``cache_implementation="static"``, is refused); in an encoder-decoder model, whose found blocks are the
decoder's, from ``decoder_input_ids`` / ``decoder_attention_mask``. ``"last"`` on a batch of several rows needs
the ``attention_mask``: without it, a batch holding the pad token raises ``ValueError`` and a batch whose padding cannot
be checked (no pad token, ``inputs_embeds``) warns once. A steered hidden state that overflows the model's dtype (inf
where the input was finite, e.g. past 65504 in float16) raises ``ValueError`` naming the layer and dtype. Maps are
converted once per device and dtype and computed in float32 for half-precision models; low-rank maps are applied without
forming the ``d x d`` matrix.

Garblings (``fit_bundle(..., target="shared")``, docs/shared_target.md): a bundle with noise factors ``F_a`` adds
``F_a z`` to ``T_a(h)``, with ``z ~ N(0, I)`` drawn independently for every position of every forward call (the
noise of a position that is not steered is drawn and discarded). The draws come from the handle's own CPU
``torch.Generator`` (so they do not depend on the device, and do not touch torch's global generator), seeded from
``attach(random_state=...)``, else from the bundle's recorded ``random_state``, else from fresh entropy; the same
seed, inputs and calls give bit-identical outputs. ``noise=False`` applies only the deterministic part ``T_a(h)``
(the garbling's conditional mean: every class mean still lands on the target's, but the within-class covariance is
not the target's, so the equal-laws guarantee is lost). A soft group mixture ``sum_a P(a) K_a(h)`` draws every
group's noise (a one-hot row is its group's garbling exactly), and ``strength=s`` scales the noise with the map:
``h + s (K_a(h) - h)``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..maps import AffineMap
from ..membership import Membership
from ..random_state import as_generator
from ..warning_location import user_stacklevel
from .block_steering import BlockSteering
from .call_context import call_arguments, padding_present, past_length
from .capture import hidden_of
from .layers import find_layer_list, resolve_layers
from .map_kernels import LayerMaps, LayerNoise, interpolate, layer_noise, map_kernel, normalise_maps
from .pooling import tokens_mask, warn_pooling_mismatch
from .probe import LinearProbe

__all__ = ["LinearProbe", "SteeringHandle", "attach", "interpolate", "steer"]

POSITIONS: tuple[str, ...] = ("all", "last", "prompt", "generated", "tokens")


def _hidden_size(model: nn.Module) -> int | None:
    cfg = getattr(model, "config", None)
    for name in ("hidden_size", "n_embd", "d_model", "dim"):
        v = getattr(cfg, name, None)
        if isinstance(v, int):
            return v
    return None


class SteeringHandle:
    """Hooks that steer a model's hidden states; remove them with :meth:`remove` (or use as a context).

    Attributes:
        model: the hooked model.
        maps: ``{block index: AffineMap or {group: AffineMap}}``.
        layers: the steered block indices, ascending.
        positions: which positions are steered (see :func:`attach`).
        probe_mode: ``"soft"`` or ``"hard"`` (with a probe).
        prompt_length: the length of the last forward that started without a KV cache.
        noise: ``{block index: [noise factor per map]}`` (garblings; empty: deterministic maps).
    """

    def __init__(
        self,
        model: nn.Module,
        maps: dict[int, LayerMaps],
        blocks: dict[int, nn.Module],
        positions: str | torch.Tensor,
        probe: LinearProbe | Mapping[int, LinearProbe] | None,
        probe_mode: str = "soft",
        noise: Mapping[int, LayerNoise] | None = None,
        random_state: Any = None,
        inner: nn.Module | None = None,
    ) -> None:
        if probe_mode not in ("soft", "hard"):
            raise ValueError(f"probe_mode must be 'soft' or 'hard'; got {probe_mode!r}")
        self.probe_mode = probe_mode
        self.model = model
        self.maps = maps
        self.layers = sorted(maps)
        self.positions = positions
        self.noise = {
            layer: list(factors)
            for layer, factors in (noise or {}).items()
            if any(F is not None and F.shape[1] > 0 for F in factors)
        }
        self._generator = torch.Generator()
        self.reseed(random_state)
        self._probe = probe
        self._handles: list[Any] = []
        self._proba: torch.Tensor | None = None
        self._ctx: dict[str, Any] = {}
        self._kernel_cache: dict[tuple[Any, ...], list[Callable[[torch.Tensor], torch.Tensor]]] = {}
        self.prompt_length: int | None = None
        self._warned_unmasked = False
        self._warned_uncached = False
        self._encoder_decoder = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
        self._last_fresh: torch.Tensor | None = None  # the ids of the last forward that started without a KV cache
        self._group_labels: dict[int, list[Any]] = {
            layer: list(m.keys()) for layer, m in maps.items() if isinstance(m, Mapping)
        }
        # each layer's probe columns in the order of its maps (a probe's groups are matched by name, never by position)
        self._probe_columns: dict[int, list[int]] = {}
        for layer, labels in self._group_labels.items():
            layer_probe = self._probe.get(layer) if isinstance(self._probe, Mapping) else self._probe
            if layer_probe is not None:
                self._probe_columns[layer] = layer_probe.columns_for(labels, f"layer {layer}")
                width = next(iter(maps[layer].values())).d_in  # type: ignore[union-attr]
                if layer_probe.W.shape[0] != width:
                    raise ValueError(
                        f"the probe of layer {layer} reads {layer_probe.W.shape[0]} columns but the layer's maps act "
                        f"on {width}; pass the probe fitted on this layer's hidden states"
                    )
        try:
            # the post-hooks run after a failed forward too, so no call's mask or cache length outlives it
            self._handles.append(model.register_forward_pre_hook(self._pre, with_kwargs=True))
            self._handles.append(model.register_forward_hook(self._post, always_call=True))
            if inner is not None and inner is not model:  # a direct call of the module holding the blocks
                self._handles.append(inner.register_forward_pre_hook(self._pre_inner, with_kwargs=True))
                self._handles.append(inner.register_forward_hook(self._post_inner, always_call=True))
            for layer, block in blocks.items():
                self._handles.append(BlockSteering.on(block).add(self._make_hook(layer)))
        except Exception:
            self.remove()
            raise

    # ------------------------------------------------------------------ lifecycle
    @property
    def active(self) -> bool:
        """Whether the hooks are still registered."""
        return bool(self._handles)

    def remove(self) -> None:
        """Remove every hook (idempotent); the model then computes exactly what it did before."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> SteeringHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def reseed(self, random_state: Any = None) -> None:
        """Restart the garbling noise from ``random_state`` (``None``: fresh entropy, an int, or a numpy
        ``Generator``); a no-op for deterministic maps."""
        seed = int(as_generator(random_state).integers(0, 2**63 - 1))
        self._generator.manual_seed(seed)

    # ------------------------------------------------------------------ groups
    def set_groups(self, groups: Sequence[Any] | None = None, group_proba: Any = None) -> None:
        """Row-group weights for the following forward calls (one row per batch element).

        Both are read by :class:`steerfair.membership.Membership` against the maps' groups.

        Args:
            groups: one group label per row (hard), or a ``batch x k`` probability matrix.
            group_proba: ``batch x k`` non-negative weights in the order of the maps' groups (each row is
                normalised to sum to 1).

        Neither: use the probe (or, without a probe, group maps raise at the next forward).

        Raises:
            ValueError: for both arguments at once, a group without a map, or weights of the wrong shape,
                negative, not finite, or an all-zero row.
        """
        if groups is not None and group_proba is not None:
            raise ValueError("pass groups= or group_proba=, not both")
        if not self._group_labels:
            if groups is not None or group_proba is not None:
                raise ValueError("these maps are not per group; groups= / group_proba= do not apply")
            return
        labels = next(iter(self._group_labels.values()))
        if any(v != labels for v in self._group_labels.values()):
            raise ValueError("every steered layer must have maps for the same groups, in the same order")
        known = np.empty(len(labels), dtype=object)  # the maps' own group values, never coerced by numpy
        known[:] = list(labels)
        if groups is not None:
            try:
                membership = Membership.align(groups, known, name="groups")
            except ValueError as exc:
                raise ValueError(f"no steering map for these groups: {exc}") from None
        elif group_proba is not None:
            P = np.asarray(group_proba, dtype=np.float64)
            if P.ndim != 2 or P.shape[1] != len(labels):
                raise ValueError(f"group_proba must be batch x {len(labels)}; got shape {P.shape}")
            if not np.all(np.isfinite(P)) or np.any(P < 0):
                raise ValueError("group_proba must hold finite, non-negative weights (one row per batch element)")
            zero = np.flatnonzero(P.sum(axis=1) <= 0)
            if zero.size:
                raise ValueError(
                    f"group_proba rows {zero.tolist()} are all zero: every row needs a positive weight for at "
                    "least one group (use a uniform row if the group is unknown)"
                )
            P = P / P.sum(axis=1, keepdims=True)  # rows are weights: normalised to sum to 1
            membership = Membership.align(P, known, name="group_proba")
        if groups is not None or group_proba is not None:
            self._proba = torch.tensor(membership.weights, dtype=torch.float32)
        else:
            self._proba = None

    # ------------------------------------------------------------------ hooks
    def _pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._read_call(module, args, kwargs, decoder=self._encoder_decoder)

    def _read_call(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], decoder: bool) -> None:
        """Record the call's cache length and attention mask for the block hooks. ``decoder``: the call of an
        encoder-decoder model, whose steered blocks are the decoder's: its ids and mask are ``decoder_*``."""
        kwargs = call_arguments(module, args, kwargs)  # positional arguments by name (model(ids, mask))
        past, prefix = past_length((), kwargs), "decoder_" if decoder else ""
        ids, embeds = kwargs.get(f"{prefix}input_ids"), kwargs.get(f"{prefix}inputs_embeds")
        ref = ids if isinstance(ids, torch.Tensor) else embeds
        t = int(ref.shape[1]) if isinstance(ref, torch.Tensor) and ref.ndim >= 2 else None
        if past == 0 and t is not None:
            self._check_uncached_decoding(ids)
            self.prompt_length = t
        mask = kwargs.get(f"{prefix}attention_mask")
        if isinstance(mask, torch.Tensor) and mask.ndim != 2 and self.positions in ("tokens", "last"):
            raise ValueError(
                f'positions="{self.positions}" reads each row\'s padding from a 2-D (batch x length) attention mask; '
                f"this call passed a {mask.ndim}-D mask (generate passes one with cache_implementation='static'). "
                "Use the default dynamic cache, pass a 2-D attention_mask, or pass positions as a boolean mask"
            )
        if (
            isinstance(self.positions, str)
            and self.positions == "last"
            and not isinstance(mask, torch.Tensor)
            and isinstance(ref, torch.Tensor)
            and ref.ndim >= 2
            and ref.shape[0] > 1
            and ref.shape[1] > 1
        ):
            self._check_unmasked_last(module, ids)
        self._ctx = {"past": past, "mask": mask}

    def _check_uncached_decoding(self, ids: Any) -> None:
        """Warn once when ``"prompt"`` / ``"generated"`` / ``"last"`` meet decoding without a KV cache: a fresh
        forward that extends the previous fresh forward's ids by one token is ``generate(use_cache=False)``, where
        every step counts as a new prompt (``"generated"`` steers nothing, ``"prompt"`` every token, ``"last"`` only
        the newest token: the earlier generated tokens, steered when a cache keeps them, are recomputed unsteered)."""
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2:
            self._last_fresh = None
            return
        prev, self._last_fresh = self._last_fresh, ids
        if self.positions not in ("prompt", "generated", "last") or self._warned_uncached or prev is None:
            return
        if prev.shape[0] == ids.shape[0] and ids.shape[1] == prev.shape[1] + 1 and torch.equal(ids[:, :-1], prev):
            self._warned_uncached = True
            effect = {"generated": "nothing is steered", "prompt": "every token is steered"}.get(
                str(self.positions), "only the newest token is steered (a cache keeps every generated token steered)"
            )
            warnings.warn(
                f'positions="{self.positions}" during decoding without a KV cache (generate(use_cache=False)): every '
                f"step starts without a cache and counts as a new prompt, so {effect}. Generate with use_cache=True "
                "(generate's default) or pass a boolean positions mask.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )

    def _check_unmasked_last(self, module: nn.Module, ids: Any) -> None:
        """``positions="last"`` on a batch without attention mask: the last column is steered in every row."""
        present = padding_present(module, ids)
        advice = "Pass attention_mask= (as the tokenizer returns it) so each row's last real token is steered."
        if present:
            raise ValueError(
                'positions="last" on a batch without attention_mask, and the batch holds the model\'s pad token: '
                f"the pad positions would be steered instead of the last real tokens. {advice}"
            )
        if present is None and not self._warned_unmasked:
            self._warned_unmasked = True
            warnings.warn(
                'positions="last" on a batch of several rows without attention_mask (and no pad token to check '
                f"for padding): the last column of every row is steered, which is wrong for padded rows. {advice}",
                UserWarning,
                stacklevel=user_stacklevel(),
            )

    def _post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._ctx = {}

    def _pre_inner(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The module holding the blocks called directly (``model.model(...)``): read its mask and cache as the
        model's own pre-hook does; inside a call of the model, that hook has read them already."""
        if not self._ctx:
            self._read_call(module, args, kwargs, decoder=False)
            self._ctx["inner"] = True

    def _post_inner(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self._ctx.get("inner"):
            self._ctx = {}

    def _selection(self, h: torch.Tensor) -> torch.Tensor | None:
        """Boolean ``batch x t`` mask of the positions to steer (``None``: all)."""
        pos = self.positions
        if isinstance(pos, str) and pos == "all":
            return None
        b, t = h.shape[0], h.shape[1]
        past = int(self._ctx.get("past", 0))
        absolute = torch.arange(past, past + t, device=h.device)
        if isinstance(pos, torch.Tensor):
            if pos.shape[0] != b:
                raise ValueError(
                    f"the positions mask has {pos.shape[0]} rows but the batch has {b} (with num_return_sequences / "
                    "beams, repeat each row consecutively, as generate expands the batch: mask.repeat_interleave(n, 0))"
                )
            sel = torch.zeros(b, t, dtype=torch.bool, device=h.device)
            width = pos.shape[1]
            inside = absolute < width
            if inside.any():
                cols = absolute[inside]
                sel[:, inside] = pos.to(h.device)[:, cols]
            return sel
        if pos == "last":
            sel = torch.zeros(b, t, dtype=torch.bool, device=h.device)
            mask = self._ctx.get("mask")
            if t > 1 and isinstance(mask, torch.Tensor) and mask.shape[-1] >= past + t:
                m = mask[:, past : past + t].to(h.device).bool()
                last = t - 1 - torch.flip(m, dims=[1]).int().argmax(dim=1)
                sel[torch.arange(b, device=h.device), last] = True
            else:
                sel[:, -1] = True
            return sel
        if pos == "tokens":  # every real token but each row's first (read from the mask; without one, position 0)
            mask = self._ctx.get("mask")
            if isinstance(mask, torch.Tensor) and mask.ndim == 2 and mask.shape[-1] >= past + t:
                return tokens_mask(mask[:, : past + t].to(h.device))[:, past : past + t]
            return (absolute > 0)[None, :].expand(b, t)
        plen = self.prompt_length if self.prompt_length is not None else past + t
        in_prompt = (absolute < plen)[None, :].expand(b, t)
        return in_prompt if pos == "prompt" else ~in_prompt

    def _weights(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Row (or token) group weights: ``batch x 1 x k`` or ``batch x t x k``."""
        if self._proba is not None:
            if self._proba.shape[0] != h.shape[0]:
                raise ValueError(
                    f"groups were given for {self._proba.shape[0]} rows but the batch has {h.shape[0]} "
                    "(with num_return_sequences / beams, repeat each row's group consecutively, as generate expands "
                    "the batch: np.repeat(groups, n), not groups * n)"
                )
            return self._proba.to(h.device)[:, None, :]
        probe = self._probe.get(layer) if isinstance(self._probe, Mapping) else self._probe
        if probe is None:
            raise ValueError("per-group maps need groups=, group_proba= or a probe to know each row's group")
        P = probe.proba(h)[..., self._probe_columns[layer]]
        if self.probe_mode == "hard":  # the most probable group takes its whole map
            P = torch.nn.functional.one_hot(P.argmax(dim=-1), P.shape[-1]).to(P.dtype)
        return P

    def _kernels(self, layer: int, h: torch.Tensor) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """Per-map closures over parameters already on ``h``'s device and compute dtype (built once)."""
        key = (layer, h.device, h.dtype)
        found = self._kernel_cache.get(key)
        if found is None:
            spec = self.maps[layer]
            d = (spec if isinstance(spec, AffineMap) else next(iter(spec.values()))).d_in
            if h.shape[-1] != d:  # models whose config does not name a hidden size are checked here, at first use
                raise ValueError(f"layer {layer}: the maps are {d}-dimensional but its hidden states are {h.shape[-1]}")
            maps = [spec] if isinstance(spec, AffineMap) else list(spec.values())
            factors = self.noise.get(layer, [None] * len(maps))
            found = [map_kernel(T, h.device, h.dtype, self._sampler(F, h)) for T, F in zip(maps, factors, strict=True)]
            self._kernel_cache[key] = found
        return found

    def _sampler(self, F: np.ndarray | None, h: torch.Tensor) -> Callable[[int], torch.Tensor] | None:
        """``n -> (n, d)`` rows ``z F^T``, ``z ~ N(0, I_r)`` from the handle's CPU generator, on ``h``'s device in
        the compute dtype (``None`` for a deterministic map)."""
        if F is None or F.shape[1] == 0:
            return None
        compute = torch.float32 if h.dtype in (torch.float16, torch.bfloat16) else h.dtype
        FT = torch.tensor(np.ascontiguousarray(F.T), dtype=compute, device=h.device)
        r, gen = FT.shape[0], self._generator

        def draw(n: int) -> torch.Tensor:
            z = torch.randn(n, r, generator=gen, dtype=compute)
            return z.to(h.device) @ FT

        return draw

    def _apply(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        kernels = self._kernels(layer, h)
        if isinstance(self.maps[layer], AffineMap):
            return kernels[0](h)
        compute = torch.promote_types(h.dtype, torch.float32)  # float64 states are mixed in float64
        P = self._weights(layer, h).to(compute)
        out = None
        for j, f in enumerate(kernels):
            term = f(h).to(compute) * P[..., j : j + 1]
            out = term if out is None else out + term
        assert out is not None  # a mixture has at least one kernel
        return out.to(h.dtype)

    def steered(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """The hidden states ``(batch, seq, d)`` of block ``layer`` as the hook returns them (steered positions moved).

        This is the work the hook adds to a forward pass (the hook itself only unpacks and repacks the block's
        output around it); the current row-group weights, positions and decoding context apply.

        Args:
            layer: a steered block index (one of :attr:`layers`).
            hidden: the block's hidden states.

        Returns:
            A new tensor of the same shape and dtype.
        """
        sel = self._selection(hidden)
        if sel is None:
            out = self._apply(layer, hidden)
            self._check_finite(layer, hidden, out)
            return out
        new = hidden.clone()
        if sel.any():
            rows = self._apply(layer, hidden)  # the map is per row; a masked copy keeps shapes simple
            new[sel] = rows[sel]
            self._check_finite(layer, hidden, new)
        return new

    @staticmethod
    def _check_finite(layer: int, hidden: torch.Tensor, out: torch.Tensor) -> None:
        """Raise when steering turned finite hidden states into inf / NaN (overflow of a half-precision dtype)."""
        if bool(torch.isfinite(out).all()):
            return
        if bool((~torch.isfinite(out) & torch.isfinite(hidden)).any()):
            limit = torch.finfo(hidden.dtype).max
            raise ValueError(
                f"steering layer {layer} made finite hidden states non-finite in {hidden.dtype} (largest finite "
                f"value {limit:.4g}): the map overflows this dtype. Use a smaller strength=, a better-conditioned "
                "map, or run the model in float32 / bfloat16."
            )

    def _make_hook(self, layer: int) -> Callable[[Any], Any]:
        def hook(output: Any) -> Any:
            new = self.steered(layer, hidden_of(output, layer))
            if isinstance(output, torch.Tensor):
                return new
            return (new, *output[1:]) if isinstance(output, tuple) else type(output)([new, *output[1:]])

        return hook


def attach(
    model: nn.Module,
    maps: Any,
    *,
    layers: int | str | Sequence[int | str] | None = None,
    positions: str | torch.Tensor | None = None,
    layer_path: str | None = None,
    groups: Sequence[Any] | None = None,
    group_proba: Any = None,
    probe: LinearProbe | Mapping[int, LinearProbe] | None = None,
    strength: float = 1.0,
    probe_mode: str = "soft",
    noise: bool = True,
    random_state: Any = None,
) -> SteeringHandle:
    """Register steering hooks and return the handle (call ``handle.remove()`` when done).

    Args:
        model: a ``transformers`` model (decoder or encoder).
        maps: an ``AffineMap`` (used at every listed layer), ``{group: AffineMap}`` (per-group, every
            listed layer), ``{layer: AffineMap or {group: AffineMap}}``, or a ``SteeringBundle``.
        layers: indices (negative count from the end), module names, or ``"all"``; default: the keys of
            a per-layer ``maps`` dict.
        positions: ``"all"``, ``"tokens"`` (all but each row's first real token), ``"last"``, ``"prompt"``,
            ``"generated"``, or a boolean ``batch x T`` mask; ``None`` (default): ``"tokens"`` for a bundle fitted on
            ``pooling="tokens"`` statistics (the states its maps describe), else ``"all"``.
        layer_path: dotted path of the block list, overriding automatic discovery.
        groups: one group per batch row (see :meth:`SteeringHandle.set_groups`).
        group_proba: ``batch x k`` group weights per row (see :meth:`SteeringHandle.set_groups`).
        probe: a :class:`LinearProbe` (or one per layer) giving ``P(group | h)`` when the groups are unknown.
        strength: move ``h`` only part of the way, ``h + strength * (T(h) - h)`` (1: the full map; 0: the identity,
            bit for bit with hard groups, to the dtype's rounding for a soft mixture of groups).
        probe_mode: with a probe, ``"soft"`` mixes the group maps with ``P(a | h)``; ``"hard"`` applies the
            most probable group's map.
        noise: for a bundle of garblings (``fit_bundle(..., target="shared")``): add each group's noise, drawn per
            position (default), or apply only the deterministic part with ``False`` (see the module docstring).
        random_state: seed of the garbling noise (``None``, an int or a numpy ``Generator``); ``None`` takes the
            bundle's recorded ``random_state`` (fresh entropy if it has none). Unused for deterministic maps.

    Raises:
        ValueError: unknown layers, maps of the wrong dimension, a map missing for a layer, unknown
            positions, or groups without a map. The model is left unmodified when attaching fails.
    """
    is_bundle = hasattr(maps, "layer_maps") and callable(maps.layer_maps)
    pooling = (getattr(maps, "metadata", None) or {}).get("pooling") if is_bundle else None
    if positions is None:
        positions = "tokens" if pooling == "tokens" else "all"
    if isinstance(positions, str) and positions not in POSITIONS:
        raise ValueError(f"unknown positions {positions!r}; use one of {POSITIONS} or a boolean mask")
    if isinstance(positions, np.ndarray):
        positions = torch.from_numpy(positions)
    if not isinstance(positions, (str, torch.Tensor)):
        raise ValueError(f"positions must be one of {POSITIONS} or a boolean batch x T mask; got {positions!r}")
    if isinstance(positions, torch.Tensor) and (positions.ndim != 2 or positions.dtype != torch.bool):
        raise ValueError("a positions mask must be a boolean batch x T tensor")
    if not isinstance(noise, bool):
        raise ValueError(f"noise must be True or False; got {noise!r}")
    noise_of: Mapping[Any, Mapping[Any, np.ndarray]] = {}
    if is_bundle:
        if layers is None:
            layers = list(maps.layers)
        layer_path = layer_path if layer_path is not None else getattr(maps, "layer_path", None)
        probe = probe if probe is not None else (getattr(maps, "probes", None) or None)
        if random_state is None:
            random_state = (getattr(maps, "metadata", None) or {}).get("random_state")
        noise_of = (getattr(maps, "noise", None) or {}) if noise else {}
        warn_pooling_mismatch(pooling, positions)
        maps = maps.layer_maps()
    if layers is None:
        if isinstance(maps, Mapping) and maps and all(isinstance(k, int) and not isinstance(k, bool) for k in maps):
            layers = list(maps.keys())
        else:
            raise ValueError("layers= is required unless maps is a {layer: map} dict or a bundle")
    if isinstance(layers, np.integer):  # numpy indices (np.argmax(...)) as Python ints
        layers = int(layers)
    elif isinstance(layers, (list, tuple)):
        layers = [int(x) if isinstance(x, np.integer) else x for x in layers]
    blocks = resolve_layers(model, layers, layer_path)
    ids = list(blocks.keys())
    if isinstance(layers, str) and layers == "all":
        keys: list[Any] = ids
    elif isinstance(layers, (int, str)):
        keys = [layers]
    else:
        keys = list(layers)
    spec = normalise_maps(maps, keys, ids, _hidden_size(model))
    strength = _as_strength(strength)
    factors = layer_noise(noise_of, spec, keys, ids, float(strength))
    if strength != 1.0:
        spec = {
            i: interpolate(m, float(strength))
            if isinstance(m, AffineMap)
            else {g: interpolate(T, float(strength)) for g, T in m.items()}
            for i, m in spec.items()
        }
    path = find_layer_list(model, layer_path)[0]
    inner = model.get_submodule(path.rsplit(".", 1)[0]) if "." in path else model
    handle = SteeringHandle(model, spec, blocks, positions, probe, probe_mode, factors, random_state, inner)
    try:
        handle.set_groups(groups, group_proba)
    except Exception:
        handle.remove()
        raise
    return handle


def _as_strength(strength: Any) -> float:
    """``strength`` as a float: a Python, numpy or 0-d torch number that is finite."""
    if isinstance(strength, torch.Tensor) and strength.numel() == 1:
        strength = strength.item()
    if isinstance(strength, (bool, np.bool_)) or not isinstance(strength, (int, float, np.integer, np.floating)):
        raise ValueError(f"strength must be a number (a float, numpy or 0-d torch number); got {strength!r}")
    if not np.isfinite(float(strength)):
        raise ValueError(f"strength must be finite; got {strength!r}")
    return float(strength)


@contextlib.contextmanager
def steer(model: nn.Module, maps: Any, **kwargs: Any) -> Iterator[SteeringHandle]:
    """Context manager form of :func:`attach`: the hooks are removed on exit, also on exceptions.

    >>> with steer(model, {6: T}, positions="all") as h:          # doctest: +SKIP
    ...     out = model.generate(**inputs)
    """
    handle = attach(model, maps, **kwargs)
    try:
        yield handle
    finally:
        handle.remove()
