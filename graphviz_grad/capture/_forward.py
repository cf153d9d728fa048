"""Forward recording: the value, module and line of every op output that gets a `grad_fn`.

A `TorchDispatchMode` sees every aten op, including the ones that C++ decomposes (`F.linear`
becomes `t` + `addmm`). Inside `__torch_dispatch__` the output has no `grad_fn` yet (autograd
sets it when the op returns), so outputs wait in `pending` and are resolved when the next op
starts or when someone asks (`flush`). The record is stored in `grad_fn.metadata`, which lives
exactly as long as the node: nothing leaks, and no `id()` can be reused for a different node.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import weakref
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .._gc import LONG_PASS, FullCollections
from ..model import TensorSummary
from ._deferred import Deferred, deferrable, storage_key
from .checkpoint import CHECKPOINT, HOOKS, saved_hooks
from .compiled import compiling
from .naming import is_compile_wrapper, is_wrapper, unwrap
from .summary import (
    DATA_LIMIT,
    PLAIN_TYPES,
    OnDevice,
    dtype_name,
    reads_later,
    reduce_on_device,
    shape_of,
    size_ints,
    summarize,
    summarize_small,
    summarize_unread,
    unread,
)

META_KEY = "gradviz"

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_OWN_DIR = os.path.dirname(os.path.dirname(__file__)) + os.sep  # all of graphviz_grad
_STDLIB_DIR = os.path.dirname(os.__file__) + os.sep


#: Frames of other dispatch/function modes are plumbing, not the line that made the op.
_MODE_HOOKS = frozenset({"__torch_dispatch__", "__torch_function__"})


@dataclass
class OpRecord:
    """What the forward pass knew about one autograd node (kept in `node.metadata`).

    One per op of every forward pass while recording: slotted (a third of the memory of an
    instance dict), weakly referenceable (`capture._deferred` indexes records weakly)."""

    __slots__ = (
        "seq",
        "aten",
        "out0",
        "more",
        "module_path",
        "module_root",
        "module_type",
        "file",
        "line",
        "constants",
        "scopes",
        "operands",
        "cuts",
        "checkpointed",
        "hooked",
        "__weakref__",
    )

    seq: int
    aten: str | None  # None: adopted from a consumer (see `ForwardRecorder.adopt`)
    #: Output 0's value: its summary, or the tensor itself until it is summarised
    #: (`capture._deferred`), or its numbers still on its device (`summary.OnDevice`), None
    #: while unknown. Read with `value(k)`, test with `has(k)`.
    out0: TensorSummary | torch.Tensor | OnDevice | None
    #: The other outputs' values by output number (None for the usual op of one output: a dict
    #: per record was a quarter of a chain's recording memory).
    more: dict[int, TensorSummary | torch.Tensor | OnDevice] | None
    module_path: tuple[str, ...] | None
    module_root: Any
    module_type: str | None
    file: str | None
    line: int | None
    #: Inputs that need no gradient, by argument position (see `settled_constants`).
    constants: tuple[tuple[int, TensorSummary | torch.Tensor | OnDevice | LateConstant], ...]
    scopes: tuple[tuple[tuple[str, ...], str, int], ...]
    #: Argument positions of the constants that are operands (a tensor, a `Scalar` argument;
    #: not a dim or a flag), each with a weak reference to its tensor (None for a number), so the
    #: snapshot can name it after the variable that holds it.
    operands: tuple[tuple[int, Any], ...]
    #: Inputs that were cut from the graph (`capture.watch.Cut`), by argument position.
    cuts: tuple[tuple[int, Any], ...]
    #: Made inside a non-reentrant checkpointed region (`capture.checkpoint`).
    checkpointed: bool
    #: Its saved tensors went through the script's own saved-tensors hooks: not read.
    hooked: bool

    def has(self, k: int) -> bool:
        """Whether output `k`'s value is known."""
        if k == 0:
            return self.out0 is not None
        return self.more is not None and k in self.more

    def get(self, k: int) -> TensorSummary | torch.Tensor | OnDevice | None:
        """Output `k`'s value as kept (a summary, a tensor), None if unknown."""
        if k == 0:
            return self.out0
        return None if self.more is None else self.more.get(k)

    def set(self, k: int, value: TensorSummary | torch.Tensor | OnDevice) -> None:
        if k == 0:
            self.out0 = value
        elif self.more is None:
            self.more = {k: value}
        else:
            self.more[k] = value

    def raw(self, k: Any) -> torch.Tensor | None:
        """The tensor kept for output `k`, or for constant `("c", j)`, if not summarised yet."""
        value = self.unread(k)
        return value if isinstance(value, torch.Tensor) else None

    def unread(self, k: Any) -> torch.Tensor | OnDevice | None:
        """What is kept for output `k` or constant `("c", j)` and not summarised yet."""
        value = self.constants[k[1]][1] if isinstance(k, tuple) else self.get(k)
        if type(value) is LateConstant:
            value = value.settled()
        return value if unread(value) else None

    def put(self, k: Any, value: TensorSummary | torch.Tensor | OnDevice | None) -> None:
        if value is None:
            return
        if isinstance(k, tuple):
            found = list(self.constants)
            found[k[1]] = (found[k[1]][0], value)
            self.constants = tuple(found)
        else:
            self.set(k, value)

    def held(self) -> list[Any]:
        """The tags of the values not summarised yet (outputs and constants)."""
        tags: list[Any] = [0] if unread(self.out0) else []
        if self.more is not None:
            tags += [k for k, v in self.more.items() if unread(v)]
        for j, (_, v) in enumerate(self.constants):
            if unread(v):
                tags.append(("c", j))
            elif type(v) is LateConstant:
                value = v.settled()
                if unread(value):
                    tags.append(("c", j))
                else:
                    self.put(("c", j), value)
        return tags

    def settled_constants(self) -> tuple[tuple[int, TensorSummary], ...]:
        """`constants`, each summarised (a small accelerator tensor is kept until now)."""
        for j, (_, v) in enumerate(self.constants):
            if type(v) is LateConstant:
                value = v.settled()
                self.put(("c", j), summarize_unread(value) if unread(value) else value)
            elif unread(v):
                self.put(("c", j), summarize_unread(v))
        return self.constants  # type: ignore[return-value]

    def value(self, k: int) -> TensorSummary | None:
        """The summary of output `k` (summarised now if it was still held as a tensor)."""
        value = self.get(k)
        if unread(value):
            value = summarize_unread(value)
            self.set(k, value)
        return value


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
                filename.startswith((_TORCH_DIR, _OWN_DIR, "<frozen", "<eval_with_key>"))
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

