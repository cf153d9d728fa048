"""Forward recording: the value, module and line of every op output that gets a `grad_fn`.

A `TorchDispatchMode` sees every aten op, including the ones that C++ decomposes (`F.linear`
becomes `t` + `addmm`). Inside `__torch_dispatch__` the output has no `grad_fn` yet (autograd
sets it when the op returns), so outputs wait in `pending` and are resolved when the next op
starts or when someone asks (`flush`). The record is stored in `grad_fn.metadata`, which lives
exactly as long as the node: nothing leaks, and no `id()` can be reused for a different node.
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ._summary import DATA_LIMIT, summarize
from .model import TensorSummary

META_KEY = "gradviz"

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_OWN_DIR = os.path.dirname(__file__) + os.sep
_STDLIB_DIR = os.path.dirname(os.__file__) + os.sep


#: Frames of other dispatch/function modes are plumbing, not the line that made the op.
_MODE_HOOKS = frozenset({"__torch_dispatch__", "__torch_function__"})


@dataclass
class OpRecord:
    """What the forward pass knew about one autograd node (kept in `node.metadata`)."""

    seq: int
    aten: str
    outputs: dict[int, TensorSummary]
    module_path: tuple[str, ...] | None
    module_root: Any
    module_type: str | None
    file: str | None
    line: int | None
    constants: tuple[tuple[int, TensorSummary], ...]


def op_record(node: Any) -> OpRecord | None:
    """The forward record gradviz attached to autograd node `node`, if any."""
    try:
        rec = node.metadata.get(META_KEY)
    except (AttributeError, RuntimeError):
        return None
    return rec if isinstance(rec, OpRecord) else None


class _UserFrames:
    """Finds the innermost frame of user code (not torch, not gradviz, not the stdlib)."""

    def __init__(self) -> None:
        self._cache: dict[str, bool] = {}

    def is_user(self, filename: str) -> bool:
        hit = self._cache.get(filename)
        if hit is None:
            hit = not (
                filename.startswith((_TORCH_DIR, _OWN_DIR, "<frozen"))
                or (filename.startswith(_STDLIB_DIR) and "site-packages" not in filename)
            )
            self._cache[filename] = hit
        return hit

    def find(self, frame: FrameType | None) -> FrameType | None:
        while frame is not None and (
            not self.is_user(frame.f_code.co_filename) or frame.f_code.co_name in _MODE_HOOKS
        ):
            frame = frame.f_back
        return frame

    def where(self, start: int = 2) -> tuple[str | None, int | None]:
        frame = self.find(sys._getframe(start))
        if frame is None:
            return None, None
        return frame.f_code.co_filename, frame.f_lineno


USER_FRAMES = _UserFrames()


class ModuleStack:
    """Which `nn.Module` forward is running, as a path from the outermost module."""

    def __init__(self) -> None:
        self.stack: list[tuple[Any, tuple[str, ...]]] = []
        self._paths: dict[int, tuple[Any, dict[int, str]]] = {}
        self._handles: list[Any] = []

    def install(self) -> None:
        from torch.nn.modules import module as nn_module

        self._handles = [
            nn_module.register_module_forward_pre_hook(self._push),
            nn_module.register_module_forward_hook(self._pop, always_call=True),
        ]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.stack.clear()

    def _child_name(self, parent: Any, child: Any) -> str:
        entry = self._paths.get(id(parent))
        if entry is None or entry[0] is not parent:
            names = {id(m): n for n, m in parent.named_modules(remove_duplicate=False) if n}
            entry = (parent, names)
            self._paths[id(parent)] = entry
        return entry[1].get(id(child), type(child).__name__)

    def _push(self, module: Any, args: Any) -> None:
        if self.stack:
            parent, path = self.stack[-1]
            self.stack.append((module, (*path, self._child_name(parent, module))))
        else:
            self.stack.append((module, ()))

    def _pop(self, module: Any, args: Any, output: Any) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] is module:
                del self.stack[i:]
                return

    def current(self) -> tuple[tuple[str, ...] | None, Any, str | None]:
        if not self.stack:
            return None, None, None
        module, path = self.stack[-1]
        return path, weakref.ref(self.stack[0][0]), type(module).__name__


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for t in out if isinstance(t, torch.Tensor)]
    return []


def _constants(args: tuple[Any, ...]) -> tuple[tuple[int, TensorSummary], ...]:
    found = []
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor) and not a.requires_grad and a.numel() <= DATA_LIMIT:
            found.append((i, summarize(a)))
    return tuple(found)


class ForwardRecorder(TorchDispatchMode):
    """Dispatch mode that attaches an `OpRecord` to each new autograd node."""

    def __init__(self, modules: ModuleStack, values: bool = True) -> None:
        super().__init__()
        self.modules = modules
        self.values = values
        self.pending: list[tuple[Any, Any, Any, tuple[str | None, int | None], Any]] = []
        self.paused = 0
        self.seq = 0
        self.on_op: Callable[[str, Any], None] | None = None

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if self.pending:
            self.flush()
        out = func(*args, **(kwargs or {}))
        if not self.paused and torch.is_grad_enabled():
            where = USER_FRAMES.where(2)
            self.pending.append((func, out, args, where, self.modules.current()))
        return out

    def flush(self) -> None:
        """Attach records to the nodes of the ops that ran since the last flush."""
        pending, self.pending = self.pending, []
        self.paused += 1
        try:
            for func, out, args, where, module in pending:
                self._resolve(func, out, args, where, module)
        finally:
            self.paused -= 1

    def _resolve(self, func: Any, out: Any, args: Any, where: Any, module: Any) -> None:
        record: OpRecord | None = None
        for t in _tensors(out):
            node: Any = t.grad_fn
            if node is None:
                continue
            meta = node.metadata
            existing = meta.get(META_KEY)
            if existing is None:
                if record is None:
                    record = self._new_record(func, args, where, module)
                meta[META_KEY] = existing = record
            if isinstance(existing, OpRecord) and existing is record and self.values:
                record.outputs.setdefault(t.output_nr, summarize(t))

    def _new_record(self, func: Any, args: Any, where: Any, module: Any) -> OpRecord:
        self.seq += 1
        path, root, mtype = module
        return OpRecord(
            seq=self.seq,
            aten=str(func),
            outputs={},
            module_path=path,
            module_root=root,
            module_type=mtype,
            file=where[0],
            line=where[1],
            constants=_constants(args) if self.values else (),
        )
