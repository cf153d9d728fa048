"""A view as DOT statements: module calls as nested clusters, groups as their own tables.

`dot.to_dot` hands in how it draws one node and one edge, so every decoration it applies to
ordinary nodes applies here too; this module adds the clusters, the group nodes and the edges
that touch groups. Clusters nest with an explicit stack, never by recursion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from graphviz_grad.model import Edge, Node, plural
from graphviz_grad.render.format import fmt_number, fmt_type
from graphviz_grad.render.labels import html, row, value_rows
from graphviz_grad.views import Group, View, anchors

FILL_MODULE = "#fff4cc"
FILL_FOLD = "#e8def8"
FILL_ELIDED = "#f4f4f4"
CLUSTER_COLOR = "#9a9a9a"
#: Parameters listed in a group's table before "+N more".
MAX_PARAMS = 6

ClusterKey = tuple[str, int]


@dataclass
class _Cluster:
    label: str
    items: list[int] = field(default_factory=list)
    children: dict[ClusterKey, _Cluster] = field(default_factory=dict)


def dot_name(view: View, drawn_id: int) -> str:
    """The DOT name of a drawn node: ``n12`` for node 12, ``g0`` for the first group, and an
    input node by its id in the graph's JSON (``n40``)."""
    n = len(view.graph.nodes)
    if drawn_id < n:
        return f"n{drawn_id}"
    node = view.input(drawn_id)
    return f"n{node.id}" if node is not None else f"g{drawn_id - n}"


def _call_numbers(view: View) -> dict[ClusterKey, int]:
    """A 1-based number per call of a module that the graph holds several calls of, counted
    over the whole graph: a view that elides the middle terms of a loop still labels its last
    drawn call `[call 253]`, not `[call 3]`."""
    calls: dict[str, set[int]] = {}
    for scopes in (*(n.scopes for n in view.graph.nodes), *_all_scopes(view)):
        for path, _, call in scopes:
            calls.setdefault(path, set()).add(call)
    return {
        (path, call): j
        for path, numbers in calls.items()
        if len(numbers) > 1
        for j, call in enumerate(sorted(numbers), 1)
    }


def _all_scopes(view: View) -> list[tuple[tuple[str, str, int], ...]]:
    return [g.enclosing if (g := view.group(i)) else view.scopes(i) for i in view.drawn]


def _clusters(view: View) -> _Cluster:
    numbers = _call_numbers(view)
    top = _Cluster("")
    for drawn_id, scopes in zip(view.drawn, _all_scopes(view), strict=True):
        here = top
        for path, kind, call in scopes:
            key = (path, call)
            if key not in here.children:
                j = numbers.get(key)
                label = f"{path} ({kind})" + (f" [call {j}]" if j else "")
                here.children[key] = _Cluster(label)
            here = here.children[key]
        here.items.append(drawn_id)
    return top


def _cluster_open(label: str, number: int, pad: str) -> list[str]:

    return [
        f"{pad}subgraph cluster_{number} {{",
        f"{pad}  label=<<b>{html(label)}</b>>;",
        f'{pad}  style="rounded,dashed"; color="{CLUSTER_COLOR}"; fontsize=10; labeljust=l;',
    ]


def _nodes(view: View, node_stmt: Callable[[Node], str], precision: int) -> list[str]:
    """Node statements inside their nested clusters, walked with an explicit stack."""
    out: list[str] = []
    count = 0
    stack: list[tuple[_Cluster | None, int]] = [(_clusters(view), 0)]
    while stack:
        cluster, depth = stack.pop()
        pad = "  " * depth
        if cluster is None:
            out.append(f"{pad}}}")
            continue
        if depth:
            out.extend(_cluster_open(cluster.label, count, pad))
            count += 1
            stack.append((None, depth))
        out.extend(pad + _item(view, i, node_stmt, precision) for i in cluster.items)
        stack.extend((child, depth + 1) for child in reversed(cluster.children.values()))
    return out


