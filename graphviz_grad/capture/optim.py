"""Optimizer steps without the dispatch mode.

A `torch.optim` optimizer's `step()` builds no graph (it runs under `no_grad`), yet each of its
ops costs the recording a call of the dispatch mode: SGD with momentum runs three ops a
parameter, Adam about ten, and on the CPU they run one parameter at a time. What the recording
needs from a step is small: the in-place writes to the parameters and their gradients (which op,
at which line, up to which version: `gradviz doctor` names the write that made a saved tensor
stale), and that values held for later summaries (`_deferred`) are summarised before they change.

So the first step of each optimizer runs observed, as any code does, and teaches `OptimizerSteps`
which writes it makes to each parameter and gradient (`Lesson`). Its later steps run with the
dispatch mode off. Before such a step, the values held on its parameters and gradients are
summarised; after it, each tensor's version counter says how far it moved, and the writes learnt
are noted as if the mode had seen them. A tensor that moved by another count than in the lesson
gets one write per version, named after the optimizer (``SGD.step()``), and the next step is
observed again.

A step runs observed, exactly as before, when the optimizer is not one of `torch.optim`'s (it may
build graph), was made with ``differentiable=True``, is given a closure (LBFGS: the closure's
forward and backward are recorded), has step hooks of the user's (they may run any code),
runs while Dynamo traces or inside a backward call (a hook), or in another thread.

The fast path is a bound method set on the optimizer instance (`optimizer.step`), as PyTorch's
own learning-rate schedulers do; it is taken off when the recording stops. If a scheduler made
later wraps it in turn, it stays inside that wrapper, and only passes calls through from then on.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import optimizer as torch_optimizer
from torch.utils._python_dispatch import _get_current_dispatch_mode, _pop_mode, _push_mode

from ._forward import ForwardRecorder
from .compiled import compiling
from .watch import Watch, _where

#: Attributes of the method being wrapped that PyTorch reads on `optimizer.step`.
_KEPT_ATTRS = ("hooked", "_wrapped_by_lr_sched")
_MISSING = object()

#: Writes one tensor got in one step: (version reached minus the version before, aten op).
Writes = tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Lesson:
    """What one observed step wrote: per parameter and per gradient (in `param_groups` order),
    how far its version moved and the writes the dispatch mode saw."""

    params: tuple[tuple[int, Writes], ...]
    grads: tuple[tuple[int, Writes], ...]


def _params(optimizer: Any) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def _eligible(optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """A `torch.optim` optimizer's step that builds no graph and runs none of the user's code
    (no closure, no step hooks)."""
    if not type(optimizer).__module__.startswith("torch.optim."):
        return False
    defaults = getattr(optimizer, "defaults", None)
    if not isinstance(defaults, dict) or defaults.get("differentiable"):
        return False
    closure = args[0] if args else kwargs.get("closure")
    return (
        closure is None and len(args) <= 1 and set(kwargs) <= {"closure"} and not _hooked(optimizer)
    )


def _hooked(optimizer: Any) -> bool:
    """Whether other code runs inside this step: the optimizer's own step hooks, or global ones
    besides the recording's (one before, one after); they may do anything (an EMA of weights)."""
    if getattr(optimizer, "_optimizer_step_pre_hooks", None):
        return True
    if getattr(optimizer, "_optimizer_step_post_hooks", None):
        return True
    before = getattr(torch_optimizer, "_global_optimizer_pre_hooks", {})
    after = getattr(torch_optimizer, "_global_optimizer_post_hooks", {})
    return len(before) > 1 or len(after) > 1


def _versions(tensors: Sequence[torch.Tensor | None]) -> list[int | None]:
    return [None if t is None else t._version for t in tensors]


