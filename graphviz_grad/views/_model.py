"""What a view is: which nodes of a `Graph` are drawn as themselves, and which are drawn as groups.

A view never copies or changes the graph. Each original node is drawn as itself, stands inside a
group (a collapsed module call, a fold of repeated blocks, or the elided far end of a huge graph),
is contracted (a hidden view/reshape: its inputs are wired to its consumers), or is dropped.
Drawn ids keep the graph's ids for original nodes; groups get ids from ``len(graph.nodes)`` up.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from graphviz_grad.model import Edge, Graph, Node

GroupKind = Literal["module", "fold", "elided"]

#: Markers in an owner map: the node is not drawn, or is bridged over.
DROP = -1
CONTRACT = -2

Scope = tuple[str, str, int]


@dataclass(frozen=True)
class Group:
    """One drawn node that stands for many: a module call, a fold of N blocks, or elided nodes.

    `output` is the member whose value and gradient the group shows (the one whose output leaves
    the group, nearest the root); `params` are the parameter leaves of the module (absorbed in the
    group or drawn next to it); `enclosing` are the module calls around the group, for clusters.
    In a fold, `output_of` and `params_of` say which instance those numbers belong to
    (``h.11``, ``call 999 of 999``; ``h.0``, ``all 999 calls (shared)``).
    """

    id: int
    kind: GroupKind
    title: str
    module_type: str | None
    members: tuple[int, ...]
    ops: int
    output: int | None = None
    params: tuple[int, ...] = ()
    repeat: int = 1
    enclosing: tuple[Scope, ...] = ()
    path: str | None = None
    output_of: str | None = None
    params_of: str | None = None


@dataclass(frozen=True)
class ViewEdge:
    """A drawn edge; `edge` is the original edge when it joins two nodes drawn as themselves.
    `label` marks the last drawn edge of a trimmed fan-out (``+197 more uses``)."""

    src: int
    dst: int
    edge: Edge | None = None
    label: str | None = None


@dataclass(frozen=True)
class View:
    """A drawable selection of `graph`: original nodes, groups, and the edges between them.

    Example:
        >>> view = make_view(graph, ViewOptions(depth=1, fold=True))
        >>> view.size, [g.title for g in view.groups]
    """

    graph: Graph
    shown: tuple[int, ...]
    groups: tuple[Group, ...] = ()
    edges: tuple[ViewEdge, ...] = ()
    notes: tuple[str, ...] = field(default=())
    #: Module calls around each drawn parameter (its own module's box, not the top level).
    placed: Mapping[int, tuple[Scope, ...]] = field(default_factory=dict)
    #: The `graph.input_nodes` drawn (by position there); their drawn ids follow the groups'.
    inputs: tuple[int, ...] = ()
    #: Per drawn id, the column (row, left to right) of a long view wrapped by `wrap`.
    bands: Mapping[int, int] = field(default_factory=dict)
    #: The top node of each band, in band order (the renderer lines them up left to right).
    heads: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        """How many nodes are drawn."""
        return len(self.shown) + len(self.groups) + len(self.inputs)

    @property
    def drawn(self) -> tuple[int, ...]:
        """Every drawn id: original nodes, groups, then inputs."""
        base = len(self.graph.nodes) + len(self.groups)
        return (*self.shown, *(g.id for g in self.groups), *(base + k for k in self.inputs))

    def input(self, drawn_id: int) -> Node | None:
        """The input node with drawn id `drawn_id`, or None for any other drawn node."""
        k = drawn_id - len(self.graph.nodes) - len(self.groups)
        return self.graph.input_nodes[k] if 0 <= k < len(self.graph.input_nodes) else None

    def scopes(self, drawn_id: int) -> tuple[Scope, ...]:
        """The module calls (clusters) a drawn original node sits in."""
        found = self.placed.get(drawn_id)
        return found if found is not None else self.graph.nodes[drawn_id].scopes

    def group(self, drawn_id: int) -> Group | None:
        """The group with drawn id `drawn_id`, or None for an original node."""
        k = drawn_id - len(self.graph.nodes)
        return self.groups[k] if 0 <= k < len(self.groups) else None


def _contracted_sources(graph: Graph, owner: Sequence[int], start: int) -> tuple[int, ...]:
    """The drawn nodes that feed contracted node `start`, looking through contracted chains."""
    found: list[int] = []
    seen = {start}
    stack = [start]
    while stack:
        node = stack.pop()
        for e in graph.inputs[node]:
            o = owner[e.src]
            if o >= 0:
                found.append(o)
            elif o == CONTRACT and e.src not in seen:
                seen.add(e.src)
                stack.append(e.src)
    return tuple(dict.fromkeys(found))


def drawn_links(graph: Graph, owner: Sequence[int]) -> Iterator[tuple[int, int, Edge]]:
    """(drawn source, drawn destination, graph edge) for every edge between drawn nodes under
    `owner`, looking through contracted chains, in the graph's edge order; repeats included."""
    bridged: dict[int, tuple[int, ...]] = {}
    for e in graph.edges:
        dst = owner[e.dst]
        if dst < 0:
            continue
        src = owner[e.src]
        if src >= 0:
            yield src, dst, e
        elif src == CONTRACT:
            if e.src not in bridged:
                bridged[e.src] = _contracted_sources(graph, owner, e.src)
            for s in bridged[e.src]:
                yield s, dst, e


