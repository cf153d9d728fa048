"""torch.compile: keep gradviz's recording out of Dynamo's sight.

While a compiled function runs, Dynamo's frame callback looks at every Python frame that starts,
gradviz's dispatch mode included, and tries to compile it (it then warns about `sys._getframe`
and breaks the graph at `Tensor.item()`). And while Dynamo traces a module, it inlines the global
module hooks that gradviz installs. So:

* the frames gradviz runs per op are marked "skip, and skip everything they call" for Dynamo's
  frame callback (`torch._C._dynamo.eval_frame.set_code_exec_strategy`, no import of Dynamo);
* the module hooks return at once when `torch.compiler.is_compiling()` (Dynamo traces that as a
  constant, so nothing of gradviz enters the compiled graph and nothing breaks it);
* torch's warning that global hooks fire an extra time for `OptimizedModule` is about gradviz's
  own hooks (the module stack skips the wrapper), so it is silenced while recording.

What autograd gets from a compiled region depends on the backend: "eager" runs the traced ops
one by one (each has its usual node); "aot_eager" and "inductor" make one
`CompiledFunctionBackward` node per compiled graph, whose value and gradient gradviz records like
any custom `autograd.Function`'s.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch

#: The message of torch's warning about global module hooks under `torch.compile(module)`.
_HOOKS_WARNING = r"Using `torch.compile\(module\)` when there are global hooks"

_marked: set[Any] = set()


def compiling() -> bool:
    """True while Dynamo traces (gradviz's hooks then do nothing)."""
    return bool(torch.compiler.is_compiling())


def tracing_tensors(tensors: list[Any]) -> bool:
    """Whether these are torch.compile's fake tensors (AOT autograd tracing the backward it
    compiles calls `torch.autograd.grad` on them): not a backward call of the user's."""
    module = sys.modules.get("torch._subclasses.fake_tensor")
    if module is None:
        return False
    return any(isinstance(t, torch.Tensor) and module.is_fake(t) for t in tensors)


def in_functorch() -> bool:
    """Whether a `torch.func` transform (`grad`, `vjp`, `jacrev`, `vmap`) is running: its own
    `torch.autograd.grad` calls work on wrapped tensors without storage, not the user's."""
    try:
        return torch._C._functorch.maybe_current_level() is not None
    except (AttributeError, RuntimeError):
        return False


def functorch_wrapped(tensors: list[Any]) -> bool:
    """Whether any of `tensors` is a `torch.func` wrapper (no storage of its own): the function
    that `torch.func.vjp` returns computes its gradients on those, after the transform ended."""
    try:
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    except AttributeError:
        return False
    return any(isinstance(t, torch.Tensor) and wrapped(t) for t in tensors)


def skip_frames(*functions: Callable[..., Any], recursive: bool = True) -> None:
    """Never let Dynamo compile these functions' frames (nor any frame they call, if
    `recursive`)."""
    try:
        from torch._C._dynamo import eval_frame
    except ImportError:  # a torch without Dynamo
        return
    strategy = getattr(eval_frame, "_FrameExecStrategy", None)
    action = getattr(eval_frame, "_FrameAction", None)
    setter = getattr(eval_frame, "set_code_exec_strategy", None)
    if strategy is None or action is None or setter is None:
        return
    for fn in functions:
        code = getattr(fn, "__code__", None)
        if code is not None and code not in _marked:
            setter(code, strategy(action.SKIP, action.SKIP if recursive else action.DEFAULT))
            _marked.add(code)


class QuietHooksWarning:
    """Silences torch's warning about gradviz's global module hooks, for one recording."""

    def __init__(self) -> None:
        self._filter: Any = None

    def install(self) -> None:
        warnings.filterwarnings("ignore", message=_HOOKS_WARNING, category=UserWarning)
        self._filter = warnings.filters[0]

    def remove(self) -> None:
        if self._filter is not None:
            with contextlib.suppress(ValueError):  # the script reset the filters itself
                warnings.filters.remove(self._filter)  # type: ignore[attr-defined]
            warnings._filters_mutated()  # type: ignore[attr-defined]
            self._filter = None


__all__ = ["QuietHooksWarning", "compiling", "skip_frames", "tracing_tensors"]
