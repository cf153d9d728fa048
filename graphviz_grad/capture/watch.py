"""What `gradviz doctor` needs to see while the script runs, recorded as cheaply as possible.

`Watch` rides on the forward recorder's dispatch mode (one `op` call per aten op) and on the
recorder's backward interception (`note_call` / `after_call`). It keeps:

* cut marks: the output of `.detach()` / `.data` / an op under `no_grad` or `inference_mode` whose
  input required grad is noted with a `Cut` (by id, with a weak reference: `cut_of`; not as an
  attribute, which the user's `torch.save` would pickle), passed on through ops that do not
  track grad, so a later graph op that consumes it as a constant can name it;
  `.item()` of a tensor that requires grad is remembered by value;
* in-place writes (op, line, shape, version), to name the write that made a saved tensor stale;
* which `nn.Module`s were called, and which leaves fed a graph op;
* per kept backward call, the `CallEvents` the checks read (cut consumers, freed nodes, leaves),
  and the same for the graphs gradviz traced itself (no backward call: `events_for(graph)`);
* the `UserWarning`s raised while it is installed (PyTorch's broadcasting warning, a non-leaf
  `.grad` read), with the user's file:line, still shown to the user as Python would.

Nothing here holds a tensor or an autograd node beyond the life of what it describes, and nothing
is left on the user's tensors: marks are weak references by id (forgotten when the tensor dies),
the rest is weak references and plain numbers.
"""

from __future__ import annotations

import linecache
import math
import os
import re
import sys
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import torch

from ..model import rebinding_update
from . import clips, masks
from ._forward import _TORCH_DIR, TRACE_FRAME, USER_FRAMES, op_record
from ._weak import keep_while_alive
from .compiled import compiling
from .hook_ids import private_hook_ids

#: Call number that freed a node's saved tensors, kept in the node's metadata.
FREED_KEY = "gradviz_freed"
#: Call number that first ran a node (retained or not), kept in the node's metadata: a later
#: call going through it again went back into an earlier step's graph.
RAN_KEY = "gradviz_ran"
#: `.item()` values remembered (the oldest are dropped first).
ITEM_LIMIT = 256
#: In-place writes remembered.
INPLACE_LIMIT = 4096
#: Warnings remembered (distinct file, line and message).
WARNING_LIMIT = 64
#: Graphs traced without a backward call whose events are kept (the latest ones).
TRACE_LIMIT = 8
#: The most places of backward calls kept per leaf (`Watch.reached_at`).
SITES_LIMIT = 8
#: A place in the user's code: (file, line).
Where = tuple[str | None, int | None]
#: `.item()` values too common to link a constant to (a literal 1 is not a lost gradient).
_TRIVIAL = frozenset({0.0, 1.0, -1.0})

#: The C++ source location PyTorch appends to its warnings (not the user's line).
_INTERNAL = re.compile(r"\s*\(Triggered internally at [^)]*\)\s*$")
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The file of the wrapper around `torch.autograd.backward` / `grad` (`Recorder._wrap`).
_WRAPPER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recorder.py")
_PLAIN, _DETACH, _INPLACE, _ITEM, _NONDIFF = 0, 1, 2, 3, 4
#: Plain and in-place ops that may put a mask on attention scores (`capture/masks.py`).
_MASK, _INPLACE_MASK = 5, 6
#: Ops whose result carries no gradient (indices, comparisons): an accuracy computed from
#: `argmax` or `==` and given to backward has no graph. Only the no-graph hint names them: a
#: comparison used as a mask (`torch.where(x > 0, x, 0)`) is no cut.
_NONDIFF_OPS = frozenset(
    f"aten::{name}"
    for name in (
        *("argmax", "argmin", "argsort", "eq", "ne", "gt", "lt", "ge", "le"),
        *("logical_and", "logical_or", "logical_not", "logical_xor", "bucketize", "searchsorted"),
    )
)
_DETACH_OPS = frozenset({"aten::detach", "aten::alias"})
#: Where `@torch.no_grad()` as a decorator enters the block (`_entered_by_torch`).
_CONTEXTLIB = os.path.join(_TORCH_DIR, "utils", "_contextlib.py")
_ITEM_OPS = frozenset({"aten::_local_scalar_dense"})


@dataclass(frozen=True)
class InplaceWrite:
    """One in-place write: the aten op, where, the owner's op name, shape and new version."""

    aten: str
    file: str | None
    line: int | None
    owner: str | None
    shape: tuple[int, ...]
    version: int


@dataclass(frozen=True)
class Cut:
    """Where the graph was cut: `kind` is detach, no_grad, inference_mode or item.
    `spent_by`: the backward call that had already run through (and freed) the source's graph,
    if one had (truncated BPTT's `h = h.detach()`: no gradient could flow back there anyway)."""

    kind: str
    aten: str
    file: str | None
    line: int | None
    source: str | None
    seq: int
    spent_by: int | None = None
    #: A weak reference to the source when it is a leaf (a parameter read under `no_grad`).
    leaf: Any = None
    #: The forward op that made the source (its record's `seq`), when it is not a leaf.
    source_op: int | None = None
    #: What the source was made from, two levels up: per input, a weak reference to a leaf or
    #: `(seq, its own inputs)` of its op (empty if unknown; see `_made_from`). With `source_op`,
    #: tells whether gradient still reaches the source's own graph by another path
    #: (`CallEvents.reaches`): a stop-gradient, not a lost gradient.
    inputs: tuple[Any, ...] = ()
    #: A weak reference to the outermost module the source was computed in, if any: whether
    #: backward calls of its own train it (`diagnose.cuts`: a GAN's `G(z).detach()`).
    module: Any = None
    #: For kind ``function``: the custom `autograd.Function` whose forward made it
    #: (`SinhBad.forward`), which autograd runs without grad tracking.
    function: str | None = None