#: Where anomaly mode keeps a node's forward stack (`torch.autograd.set_detect_anomaly`).
_TRACE_KEY = "traceback_"
#: A frame of a formatted stack ("  File "x.py", line 8, in <module>"): its file and line.
TRACE_FRAME = re.compile(r'\s*File "([^"]+)", line (\d+)')


def trim_forward_trace(meta: dict[str, Any]) -> None:
    """Anomaly mode keeps each node's forward stack, which PyTorch prints when the node's
    backward fails ("Traceback of forward call that caused the error"). Under gradviz it begins
    with gradviz's own frames (the thread that runs the script, the CLI): they are dropped, so
    it reads as under `python script.py`."""
    trace = meta.get(_TRACE_KEY)
    if not isinstance(trace, list):
        return
    for k, entry in enumerate(trace):
        found = TRACE_FRAME.match(entry) if isinstance(entry, str) else None
        if found is not None and USER_FRAMES.is_user(found[1]):
            if k:
                meta[_TRACE_KEY] = trace[k:]
            return


_NO_MODULE = (None, None, None, ())


class ModuleStack:
    """Which `nn.Module` forward is running, as a path from the outermost module."""

    def __init__(self) -> None:
        self.stack: list[tuple[Any, tuple[str, ...]]] = []
        self._paths: dict[int, tuple[Any, dict[int, str]]] = {}
        self._handles: list[Any] = []
        #: Per stack level, the scopes up to it: (path, class name, call number) each.
        self.scopes: list[tuple[tuple[tuple[str, ...], str, int], ...]] = []
        self.calls = 0
        #: `current()`, made again only when the stack changes (every op reads it).
        self._current: tuple[Any, ...] = _NO_MODULE

    def install(self) -> None:
        from torch.nn.modules import module as nn_module

        from .hook_ids import private_hook_ids

        with private_hook_ids():
            self._handles = [
                nn_module.register_module_forward_pre_hook(self._push),
                nn_module.register_module_forward_hook(self._pop, always_call=True),
            ]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.stack.clear()
        self.scopes.clear()
        self._current = _NO_MODULE

    def _child_name(self, parent: Any, child: Any) -> str:
        entry = self._paths.get(id(parent))
        if entry is None or entry[0] is not parent:
            names = {id(m): n for n, m in parent.named_modules(remove_duplicate=False) if n}
            entry = (parent, names)
            self._paths[id(parent)] = entry
        return entry[1].get(id(child), type(child).__name__)

    def _push(self, module: Any, args: Any) -> None:
        if compiling() or is_wrapper(module):
            if compiling() or not is_compile_wrapper(module):
                return
            module = unwrap(module)  # its own hooks do not fire: they were compiled away
        if self.stack:
            parent, path = self.stack[-1]
            self.stack.append((module, (*path, self._child_name(parent, module))))
        else:
            self.stack.append((module, ()))
        self.calls += 1
        outer = self.scopes[-1] if self.scopes else ()
        self.scopes.append((*outer, (self.stack[-1][1], type(module).__name__, self.calls)))
        self._current = self._now()

    def _pop(self, module: Any, args: Any, output: Any) -> None:
        if compiling():
            return
        if is_compile_wrapper(module):
            module = unwrap(module)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] is module:
                del self.stack[i:]
                del self.scopes[i:]
                self._current = self._now()
                return

    def current(self) -> tuple[tuple[str, ...] | None, Any, str | None, Any]:
        """(module path, a weak reference to the outermost module, the class name, the scopes)
        of the module whose forward is running; all None (scopes empty) outside any."""
        return self._current  # type: ignore[return-value]

    def _now(self) -> tuple[Any, ...]:
        if not self.stack:
            return _NO_MODULE
        module, path = self.stack[-1]
        return path, weakref.ref(self.stack[0][0]), type(module).__name__, self.scopes[-1]


