"""One forward hook per transformer block that runs every steering function attached to it, before other hooks.

transformers 5.x records ``output_hidden_states`` with forward hooks of its own, installed lazily on the first call
that asks for them; a steering hook registered after them would leave the recorded hidden states unsteered.
:class:`BlockSteering` registers its hook with ``prepend=True`` and runs the steering functions of every
:func:`steerfair.llm.steer` context on the block in attach order.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["BlockSteering", "Removal"]


class BlockSteering:
    """The steering functions of one block, run in attach order by ONE forward hook that runs before all others.

    The hook is registered with ``prepend=True``, so hooks that read the block's output (the output recorders
    with which transformers 5.x collects ``output_hidden_states``, a user's own hooks) see the steered output
    whenever they were registered; nested :func:`steer` contexts on one block compose in attach order (the inner
    map applies to the outer one's output). The hook is removed with the last function.

    Args:
        block: the transformer block (use :meth:`on`, which keeps one instance per block).
    """

    _registry: weakref.WeakKeyDictionary[nn.Module, BlockSteering] = weakref.WeakKeyDictionary()

    def __init__(self, block: nn.Module) -> None:
        self.block = weakref.ref(block)
        self.functions: list[Callable[[Any], Any]] = []
        self.handle = block.register_forward_hook(self._hook, prepend=True)

    @classmethod
    def on(cls, block: nn.Module) -> BlockSteering:
        """The steering of ``block``, created (and its hook registered) on first use."""
        found = cls._registry.get(block)
        if found is None:
            found = cls._registry[block] = cls(block)
        return found

    @classmethod
    def steered(cls, model: nn.Module) -> bool:
        """Whether any block of ``model`` has a steering function attached (an open :func:`steerfair.llm.steer`)."""
        return any(cls._registry.get(module) is not None for module in model.modules())

    def _hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        for function in list(self.functions):
            output = function(output)
        return output

    def add(self, function: Callable[[Any], Any]) -> Removal:
        """Append ``function`` (block output -> new block output); the returned object's ``remove()`` undoes it."""
        self.functions.append(function)
        return Removal(self, function)

    def discard(self, function: Callable[[Any], Any]) -> None:
        """Remove ``function`` (idempotent); with the last one, the hook itself."""
        if function in self.functions:
            self.functions.remove(function)
        if not self.functions:
            self.handle.remove()
            block = self.block()
            if block is not None and self._registry.get(block) is self:
                del self._registry[block]


class Removal:
    """``remove()`` of one steering function, as torch's hook handles have it.

    Args:
        owner: the block's :class:`BlockSteering`.
        function: the steering function to detach.
    """

    def __init__(self, owner: BlockSteering, function: Callable[[Any], Any]) -> None:
        self.owner = owner
        self.function = function

    def remove(self) -> None:
        """Detach the steering function (idempotent); the block's hook goes with its last function."""
        self.owner.discard(self.function)
