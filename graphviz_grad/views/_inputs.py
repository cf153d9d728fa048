"""The inputs that need no gradient (`x`, targets, Python numbers), added to a view.

They are drawn only beside ops drawn as themselves: an op folded into a module box keeps its
inputs inside the box. A named input sits at the top level (it is the script's variable); an
unnamed one (a number, a temporary) sits in the module box of the op that uses it.
"""

from __future__ import annotations

from dataclasses import replace

from ._model import View, ViewEdge

#: Views drawing at most this many nodes show their inputs by default (`--inputs` forces them).
INPUTS_AUTO = 50


def with_inputs(view: View) -> View:
    """`view` plus the input nodes of its ops drawn as themselves, and their edges.

    Example:
        >>> with_inputs(whole(graph)).inputs   # samples/linear.py: x, y, 2
        (0, 1, 2)
    """
    graph = view.graph
    shown = set(view.shown)
    base = len(graph.nodes) + len(view.groups)
    drawn: list[int] = []
    placed = dict(view.placed)
    edges: list[ViewEdge] = []
    for e in graph.input_edges:
        if e.dst not in shown:
            continue
        k = e.src - len(graph.nodes)
        if base + k not in placed:
            drawn.append(k)
            named = bool(graph.input_nodes[k].names)
            placed[base + k] = () if named else view.scopes(e.dst)
        edges.append(ViewEdge(base + k, e.dst, e))
    merged = _in_argument_order(view.edges, edges)
    return replace(view, inputs=tuple(drawn), edges=merged, placed=placed)


def _in_argument_order(edges: tuple[ViewEdge, ...], extra: list[ViewEdge]) -> tuple[ViewEdge, ...]:
    """`edges` with each input edge placed among the edges into the same op by argument
    position, so a picture that keeps in-edge order draws `x * w` as x, then w."""
    pending: dict[int, list[ViewEdge]] = {}
    for e in sorted(extra, key=lambda e: e.edge.index if e.edge else 0):
        pending.setdefault(e.dst, []).append(e)
    out: list[ViewEdge] = []
    for e in edges:
        queue = pending.get(e.dst)
        if queue and e.edge is not None:
            while queue and queue[0].edge is not None and queue[0].edge.index < e.edge.index:
                out.append(queue.pop(0))
        out.append(e)
    out.extend(e for queue in pending.values() for e in queue)
    return tuple(out)