class OptimizerSteps:
    """Runs the steps of `torch.optim` optimizers without the dispatch mode (module docstring).

    `mode` is the recording's dispatch mode, `watch` its `Watch`, and
    `active()` says whether the recording still runs.
    """

    def __init__(self, mode: ForwardRecorder, watch: Watch, active: Callable[[], bool]) -> None:
        self._mode = mode
        self._watch = watch
        self._active = active
        self._lessons: weakref.WeakKeyDictionary[Any, Lesson] = weakref.WeakKeyDictionary()
        #: (optimizer, the method set on it, what `optimizer.__dict__["step"]` was before).
        self._installed: list[tuple[weakref.ref[Any], Any, Any]] = []
        self._wrapped: weakref.WeakSet[Any] = weakref.WeakSet()
        #: The optimizer being observed, its tensors and their versions before the step.
        self._learning: tuple[Any, list[Any], list[Any], list[Any], list[Any]] | None = None
        self._fast = False

    # -- the global step hooks (they run inside PyTorch's wrapper of `step`) -----------------
    def before(self, optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """An observed step begins: learn its writes, and take the fast path from the next.
        (`args` starts with the optimizer itself, as PyTorch passes them to step hooks.)"""
        if self._fast or not self._active() or not _eligible(optimizer, args[1:], kwargs):
            return
        if self._mode.paused or _get_current_dispatch_mode() is not self._mode:
            return  # the mode does not see this step (a hook inside a backward call)
        if optimizer not in self._wrapped:
            self._install(optimizer)
        if optimizer in self._lessons:
            return
        params = _params(optimizer)
        grads = [p.grad for p in params]
        self._learning = (optimizer, params, grads, _versions(params), _versions(grads))
        tensors = [*params, *(g for g in grads if g is not None)]
        self._watch.learning = {id(t): [] for t in tensors}

    def after(self, optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """An observed step ended: keep what it wrote as the lesson for the next steps."""
        learning, seen = self._learning, self._watch.learning
        if learning is None or learning[0] is not optimizer or seen is None:
            return
        self._learning, self._watch.learning = None, None
        _, params, grads, v_params, v_grads = learning

        def taught(tensors: list[Any], before: list[Any]) -> tuple[tuple[int, Writes], ...]:
            found: list[tuple[int, Writes]] = []
            for t, v in zip(tensors, before):
                if t is None or v is None:
                    found.append((0, ()))
                    continue
                writes = tuple((version - v, aten) for version, aten in seen.get(id(t), ()))
                found.append((t._version - v, writes))
            return tuple(found)

        self._lessons[optimizer] = Lesson(taught(params, v_params), taught(grads, v_grads))

    # -- the fast path -----------------------------------------------------------------------
    def _install(self, optimizer: Any) -> None:
        previous = optimizer.__dict__.get("step", _MISSING)
        inner = previous if previous is not _MISSING else None
        owner = weakref.ref(self)

        def step(opt: Any, *args: Any, **kwargs: Any) -> Any:
            if compiling():
                return _call(opt, inner, args, kwargs)
            steps = owner()
            if steps is None:
                return _call(opt, inner, args, kwargs)
            return steps._step(opt, inner, args, kwargs)

        for attr in _KEPT_ATTRS:
            if hasattr(optimizer.step, attr):
                setattr(step, attr, getattr(optimizer.step, attr))
        step.__doc__ = optimizer.step.__doc__
        method = types.MethodType(step, optimizer)
        optimizer.step = method
        self._wrapped.add(optimizer)
        self._installed.append((weakref.ref(optimizer), step, previous))

    def _step(self, opt: Any, inner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        lesson = self._lessons.get(opt)
        mode = self._mode
        if (
            lesson is None
            or not self._active()
            or self._fast
            or mode.paused
            or _get_current_dispatch_mode() is not mode
            or not _eligible(opt, args, kwargs)
        ):
            return _call(opt, inner, args, kwargs)
        params = _params(opt)
        if len(params) != len(lesson.params):
            del self._lessons[opt]  # param groups changed: observe this step again
            return _call(opt, inner, args, kwargs)
        grads = [p.grad for p in params]
        mode.unseen_writes([*params, *(g for g in grads if g is not None)])
        v_params, v_grads = _versions(params), _versions(grads)
        where = _where()
        _pop_mode()
        self._fast = True
        try:
            return _call(opt, inner, args, kwargs)
        finally:
            self._fast = False
            if self._active() and _get_current_dispatch_mode() is not mode:
                _push_mode(mode)
            label = f"{type(opt).__name__}.step()"
            again = self._note(params, v_params, lesson.params, where, label)
            again |= self._note(grads, v_grads, lesson.grads, where, label)
            if again:
                self._lessons.pop(opt, None)

    def _note(
        self,
        tensors: list[Any],
        before: list[Any],
        taught: tuple[tuple[int, Writes], ...],
        where: tuple[str | None, int | None],
        label: str,
    ) -> bool:
        """Note the writes `tensors` got in a step the mode did not see; True if one moved
        otherwise than the lesson says."""
        again = False
        for t, v, (moved, writes) in zip(tensors, before, taught):
            if t is None or v is None:
                continue
            now = t._version
            if now == v:
                continue
            if now - v != moved:
                again = True
                writes = tuple((k, label) for k in range(1, now - v + 1))
            for offset, aten in writes:
                self._watch.note_write(t, aten, where, v + offset)
        return again

    def remove(self) -> None:
        """Take the fast path off every optimizer it was set on (those still alive)."""
        for ref, step, previous in self._installed:
            opt = ref()
            if opt is None:
                continue
            current = opt.__dict__.get("step")
            if getattr(current, "__func__", None) is not step:
                continue  # a scheduler wrapped it since: it passes calls through from now on
            if previous is _MISSING:
                del opt.step
            else:
                opt.step = previous
        self._installed.clear()
        self._wrapped = weakref.WeakSet()
        self._learning = None
        self._watch.learning = None


def _call(opt: Any, inner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The step the fast path wraps: what `optimizer.step` was, or the class's method."""
    if inner is not None:
        return inner(*args, **kwargs)
    return type(opt).step(opt, *args, **kwargs)


__all__ = ["Lesson", "OptimizerSteps"]
