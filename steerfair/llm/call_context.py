"""What a forward call of a hooked model tells the steering hooks: how many positions its KV cache already holds, and
whether a batch of token ids holds the model's pad token.

Every transformers version passes the cache differently: ``cache_position`` (4.x), ``past_key_values`` (4.x) or
``cache`` (5.x, which passes no ``cache_position``); :func:`past_length` reads each.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

__all__ = ["cache_length", "call_arguments", "padding_present", "past_length"]


def call_arguments(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A forward call's arguments by name, positional ones included: ``model(ids, mask)`` passes the attention mask
    second (read from keywords only, it was missed: ``positions="tokens"`` then steered the pad positions, and
    ``"last"`` refused a call that had a mask). Bound to ``module.forward``'s signature; where that fails, the first
    positional argument is taken for ``input_ids`` (the tokens of every decoder's forward)."""
    if not args:
        return dict(kwargs)
    try:
        signature = inspect.signature(module.forward)  # once per call: the hook runs on every forward
        params, bound = signature.parameters, signature.bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        return {"input_ids": args[0], **kwargs}
    named: dict[str, Any] = {}
    for name, value in bound.items():
        if params[name].kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        elif params[name].kind is not inspect.Parameter.VAR_POSITIONAL:
            named[name] = value
    if "input_ids" not in named and "inputs_embeds" not in named:  # a wrapper's forward(*args, **kwargs)
        named["input_ids"] = args[0]
    return named


def padding_present(model: nn.Module, ids: Any) -> bool | None:
    """Whether a batch of token ids holds the model's pad token (``None``: cannot tell, no ids or no pad token)."""
    if not isinstance(ids, torch.Tensor):
        return None  # inputs_embeds: padding cannot be told
    for cfg in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        pad = getattr(cfg, "pad_token_id", None)
        if isinstance(pad, int) and not isinstance(pad, bool):
            return bool((ids == pad).any())
    return None


def cache_length(cache: Any) -> int | None:
    """The number of positions already held by a KV cache (a ``Cache`` object or a legacy tuple), or ``None``."""
    if cache is None:
        return None
    if hasattr(cache, "get_seq_length"):
        try:
            return int(cache.get_seq_length())
        except (TypeError, ValueError, IndexError, AttributeError, RuntimeError):
            return None
    try:  # legacy tuple of (key, value) per layer
        return int(cache[0][0].shape[-2])
    except (TypeError, IndexError, AttributeError, KeyError):
        return None


def past_length(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Positions before this forward call, read from every place a transformers version passes them.

    ``cache_position`` (4.x), then the cache itself: ``past_key_values`` (4.x) or ``cache`` (5.x, which passes
    no ``cache_position``), read with ``get_seq_length()`` before the call adds its own tokens.
    """
    cache_position = kwargs.get("cache_position")
    if isinstance(cache_position, torch.Tensor) and cache_position.numel() > 0:
        return int(cache_position.reshape(-1)[0])
    for name in ("past_key_values", "cache", "past_key_value"):
        n = cache_length(kwargs.get(name))
        if n is not None:
            return n
    return 0
