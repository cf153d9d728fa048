"""A view as a `Graph` the terminal tree can print, with every node keeping its id.

Original nodes keep their ids (nodes the view leaves out stay in the tuple but are unreachable
from the roots, so the tree never prints them); each group becomes one op node with id
``len(graph.nodes) + k``, whose "op" says what it stands for and which shows its output's value
and gradient.
"""

from __future__ import annotations

from dataclasses import replace

from graphviz_grad.model import Edge, Graph, Node, plural

from ._model import Group, View

#: Group edges sort after a node's own inputs.
_GROUP_INDEX = 1_000_000


def _group_node(graph: Graph, group: Group) -> Node:
    if group.kind == "elided":
        return Node(id=group.id, kind="op", op=f"⋯ {group.title} (elided)")
    badge = f" ×{group.repeat}" if group.repeat > 1 else ""
    what = (
        f"[{group.title}{badge}: {group.module_type or 'module'}, hides {plural(group.ops, 'op')}]"
    )
    out = graph.nodes[group.output] if group.output is not None else None
    params = _params(graph, group)
    if out is None:
        return Node(id=group.id, kind="op", op=what, names=params)
    return Node(
        id=group.id,
        kind="op",
        op=what,
        names=params,
        shape=out.shape,
        dtype=out.dtype,
        value=out.value,
        grad=out.grad,
    )


def _params(graph: Graph, group: Group, shown: int = 3) -> tuple[str, ...]:
    """``("params: weight, bias",)``: short names, the first `shown`, then ``+N``."""
    if not group.params:
        return ()
    names = [graph.nodes[i].label for i in group.params]
    if group.path:
        names = [name.removeprefix(f"{group.path}.") for name in names]
    more = f" +{len(names) - shown}" if len(names) > shown else ""
    return ("params: " + ", ".join(names[:shown]) + more,)


def _edges(view: View) -> tuple[Edge, ...]:
    edges = []
    for k, e in enumerate(view.edges):
        if e.edge is not None:
            edges.append(e.edge)
        else:
            edges.append(Edge(src=e.src, dst=e.dst, index=_GROUP_INDEX + k))
    return tuple(edges)


def _roots(view: View, edges: tuple[Edge, ...]) -> tuple[int, ...]:
    """The graph's roots as drawn; else (a focus away from the root) the drawn sinks."""
    n = len(view.graph.nodes)
    owner = {i: i for i in view.shown}
    for g in view.groups:
        owner.update((m, g.id) for m in g.members)
    found = [owner[r] for r in view.graph.roots if r in owner]
    if found:
        return tuple(dict.fromkeys(found))
    fed = {e.src for e in edges}
    drawn = [*view.shown, *(g.id for g in view.groups)]
    return tuple(d for d in drawn if d not in fed) or tuple(d for d in drawn if d < n)[:1]


def as_graph(view: View) -> Graph:
    """`view` as a graph for `GraphTree`: same ids, groups as extra op nodes."""
    graph = view.graph
    nodes = (*graph.nodes, *(_group_node(graph, g) for g in view.groups))
    edges = _edges(view)
    return replace(graph, nodes=nodes, edges=edges, roots=_roots(view, edges))
