"""Pooling of block outputs ``(batch, seq, d)`` to one row per sequence (or per real token), under the attention mask.

:func:`pool_hidden` is shared by statistics collection (:func:`steerfair.llm.collect`) and sentence encodings
(:func:`steerfair.llm.encode.encode`); :func:`check_pooling` validates a pooling name up front, and
:func:`warn_pooling_mismatch` warns when hooks are to move other states than the statistics pooled.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ..warning_location import user_stacklevel

__all__ = [
    "POOLINGS",
    "POOLING_POSITIONS",
    "TOKEN_POOLINGS",
    "check_pooling",
    "pool_hidden",
    "tokens_mask",
    "warn_pooling_mismatch",
]

#: The pooling modes of :func:`pool_hidden` (``pooling=``).
POOLINGS: tuple[str, ...] = ("mean", "last", "first", "cls", "all", "tokens")
#: the poolings that give one row per token instead of one per text
TOKEN_POOLINGS: tuple[str, ...] = ("all", "tokens")


def check_pooling(pooling: str) -> str:
    """Return ``pooling`` if it is one of :data:`POOLINGS`.

    Args:
        pooling: the pooling name.

    Returns:
        The same name.

    Raises:
        ValueError: for an unknown pooling.
    """
    if not isinstance(pooling, str) or pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; use one of {POOLINGS}")
    return pooling


def tokens_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Boolean ``(batch, seq)`` mask of every real token but each row's first (left or right padding): the rows of
    ``pooling="tokens"`` and the positions of ``steer(..., positions="tokens")``.

    Args:
        attention_mask: ``(batch, seq)``, non-zero at real tokens.
    """
    real = attention_mask != 0
    return real & (torch.cumsum(real.long(), dim=1) > 1)


def pool_hidden(
    hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool hidden states ``(batch, seq, d)`` to rows, ignoring padding.

    Args:
        hidden: hidden states ``(batch, seq, d)``.
        attention_mask: ``(batch, seq)`` of 0/1 (non-zero = real token), or ``None`` for no padding.
            Left and right padding are both handled: positions are taken from the mask.
        pooling: ``"mean"`` (masked mean over real tokens, accumulated in at least float32),
            ``"last"`` (last real token), ``"first"`` / ``"cls"`` (first real token), ``"all"``
            (every real token, one row each), or ``"tokens"`` (every real token but each sequence's first, one row
            each: a decoder's first state is its attention sink, with a norm about 100x the others' on SmolLM2, so
            it dominates every moment of ``"all"``; a text of one token gives no row). An encoder's first state
            (``[CLS]``) is no such outlier (MiniLM, docs/llm.md): use ``"all"`` there.

    Returns:
        ``(rows, seq_index)``: ``rows`` is ``(n, d)`` and ``seq_index`` ``(n,)`` (int64) gives the
        sequence of the batch each row came from (``n = batch`` except for ``"all"`` and ``"tokens"``).

    Raises:
        ValueError: for an unknown pooling, bad shapes, or a sequence without any real token.
    """
    check_pooling(pooling)
    if not isinstance(hidden, torch.Tensor) or hidden.ndim != 3:
        shape = tuple(hidden.shape) if isinstance(hidden, torch.Tensor) else type(hidden).__name__
        raise ValueError(f"hidden must be a tensor of shape (batch, seq, d); got {shape}")
    b, s, _ = hidden.shape
    device = hidden.device
    if attention_mask is None:
        mask = torch.ones(b, s, dtype=torch.bool, device=device)
    else:
        if not isinstance(attention_mask, torch.Tensor):
            attention_mask = torch.as_tensor(attention_mask)
        if tuple(attention_mask.shape) != (b, s):
            raise ValueError(f"attention_mask must have shape ({b}, {s}); got {tuple(attention_mask.shape)}")
        mask = attention_mask.to(device) != 0
    lengths = mask.sum(dim=1)
    if bool((lengths == 0).any()):
        empty = torch.nonzero(lengths == 0).flatten().tolist()
        raise ValueError(f"sequence(s) {empty} of the batch have no non-pad token")
    batch_index = torch.arange(b, device=device)
    if pooling == "mean":
        acc = torch.promote_types(hidden.dtype, torch.float32)
        # masked_fill (not a product) so that NaN/inf at padded positions cannot leak into the mean
        total = hidden.to(acc).masked_fill(~mask[..., None], 0).sum(dim=1)
        return total / lengths[:, None].to(acc), batch_index
    if pooling in TOKEN_POOLINGS:
        keep = mask if pooling == "all" else tokens_mask(mask)
        seq_index, tok_index = torch.nonzero(keep, as_tuple=True)
        return hidden[seq_index, tok_index], seq_index
    pos = torch.arange(s, device=device).expand(b, s)
    if pooling == "last":
        idx = torch.where(mask, pos, -1).amax(dim=1)
    else:  # "first" / "cls"
        idx = torch.where(mask, pos, s).amin(dim=1)
    return hidden[batch_index, idx], batch_index


#: the positions whose states each pooling's rows are (maps fitted on one pooling are maps of those states only)
POOLING_POSITIONS = {
    "all": ("all", "prompt", "generated", "last", "tokens", "mask"),
    "tokens": ("tokens", "generated", "last", "mask"),
    "last": ("last", "generated"),
}


def warn_pooling_mismatch(pooling: Any, positions: str | torch.Tensor) -> None:
    """Warn when a bundle is to move other states than its maps were fitted on (``metadata["pooling"]``)."""
    if not isinstance(pooling, str):
        return  # not recorded (a bundle built by hand, or saved before the pooling was recorded)
    where = positions if isinstance(positions, str) else "mask"
    if where in POOLING_POSITIONS.get(pooling, ()):
        return
    if pooling == "tokens":
        message = (
            f"this bundle's maps were fitted on pooling='tokens' states (every token but each text's first), but "
            f"positions={where!r} also moves each row's first state, a decoder's attention sink (its norm about "
            "100x the others' on SmolLM2): pass positions='tokens'"
        )
    else:
        message = (
            f"this bundle's maps were fitted on pooling={pooling!r} states (one vector per text), but the hooks move "
            f"the token states at positions={where!r}: token states are spread far more widely than pooled ones, "
            "and maps fitted on one are not maps of the other (on SmolLM2 they widened the gap they were fitted to "
            "close, at 175x the next-token KL of maps of token states; docs/llm.md, 'Which pooling'). Collect the "
            "statistics with pooling='tokens' or 'all' (pooling='last' for positions='last')"
        )
    warnings.warn(message, UserWarning, stacklevel=user_stacklevel())