_DETACH = torch.ops.aten.detach.default
_OVERLOAD = torch._ops.OpOverload
_HIGHER_ORDER = torch._ops.HigherOrderOperator


#: The ops `__torch_dispatch__` passes straight on, by schema name: the profiler's
#: `record_function` ops (every `optimizer.zero_grad()` and `step()` runs two: no tensor in, none
#: out), and the size and layout queries a tensor subclass such as a jagged nested tensor answers
#: through the dispatcher (a number out, nothing written), with every `prim::` op.
_PASSING = frozenset(
    {
        "profiler::_record_function_enter_new",
        "profiler::_record_function_enter",
        "profiler::_record_function_exit",
        "aten::sym_size",
        "aten::sym_stride",
        "aten::sym_numel",
        "aten::sym_storage_offset",
        "aten::is_contiguous",
        "aten::is_strides_like_format",
        "aten::is_non_overlapping_and_dense",
        "aten::dim",
        "aten::size",
        "aten::stride",
        "aten::numel",
        "aten::storage_offset",
    }
)


def _passes(func: Any) -> bool:
    """Whether `__torch_dispatch__` passes `func` straight on (`_PASSING`): it makes no node and
    changes nothing, and reading its input's `grad_fn` inside a size query never returns (torch
    2.13, a jagged nested tensor's `prim::layout`)."""
    try:
        name = func._schema.name
    except AttributeError:
        return False
    return name in _PASSING or name.startswith("prim::")


class OpInfo:
    """What recording needs to know of an op, worked out once per op (`op_info`): the dispatch
    mode reads one object per op instead of looking each fact up in its own cache."""

    __slots__ = ("func", "passes", "writes", "aten", "operands", "watch_kind", "mask_name")

    def __init__(self, func: Any) -> None:
        self.func = func  # held, so that its id stays its own (`op_info` is keyed by id)
        #: `__torch_dispatch__` passes it straight on (`_passes`).
        self.passes = _passes(func)
        #: The arguments it writes in place, from `(args, kwargs)` (`_written_args`), or None.
        self.writes = _written_args(func)
        self.aten = str(func)
        #: Positions of its tensor and `Scalar` arguments (`_operand_positions_of`).
        self.operands = _operand_positions_of(func)
        #: What `capture.watch` makes of it (its `_classify`), once it has looked.
        self.watch_kind: int | None = None
        #: Its schema name (`aten::add`), as `capture.masks` reads it, once the watch has looked.
        self.mask_name: str | None = None


_infos: dict[int, OpInfo] = {}


def op_info(func: Any) -> OpInfo:
    """The `OpInfo` of `func`, keyed by `id` (an op's own `__hash__` is slow Python code)."""
    info = _infos.get(id(func))
    if info is None:
        info = _infos[id(func)] = OpInfo(func)
    return info


