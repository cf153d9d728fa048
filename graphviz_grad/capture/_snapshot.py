"""One backward call, seen from the inside: walk the graph, hook it, build the frozen `Graph`.

`CallCapture.walk()` runs *before* the backward call (saved tensors are still there and the
leaves still hold their pre-update values); `attach()` puts a pre-hook on every node (dLoss/dOutput
and the engine's execution order) and a hook on the nodes whose input edges need their own
gradient; `build()` turns what was seen into plain data and drops every autograd reference.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, cast

import torch

from .._gc import BIG_GRAPH
from .._gc import paused as gc_paused
from ..model import (
    BACKWARD_FAILED,
    CallInfo,
    Edge,
    GradSource,
    Graph,
    LeafStep,
    Node,
    Output,
    Saved,
    TensorSummary,
    display_path,
    has_nonfinite,
    signed_int64,
)
from . import native
from ._deferred import Deferred, deferrable
from ._forward import LateConstant, OpRecord, op_record
from ._weak import keep_while_alive
from .functions import saved_tensors
from .naming import Names
from .summary import (
    PLAIN_TYPES,
    OnDevice,
    dtype_name,
    reads_later,
    reduce_on_device,
    shape_of,
    summarize,
    summarize_many,
    summarize_small,
    summarize_unread,
    unread,
)
from .tensor_hooks import hooked_outputs

#: Above this many nodes, saved tensors are listed by name only (reading them all is slow).
SAVED_LIMIT = 20_000
#: Gradients seen by the pre-hooks are summarised in batches of this many nodes, or sooner once
#: they take this many bytes: held longer, they keep the engine from reusing their memory, and
#: the script pays for the fresh pages it takes instead (an unrolled RNN's backward).
GRAD_BATCH = 4096
GRAD_BATCH_BYTES = 16 << 20

saved_attrs_cache: dict[type, tuple[str, ...]] = {}


def _same_kind(total: torch.Tensor, g: torch.Tensor) -> bool:
    """Whether `total.add_(g)` makes what `total + g` makes: a plain strided tensor of the same
    shape, dtype and device (no broadcast, no type promotion)."""
    return (
        total.shape == g.shape
        and total.dtype == g.dtype
        and total.device == g.device
        and total.layout == torch.strided
        and g.layout == torch.strided
        and type(total) in PLAIN_TYPES
        and type(g) in PLAIN_TYPES
    )


def _nbytes(grads: tuple[torch.Tensor | None, ...]) -> int:
    """The bytes of a node's gradients, as the C++ hooks count them (`GradPre`)."""
    total = 0
    for g in grads:
        if g is not None:
            try:  # noqa: SIM105 (at every node: `contextlib.suppress` costs a call)
                total += g.numel() * g.element_size()
            except (RuntimeError, NotImplementedError, TypeError):
                pass  # a tensor whose size is not known here counts for nothing
    return total


_mixin = torch.autograd.function._HookMixin
_registering = threading.Lock()


class _HookDict(dict):  # type: ignore[type-arg]
    """A node's hook dict: a plain dict that PyTorch's `RemovableHandle` can reference weakly
    (the user may add a hook of their own to it later)."""

    __slots__ = ("__weakref__",)


@contextlib.contextmanager
def plain_hook_dicts(hooked: list[tuple[dict[Any, Any], Any]]) -> Iterator[None]:
    """While gradviz hooks a graph's nodes, `Node.register_prehook` / `register_hook` store each
    hook in a plain dict keyed by the hook itself and note (dict, key) in `hooked`, instead of
    building PyTorch's `OrderedDict` and `RemovableHandle` per hook (a third of the cost of
    hooking a node, and most of its memory). PyTorch's C++ asks `_HookMixin._register_hook` for
    the dict and handle; the swap lasts only while gradviz registers (no user code runs then), so
    the user's own hooks get PyTorch's handles (a hook another thread registers meanwhile goes
    to PyTorch's own function). `CallCapture.detach` removes them."""
    owner = threading.get_ident()

    def register(hooks: Any, hook: Any) -> tuple[Any, Any]:
        if threading.get_ident() != owner:
            return saved.__func__(hooks, hook)  # type: ignore[no-any-return]
        if hooks is None:
            hooks = _HookDict()
        hooks[hook] = hook  # the hook itself: never one of a RemovableHandle's integer ids
        hooked.append((hooks, hook))
        return hooks, None

    with _registering:
        saved = _mixin.__dict__["_register_hook"]
        setattr(_mixin, "_register_hook", staticmethod(register))  # noqa: B010
        try:
            yield
        finally:
            setattr(_mixin, "_register_hook", saved)  # noqa: B010


#: Saved tensors that are a kernel's own scratch bytes, not values (the fused RNN kernels keep
#: their workspace for backward; part of it is never written): shown by shape only, since their
#: numbers would change from run to run.
WORKSPACES = frozenset(
    {
        ("MkldnnRnnLayerBackward0", "result3"),
        ("CudnnRnnBackward0", "result3"),
        ("MiopenRnnBackward0", "result3"),
    }
)


def _workspace(name: str, t: torch.Tensor) -> Saved:
    dims = ", ".join(str(int(d)) for d in t.shape)
    return Saved(name, "tensor", text=f"workspace {dtype_name(t.dtype)}[{dims}] (no values)")


_references: dict[tuple[str, int, int | None], Saved] = {}


