"""Capture pooled block outputs of a ``transformers`` model: the one activation-capture path of :mod:`steerfair.llm`.

:func:`capture_blocks` is a context manager that prepares the model and tokenizer (a pad token if the tokenizer
has none, eval mode, ``torch.no_grad()``), registers forward hooks on the requested transformer blocks and
removes everything on exit, also on errors. Inside it, :meth:`BlockCapture.run` tokenizes one batch of texts,
runs the forward pass up to the deepest requested block only, and returns every block's output pooled under
the attention mask (see :func:`steerfair.llm.pooling.pool_hidden`). Statistics collection
(:func:`steerfair.llm.collect`) and sentence encodings (:func:`steerfair.llm.encode.encode`) both use it.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .layers import resolve_layers
from .pooling import check_pooling, pool_hidden

__all__ = ["BlockCapture", "capture_blocks", "hidden_of"]


class _StopForward(Exception):
    """Raised by the hook of the deepest requested block: the rest of the forward pass is not needed."""


def hidden_of(output: Any, layer: int) -> torch.Tensor:
    """The hidden states ``(batch, seq, d)`` in a block's output (a tensor, or a tuple / list starting with one).

    Args:
        output: what the block's ``forward`` returned.
        layer: the block index (for error messages).

    Returns:
        The hidden-state tensor.

    Raises:
        TypeError: if the output holds no tensor where the hidden states should be.
        ValueError: if the hidden states are not 3-D.
    """
    if isinstance(output, torch.Tensor):
        h = output
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        h = output[0]
    else:
        raise TypeError(
            f"block {layer} returned {type(output).__name__}; expected a tensor or a tuple starting with one"
        )
    if h.ndim != 3:
        raise ValueError(f"block {layer} returned hidden states of shape {tuple(h.shape)}; expected (batch, seq, d)")
    return h


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _model_inputs(fn: Callable[..., Any], inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``inputs`` less the tokenizer outputs that ``fn`` does not name (e.g. ``token_type_ids`` for a decoder: a
    transformers 4.x ``forward`` has no ``**kwargs`` to take them, a 5.x one would hand them on to its layers).

    A wrapper whose signature names no ``input_ids`` (``forward(*args, **kwargs)``) gets everything.
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return inputs
    if "input_ids" not in params and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return inputs
    return {k: v for k, v in inputs.items() if k in params}


def _input_device(model: nn.Module) -> torch.device:
    try:
        # a transformers method; nn.Module.__getattr__ types it as Tensor | Module (or raises AttributeError)
        get_embeddings: Any = model.get_input_embeddings
        return get_embeddings().weight.device
    except (AttributeError, NotImplementedError, TypeError):
        param = next(model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")


def _where(index: Sequence[int]) -> str:
    """``texts[a:b]`` for a contiguous run of text positions, else ``texts [i, j, ...]``."""
    first = int(index[0])
    if list(index) == list(range(first, first + len(index))):
        return f"texts[{first}:{first + len(index)}]"
    shown = ", ".join(str(int(i)) for i in list(index)[:8])
    return f"texts [{shown}{', ...' if len(index) > 8 else ''}]"


class BlockCapture:
    """A live capture session over the resolved blocks of a model; obtained from :func:`capture_blocks`.

    Attributes:
        layers: the captured block indices, ascending (non-negative).
        pooling: the pooling applied to every block output.
        max_length: the truncation length (tokens).
    """

    def __init__(
        self, model: nn.Module, tokenizer: Any, blocks: dict[int, nn.Module], pooling: str, max_length: int
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.layers: tuple[int, ...] = tuple(sorted(blocks))
        self.pooling = pooling
        self.max_length = max_length
        self._blocks = blocks
        self._mask: torch.Tensor | None = None
        self._captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._extra: dict[str, Any] = {"use_cache": False} if _accepts(model.forward, "use_cache") else {}
        self._takes_positions = _accepts(model.forward, "position_ids")

    def _hook(self, idx: int) -> Callable[..., None]:
        deepest = self.layers[-1]

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._captured[idx] = pool_hidden(hidden_of(output, idx).detach(), self._mask, self.pooling)
            if idx == deepest:
                raise _StopForward

        return hook

    def _register(self) -> list[Any]:
        return [self._blocks[i].register_forward_hook(self._hook(i)) for i in self.layers]

    def run(
        self, texts: Sequence[str], index: Sequence[int] | None = None
    ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Run one batch and return the pooled output of every captured block.

        The batch is tokenized with padding and truncation to :attr:`max_length`; with left padding, position
        ids come from the attention mask (as ``generate`` does) when the model accepts them, so left and right
        padding give the same activations. The forward pass stops after the deepest captured block.

        Args:
            texts: the batch of texts.
            index: the positions of these texts in the caller's full list (for error messages; default
                ``0..len(texts)-1``).

        Returns:
            ``{block: (rows, seq_index)}`` as from :func:`~steerfair.llm.pooling.pool_hidden`, on the model's
            device, every row finite.

        Raises:
            ValueError: if ``texts`` is empty or not a list, a text tokenizes to no tokens, or a block produced NaN or
                infinite activations.
            RuntimeError: if the hook of some block did not run (wrong ``layers`` / ``layer_path``).
        """
        texts = text_list(texts)
        if not texts:
            raise ValueError("texts is empty; pass at least one text")
        index = list(range(len(texts))) if index is None else list(index)
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        device = _input_device(self.model)
        inputs = {k: v.to(device) for k, v in enc.items() if isinstance(v, torch.Tensor)}
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(inputs["input_ids"])
        n_tokens = mask.sum(dim=1)
        if bool((n_tokens == 0).any()):
            j = int(torch.nonzero(n_tokens == 0)[0].item())
            raise ValueError(f"texts[{index[j]}] ({texts[j][:40]!r}) tokenizes to no tokens")
        if self._takes_positions and "position_ids" not in inputs and bool((mask[:, 0] == 0).any()):
            inputs["position_ids"] = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
        self._captured.clear()
        self._mask = mask
        try:
            self.model(**_model_inputs(self.model.forward, inputs), **self._extra)
        except _StopForward:
            pass
        finally:
            self._mask = None
        out, self._captured = self._captured, {}
        not_run = [i for i in self.layers if i not in out]
        if not_run:
            raise RuntimeError(f"the forward hooks of blocks {not_run} did not run; check layers/layer_path")
        for i in self.layers:
            if not bool(torch.isfinite(out[i][0]).all()):
                raise ValueError(f"block {i} produced NaN or infinite activations in {_where(index)}")
        return out