def drawn_edges(graph: Graph, owner: Sequence[int]) -> tuple[ViewEdge, ...]:
    """The edges between drawn nodes under `owner`, deduplicated, in the graph's edge order."""
    n = len(graph.nodes)
    pairs: dict[tuple[int, ...], ViewEdge] = {}
    for s, dst, e in drawn_links(graph, owner):
        own = s < n and dst < n and s == e.src and dst == e.dst
        key = (s, dst, e.index) if own else (s, dst)
        if s != dst and key not in pairs:
            pairs[key] = ViewEdge(s, dst, e if own else None)
    return tuple(pairs.values())


def build(
    graph: Graph, owner: Sequence[int], groups: Sequence[Group], notes: Sequence[str] = ()
) -> View:
    """The view that `owner` (a drawn id, DROP or CONTRACT per node) and `groups` describe."""
    shown = tuple(i for i, o in enumerate(owner) if o == i)
    placed = {i: place_leaf(graph, i) for i in shown if graph.nodes[i].kind == "leaf"}
    placed = {i: scopes for i, scopes in placed.items() if scopes}
    return View(graph, shown, tuple(groups), drawn_edges(graph, owner), tuple(notes), placed)


def place_leaf(graph: Graph, leaf: int) -> tuple[Scope, ...]:
    """The module calls a parameter belongs in: those shared by every op that uses it, as far
    down as its name reaches (``net.blocks.0.lin.weight`` stops at ``net.blocks.0.lin``)."""
    node = graph.nodes[leaf]
    users = [graph.nodes[e.dst].scopes for e in graph.consumers[leaf]]
    if not node.names or not users:
        return ()
    owner = node.names[0].rpartition(".")[0]
    common: list[Scope] = []
    for level, scope in enumerate(users[0]):
        if any(len(s) <= level or s[level] != scope for s in users[1:]):
            break
        if owner != scope[0] and not owner.startswith(scope[0] + "."):
            break
        common.append(scope)
    return tuple(common)


def anchors(view: View, per_box: int = 2) -> list[tuple[int, int]]:
    """Pairs (node outside, parameter inside) that keep a module box with its parameters below
    what feeds the box: without them a parameter floats up beside the previous box, and
    Graphviz, which never overlaps boxes, staggers a stack of blocks into a staircase."""
    inside: dict[tuple[str, int], list[int]] = {}
    for d in view.shown:
        scopes = view.placed.get(d)
        if scopes and view.graph.nodes[d].kind == "leaf":
            inside.setdefault((scopes[-1][0], scopes[-1][2]), []).append(d)
    if not inside:
        return []
    feeders: dict[tuple[str, int], list[int]] = {}
    for e in view.edges:
        if e.src >= len(view.graph.nodes) or view.graph.nodes[e.src].kind != "op":
            continue
        outer = {(p, c) for p, _, c in _box_scopes(view, e.src)}
        for path, _, call in _box_scopes(view, e.dst):
            key = (path, call)
            found = feeders.setdefault(key, [])
            if key in inside and key not in outer and e.src not in found and len(found) < per_box:
                found.append(e.src)
    return [
        (src, leaf)
        for key, leaves in inside.items()
        for src in feeders.get(key, ())
        for leaf in leaves
    ]


def _box_scopes(view: View, drawn_id: int) -> tuple[Scope, ...]:
    group = view.group(drawn_id)
    if group is not None:
        return group.enclosing
    if view.input(drawn_id) is not None:
        return view.placed.get(drawn_id, ())
    return view.scopes(drawn_id)