class ViewCache:
    """What gradviz made of views of leaves (a copy, a summary), by storage and by view: an
    in-place write drops the entries of the storages it writes (`drop`), not every entry (an
    LSTM cell writes its gates in place at every step, and `w.t()` of every step is the same)."""

    LIMIT = 256

    def __init__(self) -> None:
        self._by: dict[int, dict[Any, Any]] = {}
        self._count = 0

    def get(self, t: torch.Tensor) -> tuple[Any, Any]:
        """(the entry of view `t` or None, its key for `put`: its storage first)."""
        storage = storage_key(t) or 0
        key: tuple[Any, ...] = (storage, t.device, t.data_ptr(), t.dtype, t.storage_offset())
        key += (t.shape, t.stride(), t._version)
        entries = self._by.get(storage)
        return (None if entries is None else entries.get(key)), key

    def put(self, key: Any, value: Any) -> None:
        if self._count >= self.LIMIT:
            self.clear()
        self._by.setdefault(key[0], {})[key] = value
        self._count += 1

    def drop(self, tensors: Any) -> None:
        """`tensors` are about to be written: forget what was made of their storages."""
        if not self._by:
            return
        for t in tensors:
            if isinstance(t, torch.Tensor):
                gone = self._by.pop(storage_key(t) or 0, None)
                if gone:
                    self._count -= len(gone)

    def clear(self) -> None:
        self._by.clear()
        self._count = 0


#: Ops that write arguments their schema does not mark as written: the batch norms update their
#: running statistics (arguments 3 and 4) when training (argument 5).
_UNDECLARED_WRITES = frozenset(
    {"aten::native_batch_norm", "aten::cudnn_batch_norm", "aten::miopen_batch_norm"}
)


def _running_stats(args: Any, kwargs: Any) -> list[Any]:
    if len(args) > 5 and args[5]:
        return [a for a in args[3:5] if a is not None]
    return []


def _written_args(func: Any) -> Any:
    found: Any = None
    if getattr(getattr(func, "_schema", None), "name", None) in _UNDECLARED_WRITES:
        return _running_stats
    try:
        schema = func._schema
        where = [
            (i, a.name, a.kwarg_only)
            for i, a in enumerate(schema.arguments)
            if a.alias_info is not None and a.alias_info.is_write
        ]
    except AttributeError:
        where = []
    if where:

        def found(args: Any, kwargs: Any) -> list[Any]:
            picked: list[Any] = []
            for i, name, kwarg_only in where:
                a = (kwargs or {}).get(name) if kwarg_only or i >= len(args) else args[i]
                if isinstance(a, (list, tuple)):
                    picked.extend(a)
                elif a is not None:
                    picked.append(a)
            return picked

    return found


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for t in out if isinstance(t, torch.Tensor)]
    return []


#: Schema types of the arguments that are operands of an op (drawn as its inputs).
_OPERAND_TYPES = frozenset({"Tensor", "Optional[Tensor]", "number"})


def _operand_positions_of(func: Any) -> frozenset[int]:
    try:
        arguments = func._schema.arguments
    except AttributeError:
        arguments = ()
    return frozenset(i for i, a in enumerate(arguments) if str(a.type) in _OPERAND_TYPES)


def _constants(
    info: OpInfo | None, args: tuple[Any, ...], before: dict[int, Any] | None = None
) -> tuple[tuple[tuple[int, Any], ...], tuple[tuple[int, Any], ...]]:
    """Inputs that do not require grad (the `x` in `x * w`), by argument position, and which of
    them are operands; Python numbers too (`w * 2` reaches the dispatcher as `mul(w, 2)`).
    A large tensor is kept by reference (`LateConstant`): the recording path stays cheap.
    `before`: what the op received in the positions it wrote (`_constants_before_write`)."""
    found = []
    operands: list[tuple[int, Any]] = []
    positions = info.operands if info is not None else frozenset()
    key: list[Any] = []  # each number's position, shared summary and whether it is an operand
    numbers_only = True
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor):
            if a.requires_grad:
                continue
            numbers_only = False
            if before and i in before:
                found.append((i, before[i]))
            elif a.numel() > DATA_LIMIT:
                try:
                    late = LateConstant(a)
                except TypeError:  # a tensor type that takes no weak reference
                    found.append((i, shape_only(a)))
                else:
                    found.append((i, late))
                    LATE.append(late)
            else:
                found.append((i, _constant(a)))
            if i in positions:
                operands.append((i, weakref.ref(a)))
        elif isinstance(a, (int, float)) and not isinstance(a, bool):
            summary = _number(a)
            found.append((i, summary))
            operand = i in positions
            key += (i, id(summary), operand)
            if operand:
                operands.append((i, None))
    if not found:
        return (), ()
    if numbers_only:  # the same numbers at the same places share their tuples (a loop's steps)
        return _shared(tuple(key), found, operands)
    return tuple(found), tuple(operands)