def _reference(name: str, ref: int, nr: int | None) -> Saved:
    """The `Saved` of a tensor that is output `nr` of node `ref` (None: leaf `ref`); frozen, so
    one is shared by every call that saves the same output under the same name (a loop's)."""
    key = (name, ref, nr)
    found = _references.get(key)
    if found is None:
        text = f"leaf #{ref}" if nr is None else f"output {nr} of #{ref}"
        found = Saved(name, "tensor", node=ref, text=text)
        if len(_references) < 65536:
            _references[key] = found
    return found


def saved_attrs(node: Any) -> tuple[str, ...]:
    kind = type(node)
    names = saved_attrs_cache.get(kind)
    if names is None:
        names = tuple(a for a in dir(node) if a.startswith("_saved_"))
        saved_attrs_cache[kind] = names
    return names


_leaf_kinds: dict[type, bool] = {}


def is_leaf_node(node: Any) -> bool:
    """An `AccumulateGrad` (it holds the leaf in `.variable`); answered once per node type."""
    kind = type(node)
    leaf = _leaf_kinds.get(kind)
    if leaf is None:
        leaf = _leaf_kinds[kind] = hasattr(node, "variable")
    return leaf


def gradient_edge(t: torch.Tensor) -> tuple[Any, int] | None:
    """The autograd node and output number that produced `t` (the accumulator for a leaf)."""
    if t.grad_fn is not None:
        return t.grad_fn, t.output_nr
    if not t.requires_grad:
        return None
    edge = torch.autograd.graph.get_gradient_edge(t)
    return edge.node, edge.output_nr


def _data_nan(graph: Graph) -> int:
    return sum(v.nan for n in graph.nodes for _, v in n.constants)


class Serials:
    """Numbers for tensor objects, 1, 2, ... in the order first seen, each kept while its tensor
    lives (a new tensor may reuse a dead one's `id`, never its number)."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Any, int]] = {}
        self._next = 1

    def of(self, t: Any) -> int:
        """`t`'s number (0 for an object that cannot be weakly referenced)."""
        found = self._by_id.get(id(t))
        if found is not None and found[0]() is t:
            return found[1]
        if not keep_while_alive(self._by_id, id(t), t, self._next):
            return 0
        self._next += 1
        return self._next - 1


