"""Gradient clipping that runs before the backward call it should follow (see `gradviz
doctor`, code `grad-clip`).

`clip_grad_norm_(model.parameters(), 1.0)` clips the `.grad` the parameters hold *now*: called
between `zero_grad()` and `backward()`, it clips nothing (or the step before's gradients), and
the optimizer steps on the unclipped ones. While a script runs, `torch.nn.utils`'s clipping
functions note which parameters they clip and how many backward calls had ended; at each
optimizer step, a parameter clipped before the last backward call is a step on unclipped
gradients.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

#: The clipping functions, by name, in `torch.nn.utils` and its `clip_grad` module (the last
#: is the second half of `clip_grad_norm_`, after `get_total_norm`).
NAMES = ("clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "clip_grads_with_norm_")
#: Distinct clipping lines kept.
KEPT = 8


@dataclass
class ClipLine:
    """One line of the script that clips gradients, and the optimizer steps after it."""

    file: str | None
    line: int | None
    function: str
    #: Steps whose last clip of their parameters ran before the last backward call ended.
    early: int = 0
    #: Steps whose parameters were clipped after the last backward call (as they should be).
    after: int = 0


@dataclass
class Clips:
    """What the watch notes of gradient clipping over a run."""

    lines: dict[tuple[str | None, int | None], ClipLine] = field(default_factory=dict)
    #: Parameter id -> (backward calls ended when it was last clipped, the line that did).
    _at: dict[int, tuple[int, ClipLine]] = field(default_factory=dict)
    _saved: list[tuple[Any, str, Any]] = field(default_factory=list)

    def install(self, calls: Callable[[], int], where: Callable[[], Any]) -> None:
        """Wrap the clipping functions; `calls()` counts the backward calls ended so far."""
        from torch.nn import utils
        from torch.nn.utils import clip_grad

        for module in (utils, clip_grad):
            for name in NAMES:
                original = getattr(module, name, None)
                if original is not None:
                    self._saved.append((module, name, original))
                    setattr(module, name, self._wrap(original, name, calls, where))

    def remove(self) -> None:
        for module, name, original in reversed(self._saved):
            setattr(module, name, original)
        self._saved.clear()

    def _wrap(
        self, original: Any, name: str, calls: Callable[[], int], where: Callable[[], Any]
    ) -> Any:
        @functools.wraps(original)
        def clip(parameters: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(parameters, torch.Tensor):
                params = [parameters]
            else:
                params = parameters = list(parameters)  # a generator is read once: here
            self.note(params, name, calls(), where())
            return original(parameters, *args, **kwargs)

        return clip

    def note(self, params: list[Any], name: str, ended: int, at: Any) -> None:
        """`params` are clipped by `name` at `at` (file, line), after `ended` backward calls."""
        line = self.lines.get(at)
        if line is None:
            if len(self.lines) >= KEPT:
                return
            line = self.lines[at] = ClipLine(at[0], at[1], name)
        for p in params:
            if isinstance(p, torch.Tensor):
                self._at[id(p)] = (ended, line)

    def step(self, optimizer: Any, ended: int) -> None:
        """An optimizer steps after `ended` backward calls: were its gradients clipped since?"""
        if not self._at:
            return
        try:
            params = [p for group in optimizer.param_groups for p in group["params"]]
        except (AttributeError, KeyError, TypeError):  # not torch.optim's layout
            return
        found = next((self._at[id(p)] for p in params if id(p) in self._at), None)
        if found is None:
            return
        clipped_after, line = found
        if clipped_after < ended:
            line.early += 1
        else:
            line.after += 1
