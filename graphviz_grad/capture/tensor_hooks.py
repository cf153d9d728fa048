"""Hooks the script puts on tensors (`h.register_hook(fn)`): a hook may change the gradient on
its way (a gradient reversal layer, clipping, scaling), so what an op passes down and what the
tensor's node then receives differ.

While recording, `Tensor.register_hook` notes in the node that made the tensor which of its
outputs carry a hook (a leaf's hooks are on the tensor itself, `_backward_hooks`). The capture
then keeps the gradient of each edge into such a node as it left the consumer, before the hook,
and marks the node (`Node.hooked`); its `grad` is what it received, after the hook.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch

#: The key, in `grad_fn.metadata`, of the set of output numbers that carry a hook.
KEY = "gradviz_tensor_hooks"


class TensorHooks:
    """`Tensor.register_hook`, noting hooked outputs while installed."""

    def __init__(self) -> None:
        #: Hooks put on a tensor an op made, so far (none: nothing to look for in a graph).
        self.count = 0
        self._saved: Callable[..., Any] | None = None

    def install(self) -> None:
        original = self._saved = torch.Tensor.register_hook

        @functools.wraps(original)
        def register_hook(tensor: torch.Tensor, hook: Callable[..., Any]) -> Any:
            node: Any = tensor.grad_fn
            if node is not None:
                with contextlib.suppress(Exception):  # a tensor subclass, an odd node
                    node.metadata.setdefault(KEY, set()).add(tensor.output_nr)
                    self.count += 1
            return original(tensor, hook)

        torch.Tensor.register_hook = register_hook  # type: ignore[method-assign]

    def remove(self) -> None:
        if self._saved is not None:
            torch.Tensor.register_hook = self._saved  # type: ignore[method-assign]
            self._saved = None


def hooked_outputs(node: Any) -> set[int]:
    """The output numbers of op `node` that carry a hook of the script's."""
    try:
        found = node.metadata.get(KEY)
    except (AttributeError, RuntimeError):
        return set()
    return found if isinstance(found, set) else set()