@dataclass(frozen=True)
class ScriptWarning:
    """One warning the code raised: its class, first line of text, and where (user's file)."""

    category: str
    message: str
    file: str | None
    line: int | None


@dataclass
class CallEvents:
    """What one kept backward call adds to its `Graph` for the checks."""

    cuts: list[tuple[int, int, Cut]] = field(default_factory=list)
    freed_by: dict[int, int] = field(default_factory=dict)
    #: Nodes (with saved tensors) an earlier backward call already ran, by the call that did:
    #: this call goes back into that call's graph (a carried RNN state, a tensor made once).
    ran_in: dict[int, int] = field(default_factory=dict)
    leaves: list[weakref.ref[torch.Tensor]] = field(default_factory=list)
    retained: bool = False
    #: The `seq` of every forward op in the graph (`reaches`).
    ops: set[int] = field(default_factory=set)
    #: The ops of the graph made before the previous backward call ended (by node index): an
    #: earlier step's forward, which this call's graph reaches back into.
    made_before: set[int] = field(default_factory=set)
    #: The ops of the graph made since then (this call's own forward).
    made_since: set[int] = field(default_factory=set)

    def reaches(self, cut: Cut) -> bool:
        """Whether the gradient of this call still reaches what `cut` cut off by another path:
        its source is in the graph, or everything the source was made from is (the stop-gradient
        of a straight-through estimator, VQ-VAE or SimSiam: `z + (q - z).detach()`)."""
        if cut.leaf is not None or cut.source_op is None:
            return self._has_leaf(cut.leaf)
        if cut.source_op in self.ops:
            return True
        return bool(cut.inputs) and all(self._reached(x) for x in cut.inputs)

    def _reached(self, made: Any) -> bool:
        """One entry of `Cut.inputs`: a leaf in the graph, an op in it, or an op (not in it)
        whose own inputs all are: `w.round()` in `w + (w.round() - w).detach()`."""
        if isinstance(made, weakref.ref):
            return self._has_leaf(made)
        if isinstance(made, tuple):
            seq, below = made
            return seq in self.ops or (bool(below) and all(self._reached(x) for x in below))
        return made in self.ops

    def _has_leaf(self, ref: Any) -> bool:
        leaf = ref() if ref is not None else None
        return leaf is not None and any(r() is leaf for r in self.leaves)


def owner_name(node: Any) -> str | None:
    """An autograd node's op as PyTorch's error messages name it (``Sigmoid``, not
    ``SigmoidBackward0``)."""
    if node is None:
        return None
    name = type(node).__name__
    head, sep, _ = name.rpartition("Backward")
    return head if sep else name


def _where() -> tuple[str | None, int | None]:
    frame = USER_FRAMES.find(sys._getframe(1))
    if frame is None:
        return None, None
    return frame.f_code.co_filename, frame.f_lineno


def _classify(func: Any) -> int:
    name = func._schema.name
    if name in _DETACH_OPS:
        return _DETACH
    if name in _ITEM_OPS:
        return _ITEM
    if name in _NONDIFF_OPS:
        return _NONDIFF
    args = func._schema.arguments
    if args and args[0].alias_info is not None and args[0].alias_info.is_write:
        return _INPLACE_MASK if name in masks.OPS else _INPLACE
    return _MASK if name in masks.OPS else _PLAIN


#: Parameters of an optimizer that no backward call reached, kept (weakly) to name them.
UNREACHED_KEPT = 8
#: Nodes looked at, from a cut's source, for the mark of a backward call that freed them.
SPENT_SEARCH = 32


def _spent_by(node: Any) -> int | None:
    """The backward call that already ran through `node`'s graph and freed its saved tensors
    (`after_call` marks those nodes), found within `SPENT_SEARCH` nodes of it; None if none did."""
    stack: list[Any] = [node]
    seen: set[int] = set()
    while stack and len(seen) < SPENT_SEARCH:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        try:
            by = node.metadata.get(FREED_KEY)
            children = node.next_functions
        except (AttributeError, RuntimeError):
            continue
        if isinstance(by, int):
            return by
        stack.extend(child for child, _ in reversed(children))
    return None


def scripts_own(filename: str) -> bool:
    """A file of the script's own: not PyTorch's, gradviz's or the standard library's (as
    `USER_FRAMES`), nor an installed library's (a framework's locals are not the script's)."""
    return USER_FRAMES.is_user(filename) and ("-packages" + os.sep) not in filename