_tuples: dict[Any, Any] = {}


def _shared(key: tuple[Any, ...], found: list[Any], operands: list[Any]) -> Any:
    """One pair of tuples (constants, operands) for the same numbers (by their shared summaries)
    at the same places; `key` says which: see `_constants`."""
    hit = _tuples.get(key)
    if hit is None:
        hit = (tuple(found), tuple(operands))
        if len(_tuples) < 4096:
            _tuples[key] = hit  # holds the summaries, so their ids stay theirs
    return hit


def _constants_before_write(args: tuple[Any, ...], written: list[Any]) -> dict[int, Any] | None:
    """The constants an op is about to write in place, as they are before it runs, by argument
    position: a BatchNorm's `running_mean` is the op's input, and the op updates it (None: none)."""
    found = None
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor) and not a.requires_grad and any(a is w for w in written):
            if found is None:
                found = {}
            found[i] = _constant_now(a)
    return found


def _constant(t: torch.Tensor) -> TensorSummary | torch.Tensor:
    """A constant input of a few numbers as it is now (a large one is a `LateConstant`). A few
    numbers off the CPU are copied on their device and summarised with the graph (reading them
    now would wait for the device at every op)."""
    if not t.is_cpu and deferrable(t):
        with torch.no_grad():
            return t.detach().clone()
    return summarize_small(t)


def _constant_now(t: torch.Tensor) -> TensorSummary | torch.Tensor | OnDevice:
    """A constant about to be written in place (a BatchNorm's `running_mean`): as it is now."""
    if t.numel() <= DATA_LIMIT:
        return _constant(t)
    if not readable(t):
        return shape_only(t)
    return reduce_on_device(t) if reads_later(t) else summarize(t)


def readable(t: torch.Tensor) -> bool:
    """Whether a large constant can be summarised (not a tensor subclass, a meta tensor or a
    sparse one, whose summary would cost or fail: those show their shape)."""
    return type(t) in PLAIN_TYPES and t.layout == torch.strided and t.device.type != "meta"


def shape_only(t: torch.Tensor) -> TensorSummary:
    return TensorSummary(shape_of(t), dtype_name(t.dtype), t.numel())


class LateConstant:
    """A large input that needs no gradient (the data, a mask, a target), by reference: recording
    it costs a weak reference, not a summary or a hold (most calls of a loop are never drawn).
    It is read when its graph is built (`OpRecord.held`) if the tensor is still alive and at the
    version the op read (the last call's batch usually is), or before an in-place write to that
    very tensor the dispatch mode sees (a reused batch buffer: `Deferred.written`); else it shows
    its shape. A write that bumps no version (through `.data` or numpy) is not seen."""

    __slots__ = ("ref", "version", "shape", "dtype", "summary")

    def __init__(self, t: torch.Tensor) -> None:
        self.ref = weakref.ref(t)
        try:
            self.version: int | None = t._version
        except RuntimeError:  # an inference tensor: no version, and no write outside that mode
            self.version = None
        self.shape = t.shape
        self.dtype = t.dtype
        self.summary: TensorSummary | OnDevice | None = None

    def tensor(self) -> torch.Tensor | None:
        """The tensor as the op read it, or None when it is gone, changed or unreadable."""
        t = self.ref()
        if t is None or (self.version is not None and t._version != self.version):
            return None
        return t.detach() if readable(t) else None

    def settled(self) -> TensorSummary | OnDevice | torch.Tensor:
        """Its summary if a write made one, the tensor to summarise, or its shape."""
        if self.summary is not None:
            return self.summary
        t = self.tensor()
        if t is not None:
            return t
        shape = size_ints(self.shape)
        numel = math.prod(shape) if -1 not in shape else 0
        return TensorSummary(shape, dtype_name(self.dtype), numel, note=self._why_unread())

    def _why_unread(self) -> str:
        t = self.ref()
        if t is None:
            return GONE_NOTE
        if self.version is not None and t._version != self.version:
            return CHANGED_NOTE
        return "not read: this kind of tensor is not read"


#: Why a large input that needs no gradient shows no numbers (`LateConstant.settled`).
GONE_NOTE = "not kept: a temporary input (freed before its graph was built)"
CHANGED_NOTE = "not kept: written in place after the op read it"


