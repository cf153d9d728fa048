"""Checks on saved tensors, read before backward ran: stale (modified in place) and freed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..model import CallInfo, Finding, Graph, Node, display_path
from ._common import at_line, listing, node_ref

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
        elif by_view is None and stale.owner in _VIEW_OWNERS and _permuted(w.shape, stale.shape):
            by_view = w
    return by_op or by_view


def _permuted(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return sorted(a) == sorted(b)


def _op_owner(aten: str) -> str:
    """The node name PyTorch gives a tensor an in-place op wrote (`aten.add_.Tensor` -> `Add`)."""
    name = _op_name(aten).rstrip("_")
    return "".join(part.capitalize() for part in name.split("_"))


def inplace(graph: Graph, writes: Sequence[Write]) -> list[Finding]:
    """[inplace-saved]: a saved tensor was modified in place after it was saved."""
    found = []
    for node in graph.nodes:
        for saved in node.saved:
            if saved.state == "stale":
                found.append(_inplace_finding(node, saved.name, parse_stale(saved.text), writes))
                break
    return found


def _op_name(aten: str) -> str:
    return aten.removeprefix("aten.").split(".")[0]


def _inplace_finding(
    node: Node, name: str, stale: Stale | None, writes: Sequence[Write]
) -> Finding:
    write = _writer(stale, writes) if stale is not None else None
    versions = (
        f": it is at version {stale.now}, backward needs version {stale.was}" if stale else ""
    )
    if write is not None:
        what = f"`{_op_name(write.aten)}`{at_line(write.line)} modified it in place"
        file, line = display_path(write.file), write.line
    else:
        what = "an in-place operation modified it"
        file, line = node.file, node.line
    message = (
        f"{node_ref(node)}{at_line(node.line)} saved `{name}` for backward, then {what}"
        f"{versions}. Backward will fail on it."
    )
    hint = (
        "Use the out-of-place form (`y = y * 2` instead of `y *= 2` or `y.mul_(2)`), "
        "or `.clone()` the tensor before changing it."
    )
    return Finding("inplace-saved", "error", message, file, line, (node.id,), hint)


def twice(
    graph: Graph, calls: Sequence[CallInfo], freed_by: Mapping[int, int] | None
) -> list[Finding]:
    """[backward-twice]: this call goes through saved tensors an earlier call freed."""
    failed = graph.graph_was_freed
    freed = [n for n in graph.nodes if n.saved and any(s.state == "freed" for s in n.saved)]
    if not failed:
        freed = [n for n in freed if n.order is not None]
    if not freed:
        return []
    by = _earlier(freed, freed_by or {})
    earlier = calls[by - 1] if by is not None and 0 < by <= len(calls) else None
    return [_twice_finding(graph, freed, by, earlier)]


def _earlier(nodes: Iterable[Node], freed_by: Mapping[int, int]) -> int | None:
    numbers = sorted({freed_by[n.id] for n in nodes if n.id in freed_by})
    return numbers[0] if numbers else None


def _twice_finding(
    graph: Graph, freed: list[Node], by: int | None, earlier: CallInfo | None
) -> Finding:
    root = graph.nodes[graph.root]
    this = f"Backward call {graph.call}" if graph.call else "This backward"
    if by is not None and earlier is not None:
        who = f"backward call {by}{at_line(earlier.line)}"
    else:
        who = "an earlier backward call"
    message = (
        f"{this}{at_line(graph.call_line)} goes through the graph of {node_ref(root)} again, "
        f"but {who} already freed the saved tensors of "
        f"{listing([node_ref(n) for n in freed], 3, quote=False)}."
    )
    hint = (
        "Compute the forward pass again for each backward call (inside the loop), or pass "
        "`retain_graph=True` to the earlier backward if you really need the graph twice."
    )
    file = earlier.file if earlier is not None else graph.call_file
    line = earlier.line if earlier is not None else graph.call_line
    return Finding("backward-twice", "error", message, file, line, tuple(n.id for n in freed), hint)
