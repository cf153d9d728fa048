"""The graph model: plain, frozen data that every view reads.

A `Graph` is what one backward call (or one `trace`) saw: the autograd nodes reachable from the
root, numbered in walk order (depth-first, children in `next_functions` order), the edges between
them, and per node the forward value and the gradient that flowed through it. Nothing here holds a
tensor or an autograd `Node`: the model is made of numbers, strings and tuples, so it can be
compared, serialised and rendered without torch.
"""

from __future__ import annotations

import functools
import operator
import os
import re
import sys
from dataclasses import MISSING, dataclass, field, fields
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Container, Iterator, Sequence

NodeKind = Literal["op", "leaf", "input"]
Severity = Literal["error", "warning", "info"]
GradSource = Literal["backward", "autograd.grad", "gradviz", "none"]

#: Severities, most serious first (the order findings are listed in).
SEVERITY_RANK: dict[str, int] = {"error": 0, "warning": 1, "info": 2}

#: How a graph's notes begin when its backward call failed (then torch's message follows).
BACKWARD_FAILED = "backward failed: "

#: Nested lists of numbers (or one number for a 0-dim tensor), as `Tensor.tolist()` gives.
Data = float | int | bool | str | list

_T = TypeVar("_T")


def display_path(filename: str | None, cwd: str | None = None) -> str | None:
    """A file name as the user reads it: relative to the current folder (`cwd`, default the
    process's now) when inside it."""
    if not filename:
        return None
    return _relative(filename, os.getcwd() if cwd is None else cwd)


def rebinding_update(text: str) -> str | None:
    """The name a line of code updates by making a new tensor from its own gradient
    (`w = w - 0.01 * w.grad`, `self.w = self.w - lr * self.w.grad`), else None. With tracking
    on, the new `w` is no leaf; under `no_grad`, it requires no grad."""
    m = _REBINDING.match(text.strip())
    if m is None or f"{m['name']}.grad" not in m["value"]:
        return None
    return m["name"]


_REBINDING = re.compile(r"^(?P<name>[A-Za-z_][\w.]*)\s*=(?!=)\s*(?P<value>.+)$")


@functools.lru_cache(maxsize=1024)
def _relative(filename: str, cwd: str) -> str:
    try:
        rel = os.path.relpath(filename, cwd)
    except ValueError:
        return filename
    return filename if rel.startswith("..") else rel


def location(file: str | None, line: int | None) -> str | None:
    """``file:line`` as every view writes it, or None when either is unknown."""
    return f"{file}:{line}" if file and line else None


def signed_int64(n: int) -> int:
    """`n` as the int64 it is: autograd hands negative int64 attributes to Python as unsigned
    (`dim=-1` of a softmax reads 18446744073709551615, `ignore_index=-100` 18446744073709551516;
    graphs captured before gradviz stored them signed hold those numbers)."""
    return n - 2**64 if n >= 2**63 else n


def _fast_init(*shared: str) -> Callable[[type[_T]], type[_T]]:
    """Give frozen slotted dataclass `cls` an `__init__` that fills its slots directly.

    A frozen dataclass sets each field through `object.__setattr__`; a graph of a million nodes
    builds millions of these objects, and writing the slots through their descriptors is about
    twice as fast. Same signature, same defaults (immutable ones only), still frozen. The fields
    named in `shared` keep one copy of each value: strings (op names, dtypes) are interned, since
    torch hands out a new string for each node and a million copies of ``"MulBackward0"`` cost
    60 MB; tuples of numbers and strings (an op's operands) are looked up in `_TUPLES`.
    """
    return functools.partial(_with_fast_init, shared=shared)


#: One copy of each small tuple the nodes share (``((1, None),)``: one unnamed operand).
_TUPLES: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_TUPLES_LIMIT = 4096


def _shared(value: Any) -> Any:
    """`value`, or the equal tuple kept before in `_TUPLES`."""
    if type(value) is not tuple or not value:
        return value
    kept = _TUPLES.get(value)
    if kept is None and len(_TUPLES) < _TUPLES_LIMIT:
        _TUPLES[value] = kept = value
    return value if kept is None else kept