#: The `LateConstant`s made since the dispatch mode last looked (`ForwardRecorder._new_record`).
LATE: list[LateConstant] = []


_numbers: dict[tuple[type, float], TensorSummary] = {}


def _number(x: float) -> TensorSummary:
    """The summary of a Python number argument; the same number shares one (a loop passes the
    same constants to every step: `y * 1.0001 + 0.1`)."""
    key = (type(x), x)
    shared = x and x == x  # 0.0 == -0.0 and nan != nan: those are never shared
    found = _numbers.get(key) if shared else None
    if found is None:
        found = _number_summary(x)
        if shared and len(_numbers) < 4096:
            _numbers[key] = found
    return found


def _number_summary(x: float) -> TensorSummary:
    kind = "int64" if isinstance(x, int) else "float64"
    if math.isfinite(x):
        return TensorSummary((), kind, 1, x, min=x, max=x, mean=x, norm=abs(x))
    return TensorSummary((), kind, 1, x, nan=int(math.isnan(x)), inf=int(math.isinf(x)))


class ForwardRecorder(TorchDispatchMode):
    """Dispatch mode that attaches an `OpRecord` to each new autograd node."""

    def __init__(self, modules: ModuleStack, values: bool = True) -> None:
        super().__init__()
        self.modules = modules
        self.values = values
        self.pending: list[tuple[Any, Any, Any, tuple[Any, ...], Any, Any]] = []
        self.paused = 0
        #: Set from another thread at Ctrl-C or at `--timeout` (`Recorder.request_stop`): the
        #: exception class that the next op the user's code runs raises, where no record is
        #: half made; None when no stop is asked for.
        self.stop_requested: type[BaseException] | None = None
        self.seq = 0
        #: `seq` when the pass began (at the last backward call): a long pass holds off full
        #: collections until the next one (`_gc.FullCollections`).
        self._pass_start = 0
        self.full_collections = FullCollections()
        #: `capture.watch.Watch` that sees every op (cuts, in-place writes), or None.
        self.watch: Any = None
        #: Op outputs kept as tensors until their graph is built (`capture._deferred`).
        self.deferred = Deferred()
        #: Copies of views of leaves, by view and version (`_leaf_view_copy`).
        self._view_copies = ViewCache()
        #: Summaries of views of leaves, by view and version, over the memory budget (where
        #: `_view_copies` would hold too much): `w.t()` of an unrolled RNN's every step is read
        #: once, not once a step.
        self._view_summaries = ViewCache()
        #: The id of the output (or ids of the outputs) of the last op that built graph, and
        #: where in the user's code it ran (the frame's id and instruction): see `_saving`. Ids,
        #: not the tensors: holding the last output would keep its whole graph alive after the
        #: recording (a deep chain then freed on a small C stack crashes).
        self._made: tuple[Any, int, int] | None = None
        #: The user's frame that ran the last graph op: its function's variables, for the
        #: checks at the end of a run (`Recorder.take_locals`, which drops it).
        self.last_frame: FrameType | None = None

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps `__torch_dispatch__` in a dynamo guard that imports torch._dynamo on the
        # first op (about a second) and adds a call per op; the recorder never runs compiled.
        return False

    @classmethod
    def ignore_compile_internals(cls) -> bool:
        # Off while torch.compile traces and compiles, on while the compiled code runs: the
        # user's compiled functions are compiled as without gradviz (`capture.compiled`).
        return True

    def off(self) -> contextlib.AbstractContextManager[Any]:
        """Take this mode off the dispatch stack while gradviz reads tensors or the user's
        backward runs (no recording happens then), so those ops skip `__torch_dispatch__`."""
        from torch.utils._python_dispatch import _get_current_dispatch_mode, _pop_mode_temporarily

        if _get_current_dispatch_mode() is not self:
            return contextlib.nullcontext()
        return _pop_mode_temporarily()

    #: `torch.cond`, `scan`, `while_loop`, `map` (higher-order operators) come to
    #: `__torch_dispatch__` too, with this mode off: they run as without gradviz.
    supports_higher_order_operators = True

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        info = op_info(func)
        if info.passes:
            return func(*args, **(kwargs or {}))
        if type(func) is not _OVERLOAD and isinstance(func, _HIGHER_ORDER):
            # its body's ops are not recorded; its outputs' values are, when an op reads them
            return func(*args, **(kwargs or {}))
        if self.stop_requested:
            self.safe_point()
        if self.pending:
            self._flush()
        grad = torch.is_grad_enabled()
        if self.values and not self.paused and grad:
            self._adopt(args)
        writes = info.writes
        before = None
        if writes is not None:
            written = writes(args, kwargs)
            self.deferred.written(written)
            self._view_copies.drop(written)
            self._view_summaries.drop(written)
            if grad and self.values and not self.paused:
                before = _constants_before_write(args, written)
        out = func(*args, **(kwargs or {}))
        if func is _DETACH and self._made is not None and self._saving(args):
            return out  # autograd keeping an op's output for backward: not the user's cut
        if self.watch is not None and not self.paused:
            self.watch.op(info, args, out, grad, kwargs)
        if not self.paused and grad:
            frame = USER_FRAMES.find(sys._getframe(1))
            where: tuple[Any, ...] = (None, None)
            if frame is not None:
                where = (frame.f_code.co_filename, frame.f_lineno)
                self.last_frame = frame
            made = id(out) if type(out) not in (tuple, list) else tuple(map(id, out))
            self._made = (made, id(frame), -1 if frame is None else frame.f_lasti)
            hooked = saved_hooks()
            if hooked is not None:  # now, not at flush: the next op may be outside the region
                where = (*where, hooked)
            self.pending.append((info, out, args, where, self.modules.current(), before))
        return out

    def safe_point(self) -> None:
        """Raise the exception that Ctrl-C or `--timeout` asked for, unless gradviz is inside
        its own work (reading tensors, a backward call it records): then the next safe point
        does."""
        asked = self.stop_requested
        if asked is not None and not self.paused:
            self.stop_requested = None
            raise asked

    def _saving(self, args: Any) -> bool:
        """Whether this `detach` is autograd saving the output of the op that just ran (sigmoid,
        relu, softmax keep their result for backward), not the user's `.detach()` or `.data`:
        its input is that op's output, and the user's code is still at the same instruction (a
        `.data` or `.detach()` of the user's is an instruction of its own)."""
        assert self._made is not None
        made, frame_id, lasti = self._made
        src = id(args[0]) if args else None
        if src != made and not (type(made) is tuple and src in made):
            return False
        frame = USER_FRAMES.find(sys._getframe(1))
        return id(frame) == frame_id and (-1 if frame is None else frame.f_lasti) == lasti

    def flush(self) -> None:
        """Attach records to the nodes of the ops that ran since the last flush."""
        if self.pending:
            with self.off():
                self._flush()

    def _flush(self) -> None:
        pending, self.pending = self.pending, []
        self.paused += 1
        try:
            for info, out, args, where, module, before in pending:
                self._resolve(info, out, args, where, module, before)
        finally:
            self.paused -= 1

    def _resolve(
        self, info: OpInfo, out: Any, args: Any, where: Any, module: Any, before: Any = None
    ) -> None:
        record: OpRecord | None = None
        for t in (out,) if isinstance(out, torch.Tensor) else _tensors(out):
            node: Any = t.grad_fn
            if node is None:
                continue
            meta = node.metadata
            existing = meta.get(META_KEY)
            if existing is None:
                if record is None:
                    record = self._new_record(info.func, args, where, module, before, info)
                meta[META_KEY] = existing = record
                if _TRACE_KEY in meta:
                    trim_forward_trace(meta)
            if existing is record and self.values and not record.has(t.output_nr):
                self.keep_value(record, t.output_nr, t)
        if type(out) is not tuple and type(out) is not list and info.writes is not None:
            self._write_through_view(info, out, args, where, module, before)

    def _write_through_view(
        self, info: OpInfo, out: Any, args: Any, where: Any, module: Any, before: Any
    ) -> None:
        """An in-place op on a view (`buf[i] = x`: `copy_` into `buf.select(0, i)`) gives the
        view's base a new node (`CopySlices`): the op's line, module and the base's new value
        are recorded on it too, not left to `adopt`, which knows neither."""
        base = getattr(out, "_base", None)
        node: Any = None if base is None else base.grad_fn
        if base is None or node is None or node.metadata.get(META_KEY) is not None:
            return
        record = self._new_record(info.func, args, where, module, before, info)
        node.metadata[META_KEY] = record
        if self.values:
            self.keep_value(record, base.output_nr, base)

    def new_pass(self) -> None:
        """A backward call begins: forget the copies of views of leaves (a hook during the call
        may write a leaf where this mode does not look) and start the next pass's accounting."""
        self._view_copies.clear()
        self._view_summaries.clear()
        self.deferred.new_pass()
        self._pass_start = self.seq
        self.full_collections.release()

    def unseen_writes(self, tensors: list[torch.Tensor]) -> None:
        """`tensors` are about to be written where this mode does not look (an optimizer step
        run without it): what `__torch_dispatch__` does before an in-place op it sees."""
        self.deferred.written(tensors)
        self._view_copies.drop(tensors)
        self._view_summaries.drop(tensors)

    def _leaf_view_copy(self, t: torch.Tensor) -> torch.Tensor:
        """A copy of `t`, a view of a leaf (`w.t()` in every `F.linear`): the same view of the
        same version is copied once, until an in-place write to its storage (`written`)."""
        copy, key = self._view_copies.get(t)
        if copy is None:
            with torch.no_grad():
                copy = t.clone()
            self._view_copies.put(key, copy)
        return copy  # type: ignore[no-any-return]

    def _leaf_view_summary(self, t: torch.Tensor) -> Any:
        """The summary of `t`, a view of a leaf, over the budget: the same view of the same
        version is read once, until an in-place write to its storage (as `_leaf_view_copy`)."""
        found, key = self._view_summaries.get(t)
        if found is None:
            found = reduce_on_device(t) if reads_later(t) else summarize_small(t)
            self._view_summaries.put(key, found)
        return found

    def keep_value(self, record: OpRecord, k: int, t: torch.Tensor) -> None:
        """Output `k` of `record`: a large one is kept as a tensor and summarised when its graph
        is built; a view of a leaf is copied now (a parameter may be updated in place where the
        dispatch mode does not see it, in a hook during backward)."""
        if not self.deferred.keeps(t):
            base = t._base
            if base is not None and base.grad_fn is None and t.numel() > DATA_LIMIT:
                record.set(k, self._leaf_view_summary(t))
            else:
                record.set(k, reduce_on_device(t) if reads_later(t) else summarize_small(t))
            return
        base = t._base
        if base is not None and base.grad_fn is None:  # a private copy: nothing writes to it
            record.set(k, self._leaf_view_copy(t))
            return
        kept = t.detach()
        if self.deferred.hold(record, k, kept):
            record.set(k, kept)
        else:
            record.set(k, reduce_on_device(t) if reads_later(t) else summarize(t))

    def adopt(self, args: Any) -> None:
        """Record the value of input tensors whose node no op output reached (the output of a
        custom `autograd.Function`, a base modified through a view): read just before use."""
        with self.off():
            self._adopt(args)

    def _adopt(self, args: Any) -> None:
        for a in args:
            if isinstance(a, torch.Tensor):
                node: Any = a.grad_fn
                if node is not None:
                    record = node.metadata.get(META_KEY)
                    # the usual case needs no call: the op that made the tensor recorded it
                    if type(record) is not OpRecord or record.aten is None:
                        self._adopt_one(a)
            elif isinstance(a, (list, tuple)):
                for t in a:
                    if isinstance(t, torch.Tensor) and t.grad_fn is not None:
                        self._adopt_one(t)

    def _adopt_one(self, t: torch.Tensor) -> None:
        node: Any = t.grad_fn
        meta = node.metadata
        record = meta.get(META_KEY)
        if record is None:
            unknown = (None, None, None, ())
            record = meta[META_KEY] = self._new_record(None, (), (None, None), unknown)
        if not isinstance(record, OpRecord) or record.aten is not None:
            return  # the usual case: the op that made the tensor recorded it
        if not record.has(t.output_nr):
            self.keep_value(record, t.output_nr, t)

    def _new_record(
        self,
        func: Any,
        args: Any,
        where: Any,
        module: Any,
        before: Any = None,
        info: OpInfo | None = None,
    ) -> OpRecord:
        self.seq += 1
        if self.seq - self._pass_start == LONG_PASS:
            self.full_collections.hold()
        path, root, mtype, scopes = module
        if info is None and func is not None:
            info = op_info(func)
        constants, operands = _constants(info, args, before) if self.values else ((), ())
        if LATE:
            self.deferred.late(LATE)
            LATE.clear()
        return OpRecord(
            seq=self.seq,
            aten=None if info is None else info.aten,
            out0=None,
            more=None,
            module_path=path,
            module_root=root,
            module_type=mtype,
            file=where[0],
            line=where[1],
            constants=constants,
            scopes=scopes,
            operands=operands,
            cuts=self.watch.consumed(args) if self.watch is not None else (),
            checkpointed=len(where) > 2 and where[2] == CHECKPOINT,
            hooked=len(where) > 2 and where[2] == HOOKS,
        )
