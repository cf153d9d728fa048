"""Checks on saved tensors, read before backward ran: stale (modified in place) and freed."""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..model import CallInfo, Edge, Finding, Graph, Node, display_path
from ._common import at_line, listing, node_ref, source_line

_STALE = re.compile(
    r"\[(?P<type>[\w.]+) \[(?P<shape>[\d, ]*)\]\]"
    r"(?:, which is output \d+ of (?P<owner>\w+),)? is at version (?P<now>\d+); "
    r"expected version (?P<was>\d+)"
)


class Write(Protocol):
    """What the check reads of an in-place write (`capture.InplaceWrite`)."""

    @property
    def aten(self) -> str: ...
    @property
    def file(self) -> str | None: ...
    @property
    def line(self) -> int | None: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def version(self) -> int: ...


@dataclass(frozen=True)
class Stale:
    """What PyTorch's error says about a stale saved tensor."""

    owner: str | None
    shape: tuple[int, ...]
    now: int
    was: int


def parse_stale(text: str | None) -> Stale | None:
    match = _STALE.search(text or "")
    if match is None:
        return None
    shape = tuple(int(d) for d in match["shape"].replace(" ", "").split(",") if d)
    return Stale(match["owner"], shape, int(match["now"]), int(match["was"]))


#: Ops whose output PyTorch's error names when the saved tensor is a view of what was written
#: (`w.t()` in `F.linear`, saved by `addmm`, once `w` is updated in place: "output 0 of AsStrided").
_VIEW_OWNERS = frozenset({"AsStrided", "T", "Transpose", "Permute"})


def _writer(stale: Stale, writes: Sequence[Write]) -> Write | None:
    """The latest write that moved a tensor like this one past the version backward needs.

    PyTorch names the tensor by the op that made it: the op that saved it (a saved output), the
    write itself once it has run (a saved input written by `add_` is "output 0 of Add"), or a
    view of the written tensor (a transposed weight is "output 0 of AsStrided"). The write seen
    on that very tensor comes first; else one whose op is the owner named; else a write to a
    tensor of the same shape up to the order of its dimensions, when the owner is a view.
    """
    by_op: Write | None = None
    by_view: Write | None = None
    for w in reversed(writes):
        if w.version != stale.was + 1:
            continue
        if w.shape == stale.shape:
            if w.owner == stale.owner:
                return w
            if by_op is None and stale.owner is not None and _op_owner(w.aten) == stale.owner:
                by_op = w
        if by_view is None and stale.owner in _VIEW_OWNERS and _permuted(w.shape, stale.shape):
            by_view = w  # a square weight's `w.t()` has the shape of `w` itself
    return by_op or by_view


