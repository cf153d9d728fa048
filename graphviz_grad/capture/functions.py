"""Custom `torch.autograd.Function`s: where they were applied, what they returned and saved.

Ops inside a Function's `forward` run without grad, so the dispatch mode records nothing for
them, and the Function's node (`LegendrePolynomial3Backward`) would get its value only later,
from the op that consumes it, with no file or line. While recording, `Function.apply` is wrapped
to attach the record at the call itself: the user's line, the module around it, the outputs.
Its saved tensors are read from `ctx.saved_tensors` when the graph is walked (`saved_tensors`).
"""

from __future__ import annotations

from typing import Any

import torch

from ._forward import META_KEY, USER_FRAMES, ForwardRecorder, _tensors
from .compiled import compiling, skip_frames


class FunctionCalls:
    """Wraps `torch.autograd.Function.apply` for the life of a recording (`install`/`remove`)."""

    def __init__(self, mode: ForwardRecorder) -> None:
        self.mode = mode
        self._original: Any = None

    def install(self) -> None:
        function = torch.autograd.Function
        original = function.__dict__["apply"]
        self._original = original
        bound = original.__func__
        mode = self.mode

        def apply(cls: Any, *args: Any, **kwargs: Any) -> Any:
            out = bound(cls, *args, **kwargs)
            if not mode.paused and torch.is_grad_enabled() and not compiling():
                _attach(mode, out, args)
            return out

        skip_frames(apply, recursive=False)
        skip_frames(_attach)
        apply.__wrapped__ = bound  # type: ignore[attr-defined]
        apply.__doc__ = bound.__doc__
        function.apply = classmethod(apply)  # type: ignore[assignment, method-assign]

    def remove(self) -> None:
        if self._original is not None:
            torch.autograd.Function.apply = self._original  # type: ignore[method-assign]
            self._original = None


def _attach(mode: ForwardRecorder, out: Any, args: tuple[Any, ...]) -> None:
    """Give the Function's node a record made here: this call's line, module and outputs."""
    mode.flush()
    where = USER_FRAMES.where(3)
    record = None
    for t in _tensors(out):
        node: Any = t.grad_fn
        if node is None or not isinstance(node, torch.autograd.function.BackwardCFunction):
            continue
        existing = node.metadata.get(META_KEY)
        if existing is None:
            if record is None:
                record = mode._new_record(None, args, where, mode.modules.current())
            node.metadata[META_KEY] = existing = record
        if existing is record and mode.values and not record.has(t.output_nr):
            mode.paused += 1
            try:
                with mode.off():
                    mode.keep_value(record, t.output_nr, t)
            finally:
                mode.paused -= 1


def saved_tensors(node: Any) -> tuple[torch.Tensor, ...] | None:
    """A custom Function node's `ctx.saved_tensors` (None for torch's own nodes, or if freed)."""
    if not isinstance(node, torch.autograd.function.BackwardCFunction):
        return None
    try:
        found = node.saved_tensors
    except RuntimeError:
        return None
    return tuple(t for t in found if isinstance(t, torch.Tensor))


__all__ = ["FunctionCalls", "saved_tensors"]