def _own_frame(frame: FrameType | None) -> FrameType | None:
    """The innermost frame of the script's own files (`scripts_own`) from `frame` out."""
    while frame is not None and not scripts_own(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


#: Entries of a dict, or attributes of an object, looked at by `_worth_holding`.
HOLD_LOOK = 64


def _worth_holding(value: Any, depth: int = 0) -> bool:
    """A model, a list whose last item is a tensor with a graph (`losses.append(loss)`), a
    running total over earlier backward calls' roots (`total += loss`), or a dict or object
    of the script's holding one (`history["loss"]`, `self.losses`)."""
    if isinstance(value, torch.nn.Module):
        return True
    if isinstance(value, torch.Tensor):
        return value.grad_fn is not None and _near_a_root(value.grad_fn)
    if isinstance(value, (list, tuple)):
        last = value[-1] if value else None
        return isinstance(last, torch.Tensor) and last.grad_fn is not None
    if depth > 0:
        return False
    if isinstance(value, dict):
        items = list(value.values())[:HOLD_LOOK] if len(value) <= HOLD_LOOK else []
    elif type(value).__module__ == "__main__" and hasattr(value, "__dict__"):
        items = list(vars(value).values())[:HOLD_LOOK]
    else:
        return False
    return any(_worth_holding(v, depth + 1) for v in items)


def _near_a_root(node: Any) -> bool:
    """Whether `node` or a node two steps below it was the root of a backward call."""
    level = [node]
    for _ in range(3):
        below = []
        for n in level:
            try:
                if "gradviz_calls" in n.metadata:
                    return True
                below += [c for c, _ in n.next_functions if c is not None]
            except (AttributeError, RuntimeError):
                continue
        level = below
    return False


def _made_from(node: Any, depth: int = 2) -> tuple[Any, ...]:
    """Per input of `node`: a weak reference to a leaf, or its forward op's `seq`, with what
    that op was made from in turn (`(seq, inputs)`) for `depth` levels; () if one is not known
    (an op the recording did not see)."""
    found: list[Any] = []
    for child, _ in node.next_functions:
        if child is None:
            continue
        var = getattr(child, "variable", None)
        if isinstance(var, torch.Tensor):
            found.append(weakref.ref(var))
            continue
        record = op_record(child)
        if record is None:
            return ()
        found.append(record.seq if depth <= 1 else (record.seq, _made_from(child, depth - 1)))
    return tuple(found)


def _literal_like(x: float) -> bool:
    """A number a script may well write as a literal (``4.0``, ``0.25``): a Python constant of that
    value is not linked to an `.item()` that gave the same value by chance."""
    return x.is_integer() or len(repr(x)) <= 5


def _each_tensor(args: Any) -> Any:
    for a in args:
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    yield b


def _outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for t in out if isinstance(t, torch.Tensor)]
    return []


def _rebinding(file: str | None, line: int | None) -> str | None:
    """The name the line updates by making a new tensor from its gradient (`w = w - lr *
    w.grad`): under `no_grad`, the new `w` requires no grad."""
    return rebinding_update(linecache.getline(file, line)) if file and line else None


def _entered_by_torch(frame: Any) -> bool:
    """Whether the code that entered a `torch.no_grad()` block is PyTorch's own: the frame that
    called `__enter__`, or for `@torch.no_grad()` the function it decorates (spectral norm's
    power iteration, `nn.init`), not the caller of that function."""
    while frame is not None and frame.f_code.co_filename == _CONTEXTLIB:
        code = getattr(frame.f_locals.get("func"), "__code__", None)
        if code is not None:
            return bool(code.co_filename.startswith(_TORCH_DIR))
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR)


_FUNCTION_PY = os.path.join(_TORCH_DIR, "autograd", "function.py")


def _custom_forward() -> str | None:
    """The qualified name of the custom `autograd.Function` forward this op runs in (autograd
    runs it without grad tracking), if it does: the script's innermost frame, called by
    `Function.apply`."""
    frame = USER_FRAMES.find(sys._getframe(2))
    back = frame.f_back if frame is not None else None
    if frame is None or back is None or back.f_code.co_filename != _FUNCTION_PY:
        return None
    return str(getattr(frame.f_code, "co_qualname", frame.f_code.co_name))


#: Per kind of cut: what made the constant, and how to keep the graph (`why_no_graph`).
_NO_GRAPH = {
    "detach": ("`.detach()` (or `.data`)", "Drop the `.detach()` / `.data` there."),
    "function": (
        "an op inside a custom autograd.Function's forward",
        "Return it from forward (or `ctx.save_for_backward` it) rather than keep it on `ctx`.",
    ),
    "no_grad": (
        "an op under `torch.no_grad()`",
        "Compute it outside `torch.no_grad()` (keep `no_grad` for the update and for evaluation).",
    ),
    "inference_mode": (
        "an op under `torch.inference_mode()`",
        "Compute it outside `torch.inference_mode()`.",
    ),
    "item": ("`.item()`", "Keep the tensor; use `.item()` only to print or log."),
    "nondiff": (
        "`{op}`, whose result carries no gradient,",
        "A loss made of `argmax`, comparisons or counts (an accuracy) has no gradient: train on "
        "a differentiable loss such as `nn.functional.cross_entropy(logits, y)`, and keep the "
        "accuracy for reporting.",
    ),
}


_ANOMALY = re.compile(r"Error detected in (\w+)\. Traceback of forward call that caused the error:")


def _anomaly_forward(message: str) -> tuple[str, str, int] | None:
    """For anomaly mode's "Error detected in SqrtBackward0. Traceback of forward call ...":
    the node and the innermost frame of the script's own code in that forward trace."""
    found = _ANOMALY.match(message.strip())
    if found is None:
        return None
    frames = [(f, int(n)) for f, n in TRACE_FRAME.findall(message) if USER_FRAMES.is_user(f)]
    if not frames:
        return None
    return (found[1], *frames[-1])


