"""Readout-subspace steering for generation bias: act only where the pronoun log-odds are read out.

The next-token log-odds of female vs male pronouns depend on the last block's state ``h`` only through the final
norm and the unembedding: ``logit_t = w_t . (g * h / rms(h))`` (RMSNorm with weight ``g``; a LayerNorm also centres
``h``). The female-minus-male contrasts of the unembedding rows (``she - he``, ``her - his``, ``her - him``), seen
through the norm, are therefore the directions ``a_j = g * (w_f - w_m)`` of ``h`` that move the pronoun log-odds;
every direction orthogonal to them leaves the pronoun logits (up to ``rms(h)``) unchanged.

:func:`readout_directions` computes ``A = [a_1 .. a_k]`` from a model; :func:`readout_map` builds, from the two
group moments at that block, the erasure restricted to ``span(A)``:

* ``mode="group"`` (rank 1): the direction ``u`` of ``span(A)`` along which the two group means differ
  (``u ~ Q Q^T delta``, ``Q`` an orthonormal basis of ``span(A)``); every state's component along ``u`` is set to
  the pooled mean's, ``h - u u^T (h - mu)``. The two group laws then have equal means in the whole readout span
  and coincide (a point mass) along ``u``; the rest of the span (orthogonal to ``u``; part of the ``his`` vs
  ``him`` contrast lies there) and of the space are left alone.
* ``mode="span"`` (rank ``k``): every component in ``span(A)`` is set to the pooled mean's,
  ``h - Q Q^T (h - mu)`` (the pronoun contrasts become the same for every token, up to ``rms(h)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..maps import AffineMap
from .generation_bias import first_token_ids

__all__ = ["READOUT_PAIRS", "Readout", "final_norm", "model_readout", "readout_directions", "readout_map"]

#: (female, male) pronoun pairs whose unembedding contrasts span the readout subspace
READOUT_PAIRS = ((" she", " he"), (" her", " his"), (" her", " him"))


@dataclass(frozen=True)
class Readout:
    """Where and along what the pronoun log-odds are read out.

    Attributes:
        layer: the block whose output is steered (normally the last one; its output goes to the final norm).
        directions: ``(d, k)`` readout contrast directions in that block's output space.
    """

    layer: int
    directions: np.ndarray


def final_norm(model: nn.Module) -> nn.Module | None:
    """The norm between the last block and the unembedding (``model.norm``, ``ln_f``, ``final_layer_norm``), or
    ``None`` when none is found."""
    base = getattr(model, "base_model", model)
    for holder in (base, getattr(base, "decoder", None)):
        for name in ("norm", "ln_f", "final_layer_norm", "final_norm"):
            mod = getattr(holder, name, None) if holder is not None else None
            if isinstance(mod, nn.Module):
                return mod
    return None


def readout_directions(
    model: nn.Module, tokenizer: Any, pairs: Sequence[tuple[str, str]] = READOUT_PAIRS
) -> np.ndarray:
    """``(d, k)``: ``g * (w_female - w_male)`` per pair (first tokens; ``g``: the final norm's weight, ``1 + w`` for
    Gemma norms; centred for a LayerNorm, which subtracts the state's mean), float64."""
    getter: Any = getattr(model, "get_output_embeddings", None)  # a transformers method
    head = getter() if getter is not None else None
    if head is None:
        raise ValueError("the model has no output embeddings; readout steering needs a language-model head")
    W = cast(torch.Tensor, head.weight).detach().double().cpu().numpy()
    norm = final_norm(model)
    gain = np.ones(W.shape[1])
    weight = getattr(norm, "weight", None) if norm is not None else None
    if isinstance(weight, torch.Tensor):
        gain = weight.detach().double().cpu().numpy()
        if "gemma" in type(norm).__name__.lower():
            gain = 1.0 + gain
    cols = []
    for f, m in pairs:
        fi, mi = first_token_ids(tokenizer, [f, m])  # each word as it follows another (SentencePiece-safe)
        a = gain * (W[fi] - W[mi])
        if isinstance(norm, nn.LayerNorm):
            a = a - a.mean()
        cols.append(a)
    return np.column_stack(cols)


def readout_map(counts: np.ndarray, means: np.ndarray, directions: np.ndarray, mode: str = "group") -> AffineMap:
    """The erasure of the group difference restricted to ``span(directions)`` (see the module docstring).

    Args:
        counts: ``(2,)`` group weights.
        means: ``(2, d)`` group means at the readout block.
        directions: ``(d, k)`` readout contrasts (:func:`readout_directions`).
        mode: ``"group"`` (rank 1, the group-mean direction inside the span) or ``"span"`` (the whole span).
    """
    Q, _ = np.linalg.qr(np.asarray(directions, dtype=np.float64))
    mu = (counts / counts.sum()) @ means
    if mode == "span":
        B = Q
    elif mode == "group":
        u = Q @ (Q.T @ (means[0] - means[1]))
        norm = float(np.linalg.norm(u))
        if norm == 0.0:
            raise ValueError("the group means do not differ inside the readout span")
        B = (u / norm)[:, None]
    else:
        raise ValueError(f"unknown readout mode {mode!r}; use 'group' or 'span'")
    return AffineMap.low_rank(-B, B, B @ (B.T @ mu))


def model_readout(model: nn.Module, tokenizer: Any, layer: int = -1) -> Readout:
    """:class:`Readout` of ``model`` at block ``layer`` (negative: from the end; default the last block)."""
    from ..llm import find_layer_list

    depth = len(find_layer_list(model)[1])
    if not -depth <= layer < depth:
        raise ValueError(f"readout layer {layer} out of range ({depth} blocks)")
    return Readout(layer % depth, readout_directions(model, tokenizer))