def _permuted(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return sorted(a) == sorted(b)


def _op_owner(aten: str) -> str:
    """The node name PyTorch gives a tensor an in-place op wrote (`aten.add_.Tensor` -> `Add`)."""
    name = _op_name(aten).rstrip("_")
    return "".join(part.capitalize() for part in name.split("_"))


def inplace(
    graph: Graph,
    writes: Sequence[Write],
    ran_in: Mapping[int, int] | None = None,
    made_before: Collection[int] = (),
    made_since: Collection[int] = (),
) -> list[Finding]:
    """[inplace-saved]: a saved tensor was modified in place after it was saved. Nodes whose
    saved tensor was made stale by the same write are one finding."""
    groups: dict[tuple[str, Stale | None, int], list[Node]] = {}
    found: dict[tuple[str, Stale | None, int], tuple[str, Stale | None, Write | None]] = {}
    for node in graph.nodes:
        for saved in node.saved:
            if saved.state == "stale":
                stale = parse_stale(saved.text)
                write = _writer(stale, writes) if stale is not None else None
                key = (saved.name, stale, id(write) if write is not None else node.id)
                groups.setdefault(key, []).append(node)
                found[key] = (saved.name, stale, write)
                break
    ran_in = ran_in or {}
    earlier = boundary(graph, made_before, made_since)
    findings = []
    for key, nodes in groups.items():
        name, stale, write = found[key]
        ran = sorted({ran_in[n.id] for n in nodes if n.id in ran_in})
        first, carried = (ran[0], earlier) if ran else (None, None)
        findings.append(_inplace_finding(nodes, name, stale, write, first, carried))
    return findings


def _op_name(aten: str) -> str:
    return aten.removeprefix("aten.").split(".")[0]


def _inplace_finding(
    nodes: list[Node],
    name: str,
    stale: Stale | None,
    write: Write | None,
    ran: int | None,
    carried: Boundary | None,
) -> Finding:
    node = nodes[0]
    versions = (
        f": it is at version {stale.now}, backward needs version {stale.was}" if stale else ""
    )
    if write is not None:
        what = f"`{_op_name(write.aten)}`{at_line(write.line)} modified it in place"
        file, line = display_path(write.file), write.line
    else:
        what = "an in-place operation modified it"
        file, line = node.file, node.line
    refs = listing([node_ref(n) for n in nodes], 3, quote=False)
    message = (
        f"{refs}{at_line(node.line)} saved `{name}` for backward, then {what}"
        f"{versions}. Backward will fail on it."
    )
    hint = (
        "Use the out-of-place form (`y = y * 2` instead of `y *= 2` or `y.mul_(2)`), "
        "or `.clone()` the tensor before changing it."
    )
    if ran is not None:
        message += f" {'They are' if len(nodes) > 1 else 'It is'} part of the graph that "
        message += f"backward call {ran} already went through (with `retain_graph=True`)"
        if carried is not None:
            message += f": {carried.describe()}"
            hint = carried.fix(retained=True)
        else:
            message += ", and this call goes back through it after the write."
    return Finding("inplace-saved", "error", message, file, line, tuple(n.id for n in nodes), hint)


def twice(
    graph: Graph,
    calls: Sequence[CallInfo],
    freed_by: Mapping[int, int] | None,
    made_before: Collection[int] = (),
    made_since: Collection[int] = (),
) -> list[Finding]:
    """[backward-twice]: this call goes through saved tensors an earlier call freed. Not for a
    graph whose gradients gradviz computed itself (`--target` on a tensor of a freed graph):
    that pass is gradviz's, not a call of the script's."""
    if graph.grad_source not in ("backward", "autograd.grad"):
        return []
    failed = graph.graph_was_freed
    freed = [n for n in graph.nodes if n.saved and any(s.state == "freed" for s in n.saved)]
    if not failed:
        freed = [n for n in freed if n.order is not None]
    if not freed:
        return []
    by = _earlier(freed, freed_by or {})
    earlier = calls[by - 1] if by is not None and 0 < by <= len(calls) else None
    carried = boundary(graph, made_before, made_since)
    return [_twice_finding(graph, freed, by, earlier, carried)]


def _earlier(nodes: Iterable[Node], freed_by: Mapping[int, int]) -> int | None:
    numbers = sorted({freed_by[n.id] for n in nodes if n.id in freed_by})
    return numbers[0] if numbers else None


def _twice_finding(
    graph: Graph,
    freed: list[Node],
    by: int | None,
    earlier: CallInfo | None,
    carried: Boundary | None,
) -> Finding:
    root = graph.nodes[graph.root]
    this = f"Backward call {graph.call}" if graph.call else "This backward"
    if by is not None and earlier is not None:
        who = f"backward call {by}{at_line(earlier.line)}"
    else:
        who = "an earlier backward call"
    nodes = listing([node_ref(n) for n in freed], 3, quote=False)
    if carried is not None:
        message = (
            f"{this}{at_line(graph.call_line)} goes back into a graph that {who} already "
            f"freed ({nodes}): {carried.describe()}"
        )
        same = earlier is not None and earlier.line == graph.call_line
        hint = carried.fix(retained=False, same_call_line=same)
    else:
        message = (
            f"{this}{at_line(graph.call_line)} goes through the graph of {node_ref(root)} "
            f"again, but {who} already freed the saved tensors of {nodes}."
        )
        hint = (
            "Compute the forward pass again for each backward call (inside the loop), or pass "
            "`retain_graph=True` to the earlier backward if you really need the graph twice."
        )
    file = earlier.file if earlier is not None else graph.call_file
    line = earlier.line if earlier is not None else graph.call_line
    return Finding("backward-twice", "error", message, file, line, tuple(n.id for n in freed), hint)


@dataclass(frozen=True)
class Boundary:
    """Where this call's graph reaches back into an earlier step's: op `new`, made for this
    call, uses output `output_nr` of `old`, made before the previous backward call."""

    old: Node
    new: Node
    output_nr: int
    #: The script's name for the tensor that links them, if known.
    name: str | None
    #: Made and used again by the same line: a state carried from step to step (an RNN's
    #: hidden state, `total = total + loss`), not a tensor made once before a loop.
    recurrent: bool
    #: A running total of losses (`total += loss`), carried the same way.
    total: bool = False

    def describe(self) -> str:
        what = f"`{self.name}`" if self.name else f"the output of {node_ref(self.old)}"
        if self.total:
            return (
                f"{what}, a running total of tensors{at_line(self.new.line)}, still holds the "
                "graph of every step it added up."
            )
        if self.recurrent:
            return (
                f"{what}, carried from one step into the next{at_line(self.new.line)}, still "
                "holds the graph of the steps before it."
            )
        made = at_line(self.old.line)
        used = at_line(self.new.line)
        return (
            f"{what}, made{made} before that call, is used again{used}, and it still holds "
            "that graph."
        )

    def fix(self, retained: bool, same_call_line: bool = True) -> str:
        """How to fix it: `same_call_line` when both backward calls are one line (a loop)."""
        if self.total and self.name:
            return (
                f"Add numbers, not tensors: `{self.name} += loss.item()` (or `loss.detach()`); "
                "a running total of tensors keeps every step's graph alive."
            )
        if self.recurrent:
            name = self.name
            code = f"`{name} = {name}.detach()`" if name else "`state = state.detach()`"
            why = (
                "`retain_graph=True` keeps every step's graph instead, and fails once the "
                "optimizer changes the weights it saved"
                if retained
                else "`retain_graph=True` would keep every step's graph alive instead"
            )
            return (
                f"Detach the carried state before each training step ({code}; for a tuple "
                "such as an LSTM's `(h, c)`, each tensor): each backward then goes through its "
                f"own step only (truncated backpropagation through time); {why}."
            )
        use = f"`{self.name}.detach()`" if self.name else "a `.detach()`ed copy"
        again = f"Compute {_code(self.name)} again for each backward call"
        detach = f"use {use} if no gradient should reach what it was made from"
        retain = "pass `retain_graph=True` to the earlier backward"
        if same_call_line:
            return f"{again} (inside the loop), or {detach}; {retain} only if both need it."
        return (
            f"Two backward calls on one forward: {retain} (or add the losses and call backward "
            f"once); else {again[0].lower()}{again[1:]}, or {detach}."
        )


def _code(name: str | None) -> str:
    return f"`{name}`" if name else "it"


def boundary(
    graph: Graph, made_before: Collection[int], made_since: Collection[int]
) -> Boundary | None:
    """The first edge (nearest the root) where an op made for this call (`made_since`) uses
    the output of an op made before the previous backward call ended (`made_before`)."""
    if not made_before or not made_since:
        return None
    best: Edge | None = None
    for edge in graph.edges:
        crosses = edge.src in made_before and edge.dst in made_since
        if crosses and (best is None or edge.dst < best.dst):
            best = edge
    if best is None:
        return None
    src, dst = graph.nodes[best.src], graph.nodes[best.dst]
    same_line = src.line == dst.line and src.file == dst.file and dst.line is not None
    name = src.names[0] if src.names else None
    text = source_line(dst.file, dst.line) if same_line else ""
    if name is None and same_line:
        name = carried_name(text)
    total = name is not None and (dst.op or "").startswith("AddBackward") and _adds_to(text, name)
    return Boundary(src, dst, best.output_nr, name, same_line, total)


def _adds_to(text: str, name: str) -> bool:
    """Whether the line adds to `name` itself: `total += x`, `total = total + x`."""
    try:
        tree = ast.parse(text.strip())
    except SyntaxError:
        return False
    stmt = tree.body[0] if len(tree.body) == 1 else None
    if isinstance(stmt, ast.AugAssign):
        return isinstance(stmt.op, ast.Add) and _dotted(stmt.target) == name
    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.BinOp):
        value = stmt.value
        sides = (_dotted(value.left), _dotted(value.right))
        return isinstance(value.op, ast.Add) and name in sides
    return False


def carried_name(text: str) -> str | None:
    """The one name a line both assigns and reads (`out, h = rnn(x, h)`, `h += step(h)`):
    what it carries from one step to the next; None if there is not exactly one."""
    try:
        tree = ast.parse(text.strip())
    except SyntaxError:
        return None
    if len(tree.body) != 1:
        return None
    stmt = tree.body[0]
    if isinstance(stmt, ast.AugAssign):
        name = _dotted(stmt.target)
        return name
    if not isinstance(stmt, (ast.Assign, ast.AnnAssign)) or stmt.value is None:
        return None
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    assigned: list[str] = []
    for target in targets:
        for t in target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]:
            if (name := _dotted(t)) is not None:
                assigned.append(name)
    read = {_dotted(n) for n in ast.walk(stmt.value) if isinstance(n, (ast.Name, ast.Attribute))}
    both = [n for n in assigned if n in read]
    return both[0] if len(both) == 1 else None


def _dotted(node: ast.AST) -> str | None:
    """`h`, `self.hidden`: a name or an attribute chain on a name (else None)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])
