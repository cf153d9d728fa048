"""Small helpers the checks share: where a node is, how to name it, how to list names."""

from __future__ import annotations

import linecache
import os
from collections.abc import Mapping
from typing import Any

from ..model import Graph, Node


def source_line(filename: str | None, line: int | None) -> str:
    """The stripped text of one line of the user's file ("" when unknown)."""
    if not filename or not line:
        return ""
    return linecache.getline(os.path.abspath(filename), line).strip()


def node_ref(node: Node) -> str:
    """``#3 SigmoidBackward0`` (or ``#0 leaf `w```), the way a finding names a node."""
    if node.kind == "leaf":
        return f"#{node.id} leaf `{node.names[0]}`" if node.names else f"#{node.id} leaf"
    text = f"#{node.id} {node.op}"
    return text + (f" `{node.names[0]}`" if node.names else "")


def at_line(line: int | None) -> str:
    return f" at line {line}" if line else ""


def listing(names: list[str], limit: int = 4, quote: bool = True) -> str:
    """`a`, `b` and `c` (with "and N more" past `limit`)."""
    quoted = [f"`{n}`" if quote else n for n in names[:limit]]
    if len(names) > limit:
        quoted.append(f"{len(names) - limit} more")
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def leaf_where(graph: Graph, node: Node) -> tuple[str | None, int | None]:
    """A leaf has no line of its own: the line of the first op that consumes it."""
    if node.file and node.line:
        return node.file, node.line
    for edge in graph.consumers[node.id]:
        dst = graph.nodes[edge.dst]
        if dst.file and dst.line:
            return dst.file, dst.line
    return None, None


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def outside_optimizers(t: Any, optimized: Mapping[int, Any] | None) -> bool:
    """Whether optimizers stepped (`optimized`: their parameters, by id) and `t` is in none of
    them: a parameter not meant to get a gradient (a DQN's target network)."""
    if not optimized:
        return False
    return optimized.get(id(t)) is not t


#: Ops that only move, reshape or copy their one input's elements: a loss's input producer is
#: looked for past them (`losses`), and an all-zero operand named by the leaf they show
#: (`grads`: `fc.weight` under `F.linear`'s `TBackward0`).
MOVES = frozenset(
    {
        "TBackward0",
        "ViewBackward0",
        "UnsafeViewBackward0",
        "ReshapeAliasBackward0",
        "TransposeBackward0",
        "TransposeBackward1",
        "PermuteBackward0",
        "ExpandBackward0",
        "SqueezeBackward0",
        "SqueezeBackward1",
        "SqueezeBackward2",
        "UnsqueezeBackward0",
        "CloneBackward0",
        "ContiguousBackward0",
        "SliceBackward0",
        "ToCopyBackward0",
    }
)


def leaves_below(graph: Graph, start: int) -> list[Node]:
    """The leaves `start` was computed from (towards the leaves, no recursion), by id."""
    seen, stack, found = {start}, [start], []
    while stack:
        n = stack.pop()
        if graph.nodes[n].kind == "leaf":
            found.append(graph.nodes[n])
        for e in graph.inputs[n]:
            if e.src not in seen:
                seen.add(e.src)
                stack.append(e.src)
    return sorted(found, key=lambda x: x.id)