def _with_fast_init(cls: type[_T], shared: tuple[str, ...]) -> type[_T]:
    params: list[str] = []
    body: list[str] = []
    scope: dict[str, Any] = {"_shared": _shared, "_intern": sys.intern}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: _fast_init takes plain defaults only")
        if f.default is not MISSING:
            scope[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
        else:
            params.append(f.name)
        scope[f"_s_{f.name}"] = cls.__dict__[f.name].__set__
        value = f.name
        if f.name in shared:  # a string inline (the common case), a tuple through `_shared`
            tuples = str(f.type).startswith("tuple")
            value = (
                f"_shared({value})"
                if tuples
                else f"_intern({value}) if type({value}) is str else {value}"
            )
        body.append(f"    _s_{f.name}(self, {value})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body) + "\n"
    exec(source, scope)  # noqa: S102 - generated from the class's own field names
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__  # type: ignore[misc]
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@_fast_init("dtype")
@dataclass(frozen=True, slots=True)
class TensorSummary:
    """What gradviz keeps of one tensor: always shape and dtype, the data when it is small.

    Statistics are over the finite elements; `nan` and `inf` count the others. `note` says why
    something is missing or how to read it (``"meta tensor: no data"``, ``"sparse_coo: 96 of
    400 stored"``, ``"complex: statistics of |z|"``...).
    """

    shape: tuple[int, ...]
    dtype: str
    numel: int
    data: Data | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    norm: float | None = None
    nan: int = 0
    inf: int = 0
    note: str | None = None

    @property
    def all_zero(self) -> bool:
        """True when every element is exactly zero (a dead gradient)."""
        return self.numel > 0 and self.nan == 0 and self.inf == 0 and self.min == 0 == self.max


@_fast_init()
@dataclass(frozen=True, slots=True)
class Output:
    """One output of an op node (multi-output ops such as `split` have several)."""

    value: TensorSummary | None
    grad: TensorSummary | None


@_fast_init()
@dataclass(frozen=True, slots=True)
class Saved:
    """One `_saved_*` attribute of a node, read before backward freed it.

    `kind` is ``"tensor"`` for saved tensors and ``"value"`` for saved scalars, sizes and flags.
    A saved tensor that is the output of another node of the graph (or a leaf) names it in `node`.
    `state` is ``"freed"`` when backward had already released it when gradviz looked, and
    ``"stale"`` when it was modified in place after being saved (backward will fail on it).
    """

    name: str
    kind: Literal["tensor", "value"]
    summary: TensorSummary | None = None
    node: int | None = None
    text: str | None = None
    state: Literal["available", "freed", "stale", "none"] = "available"


@_fast_init("op", "dtype", "aten", "operands")
@dataclass(frozen=True, slots=True)
class Node:
    """One autograd node: an op (`grad_fn`) or a leaf (`AccumulateGrad.variable`); or an input
    that needs no gradient (kind ``"input"``, see `Graph.input_nodes`).

    `value` and `grad` are the forward value of output 0 and dLoss/dOutput 0; `outputs` has one
    entry per output for ops (so multi-output ops show every output). `module` and `file`/`line`
    say which `nn.Module` forward and which line of the user's code created the op. `order` is the
    1-based position in which the autograd engine executed the node during the backward call
    shown (None when it did not run). `aten` is the dispatcher op that produced the output.
    """

    id: int
    kind: NodeKind
    op: str | None
    names: tuple[str, ...] = ()
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    value: TensorSummary | None = None
    grad: TensorSummary | None = None
    outputs: tuple[Output, ...] = ()
    saved: tuple[Saved, ...] = ()
    module: str | None = None
    module_type: str | None = None
    file: str | None = None
    line: int | None = None
    order: int | None = None
    aten: str | None = None
    constants: tuple[tuple[int, TensorSummary], ...] = ()
    #: The constants that are operands of the op (drawn as `input` nodes), by argument position,
    #: with the script's name for the tensor (None: a Python number or an unnamed temporary).
    operands: tuple[tuple[int, str | None], ...] = ()
    #: The `nn.Module` calls around the op, outermost first: (dotted path, class, call number).
    #: Views group and fold by these; the call number tells repeated calls of one module apart.
    scopes: tuple[tuple[str, str, int], ...] = ()
    #: Under DDP, a parameter's `.grad` after the call: the mean over ranks that DDP's
    #: all-reduce left and the optimizer uses (`grad` is the local gradient of this rank).
    synced_grad: TensorSummary | None = None
    #: Made inside a non-reentrant activation-checkpointed region: backward recomputes it.
    checkpointed: bool = False
    #: The tensor carries a hook of the script's (`register_hook`), which can change its
    #: gradient: `grad` is what the node received, after the hook; the edges into it carry
    #: what each consumer passed down, before it.
    hooked: bool = False

    @property
    def label(self) -> str:
        """The short name a person reads: the first variable name, else the op."""
        if self.names:
            return self.names[0]
        return self.op or "leaf"

    def saved_value(self, name: str) -> str | None:
        """The text of the saved scalar, size or flag `name` (`dim` of a softmax: ``"1"``)."""
        for saved in self.saved:
            if saved.name == name and saved.kind == "value" and saved.text is not None:
                return saved.text
        return None

    def saved_int(self, name: str) -> int | None:
        """The saved int `name` (`dim` of a softmax: ``-1``); None if absent or not an int."""
        try:
            return signed_int64(int(self.saved_value(name) or ""))
        except ValueError:
            return None

    @property
    def where(self) -> str | None:
        return location(self.file, self.line)


@_fast_init()
@dataclass(frozen=True, slots=True)
class Edge:
    """Data flows from `src` (closer to the leaves) into `dst`, which consumes output
    `output_nr` of `src` as its `index`-th `next_functions` entry. `grad` is the gradient that
    flowed back along the edge (the grad_input of `dst` at `index`)."""

    src: int
    dst: int
    index: int
    output_nr: int = 0
    grad: TensorSummary | None = None


class InputUse(NamedTuple):
    """One use of an input that needs no gradient: the edge `src` -> `dst` at argument
    `position` (its `index`, see `Graph.input_edges`). `new` marks the use that makes input node
    `src` (its first); `name` (None when unnamed) and `value` are that node's."""

    src: int
    dst: int
    position: int
    name: str | None
    value: TensorSummary
    new: bool


@dataclass(frozen=True, slots=True)
class Finding:
    """A diagnosis (see `gradviz doctor`): a stable `code`, where it is, and how to fix it."""

    code: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    nodes: tuple[int, ...] = ()
    hint: str | None = None


@dataclass(frozen=True)
class Graph:
    """The autograd graph of one backward call, annotated with values and gradients.

    `call` is the 1-based number of the backward call shown (None for `trace`); `grad_source`
    says who computed the gradients: the user's own ``"backward"`` or ``"autograd.grad"`` call,
    ``"gradviz"`` (an extra pass that changed no `.grad`), or ``"none"``.
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    roots: tuple[int, ...] = (0,)
    call: int | None = None
    grad_source: GradSource = "none"
    call_file: str | None = None
    call_line: int | None = None
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = field(default=())
    #: Under torch.distributed: the rank whose graph this is, of `world_size` ranks.
    rank: int | None = None
    world_size: int | None = None
    #: The `GradScaler` scale the root was multiplied by: every gradient here is scaled by it.
    grad_scale: float | None = None

    @property
    def root(self) -> int:
        return self.roots[0]

    @property
    def backward_failed(self) -> str | None:
        """Why the backward call shown failed (torch's first line), or None when it did not."""
        for note in self.notes:
            if note.startswith(BACKWARD_FAILED):
                return note.removeprefix(BACKWARD_FAILED)
        return None

    @property
    def graph_was_freed(self) -> bool:
        """Whether backward failed because an earlier call had freed this graph's saved tensors."""
        return "backward through the graph a second time" in (self.backward_failed or "")

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id]

    @cached_property
    def inputs(self) -> tuple[tuple[Edge, ...], ...]:
        """Per node id, the edges into it, in `next_functions` order."""
        found: list[list[Edge]] = [[] for _ in self.nodes]
        for edge in self.edges:
            found[edge.dst].append(edge)
        return tuple(tuple(es) if len(es) < 2 else tuple(sorted(es, key=_index)) for es in found)

    @cached_property
    def consumers(self) -> tuple[tuple[Edge, ...], ...]:
        """Per node id, the edges out of it (to the nodes that consume its outputs)."""
        found: list[list[Edge]] = [[] for _ in self.nodes]
        for edge in self.edges:
            found[edge.src].append(edge)
        return tuple(tuple(es) for es in found)

    @property
    def input_nodes(self) -> tuple[Node, ...]:
        """The inputs that need no gradient (``x``, a target, the ``2`` in ``w * 2``) as nodes of
        kind ``"input"``, from the ops' `operands`. Their ids follow the autograd nodes'
        (``len(nodes)`` up, in op order), so adding them moves no other id. A named tensor used
        by several ops is one node; numbers and unnamed temporaries get one node per use."""
        return self._inputs[0]

    @property
    def input_edges(self) -> tuple[Edge, ...]:
        """Edges from `input_nodes` into the ops; `index` is the op's argument position."""
        return self._inputs[1]

    @cached_property
    def _inputs(self) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
        nodes: list[Node] = []
        edges: list[Edge] = []
        for use in self.input_uses():
            if use.new:
                nodes.append(_input_node(use.src, use.name, use.value))
            edges.append(Edge(src=use.src, dst=use.dst, index=use.position))
        return tuple(nodes), tuple(edges)

    def input_uses(self) -> Iterator[InputUse]:
        """What `input_nodes` and `input_edges` are made of, one use (edge) at a time, without
        building either: a writer streams a graph's million inputs from this (see `InputUse`)."""
        next_id = len(self.nodes)
        named: dict[str, list[tuple[int, TensorSummary]]] = {}
        for op in self.nodes:
            if not op.operands:
                continue
            values = dict(op.constants)
            for index, name in op.operands:
                value = values.get(index)
                if value is None:
                    continue
                src = (
                    next((k for k, v in named.get(name, ()) if v == value), None) if name else None
                )
                if src is None:
                    src, next_id = next_id, next_id + 1
                    if name:
                        named.setdefault(name, []).append((src, value))
                    yield InputUse(src, op.id, index, name, value, True)
                else:
                    yield InputUse(src, op.id, index, name, value, False)

    @property
    def leaves(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.kind == "leaf")

    def find(self, name: str) -> Node | None:
        """The first node carrying variable name `name`, or with op name `name`."""
        for n in self.nodes:
            if name in n.names:
                return n
        for n in self.nodes:
            if n.op == name:
                return n
        return None

    # -- display in Jupyter and rich (graphviz_grad.notebook; rendering is imported only here) --
    def _repr_mimebundle_(
        self, include: Container[str] | None = None, exclude: Container[str] | None = None
    ) -> dict[str, str]:
        from .notebook import mimebundle

        return mimebundle(self, include, exclude)

    def _repr_html_(self) -> str:
        from .notebook import html

        return html(self)

    def _repr_svg_(self) -> str | None:
        from .notebook import svg

        return svg(self)

    def __rich__(self) -> object:
        from .notebook import rich_tree

        return rich_tree(self)

    def summary(self) -> str:
        """One line: root, size, backward call and findings (what `print(graph)` shows).

        Example:
            >>> print(graph)
            Graph: root #0 PowBackward0 `loss`, 4 nodes, 3 edges, backward call 1, no findings
        """
        parts = [f"{len(self.nodes)} node{_s(len(self.nodes))}"]
        parts.append(f"{len(self.edges)} edge{_s(len(self.edges))}")
        if self.call is not None:
            parts.append(f"backward call {self.call}")
        parts.append(_findings_summary(self.findings))
        if not self.nodes:
            return "Graph: empty, " + ", ".join(parts)
        root = self.nodes[self.root] if 0 <= self.root < len(self.nodes) else None
        if root is None:
            return "Graph: " + ", ".join(parts)
        name = f" `{root.names[0]}`" if root.names else ""
        kind = "leaf" if root.kind == "leaf" else (root.op or "?")
        return f"Graph: root #{root.id} {kind}{name}, " + ", ".join(parts)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<{self.summary()}>"


#: An edge's position among its destination's inputs (the sort key of `Graph.inputs`).
_index = operator.attrgetter("index")


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def plural(n: int, noun: str) -> str:
    """``1 op``, ``2 ops``, ``1,500 ops``: a count and its noun, in the right number."""
    return f"{n:,} {noun}{_s(n)}"


def article(word: str) -> str:
    """``a`` or ``an`` before `word`, by its first letter: `an int`, `a float`, `an Add...`."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def _findings_summary(findings: tuple[Finding, ...]) -> str:
    """``no findings``, ``1 finding (cut)``, ``3 findings (grad-nan, cut)``: each code once."""
    if not findings:
        return "no findings"
    codes = ", ".join(dict.fromkeys(f.code for f in findings))
    return f"{len(findings)} finding{_s(len(findings))} ({codes})"


def _input_node(node_id: int, name: str | None, value: TensorSummary) -> Node:
    names = (name,) if name else ()
    return Node(node_id, "input", None, names, value.shape, value.dtype, value)


@dataclass(frozen=True, slots=True)
class LeafStep:
    """One leaf at one backward call: its value before the call and the gradient it got."""

    name: str
    value: TensorSummary | None
    grad: TensorSummary | None
    grad_before: TensorSummary | None = None
    #: Which tensor object it is, numbered in the order the recording first saw each (0:
    #: unknown): one name can stand for several (a new `data` each batch, a model made anew).
    tensor: int = 0


@dataclass(frozen=True, slots=True)
class CallInfo:
    """A light record of one backward call, kept for every call (see `gradviz steps`)."""

    number: int
    kind: Literal["backward", "autograd.grad"]
    file: str | None
    line: int | None
    root_value: TensorSummary | None
    leaves: tuple[LeafStep, ...]
    nodes: int
    edges: int
    error: str | None = None
    #: The root's name in the script (``loss``), when it has one.
    root_name: str | None = None
    #: The earlier call that went through this very graph (a backward with `retain_graph`
    #: repeated on one root), if any: not a new forward pass.
    same_graph_as: int | None = None
    #: NaN numbers in the inputs of the call's ops that need no gradient (the data), counted
    #: only for a call whose loss is NaN/Inf (`loop-nonfinite` names the data then).
    data_nan: int = 0
    #: The call kept its graph to be differentiated again (`create_graph=True`): a later call's
    #: graph that holds this one is a higher derivative, not a graph left to grow.
    differentiable: bool = False
    #: GradScaler's scale when the root is a scaled loss: its value and every gradient of the
    #: call are that many times the true ones.
    grad_scale: float | None = None
    #: The file of torch's own code that made the call for the script (`gradcheck`,
    #: `autograd.functional.hessian`), relative to torch's folder; None for the script's own.
    via: str | None = None


def has_nonfinite(s: TensorSummary | None) -> bool:
    """True when `s` counts NaN or infinite elements."""
    return s is not None and (s.nan > 0 or s.inf > 0)


def calls_by_root(calls: Sequence[CallInfo]) -> dict[str, list[CallInfo]]:
    """The calls by the name of their root, in the order first seen, when they differentiate
    more than one named root (a GAN's `d_loss` and `g_loss`; ``root`` for a call whose root has
    no name); else empty (one loss, followed over every call)."""
    if len({c.root_name for c in calls if c.root_name}) < 2:
        return {}
    found: dict[str, list[CallInfo]] = {}
    for c in calls:
        found.setdefault(c.root_name or "root", []).append(c)
    return found