def text_list(texts: Any) -> list[Any]:
    """``texts`` as a list; a single string (which ``list`` would split into characters) is refused."""
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise ValueError(f"texts must be a list of strings; got a {type(texts).__name__} (wrap one text in a list)")
    return list(texts)


@contextlib.contextmanager
def capture_blocks(
    model: nn.Module,
    tokenizer: Any,
    layers: int | str | Sequence[int | str],
    *,
    pooling: str = "mean",
    layer_path: str | None = None,
    max_length: int = 256,
) -> Iterator[BlockCapture]:
    """Hook the chosen blocks of ``model`` for the duration of a ``with`` block.

    On entry: the blocks are resolved (see :func:`~steerfair.llm.layers.resolve_layers`), a tokenizer without
    a pad token pads with its eos token, the model goes to eval mode, gradients are disabled and one forward
    hook per block is registered; the tokenizer pads on the right while capturing. On exit (also on errors) the hooks
    are removed, the train/eval flags of every module and the tokenizer's pad token and padding side are restored.

    Args:
        model: a ``transformers`` model (decoder or encoder).
        tokenizer: its tokenizer.
        layers: block indices (negative count from the end), ``"all"`` or block names.
        pooling: one of :data:`~steerfair.llm.pooling.POOLINGS`.
        layer_path: dotted path of the block list, when it cannot be discovered.
        max_length: truncation length in tokens.

    Yields:
        The :class:`BlockCapture` whose :meth:`~BlockCapture.run` processes one batch.

    Raises:
        ValueError: for an unknown pooling or layer, or a tokenizer with neither a pad nor an eos token.
    """
    check_pooling(pooling)
    blocks = resolve_layers(model, layers, layer_path)
    capture = BlockCapture(model, tokenizer, blocks, pooling, max_length)
    restore_pad = False
    if getattr(tokenizer, "pad_token", None) is None:
        eos = getattr(tokenizer, "eos_token", None)
        if eos is None:
            raise ValueError("the tokenizer has neither a pad token nor an eos token; set tokenizer.pad_token")
        tokenizer.pad_token = eos
        restore_pad = True
    # right padding while capturing: the same activations as left padding up to float rounding (position ids come
    # from the mask), but bit for bit those of earlier captures, whatever side the caller generates with
    side = getattr(tokenizer, "padding_side", None)
    if side is not None:
        tokenizer.padding_side = "right"
    training = [mod for mod in model.modules() if mod.training]
    handles = capture._register()
    try:
        model.eval()
        with torch.no_grad():
            yield capture
    finally:
        for handle in handles:
            handle.remove()
        for mod in training:
            mod.training = True
        if restore_pad:
            tokenizer.pad_token = None
        if side is not None:
            tokenizer.padding_side = side