class Watch:
    """The diagnostic side of a recording (see the module docstring)."""

    def __init__(self) -> None:
        self.marks = 0
        #: The tensors cut from the graph, by id: (a weak reference, the `Cut`). Kept here, not
        #: on the tensor: an attribute would go into the user's `torch.save` of it.
        self._marked: dict[int, tuple[weakref.ref[Any], Cut]] = {}
        #: The same for `.detach()` cuts by data pointer: NumPy's round trip
        #: (`torch.from_numpy(z.detach().numpy())`) gives a new tensor over the same memory,
        #: which keeps the detached one alive (the array's base).
        self._by_data: dict[int, tuple[weakref.ref[Any], Cut]] = {}
        self.seq = 0
        self.items: dict[float, Cut] = {}
        self.inplace: deque[InplaceWrite] = deque(maxlen=INPLACE_LIMIT)
        #: Per module, the ids of the tensors in its own parameter slots at its first call.
        self.call_params: weakref.WeakKeyDictionary[Any, frozenset[int]] = (
            weakref.WeakKeyDictionary()
        )
        self.called: weakref.WeakKeyDictionary[Any, tuple[str | None, int | None]] = (
            weakref.WeakKeyDictionary()
        )
        #: The modules called at least once with grad enabled (the others ran only under
        #: `no_grad`: an inference model, a frozen backbone; their parameters need no gradient).
        self.grad_called: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
        #: Leaves that fed a graph op, by id (a WeakSet would compare tensors with `==`).
        self.used: weakref.WeakValueDictionary[int, torch.Tensor] = weakref.WeakValueDictionary()
        #: For each leaf in `used`: how many backward calls had ended when it last fed a graph
        #: op (one not used in the forward pass of the call shown is not that call's business).
        self.last_use: dict[int, int] = {}
        #: For each leaf in `used`: the user's file and line of the first op it fed.
        self.first_use: dict[int, tuple[str | None, int | None]] = {}
        #: Leaves that require grad, by id: a weak reference and the first cut made from one
        #: (`w.detach()`, `w * 2` under `no_grad`): where a leaf used only that way left the
        #: graph (NumPy's `np.tanh(w.detach().numpy())`). At most `INPLACE_LIMIT` of them.
        self.leaf_cuts: dict[int, tuple[weakref.ref[Any], Cut]] = {}
        #: In-place writes to leaves that require grad after a backward call (`note_write`): the
        #: script updates some.
        self.leaf_writes = 0
        #: Backward calls ended so far (`after_call`).
        self.backward_calls = 0
        #: The parameters that optimizers step, by id (`note_optimizer`): a parameter in none
        #: (a DQN's target network, a distillation teacher) is not meant to get a gradient.
        self.optimized: weakref.WeakValueDictionary[int, torch.Tensor] = (
            weakref.WeakValueDictionary()
        )
        self._groups: weakref.WeakKeyDictionary[Any, tuple[int, ...]] = weakref.WeakKeyDictionary()
        #: The largest learning rate each kind of optimizer stepped with (`Adam`: 20.0), for the
        #: hint of `loss-diverges`.
        self.learning_rates: dict[str, float] = {}
        #: Optimizer steps taken while none of the optimizer's parameters held a gradient, and
        #: the line of the first (`note_step_grads`).
        self.gradless_steps = 0
        #: Optimizer steps after backward calls none of which reached the optimizer's
        #: parameters, where the first ran, a few of those parameters and how many it holds.
        self.unreached_steps = 0
        self.unreached_where: tuple[str | None, int | None] | None = None
        self.unreached_params: weakref.WeakValueDictionary[int, torch.Tensor] = (
            weakref.WeakValueDictionary()
        )
        self.unreached_count = 0
        self.gradless_where: tuple[str | None, int | None] | None = None
        #: Optimizer steps taken before any backward call, with no gradient held, and where the
        #: first ran (`note_step_grads`): `loss.backward()` forgotten when none ever comes.
        self.blind_steps = 0
        self.blind_where: tuple[str | None, int | None] | None = None
        #: The leaves of every backward call's graph so far, by id (`after_call`): a parameter
        #: missing from the graph shown was still trained if it is here (an expert a router
        #: chose in other steps, a block LayerDrop skipped this time).
        self.reached: weakref.WeakValueDictionary[int, torch.Tensor] = weakref.WeakValueDictionary()
        #: Where the backward calls that reached each of those leaves were made, by id: each
        #: (file, line) once, or None when calls at more than `SITES_LIMIT` places reached it.
        self.reached_at: dict[int, tuple[Where, ...] | None] = {}
        #: Whether recording stopped after the last call anyone asked for (`--call N`) while
        #: the script ran on: what it did later (the modules it called) went unseen.
        self.cut_short = False
        self.calls: dict[int, CallEvents] = {}
        self.warnings: list[ScriptWarning] = []
        #: Masks put on attention scores (`capture/masks.py`).
        self.masks = masks.Masks()
        #: Gradient clipping and the optimizer steps after it (`capture/clips.py`).
        self.clips = clips.Clips()
        self._traced: list[tuple[Any, CallEvents]] = []
        self._retain = False
        #: What the functions around the last backward call held (`note_frames`), by name.
        self.held: dict[str, Any] = {}
        #: The leaves of the last backward call's graph, by id (`note_step_grads`).
        self._last_leaves: set[int] = set()
        #: The forward op count when the last backward call ended (`after_call`).
        self._ended_at: int | None = None
        self._handle: Any = None
        self._shown: Any = None
        #: The `torch.no_grad()` blocks open now, innermost last: (thread, id of the context,
        #: whether PyTorch's own code entered it). An op under PyTorch's own `no_grad` (spectral
        #: norm's power iteration) is not the user's cut: PyTorch keeps it constant by design.
        self._no_grad: list[tuple[int, int, bool]] = []
        self._no_grad_saved: tuple[Any, Any] | None = None
        #: While an optimizer's step is observed to learn its writes (`optim.OptimizerSteps`):
        #: by id of each parameter and gradient, the (version, aten op) of each write it gets.
        self.learning: dict[int, list[tuple[int, str]]] | None = None

    # -- module calls ------------------------------------------------------------------------
    def install(self) -> None:
        from torch.nn.modules import module as nn_module

        with private_hook_ids():
            self._handle = nn_module.register_module_forward_pre_hook(self._module_called)
        self._shown = warnings.showwarning
        warnings.showwarning = self._showwarning
        self._watch_no_grad()
        self.clips.install(lambda: self.backward_calls, _where)

    def _watch_no_grad(self) -> None:
        """Note who opens each `torch.no_grad()` block while the recording runs."""
        cls = torch.autograd.grad_mode.no_grad
        enter, leave = self._no_grad_saved = (cls.__enter__, cls.__exit__)
        blocks = self._no_grad = []

        def __enter__(ctx: Any) -> None:
            blocks.append((threading.get_ident(), id(ctx), _entered_by_torch(sys._getframe(1))))
            enter(ctx)

        def __exit__(ctx: Any, *exc: Any) -> None:
            try:
                leave(ctx, *exc)
            finally:
                key = (threading.get_ident(), id(ctx))
                for k in range(len(blocks) - 1, -1, -1):
                    if blocks[k][:2] == key:
                        del blocks[k]
                        break

        cls.__enter__ = __enter__  # type: ignore[method-assign]
        cls.__exit__ = __exit__  # type: ignore[method-assign]

    def remove(self) -> None:
        self.clips.remove()
        if self._no_grad_saved is not None:
            cls = torch.autograd.grad_mode.no_grad
            cls.__enter__, cls.__exit__ = self._no_grad_saved  # type: ignore[method-assign]
            self._no_grad_saved = None
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self._shown is not None:
            if warnings.showwarning == self._showwarning:
                warnings.showwarning = self._shown
            self._shown = None

    # -- warnings ----------------------------------------------------------------------------
    def _showwarning(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        """Note a warning the user's code raised, then show it as Python would have."""
        if filename == _WRAPPER_FILE:
            # raised in the user's backward call (a module's backward hook), one frame above it:
            # without gradviz's wrapper in between, that frame is the user's `backward()` line
            frame = USER_FRAMES.find(sys._getframe(1))
            if frame is not None:
                filename, lineno, line = frame.f_code.co_filename, frame.f_lineno, None
        try:
            self._note_warning(message, category, filename, lineno)
        finally:
            shown = self._shown or warnings.showwarning
            shown(message, category, filename, lineno, file, line)

    def _note_warning(
        self, message: Warning | str, category: type[Warning], filename: str, lineno: int
    ) -> None:
        if not issubclass(category, UserWarning) or len(self.warnings) >= WARNING_LIMIT:
            return
        if filename.startswith(_OWN_DIR):  # raised by gradviz's own reading of the graph
            return
        if not scripts_own(filename):
            # raised (or pointed by its `stacklevel`) inside PyTorch or an installed library
            # (typing_extensions' `deprecated` wrapper): the script's own line that led there
            frame = _own_frame(sys._getframe(2))
            if frame is not None:
                filename, lineno = frame.f_code.co_filename, frame.f_lineno
            elif not USER_FRAMES.is_user(filename):
                frame = USER_FRAMES.find(sys._getframe(2))
                if frame is None:
                    return
                filename, lineno = frame.f_code.co_filename, frame.f_lineno
        text = " ".join(_INTERNAL.sub("", str(message).strip().split("\n")[0]).split())
        forward = _anomaly_forward(str(message))
        if forward is not None:  # at the op's forward line, which is what its trace gives
            node, filename, lineno = forward
            text = f"Error detected in {node}, whose forward call is this line (anomaly mode)."
        found = ScriptWarning(category.__name__, text, filename, lineno)
        if found not in self.warnings:
            self.warnings.append(found)

    def _module_called(self, module: Any, args: Any) -> None:
        if compiling():
            return
        if module not in self.called:
            self.called[module] = _where()
            # the tensors its own parameters were at its first call: another tensor in their
            # place (`torch.func.functional_call(model, params, x)`) is no use of them
            self.call_params[module] = frozenset(
                id(p) for p in module._parameters.values() if p is not None
            )
        if module not in self.grad_called and torch.is_grad_enabled():
            self.grad_called[module] = True

    # -- every aten op (the hot path) --------------------------------------------------------
    def op(self, info: Any, args: Any, out: Any, grad: bool, kwargs: Any = None) -> None:
        """Look at one op that just ran (`info`: its `_forward.OpInfo`, which keeps what this
        makes of it); `grad` says whether grad mode was on."""
        func = info.func
        kind = info.watch_kind
        if kind is None:
            kind = info.watch_kind = _classify(func)
        if kind == _PLAIN:
            if not grad or self.marks:
                self._plain(func, args, out, grad)
        elif kind == _DETACH:
            self._cut_by_view(func, args, out)
        elif kind == _INPLACE:
            self._write(info, args)
        elif kind == _NONDIFF:
            self._nondiff(func, args, out, grad)
        elif kind in (_MASK, _INPLACE_MASK):
            name = info.mask_name
            if name is None:
                name = info.mask_name = masks.op_name(func)
            # an add or mul whose result has fewer than two dimensions masks no scores: the
            # call would find nothing (the most common case of the most common ops)
            small = isinstance(out, torch.Tensor) and out.dim() < 2
            if grad and not (small and name in masks.MASKING_OPS):
                # not `contextlib.suppress`, whose calls cost at every add and mul
                try:  # noqa: SIM105
                    self.masks.op(name, func, args, kwargs, out, _where)
                except Exception:  # a tensor it cannot read (sparse, nested) is no mask
                    pass
            if kind == _INPLACE_MASK:
                self._write(info, args)
            elif not grad or self.marks:
                self._plain(func, args, out, grad)
        else:
            self._item(func, args, out)

    def _nondiff(self, func: Any, args: Any, out: Any, grad: bool) -> None:
        """An op whose result carries no gradient, on a tensor that requires grad: its result
        is a constant cut from the graph (`argmax`, `==`), noted for the no-graph hint; on
        other tensors, a plain op (a mark passes through it)."""
        tracked = next((t for t in _each_tensor(args) if t.requires_grad), None)
        if tracked is not None and grad:  # a light cut: only the no-graph hint reads it
            self.seq += 1
            self.marks += 1
            file, line = _where()
            self._mark(out, Cut("nondiff", str(func), file, line, None, self.seq))
        elif not grad or self.marks:
            self._plain(func, args, out, grad)

    def _new_cut(
        self, kind: str, func: Any, source: torch.Tensor, function: str | None = None
    ) -> Cut:
        self.seq += 1
        self.marks += 1
        file, line = _where()
        node = source.grad_fn
        owner = owner_name(node) if node is not None else "leaf"
        spent = _spent_by(node) if node is not None else None
        leaf = weakref.ref(source) if node is None else None
        record = op_record(node) if node is not None else None
        source_op = record.seq if record is not None else None
        module = record.module_root if record is not None else None
        inputs = _made_from(node) if node is not None else ()
        cut = Cut(
            kind,
            str(func),
            file,
            line,
            owner,
            self.seq,
            spent,
            leaf,
            source_op,
            inputs,
            module,
            function,
        )
        if leaf is not None and len(self.leaf_cuts) < INPLACE_LIMIT:
            known = self.leaf_cuts.get(id(source))
            if known is None or known[0]() is not source:
                self.leaf_cuts[id(source)] = (leaf, cut)
        return cut

    def _plain(self, func: Any, args: Any, out: Any, grad: bool) -> None:
        tracked: torch.Tensor | None = None
        passed: Cut | None = None
        for t in _each_tensor(args):
            if t.requires_grad:
                tracked = t
                break
            if passed is None and self.marks:
                passed = self.cut_of(t)
        if tracked is not None:
            if not grad and not self._in_torchs_no_grad():
                function = _custom_forward()
                kind = "inference_mode" if torch.is_inference_mode_enabled() else "no_grad"
                self._mark(
                    out, self._new_cut("function" if function else kind, func, tracked, function)
                )
        elif passed is not None:
            self._mark(out, passed)

    def _mark(self, out: Any, cut: Cut) -> None:
        """Note that the tensors of `out` are constants cut from the graph by `cut`."""
        for t in _outputs(out):
            # a tensor subclass that cannot be weakly referenced is not marked
            if keep_while_alive(self._marked, id(t), t, cut) and cut.kind == "detach":
                self._note_data(t, cut)

    def _note_data(self, t: Any, cut: Cut) -> None:
        try:
            ptr = t.data_ptr()
        except (RuntimeError, NotImplementedError):  # no storage (sparse, meta, a subclass)
            return
        if not ptr:
            return
        keep_while_alive(self._by_data, ptr, t, cut)

    def cut_of(self, t: Any) -> Cut | None:
        """The cut that made `t` a constant, if one did (`_mark`)."""
        entry = self._marked.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        if self._by_data and type(t) is torch.Tensor:
            found = self._by_data.get(t.data_ptr())
            if found is not None:
                held = found[0]()
                if held is not None and held.dtype == t.dtype and held.shape == t.shape:
                    return found[1]
        return None

    def _in_torchs_no_grad(self) -> bool:
        """Whether this thread's innermost open `torch.no_grad()` was entered by PyTorch."""
        me = threading.get_ident()
        for thread, _, by_torch in reversed(self._no_grad):
            if thread == me:
                return by_torch
        return False

    def _cut_by_view(self, func: Any, args: Any, out: Any) -> None:
        src = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if src is None:
            return
        if src.requires_grad:
            self._mark(out, self._new_cut("detach", func, src))
        elif self.marks:
            passed = self.cut_of(src)
            if passed is not None:
                self._mark(out, passed)

    def note_optimizer(self, optimizer: Any) -> None:
        """An optimizer steps: note its kind and learning rate, and its parameters (again only
        when its groups changed)."""
        groups: Any = getattr(optimizer, "param_groups", None)
        try:
            lr = max(float(g["lr"]) for g in groups)
            kind = type(optimizer).__name__
            if lr > self.learning_rates.get(kind, -math.inf):
                self.learning_rates[kind] = lr
        except (KeyError, TypeError, ValueError, RuntimeError):
            pass  # not torch.optim's layout, or no number for a rate: not noted
        try:
            sizes = tuple(len(g["params"]) for g in groups)
            if self._groups.get(optimizer) == sizes:
                return
            self._groups[optimizer] = sizes
            for g in groups:
                for p in g["params"]:
                    if isinstance(p, torch.Tensor):
                        self.optimized[id(p)] = p
        except (AttributeError, KeyError, TypeError):  # not torch.optim's layout: nothing noted
            return

    def note_step_grads(self, optimizer: Any) -> None:
        """An optimizer steps: note where, the first time, if none of its parameters holds a
        gradient (`zero_grad()` between backward and step: the update does nothing)."""
        reached = False  # the last backward call reached one of them: they had a gradient
        params: list[torch.Tensor] = []
        try:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if getattr(p, "grad", None) is not None:
                        return
                    reached = reached or id(p) in self._last_leaves
                    params.append(p)
        except (AttributeError, KeyError, TypeError):  # not torch.optim's layout
            return
        if not reached:  # no backward reached them: nothing was cleared (a cut, no backward)
            if self.backward_calls and not any(self.reached.get(id(p)) is p for p in params):
                self._never_reached(params)
            elif not self.backward_calls and params:
                self.blind_steps += 1
                if self.blind_where is None:
                    self.blind_where = _where()
            return
        self.gradless_steps += 1
        if self.gradless_where is None:
            self.gradless_where = _where()

    def _never_reached(self, params: list[torch.Tensor]) -> None:
        """A step after backward calls, none of which reached any of the optimizer's parameters
        (the optimizer holds another model's, or layers `forward` has since replaced)."""
        self.unreached_steps += 1
        if self.unreached_where is None:
            self.unreached_where = _where()
            for p in params[:UNREACHED_KEPT]:
                self.unreached_params[id(p)] = p
            self.unreached_count = len(params)

    def _write(self, info: Any, args: Any) -> None:
        t = args[0] if args else None
        if not isinstance(t, torch.Tensor) or t.is_inference():
            return
        aten = info.aten
        # the user's line that made the write: inside an optimizer step, the `step()` call
        self.note_write(t, aten, _where(), t._version + 1)
        if self.learning is not None and (seen := self.learning.get(id(t))) is not None:
            seen.append((t._version + 1, aten))

    def note_write(
        self, t: torch.Tensor, aten: str, where: tuple[str | None, int | None], version: int
    ) -> None:
        """An in-place write to `t` by `aten`, reaching `version`: one the dispatch mode sees
        (`_write`), or one it did not (an optimizer step run without it: `optim.OptimizerSteps`)."""
        owner = owner_name(t.grad_fn) if t.grad_fn is not None else None
        if owner is None and t.requires_grad and self.backward_calls:
            self.leaf_writes += 1  # an update (not an init): `w -= lr * w.grad`, an optimizer's
        self.inplace.append(InplaceWrite(aten, where[0], where[1], owner, tuple(t.shape), version))

    def _item(self, func: Any, args: Any, out: Any) -> None:
        src = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if src is None or not src.requires_grad or isinstance(out, bool):
            return
        if not isinstance(out, (int, float)) or float(out) in _TRIVIAL:
            return
        if float(out) in self.items:  # the first read of a value is where it left the graph
            return  # (`torch.tensor(loss.item(), requires_grad=True)`, then `print(loss.item())`)
        self.items[float(out)] = self._new_cut("item", func, src)
        if len(self.items) > ITEM_LIMIT:
            del self.items[next(iter(self.items))]

    # -- when a graph op is created ----------------------------------------------------------
    def consumed(self, args: Any) -> tuple[tuple[int, Cut], ...]:
        """The cut inputs of a new graph op (by argument position); notes the leaves it uses."""
        found: list[tuple[int, Cut]] = []
        for i, a in enumerate(args):
            if isinstance(a, torch.Tensor):
                tensors: Any = (a,)
            elif isinstance(a, (list, tuple)):
                tensors = [b for b in a if isinstance(b, torch.Tensor)]
            else:  # a number, a dtype, None: no tensor (most ops take one)
                tensors = ()
            for t in tensors:
                if t.requires_grad:
                    if t.grad_fn is None:
                        if self.used.get(id(t)) is not t:
                            self.used[id(t)] = t
                            self.first_use[id(t)] = _where()
                        self.last_use[id(t)] = self.backward_calls
                elif self.marks and (t.is_floating_point() or t.is_complex()):
                    # an integer input carries no gradient whatever made it (labels taken with
                    # `argmax` under no_grad): no cut there
                    cut = self.cut_of(t)
                    if cut is not None:
                        found.append((i, cut))
            if self.items and isinstance(a, float) and a in self.items and not _literal_like(a):
                found.append((i, self.items[a]))
        return tuple(found)

    def why_no_graph(self, tensors: list[Any]) -> str | None:
        """Why the first of `tensors` given to a backward call needs no gradient: the cut that
        made it a constant, if one did, else that nothing it came from requires grad."""
        for t in tensors:
            if not isinstance(t, torch.Tensor) or t.requires_grad:
                continue
            cut = self.cut_of(t)
            if not isinstance(cut, Cut):
                frozen = self._frozen_model()
                if frozen is not None:
                    return (
                        "The tensor given to backward() was computed from tensors none of which "
                        f"requires grad: every parameter of the `{frozen}` it ran through has "
                        "`requires_grad=False`. To train a new head on a frozen model, freeze "
                        "first and replace the head after (`model.fc = nn.Linear(...)` after the "
                        "loop that sets `requires_grad = False`); else set `requires_grad=True` "
                        "on the layers to train."
                    )
                return (
                    "The tensor given to backward() was computed from tensors none of which "
                    "requires grad: create the parameters with `requires_grad=True` "
                    "(`w = torch.tensor(1.0, requires_grad=True)`)."
                )
            what, fix = _NO_GRAPH.get(cut.kind, _NO_GRAPH["detach"])
            what = what.replace("{op}", cut.aten.removeprefix("aten.").split(".")[0])
            where = f" at {os.path.basename(cut.file)}:{cut.line}" if cut.file and cut.line else ""
            name = _rebinding(cut.file, cut.line) if cut.kind == "no_grad" else None
            if name is not None:
                return (
                    f"The tensor given to backward() does not require grad: the update "
                    f"`{name} = ...`{where}, under `torch.no_grad()`, made a new `{name}` that "
                    f"does not require grad, so the forward pass after it builds no graph. "
                    f"Update `{name}` in place instead: `{name} -= 0.01 * {name}.grad` inside "
                    f"`torch.no_grad()`, then `{name}.grad.zero_()`."
                )
            return (
                f"The tensor given to backward() does not require grad: {what}{where} cut the "
                f"graph on the way to it, so it depends on nothing that requires grad. {fix}"
            )
        return None

    def _frozen_model(self) -> str | None:
        """The class of the largest module run with grad enabled whose parameters all have
        `requires_grad=False` (a backbone frozen with its new head), if one was."""
        best, most = None, 0
        for module in list(self.grad_called.keys()):
            params = list(module.parameters()) if isinstance(module, torch.nn.Module) else []
            if len(params) > most and not any(p.requires_grad for p in params):
                best, most = module, len(params)
        return None if best is None else type(best).__name__

    # -- backward calls ----------------------------------------------------------------------
    def note_call(self, kind: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Remember whether the coming backward call keeps its graph (`retain_graph`)."""
        at = 2 if kind == "backward" else 3
        retain = kwargs.get("retain_graph", args[at] if len(args) > at else None)
        create = kwargs.get("create_graph", args[at + 1] if len(args) > at + 1 else False)
        self._retain = bool(create) if retain is None else bool(retain)

    def note_frames(self, frame: Any) -> None:
        """Keep what the checks at the end need from the functions around a backward call, which
        have returned by then (`def main(): ...` scripts): their models, and the lists, dicts,
        running totals and objects that hold graphs (`held`). Only the latest call's are kept;
        innermost names first. A cheap look: the last item of a list, a total's first nodes."""
        held: dict[str, Any] = {}
        while frame is not None and frame.f_locals is not frame.f_globals:
            if scripts_own(frame.f_code.co_filename):
                for name, value in frame.f_locals.items():
                    if name not in held and not name.startswith("_") and _worth_holding(value):
                        held[name] = value
            frame = frame.f_back
        self.held = held

    def after_call(self, capture: Any, kept: Collection[int], seq: int | None = None) -> None:
        """Read what the checks need from a finished call, while its nodes are still held.
        `seq`: the forward recording's op count now (ops made later belong to later calls)."""
        number = capture.number or 0
        self.backward_calls = max(self.backward_calls, number)
        reached, sites, where = self.reached, self.reached_at, capture.where
        last = self._last_leaves = set()
        for i in capture.leaves:
            var = capture.nodes[i].variable
            last.add(id(var))
            if reached.get(id(var)) is not var:
                reached[id(var)] = var
                sites[id(var)] = (where,)
            else:
                known = sites.get(id(var))
                if known is not None and where not in known:
                    sites[id(var)] = (*known, where) if len(known) < SITES_LIMIT else None
        if len(sites) > 2 * len(reached) + 1024:  # leaves that died (a new input each step)
            for gone in [k for k in sites if k not in reached]:
                del sites[gone]
        if number in kept:
            self.calls[number] = self._events(capture)
        self._ended_at = seq
        for old in [n for n in self.calls if n not in kept]:
            del self.calls[old]
        if capture.error is None:
            key = RAN_KEY if self._retain else FREED_KEY
            for i in capture.order:
                if i in capture.saved:
                    capture.nodes[i].metadata.setdefault(key, number)

    def after_trace(self, capture: Any, graph: Any) -> None:
        """Keep the events of a graph gradviz traced itself, for `events_for(graph)`."""
        self._traced.append((graph, self._events(capture)))
        del self._traced[:-TRACE_LIMIT]

    def events_for(self, graph: Any) -> CallEvents | None:
        """What the recording saw of `graph`: its backward call's events, or its trace's."""
        if graph.call is not None:
            return self.calls.get(graph.call)
        for traced, events in reversed(self._traced):
            if traced is graph:
                return events
        return None

    def _events(self, capture: Any) -> CallEvents:
        events = CallEvents(retained=self._retain)
        before = self._ended_at
        for i, saved in capture.saved.items():
            metadata = capture.nodes[i].metadata
            freed = metadata.get(FREED_KEY)
            if isinstance(freed, int) and any(s.state == "freed" for s in saved):
                events.freed_by[i] = freed
            ran = metadata.get(RAN_KEY, freed)
            if isinstance(ran, int):
                events.ran_in[i] = ran
        for i, node in enumerate(capture.nodes):
            if hasattr(node, "variable"):
                events.leaves.append(weakref.ref(node.variable))
                continue
            record = op_record(node)
            if record is not None:
                events.ops.add(record.seq)
                if before is not None:  # `seq` counts from 1: the last op so far has `before`
                    (events.made_before if record.seq <= before else events.made_since).add(i)
            for index, cut in getattr(record, "cuts", ()):
                events.cuts.append((i, index, cut))
        return events