def _item(view: View, drawn_id: int, node_stmt: Callable[[Node], str], precision: int) -> str:
    group = view.group(drawn_id)
    if group is not None:
        return group_stmt(view, group, precision)
    return node_stmt(view.input(drawn_id) or view.graph.nodes[drawn_id])


def body(
    view: View,
    node_stmt: Callable[[Node], str],
    edge_stmt: Callable[[Edge], str],
    precision: int = 4,
) -> list[str]:
    """Every node and edge statement of `view`, in a deterministic order."""
    out = _nodes(view, node_stmt, precision)
    bands = view.bands
    for e in view.edges:
        if e.edge is not None:
            stmt = edge_stmt(e.edge)
        else:
            attrs = f" [label=<<i>{html(e.label)}</i>>, style=dashed]" if e.label else ""
            stmt = f"  {dot_name(view, e.src)} -> {dot_name(view, e.dst)}{attrs};"
        if bands and bands.get(e.src) != bands.get(e.dst):
            stmt = _unconstrained(stmt)
        out.append(stmt)
    for src, leaf in anchors(view):
        stmt = f"  {dot_name(view, src)} -> {dot_name(view, leaf)} [style=invis];"
        out.append(_unconstrained(stmt) if bands.get(src) != bands.get(leaf) else stmt)
    if len(view.heads) > 1:
        chain = " -> ".join(dot_name(view, d) for d in view.heads)
        out.append(f"  {{ rank=same; {chain} [style=invis]; }}")
    return out


def _unconstrained(stmt: str) -> str:
    """An edge between two bands of a wrapped view: it must not pull them into one column."""
    if stmt.endswith("];"):
        return stmt[:-2] + ", constraint=false];"
    return stmt[:-1] + " [constraint=false];"


# -- group tables ------------------------------------------------------------------------------
def _param_rows(view: View, group: Group, precision: int) -> list[str]:

    rows = []
    if group.params and group.params_of:
        rows.append(row(f"<i>{html('parameters of ' + group.params_of)}</i>"))
    for leaf in group.params[:MAX_PARAMS]:
        node = view.graph.nodes[leaf]
        norm = node.grad.norm if node.grad is not None else None
        text = "‖grad‖=" + (fmt_number(norm, precision) if norm is not None else "—")
        name = node.label.removeprefix(f"{group.path}.") if group.path else node.label
        rows.append(row(html(name), html(text)))
    more = len(group.params) - MAX_PARAMS
    if more > 0:
        rows.append(row(html(f"+{more} more parameters")))
    return rows


def _module_rows(view: View, group: Group, precision: int) -> list[str]:

    badge = f"  ×{group.repeat}" if group.repeat > 1 else ""
    rows = [row(html(group.title + badge), bold=True)]
    kind = f"{group.module_type or 'module'} · hides {plural(group.ops, 'op')}"
    rows.append(row(html(kind)))
    if group.output is not None:
        node = view.graph.nodes[group.output]
        of = f"output of {group.output_of}: " if group.output_of else "output "
        rows.append(row(html(of + fmt_type(node.shape, node.dtype))))
        rows.extend(value_rows(node.value, node.grad, precision))
    rows.extend(_param_rows(view, group, precision))
    return rows


def _elided_rows(group: Group) -> list[str]:

    return [
        row(html(f"⋯ {group.title}"), bold=True),
        row(html(f"{plural(group.ops, 'op')} elided to fit the layout budget")),
        row(html("--full, or --format dot / json, shows them")),
    ]


def group_stmt(view: View, group: Group, precision: int = 4) -> str:
    """The DOT statement of one group: a table like a node's, in its own colour."""
    if group.kind == "elided":
        rows, fill = _elided_rows(group), FILL_ELIDED
    else:
        rows = _module_rows(view, group, precision)
        fill = FILL_FOLD if group.kind == "fold" else FILL_MODULE
    border = "2" if group.kind == "fold" else "1"
    table = (
        f'<table border="{border}" cellborder="0" cellspacing="0" cellpadding="3" '
        f'color="#555555" bgcolor="{fill}">{"".join(rows)}</table>'
    )
    return f"  {dot_name(view, group.id)} [label=<{table}>];"