class CallCapture:
    """Records one backward call (or gradviz's own gradient pass) over the graph of `roots`."""

    def __init__(
        self,
        roots: list[tuple[Any, int]],
        names: Names,
        *,
        number: int | None = None,
        kind: GradSource = "backward",
        where: tuple[str | None, int | None] = (None, None),
        deferred: Deferred | None = None,
    ) -> None:
        self.roots = roots
        #: Where large values wait to be summarised (with the forward recorder's outputs) until
        #: the graph is built, if it ever is (`capture._deferred`); None: summarise them at once.
        self.deferred = deferred
        #: Every leaf's `AccumulateGrad` runs in this call (a `backward` without `inputs=`), so
        #: a leaf's one incoming gradient is seen by its pre-hook and needs no hook of its own.
        self.leaves_run = False
        self.names = names
        self.number = number
        self.kind = kind
        self.where = where
        self.nodes: list[Any] = []
        self.index: dict[int, int] = {}
        #: Per node, the output number of each `next_functions` entry (one shared tuple per
        #: distinct value: almost every entry is output 0).
        self.nrs: list[tuple[int, ...]] = []
        #: The roots' node indices (`index` is dropped once the walk has used it).
        self.root_nodes: tuple[int, ...] = ()
        #: Per node, the index of each `next_functions` entry's node (None for an empty one).
        self.sources: list[tuple[int | None, ...]] = []
        self.leaves: list[int] = []
        self.leaf_values: dict[int, TensorSummary] = {}
        self.grads_before: dict[int, TensorSummary | None] = {}
        self.saved: dict[int, tuple[Saved, ...]] = {}
        #: Values and gradients may be held as tensors until `build` settles them (`_settle`).
        self.saved_values: dict[tuple[int, int], TensorSummary | torch.Tensor | OnDevice] = {}
        #: Saved tensors outside the graph still to be summarised, by (node, position).
        self.loose: dict[tuple[int, int], torch.Tensor | OnDevice] = {}
        self.node_grads: dict[int, tuple[TensorSummary | None, ...]] = {}
        self.edge_grads: dict[tuple[int, int], TensorSummary | torch.Tensor | OnDevice | None] = {}
        #: Per leaf, the sum of the gradients its consumers passed it so far (in the order they
        #: arrived, as `_sum_into_leaves` adds them): one tensor a leaf, not one an edge (an
        #: unrolled RNN's weight gets one from every step).
        self.leaf_edge_sums: dict[int, torch.Tensor] = {}
        #: The leaves whose sum is a tensor of gradviz's own (added into in place).
        self._own_sums: set[int] = set()
        #: The engine runs each device's nodes on a thread of its own: two consumers of one
        #: leaf (`w` and `w.cuda()`) may hand it their parts at once.
        self._sum_lock = threading.Lock()
        #: What the hooks' sums run under: the recorder's `off` where the call builds graph
        #: (`create_graph=True`, the dispatch mode then stays on), else nothing.
        self.quiet: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
        self.leaf_grads: dict[int, TensorSummary | None] = {}
        self.order: list[int] = []
        self._order_of: list[int | None] = []
        #: The summaries of the gradients summed into each leaf that did not run.
        self._leaf_sums: dict[int, TensorSummary | None] = {}
        self._summed = False
        self._cwd: str | None = None
        #: The hooks gradviz put on the nodes, as (the node's hook dict, key) (`plain_hook_dicts`).
        self.hooked: list[tuple[dict[Any, Any], Any]] = []
        #: PyTorch's handles, should a version register a hook without `_register_hook`.
        self.handles: list[Any] = []
        self.error: str | None = None
        #: Under torch.distributed: (rank, world size), and the parameters DDP all-reduces.
        self.dist: tuple[int, int] | None = None
        #: The earlier backward call whose root this call's root was (one graph backwarded
        #: again with `retain_graph`), if any.
        self.same_graph_as: int | None = None
        #: Its root is the variable `--target` names (`Recorder(pin=...)`): built and kept.
        self.pinned = False
        #: The call was made with `create_graph=True` (`CallInfo.differentiable`).
        self.differentiable = False
        #: Numbers the leaf tensors (`LeafStep.tensor`); the recorder gives its own.
        self.serials = Serials()
        #: torch's own file that made the call for the script (`CallInfo.via`), if one did.
        self.via: str | None = None
        #: The call ran in a thread other than the one recording the forward pass.
        self.other_thread = False
        self.reduced: dict[int, Any] = {}
        #: GradScaler's scale when the root is a scaled loss: every gradient is multiplied by it.
        self.grad_scale: float | None = None
        #: The script put a hook on a tensor an op made (`capture.tensor_hooks`): look for them.
        self.tensor_hooks = False
        #: The nodes whose tensor carries a hook of the script's (`Node.hooked`), and the
        #: (node, output) keys of `_attach` that do.
        self.hooked_nodes: set[int] = set()
        self._hooked_keys: set[int | tuple[int, int]] = set()
        self._pending: list[tuple[int, tuple[torch.Tensor | None, ...]]] = []
        self._pending_bytes = 0
        self._leaf_pending: list[tuple[int, tuple[torch.Tensor | None, ...]]] = []
        self._gc: contextlib.ExitStack | None = None
        #: The C++ pre-hooks of this call (`capture.native`), between `attach` and `detach`.
        self._native: Any = None
        self._leaf_set: set[int] = set()

    # -- before the call ---------------------------------------------------------------------
    def walk(self) -> None:
        """Number every node reachable from the roots, depth first, in `next_functions` order."""
        with gc_paused():
            self._walk()
            self._read_leaves()
            if len(self.nodes) <= SAVED_LIMIT:
                self._read_saved()
            self.index = {}  # 100 bytes a node, not needed past here

    def _walk(self) -> None:
        stack = [node for node, _ in reversed(self.roots)]
        index, nodes, leaves = self.index, self.nodes, self.leaves
        nexts: list[tuple[tuple[Any, int], ...]] = []
        while stack:
            node = stack.pop()
            if id(node) in index:
                continue
            index[id(node)] = len(nodes)
            if is_leaf_node(node):
                leaves.append(len(nodes))
            nodes.append(node)
            children = node.next_functions
            nexts.append(children)
            for child, _ in reversed(children):
                if child is not None and id(child) not in index:
                    stack.append(child)
        self.sources = [
            tuple(None if c is None else index[id(c)] for c, _ in children) for children in nexts
        ]
        shared: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.nrs = [shared.setdefault(nrs, nrs) for nrs in _output_numbers(nexts)]
        self.root_nodes = tuple(index[id(n)] for n, _ in self.roots)

    def _read_leaves(self) -> None:
        """Each leaf's value and `.grad` before the call, summarised in one batch."""
        found: list[torch.Tensor | None] = []
        for i in self.leaves:
            var = self.nodes[i].variable
            found += (var, var.grad)
        summaries = summarize_many(found)
        for j, i in enumerate(self.leaves):
            value = summaries[2 * j]
            if value is not None:
                self.leaf_values[i] = value
            self.grads_before[i] = summaries[2 * j + 1]

    def _read_saved(self) -> None:
        leaf_ids = {id(self.nodes[i].variable): i for i in self.leaves}
        for i, node in enumerate(self.nodes):
            attrs = saved_attrs(node)
            record = op_record(node)
            if attrs and record is not None and record.checkpointed:
                # Reading them would run the region's recomputation now, an extra time.
                self.saved[i] = tuple(_recomputed(a) for a in attrs)
            elif record is not None and record.hooked:
                # Reading a tensor would call the script's unpack hook an extra time; the
                # others (dims, flags) are plain values
                self.saved[i] = tuple(
                    _unread(a)
                    if hasattr(node, "_raw" + a)
                    else self._read_one(node, a, leaf_ids, (i, j))
                    for j, a in enumerate(attrs)
                )
            elif attrs:
                self.saved[i] = tuple(
                    self._read_one(node, a, leaf_ids, (i, j)) for j, a in enumerate(attrs)
                )
            elif (found := saved_tensors(node)) is not None:
                self.saved[i] = tuple(
                    self._saved_tensor(f"saved_tensors[{k}]", t, leaf_ids, (i, k))
                    for k, t in enumerate(found)
                )

    def _read_one(
        self, node: Any, attr: str, leaf_ids: dict[int, int], slot: tuple[int, int]
    ) -> Saved:
        name = attr.removeprefix("_saved_")
        try:
            value = getattr(node, attr)
        except RuntimeError as exc:
            stale = "modified by an inplace operation" in str(exc)
            return Saved(name, "tensor", text=_first_line(exc), state="stale" if stale else "freed")
        if isinstance(value, torch.Tensor):
            if (type(node).__name__, name) in WORKSPACES:
                return _workspace(name, value)
            return self._saved_tensor(name, value, leaf_ids, slot)
        if value is None:
            return Saved(name, "value", text="None", state="none")
        if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
            shapes = ", ".join(str(list(t.shape)) for t in value)
            return Saved(name, "tensor", text=f"{len(value)} tensors: {shapes}")
        return _saved_value(name, value)

    def _saved_tensor(
        self, name: str, t: torch.Tensor, leaf_ids: dict[int, int], slot: tuple[int, int]
    ) -> Saved:
        ref: int | None = None
        node = t.grad_fn
        if node is not None and id(node) in self.index:
            ref = self.index[id(node)]
            key = (ref, t.output_nr)
            record = op_record(node)
            known = record is not None and record.has(t.output_nr)  # `_value` reads that
            if not known and key not in self.saved_values:
                self.saved_values[key] = self._keep(("s", key), t)
            return _reference(name, ref, t.output_nr)
        ref = leaf_ids.get(id(t))
        if ref is not None:
            return _reference(name, ref, None)
        summary = self._keep(("l", slot), t)
        if unread(summary):  # summarised in `_settle`
            self.loose[slot] = summary
            return Saved(name, "tensor")
        return Saved(name, "tensor", summary=summary)

    # -- during the call ---------------------------------------------------------------------
    def attach(self) -> None:
        """Hook every node; must be followed by `detach()` once the call returns."""
        self._gc = contextlib.ExitStack()
        self._gc.enter_context(gc_paused(len(self.nodes) > BIG_GRAPH))
        try:
            self._attach()
        except BaseException:
            self.detach()
            raise

    def _attach(self) -> None:
        # by source node, or (node, output number) past output 0: most edges leave output 0
        consumers: dict[int | tuple[int, int], int] = {}
        for nrs, srcs in zip(self.nrs, self.sources):
            for nr, src in zip(nrs, srcs):
                if src is not None:
                    key = (src, nr) if nr else src
                    consumers[key] = consumers.get(key, 0) + 1
        leaf_kinds = set(self.leaves)
        self._find_hooked(leaf_kinds)
        # leaves whose gradient reaches their `AccumulateGrad` as it left the consumer: no
        # tensor hook of the user's changes it on the way
        plain = leaf_kinds - self.hooked_nodes if self.leaves_run else set()
        # the inputs whose gradient differs from their source's own (`_edges_needing_grads`):
        # only those of a source with several consumers or of a leaf that needs its own hook,
        # or of an op output with a hook of the script's
        special = {k for k, n in consumers.items() if n > 1}
        special.update(leaf_kinds - plain)
        special.update(self._hooked_keys)
        handles = self.handles
        nrs_of, sources = self.nrs, self.sources
        self._leaf_set = leaf_kinds
        hooks = native.hooks()
        if hooks is not None:  # the C++ pre-hooks, where built (`capture.native`)
            try:
                self._native = hooks.Hooks(
                    self.nodes, sorted(leaf_kinds), GRAD_BATCH, GRAD_BATCH_BYTES, self._take_native
                )
            except TypeError:  # a kind of node it does not know: Python's hooks then
                hooks = None
            if hooks is not None and not special:
                return
        with plain_hook_dicts(self.hooked):
            for i, node in enumerate(self.nodes):
                if hooks is None:
                    hook = self._leaf_pre_hook(i) if i in leaf_kinds else self._pre_hook(i)
                    if (handle := node.register_prehook(hook)) is not None:
                        handles.append(handle)  # a PyTorch that did not ask `_register_hook`
                if not special:
                    continue
                for nr, src in zip(nrs_of[i], sources[i]):
                    if src is not None and ((src, nr) if nr else src) in special:
                        break
                else:
                    continue  # the usual node: no input needs a hook of its own
                wanted = self._edges_needing_grads(i, consumers, leaf_kinds, plain)
                if wanted and (handle := node.register_hook(self._post_hook(i, wanted))):
                    handles.append(handle)

    def _find_hooked(self, leaves: set[int]) -> None:
        """The nodes whose tensor carries a hook of the script's: leaves with `_backward_hooks`,
        ops whose output got `register_hook` while recording (`capture.tensor_hooks`)."""
        hooked = {i for i in leaves if self.nodes[i].variable._backward_hooks}
        keys: set[int | tuple[int, int]] = set()
        if self.tensor_hooks:
            for i, node in enumerate(self.nodes):
                if i not in leaves:
                    for nr in hooked_outputs(node):
                        keys.add((i, nr) if nr else i)
                        hooked.add(i)
        self.hooked_nodes, self._hooked_keys = hooked, keys

    def _edges_needing_grads(
        self,
        i: int,
        consumers: dict[int | tuple[int, int], int],
        leaves: set[int],
        plain: set[int],
    ) -> list[tuple[int, bool]]:
        """The inputs of node `i` whose gradient differs from their source's own: a source
        with several consumers, a leaf (unless its pre-hook sees that very gradient)."""
        wanted = []
        for k, (nr, src) in enumerate(zip(self.nrs[i], self.sources[i])):
            if src is None:
                continue
            key = (src, nr) if nr else src
            many = consumers[key] > 1
            if many or (src in leaves and src not in plain) or key in self._hooked_keys:
                wanted.append((k, src in leaves))
        return wanted

    def _pre_hook(self, i: int) -> Any:
        """dLoss/dOutputs of op `i`, kept as tensors and summarised in batches (`_summarize`)."""

        def hook(grad_outputs: tuple[torch.Tensor | None, ...]) -> None:
            self.order.append(i)
            self._pending.append((i, tuple(grad_outputs)))
            self._pending_bytes += _nbytes(grad_outputs)
            if len(self._pending) >= GRAD_BATCH or self._pending_bytes >= GRAD_BATCH_BYTES:
                self._summarize()

        return hook

    def _leaf_pre_hook(self, i: int) -> Any:
        """A leaf's gradient, kept and summarised with the others when the call returns. Holding
        it makes `AccumulateGrad` copy it into `.grad` rather than take this very tensor, which
        the user's own hooks (an optimizer step in backward) could then change."""

        def hook(grad_outputs: tuple[torch.Tensor | None, ...]) -> None:
            self.order.append(i)
            self._leaf_pending.append((i, tuple(grad_outputs)))

        return hook

    def _take_native(self) -> None:
        """What the C++ pre-hooks kept since the last take, filed as the Python hooks file it
        (`_pre_hook`, `_leaf_pre_hook`); called by them at the op node where `_pre_hook` would
        summarise (every `GRAD_BATCH` op nodes or `GRAD_BATCH_BYTES`), and at the end."""
        order, grads = self._native.take()
        leaves, pending, leaf_pending = self._leaf_set, self._pending, self._leaf_pending
        self.order += order
        for i, g in zip(order, grads):
            (leaf_pending if i in leaves else pending).append((i, g))
        self._summarize()  # at a batch's end; at the call's end `detach` does so anyway

    def _summarize(self) -> None:
        """Summarise the gradients the pre-hooks kept; large ones wait for `build` when the
        capture defers (most calls of a loop are never drawn)."""
        pending, self._pending = self._pending, []
        self._pending_bytes = 0
        flat = [g for _, grads in pending for g in grads]
        now: list[torch.Tensor | None]
        if self.deferred is not None and not self.deferred.eager:
            now = [None if g is None or deferrable(g) else g for g in flat]
        else:  # on an accelerator, worked out there (`_keep`) and read with the graph
            now = [None if g is None or reads_later(g) else g for g in flat]
        summaries = iter(summarize_many(now))
        kept = iter(flat)
        for i, grads in pending:
            found: list[TensorSummary | torch.Tensor | OnDevice | None] = []
            for k in range(len(grads)):
                s, g = next(summaries), next(kept)
                found.append(s if s is not None or g is None else self._keep(("g", i, k), g))
            self.node_grads[i] = tuple(found)  # type: ignore[arg-type]

    def _summarize_leaves(self) -> None:
        """The leaves' gradients, and the root's value if it is still held (every call's
        `light_info` reads it), in one batch: one wait for an accelerator per call, not two."""
        pending, self._leaf_pending = self._leaf_pending, []
        batch: list[torch.Tensor | OnDevice | None] = [g for _, grads in pending for g in grads]
        root = op_record(self.nodes[self.root_nodes[0]]) if self.root_nodes else None
        value = root.get(0) if root is not None else None
        if unread(value):
            batch.append(value)
        summaries = summarize_many(batch)
        if root is not None and unread(value) and (summary := summaries.pop()) is not None:
            root.set(0, summary)
        found = iter(summaries)
        for i, grads in pending:
            self.node_grads[i] = tuple(next(found) for _ in grads)

    def _keep(self, tag: Any, t: torch.Tensor) -> TensorSummary | torch.Tensor | OnDevice:
        """`t` itself, to be summarised in `build` (see `capture._deferred`), or its summary now
        (on an accelerator: worked out now, read in `build`)."""
        if self.deferred is None or not self.deferred.keeps(t):
            return reduce_on_device(t) if reads_later(t) else summarize_small(t)
        kept = t.detach() if t.requires_grad else t  # a gradient (no graph) is held as it is
        if self.deferred.hold(self, tag, kept):
            return kept
        return reduce_on_device(t) if reads_later(t) else summarize(t)

    def raw(self, tag: Any) -> torch.Tensor | None:
        """The tensor kept under `tag` (the `capture._deferred` holder protocol), if any."""
        value = self.unread(tag)
        return value if isinstance(value, torch.Tensor) else None

    def unread(self, tag: Any) -> torch.Tensor | OnDevice | None:
        """What is kept under `tag` and not summarised yet, if anything."""
        kind, *key = tag
        if kind == "g":
            grads = self.node_grads.get(key[0], ())
            value: Any = grads[key[1]] if key[1] < len(grads) else None
        elif kind == "e":
            value = self.edge_grads.get(tuple(key))  # type: ignore[arg-type]
        elif kind == "l":
            value = self.loose.get(key[0])
        else:
            value = self.saved_values.get(key[0])
        return value if unread(value) else None

    def put(self, tag: Any, value: Any) -> None:
        kind, *key = tag
        if kind == "g":
            grads = list(self.node_grads[key[0]])
            grads[key[1]] = value
            self.node_grads[key[0]] = tuple(grads)
        elif kind == "e":
            self.edge_grads[tuple(key)] = value  # type: ignore[index]
        elif kind == "l":
            if unread(value):
                self.loose[key[0]] = value
            else:
                self.loose.pop(key[0], None)
                i, j = key[0]
                saved = list(self.saved[i])
                saved[j] = replace(saved[j], summary=value)
                self.saved[i] = tuple(saved)
        else:
            self.saved_values[key[0]] = value

    def _settle(self) -> None:
        """Summarise, in one batch, every value still kept as a tensor: the call's gradients,
        saved outputs, and the forward outputs of its nodes."""
        tags: list[tuple[Any, Any]] = []
        for i, grads in self.node_grads.items():
            tags += [(self, ("g", i, k)) for k, g in enumerate(grads) if unread(g)]
        tags += [(self, ("e", *key)) for key, g in self.edge_grads.items() if unread(g)]
        tags += [(self, ("s", key)) for key, v in self.saved_values.items() if unread(v)]
        tags += [(self, ("l", key)) for key in self.loose]
        for node in self.nodes:
            record = op_record(node)
            if record is not None:
                tags += [(record, k) for k in record.held()]
        if not tags:
            return
        values = [holder.unread(tag) for holder, tag in tags]
        for (holder, tag), s in zip(tags, summarize_many(values)):
            holder.put(tag, s)

    def _post_hook(self, i: int, wanted: list[tuple[int, bool]]) -> Any:
        def hook(grad_inputs: tuple[torch.Tensor | None, ...], grad_outputs: Any) -> None:
            for k, leaf in wanted:
                g = grad_inputs[k] if k < len(grad_inputs) else None
                self.edge_grads[(i, k)] = None if g is None else self._keep(("e", i, k), g)
                if leaf and g is not None and (src := self.sources[i][k]) is not None:
                    self._add_to_leaf(src, g.detach())

        return hook

    def _add_to_leaf(self, src: int, g: torch.Tensor) -> None:
        """Add `g` to the sum of what leaf `src` got so far: the first part is held as it is,
        the second makes a tensor of gradviz's own, and the rest are added into that one in
        place (the same additions in the same order: the same numbers as `a + b`)."""
        with self._sum_lock:
            total = self.leaf_edge_sums.get(src)
            if total is None:
                self.leaf_edge_sums[src] = g
                return
            with self.quiet():
                if src in self._own_sums and _same_kind(total, g):
                    total.add_(g)
                else:
                    self.leaf_edge_sums[src] = total + g
                    self._own_sums.add(src)

    def detach(self) -> None:
        """Remove the hooks and summarise the gradients still waiting."""
        try:
            if self._native is not None:
                try:
                    self._take_native()
                finally:
                    self._native.detach()
                    self._native = None
            for hooks, key in self.hooked:
                if len(hooks) == 1 and key in hooks:
                    hooks.clear()  # frees the dict's table, which `pop` keeps (100 bytes a node)
                else:
                    hooks.pop(key, None)
            self.hooked = []
            for h in self.handles:
                h.remove()
            self.handles = []
            self._summarize()
            self._summarize_leaves()
        finally:
            if self._gc is not None:
                self._gc.close()
                self._gc = None

    # -- after the call ----------------------------------------------------------------------
    def build(self) -> Graph:
        """The frozen graph; afterwards this capture holds no autograd node."""
        self._cwd = os.getcwd()  # once, for every node's file
        with gc_paused(len(self.nodes) > BIG_GRAPH):
            self._settle()
            self._order_of = [None] * len(self.nodes)
            for pos, n in enumerate(self.order):
                self._order_of[n] = pos + 1
            self._sum_into_leaves()
            nodes = tuple([self._node(i, n) for i, n in enumerate(self.nodes)])
            edges = tuple(self._edges(nodes))
        graph = Graph(
            nodes=nodes,
            edges=edges,
            roots=self.root_nodes,
            call=self.number,
            grad_source=self.kind if self.node_grads or self.leaf_grads else "none",
            call_file=display_path(self.where[0]),
            call_line=self.where[1],
            notes=(
                *((f"{BACKWARD_FAILED}{self.error}",) if self.error else ()),
                *((OTHER_THREAD,) if self.other_thread else ()),
            ),
        )
        if self.dist is not None:
            graph = with_rank(graph, *self.dist, reduced=bool(self.reduced))
        if self.grad_scale is not None:
            graph = with_scale(graph, self.grad_scale)
        return graph

    def _sum_into_leaves(self) -> None:
        """The gradients that flowed into each leaf that did not run, summed, and summarised in
        one batch (one read of an accelerator, not one per leaf), into `_leaf_sums`; once (the
        call's light record and its graph both read them). A leaf with a consumer that did not
        run (the call raised before it, or `autograd.grad` did not need it) got no whole
        gradient: it gets none, not the part that arrived."""
        if self._summed:
            return
        self._summed = True
        sums = self.leaf_edge_sums
        partial = {
            src
            for dst, srcs in enumerate(self.sources)
            for k, src in enumerate(srcs)
            if src in sums and (dst, k) not in self.edge_grads
        }
        totals = {
            i: total
            for i, total in sums.items()
            if i not in self.leaf_grads and i not in self.node_grads and i not in partial
        }
        self.leaf_edge_sums, self._own_sums = {}, set()
        self._leaf_sums = dict(zip(totals, summarize_many(list(totals.values()))))

    def info(self, graph: Graph) -> CallInfo:
        """The light per-call record that `gradviz steps` reads."""
        leaves = tuple(
            LeafStep(
                n.label,
                n.value,
                n.grad,
                self.grads_before.get(n.id),
                self.serials.of(self.nodes[n.id].variable) if n.id < len(self.nodes) else 0,
            )
            for n in graph.leaves
        )
        return CallInfo(
            number=self.number or 0,
            kind="autograd.grad" if self.kind == "autograd.grad" else "backward",
            file=graph.call_file,
            line=graph.call_line,
            root_value=graph.nodes[graph.root].value,
            leaves=leaves,
            nodes=len(graph.nodes),
            edges=len(graph.edges),
            error=self.error,
            same_graph_as=self.same_graph_as,
            differentiable=self.differentiable,
            grad_scale=self.grad_scale,
            via=self.via,
            root_name=next(iter(graph.nodes[graph.root].names), None),
            data_nan=_data_nan(graph) if has_nonfinite(graph.nodes[graph.root].value) else 0,
        )

    def light_info(self) -> CallInfo:
        """`info(build())` without building the graph: what `gradviz steps` and the checks across
        calls read of every call, for the calls whose graph is not kept."""
        self._sum_into_leaves()
        leaves = []
        for i in self.leaves:
            names = self.names.for_leaf(self.nodes[i].variable)
            label = names[0] if names else "leaf"
            value = self.leaf_values.get(i)
            tensor = self.serials.of(self.nodes[i].variable)
            leaves.append(
                LeafStep(label, value, self._leaf_grad(i), self.grads_before.get(i), tensor)
            )
        root = self.root_nodes[0]
        node = self.nodes[root]
        if is_leaf_node(node):
            root_value = self.leaf_values.get(root)
            root_names = self.names.for_leaf(node.variable)
        else:
            root_value = self._value(root, 0, op_record(node))
            n_out = len(self.node_grads.get(root, ())) or max(_num_outputs(node), 1)
            root_names = self._output_names(node, n_out)
        return CallInfo(
            number=self.number or 0,
            kind="autograd.grad" if self.kind == "autograd.grad" else "backward",
            file=display_path(self.where[0]),
            line=self.where[1],
            root_value=root_value,
            leaves=tuple(leaves),
            nodes=len(self.nodes),
            edges=sum(1 for srcs in self.sources for src in srcs if src is not None),
            error=self.error,
            same_graph_as=self.same_graph_as,
            differentiable=self.differentiable,
            grad_scale=self.grad_scale,
            via=self.via,
            root_name=next(iter(root_names), None),
            data_nan=self._data_nan() if has_nonfinite(root_value) else 0,
        )

    def _data_nan(self) -> int:
        """NaN numbers in the call's inputs that need no gradient, as its ops read them (for a
        call with a non-finite loss: once per loop, usually)."""
        count = 0
        with torch.no_grad():
            for node in self.nodes:
                record = op_record(node)
                if record is None:
                    continue
                for _, v in record.constants:
                    if type(v) is LateConstant:
                        v = v.settled()
                    if isinstance(v, TensorSummary):
                        count += v.nan
                    elif isinstance(v, torch.Tensor) and v.is_floating_point():
                        count += int(torch.isnan(v).sum())
        return count

    def _output_names(self, node: Any, n_out: int) -> tuple[str, ...]:
        names = self.names.for_output(node, 0)
        if n_out > 1:
            found = list(names)
            for k in range(1, n_out):
                found.extend(x for x in self.names.for_output(node, k) if x not in found)
            names = tuple(found)
        return names

    def release(self) -> None:
        self.nodes, self.nrs, self.roots = [], [], []
        self.index = {}
        self.leaf_edge_sums, self._own_sums = {}, set()
        self._pending = []
        self._leaf_pending = []
        self.node_grads, self.edge_grads, self.saved_values, self.loose = {}, {}, {}, {}

    def _node(self, i: int, node: Any) -> Node:
        if is_leaf_node(node):
            return self._leaf(i, node)
        record = op_record(node)
        grads = self.node_grads.get(i, ())
        # a node that ran got one gradient per output; one that did not says how many it has
        n_out = len(grads) or max(_num_outputs(node), 1)
        outputs = tuple(
            [Output(self._value(i, k, record), self._grad(grads, k)) for k in range(n_out)]
        )
        names = self._output_names(node, n_out)
        shape, dtype = _shape_dtype(node, outputs[0])
        head = outputs[0]
        if record is None:
            return Node(
                i,
                "op",
                op_name(node),
                names,
                shape,
                dtype,
                head.value,
                head.grad,
                outputs,
                self.saved.get(i, ()),
                order=self._order_of[i],
                hooked=i in self.hooked_nodes,
            )
        module, scopes = self._module(record)
        return Node(
            i,
            "op",
            op_name(node),
            names,
            shape,
            dtype,
            head.value,
            head.grad,
            outputs,
            self.saved.get(i, ()),
            module=module,
            module_type=record.module_type,
            file=display_path(record.file, self._cwd),
            line=record.line,
            order=self._order_of[i],
            aten=record.aten,
            constants=record.settled_constants(),
            operands=self._operands(record),
            scopes=scopes,
            checkpointed=record.checkpointed,
            hooked=i in self.hooked_nodes,
        )

    @staticmethod
    def _grad(grads: tuple[TensorSummary | None, ...], k: int) -> TensorSummary | None:
        return grads[k] if k < len(grads) else None

    def _value(self, i: int, k: int, record: OpRecord | None) -> TensorSummary | None:
        if record is not None and record.has(k):
            return record.value(k)
        value = self.saved_values.get((i, k))
        return None if value is None else summarize_unread(value)

    def _leaf(self, i: int, node: Any) -> Node:
        var = node.variable
        value = self.leaf_values.get(i)
        grad = self._leaf_grad(i)
        return Node(
            id=i,
            kind="leaf",
            op=None,
            names=self.names.for_leaf(var),
            shape=shape_of(var),
            dtype=dtype_name(var.dtype),
            value=value,
            grad=grad,
            order=self._order_of[i],
            synced_grad=self._synced(var),
            hooked=i in self.hooked_nodes,
        )

    def _synced(self, var: torch.Tensor) -> TensorSummary | None:
        """DDP's all-reduced `.grad` of a parameter, read after the call returned."""
        if id(var) not in self.reduced or var.grad is None:
            return None
        return summarize(var.grad)

    def _leaf_grad(self, i: int) -> TensorSummary | None:
        if i in self.leaf_grads:
            return self.leaf_grads[i]
        if i in self.node_grads:
            return self.node_grads[i][0] if self.node_grads[i] else None
        return self._leaf_sums.get(i)  # summed and summarised in `_sum_into_leaves`

    def _module(self, record: OpRecord) -> tuple[str | None, tuple[tuple[str, str, int], ...]]:
        """The dotted module path of the op and its module scopes, named from the root module."""
        if record.module_path is None:
            return None, ()
        root = record.module_root() if record.module_root is not None else None
        base = (self.names.module_name(root) if root is not None else None) or (
            type(root).__name__ if root is not None else "module"
        )
        module = ".".join((base, *record.module_path))
        scopes = tuple((".".join((base, *p)), t, c) for p, t, c in record.scopes)
        return module, scopes

    def _operands(self, record: OpRecord) -> tuple[tuple[int, str | None], ...]:
        if not record.operands:
            return ()
        return tuple((i, self._name_of(ref)) for i, ref in record.operands)

    def _name_of(self, ref: Any) -> str | None:
        """The script's name for a constant tensor still alive (None: a number, a temporary)."""
        t = ref() if ref is not None else None
        names = self.names.for_leaf(t) if t is not None else ()
        return names[0] if names else None

    def _edges(self, nodes: tuple[Node, ...]) -> list[Edge]:
        edges = []
        edge_grads = cast("dict[tuple[int, int], TensorSummary | None]", self.edge_grads)  # settled
        for dst, (nrs, srcs) in enumerate(zip(self.nrs, self.sources)):
            for k, (nr, src) in enumerate(zip(nrs, srcs)):
                if src is None:
                    continue
                if (dst, k) in edge_grads:
                    grad = edge_grads[(dst, k)]
                else:
                    outs = nodes[src].outputs
                    grad = outs[nr].grad if nr < len(outs) else nodes[src].grad
                edges.append(Edge(src, dst, k, nr, grad))
        return edges


