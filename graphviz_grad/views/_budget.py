"""The layout budget's last resort: keep the drawn nodes nearest the root, elide the rest."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from graphviz_grad.model import Graph

from ._model import Group, View, ViewEdge, drawn_links

#: A node feeding more drawn nodes than this (an RNN's weights, used at every step) keeps only
#: `FAN_KEEP` of those edges: Graphviz routes every long edge through every rank it crosses, and
#: 4 weights x 200 steps take it minutes.
FAN_LIMIT = 16
FAN_KEEP = 3


def _bfs_order(
    graph: Graph, owner: list[int], drawn: list[int], limit: int
) -> tuple[list[int], int]:
    """The first `limit` drawn ids in breadth-first order from the root(s), towards the leaves;
    then the rest. The walk stops once it has `limit` (the rest are never kept).

    Of a node with more than `FAN_LIMIT` inputs (a `cat` or `stack` of one term per step: a
    policy gradient's log-probabilities, a loss per time step) the walk follows the first
    `FAN_KEEP - 1` inputs and the last one only, and the rest are not added after it: a few whole
    terms read better than one level of every term drawn side by side. Also returns the widest
    such fan (0: none)."""
    inputs: dict[int, list[int]] = {}
    for src, dst, _ in drawn_links(graph, owner):
        inputs.setdefault(dst, []).append(src)
    starts = [owner[r] for r in graph.roots if owner[r] >= 0]
    seen = set(starts)
    order = list(dict.fromkeys(starts))
    queue = deque(order)
    widest = 0
    while queue and len(order) < limit:
        found: list[int] = inputs.get(queue.popleft(), [])
        if len(found) > FAN_LIMIT:
            found = list(dict.fromkeys(found))  # one per source (a group joins by many edges)
            if len(found) > FAN_LIMIT:
                widest = max(widest, len(found))
                found = [*found[: FAN_KEEP - 1], found[-1]]
        for src in found:
            if src not in seen:
                seen.add(src)
                order.append(src)
                queue.append(src)
    if len(order) < limit and not widest:
        order.extend(d for d in drawn if d not in seen)
    return order[:limit], widest


def elide(
    graph: Graph, owner: list[int], groups: list[Group], budget: int
) -> tuple[list[int], list[Group], int]:
    """Keep the `budget - 1` drawn nodes nearest the root (a few whole terms of a wide fan-in:
    `_bfs_order`); one group hides all the others. Also returns the widest fan-in cut (0: none)."""
    n = len(graph.nodes)
    drawn = [i for i, o in enumerate(owner) if o == i] + [g.id for g in groups]
    order, widest = _bfs_order(graph, owner, drawn, max(1, budget - 1))
    keep = set(order)
    kept_groups = [g for g in groups if g.id in keep]
    renumber = {g.id: n + k for k, g in enumerate(kept_groups)}
    elided_id = n + len(kept_groups)
    new_owner = [
        o if o < 0 else (o if o < n else renumber[o]) if o in keep else elided_id for o in owner
    ]
    members = tuple(i for i, o in enumerate(new_owner) if o == elided_id)
    new_groups = [_renumbered(g, renumber[g.id]) for g in kept_groups]
    ops = sum(1 for i in members if graph.nodes[i].kind == "op")
    new_groups.append(
        Group(
            id=elided_id,
            kind="elided",
            title=f"{len(members):,} more nodes",
            module_type=None,
            members=members,
            ops=ops,
        )
    )
    return new_owner, new_groups, widest


def _renumbered(group: Group, new_id: int) -> Group:
    return replace(group, id=new_id)


def trim_fans(view: View) -> tuple[View, str | None]:
    """`view` with each wide fan-out cut to `FAN_KEEP` edges (the last one says how many more)."""
    fan: dict[int, int] = {}
    for e in view.edges:
        fan[e.src] = fan.get(e.src, 0) + 1
    wide = {src: n for src, n in fan.items() if n > FAN_LIMIT}
    if not wide:
        return view, None
    kept: list[ViewEdge] = []
    seen: dict[int, int] = {}
    for e in view.edges:
        if e.src not in wide:
            kept.append(e)
            continue
        seen[e.src] = seen.get(e.src, 0) + 1
        if seen[e.src] < FAN_KEEP:
            kept.append(e)
        elif seen[e.src] == FAN_KEEP:
            kept.append(ViewEdge(e.src, e.dst, None, f"+{wide[e.src] - FAN_KEEP} more uses"))
    note = (
        f"{len(wide)} node(s) feed more than {FAN_LIMIT} drawn nodes each (shared weights): "
        f"drawn with {FAN_KEEP} of their edges, since Graphviz slows down badly on such fans."
    )
    return replace(view, edges=tuple(kept)), note