def op_name(node: Any) -> str:
    """The node's class name (`MulBackward0`); for a C++ node of torch's that has no class of
    its own (`CppFunction`), the last part of its `name()`
    (`torch::jit::(anonymous namespace)::DifferentiableGraphBackward`)."""
    kind = type(node).__name__
    if kind != "CppFunction":
        return kind
    try:
        return str(node.name()).rsplit("::", 1)[-1] or kind
    except Exception:  # a node without a name: its class stands
        return kind


def with_rank(graph: Graph, rank: int, world: int, reduced: bool) -> Graph:
    """The graph of one rank of a torch.distributed job, saying so in its notes."""
    note = f"rank {rank} of {world}: gradients are this rank's local ones"
    if reduced:
        note += "; `.grad (all-reduced)` on DDP parameters is the mean over ranks"
    note += " (--rank R draws another rank)"
    return replace(graph, rank=rank, world_size=world, notes=(*graph.notes, note))


def with_scale(graph: Graph, scale: float) -> Graph:
    """The graph of a GradScaler-scaled backward call, saying so in its notes."""
    note = (
        f"the loss was scaled by GradScaler (x{scale:g}): every gradient shown is scaled; "
        "scaler.step divides them by the scale (and skips the step if any is inf/NaN)"
    )
    return replace(graph, grad_scale=scale, notes=(*graph.notes, note))


def _output_numbers(nexts: list[tuple[tuple[Any, int], ...]]) -> Iterator[tuple[int, ...]]:
    for children in nexts:
        yield tuple([nr for _, nr in children])


def _num_outputs(node: Any) -> int:
    meta = getattr(node, "_input_metadata", None)
    try:
        return len(meta) if meta is not None else 1
    except TypeError:
        return 1


def _shape_dtype(node: Any, out0: Output) -> tuple[tuple[int, ...] | None, str | None]:
    for s in (out0.value, out0.grad):
        if s is not None:
            return s.shape, s.dtype
    meta = getattr(node, "_input_metadata", None)
    if meta:
        try:
            m = meta[0]
            return tuple(int(d) for d in m.shape), dtype_name(m.dtype)
        except (AttributeError, TypeError, RuntimeError):
            pass
    return None, None


def _recomputed(attr: str) -> Saved:
    name = attr.removeprefix("_saved_")
    return Saved(name, "tensor", text="checkpointed: recomputed in backward")


def _unread(attr: str) -> Saved:
    name = attr.removeprefix("_saved_")
    return Saved(name, "tensor", text="saved through the script's saved_tensors_hooks: not read")


#: The note of a graph whose forward pass ran in a thread gradviz did not record.
OTHER_THREAD = (
    "this backward call ran in another thread than the one the script started in, whose forward "
    "pass is the only one gradviz records: values shown as — are unknown (those autograd saved "
    "for backward are shown)."
)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n")[0]


_saved_values: dict[tuple[str, type, Any], Saved] = {}


def _saved_value(name: str, value: Any) -> Saved:
    """A saved non-tensor attribute (a size, a flag, a dim): the same name and value share one
    `Saved` (every step of a loop saves the same ones)."""
    if type(value) is int:
        value = signed_int64(value)
    elif type(value) in (tuple, list) and value and all(type(v) is int for v in value):
        value = type(value)(map(signed_int64, value))
    exact = type(value) in (int, bool, str) or (
        type(value) is tuple and all(type(v) is int for v in value)
    )
    if not exact:  # floats (0.0 == -0.0), lists, objects: read each time
        return Saved(name, "value", text=_short(value))
    key = (name, type(value), value)
    found = _saved_values.get(key)
    if found is None:
        found = Saved(name, "value", text=_short(value))
        if len(_saved_values) < 4096:
            _saved_values[key] = found
    return found


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
