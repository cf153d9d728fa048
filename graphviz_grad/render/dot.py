"""The graph as Graphviz DOT text, one HTML-like table per node.

Data flows downwards: leaves at the top, the root at the bottom, edges from `src` to `dst`. The
text is deterministic (same graph, byte-identical DOT) and built as one list of strings joined
once, so a 100k-node graph converts in well under a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphviz_grad._gc import on_big_graphs
from graphviz_grad.model import Edge, Finding, Graph, Node, Output, Saved, has_nonfinite
from graphviz_grad.render.format import MISSING, fmt_saved_value, fmt_summary, fmt_type
from graphviz_grad.render.labels import BORDER_BAD, html, row, value_rows
from graphviz_grad.render.marks import (
    SEVERITY_COLOR,
    cut_marks,
    legend,
    node_marks,
    norm_fills,
    norm_legend,
    worst,
)
from graphviz_grad.render.options import DrawOptions

if TYPE_CHECKING:
    from graphviz_grad.views import View

FILL_LEAF = "#cfe8fc"
FILL_ROOT = "#fdd0b1"
FILL_OP = "#ececec"
FILL_INPUT = "#f7f7f7"
BORDER_INPUT = "#9a9a9a"
BORDER = "#555555"
GRAD_COLOR = "#c0392b"
GRADVIZ_NOTE = "gradients computed by gradviz (not by a backward call of the script)"


def _header(node: Node) -> str:
    if node.kind == "leaf":
        first = f"<b>{html(node.names[0])}</b> " if node.names else ""
        return f'<tr><td colspan="2">{first}leaf</td></tr>'
    return row(html(node.op or "?"), bold=True)


def _names_row(node: Node) -> list[str]:
    shown = node.names if node.kind == "op" else node.names if len(node.names) > 1 else ()
    return [row(html(", ".join(shown)))] if shown else []


def _outputs_rows(outputs: tuple[Output, ...], precision: int) -> list[str]:
    rows: list[str] = []
    for nr, out in enumerate(outputs):
        rows.extend(value_rows(out.value, out.grad, precision, prefix=f"out{nr} "))
    return rows


def _saved_text(saved: Saved, precision: int) -> str:
    if saved.state == "freed":
        return "(freed)"
    if saved.summary is not None:
        text = fmt_summary(saved.summary, precision)
    else:
        text = fmt_saved_value(saved.name, saved.text) if saved.text is not None else MISSING
    return text + (f" = #{saved.node}" if saved.node is not None else "")


def _saved_rows(node: Node, precision: int) -> list[str]:
    return [row(html(s.name), html(_saved_text(s, precision))) for s in node.saved]


def _bad(node: Node) -> bool:
    return has_nonfinite(node.grad) or any(has_nonfinite(o.grad) for o in node.outputs)


def _fill(node: Node, roots: frozenset[int]) -> str:
    if node.kind == "input":
        return FILL_INPUT
    if node.id in roots:
        return FILL_ROOT
    return FILL_LEAF if node.kind == "leaf" else FILL_OP


def _input_rows(node: Node, precision: int) -> list[str]:
    """An input needs no gradient: its name, type and value (a bare number for a constant)."""
    value = node.value
    if not node.names and value is not None and value.shape == () and value.data is not None:
        return [row(html(fmt_summary(value, precision)), bold=True), row("constant")]
    head = f"<b>{html(node.names[0])}</b> input" if node.names else "input"
    rows = [row(head), row(html(fmt_type(node.shape, node.dtype)))]
    if value is None or (
        value.data is None
        and value.min is None
        and value.note is None
        and not value.nan
        and not value.inf
    ):
        return rows  # a large tensor gone or changed before its graph was built: its shape
    return [*rows, row("value", html(fmt_summary(value, precision)))]


#: The first rows of a label (header, names, type) by what they show; many nodes share them.
_HEADS: dict[tuple[object, ...], str] = {}
_HEADS_LIMIT = 4096


def _head(node: Node) -> str:
    """Header, names and type rows of `node` (the label's start when steps are not shown)."""
    key = (node.kind, node.op, node.names, node.shape, node.dtype)
    text = _HEADS.get(key)
    if text is None:
        kind = fmt_type(node.shape, node.dtype)
        text = "".join([_header(node), *_names_row(node), row(html(kind)) if kind else ""])
        if len(_HEADS) < _HEADS_LIMIT:
            _HEADS[key] = text
    return text


def node_label(
    node: Node, *, precision: int = 4, show_saved: bool = False, order: bool = False
) -> str:
    """The HTML-like table (without the outer ``<>``) that draws one node."""
    if node.kind == "input":
        return "".join(_input_rows(node, precision))
    if order:
        rows = [_header(node), *_names_row(node), _order_row(node)]
        kind = fmt_type(node.shape, node.dtype)
        if kind:
            rows.append(row(html(kind)))
    else:
        rows = [_head(node)]
    if len(node.outputs) > 1:
        rows.extend(_outputs_rows(node.outputs, precision))
    else:
        rows.extend(value_rows(node.value, node.grad, precision))
    if node.checkpointed:
        rows.append(row('<font color="#1f618d">checkpointed: recomputed in backward</font>'))
    if node.hooked:
        rows.append(row('<font color="#1f618d">hook: grad after it, on edges before</font>'))
    if node.synced_grad is not None:  # DDP: the local grad above, the all-reduced .grad here
        rows.append(row(".grad (all-reduced)", html(fmt_summary(node.synced_grad, precision))))
    if show_saved:
        rows.extend(_saved_rows(node, precision))
    return "".join(rows)


def _order_row(node: Node) -> str:
    """``backward step 3``: when the engine ran this node (``did not run`` when it did not)."""
    text = f"backward step {node.order}" if node.order is not None else "did not run"
    return row(f'<font color="{GRAD_COLOR}"><b>{text}</b></font>')


def _grad_edges(view: View, precision: int, edge_grads: bool) -> list[str]:
    """Dashed red edges against the data flow: where each gradient goes, and a legend."""
    from graphviz_grad.render.clusters import dot_name

    out = []
    for e in view.edges:
        if view.input(e.src) is not None:
            continue
        grad = e.edge.grad if e.edge is not None else None
        label = f" label=<{html(fmt_summary(grad, precision))}>" if edge_grads and e.edge else ""
        src, dst = dot_name(view, e.src), dot_name(view, e.dst)
        out.append(
            f'  {dst} -> {src} [style=dashed, color="{GRAD_COLOR}", '
            f'fontcolor="{GRAD_COLOR}", constraint=false{"," if label else ""}{label}];'
        )
    out += [
        "  subgraph cluster_legend {",
        '    label="legend"; fontsize=9; color="#bbbbbb";',
        '    legend_a [label="", shape=point]; legend_b [label="", shape=point];',
        '    legend_c [label="", shape=point]; legend_d [label="", shape=point];',
        '    legend_a -> legend_b [label="forward: data"];',
        f'    legend_c -> legend_d [label="backward: gradient", style=dashed, '
        f'color="{GRAD_COLOR}", fontcolor="{GRAD_COLOR}"];',
        "  }",
    ]
    return out


def _node_stmt(
    node: Node,
    roots: frozenset[int],
    precision: int,
    show_saved: bool,
    order: bool = False,
    mark: str | None = None,
    fill: str | None = None,
    keep_order: bool = False,
) -> str:
    border, color = ("2", BORDER_BAD) if _bad(node) else ("1", BORDER)
    if node.kind == "input":
        border, color = "1", BORDER_INPUT
    if mark is not None:  # a finding names this node: border in its severity's colour
        border, color = "3", SEVERITY_COLOR[mark]
    table = (
        f'<table border="{border}" cellborder="0" cellspacing="0" cellpadding="3" '
        f'color="{color}" bgcolor="{fill or _fill(node, roots)}">'
        f"{node_label(node, precision=precision, show_saved=show_saved, order=order)}</table>"
    )
    ordering = ", ordering=in" if keep_order else ""  # `x * w`: x left of w, as written
    return f"  n{node.id} [label=<{table}>{ordering}];"


def _edge_stmt(edge: Edge, graph: Graph, precision: int, edge_grads: bool) -> str:
    if edge.src >= len(graph.nodes):  # from an input: no gradient flows back along it
        return f'  n{edge.src} -> n{edge.dst} [color="{BORDER_INPUT}"];'
    parts: list[str] = []
    if len(graph.nodes[edge.src].outputs) > 1:
        parts.append(f"out{edge.output_nr}")
    if edge_grads or graph.nodes[edge.src].hooked:  # a hook: the gradient before it, here
        parts.append(html(fmt_summary(edge.grad, precision)))
    label = f" [label=<{': '.join(parts)}>]" if parts else ""
    return f"  n{edge.src} -> n{edge.dst}{label};"


def _graph_label(graph: Graph, title: str | None) -> list[str]:
    lines = [html(title)] if title else []
    if graph.grad_source == "gradviz":
        lines.append(f"<i>{html(GRADVIZ_NOTE)}</i>")
    if graph.grad_scale is not None:
        lines.append(html(f"gradients scaled by GradScaler (x{graph.grad_scale:g})"))
    if graph.rank is not None:
        lines.append(html(f"rank {graph.rank} of {graph.world_size} (local gradients)"))
    if not lines:
        return []
    return [f"  label=<{'<br/>'.join(lines)}>;", "  labelloc=t;"]


@on_big_graphs
def to_dot(
    graph: Graph,
    options: DrawOptions | None = None,
    *,
    view: View | None = None,
    fmt: str = "dot",
) -> str:
    """The graph as DOT text: deterministic, every user string escaped.

    `options` say how to draw (see `DrawOptions`); `view` (see `graphviz_grad.views`) what to
    draw: module clusters, collapsed and folded modules, elided nodes — by default every node,
    inside clusters of its module calls. Nodes named by `graph.findings` get a border in their
    severity's colour and a legend lists the findings. Inputs that need no gradient (`x`,
    targets, numbers) are drawn as grey nodes when `options.inputs` says so (None: when the view
    is small enough). `fmt` is the format the DOT is laid out into (`dpi` applies to PNG only).

    Example:
        >>> dot = to_dot(graph, DrawOptions(edge_grads=True))
        >>> graphviz.Source(dot).pipe(format="svg")
    """
    from graphviz_grad.render.clusters import body
    from graphviz_grad.views import INPUTS_AUTO, whole, with_inputs, wrap

    opts = options or DrawOptions()
    shown = view or whole(graph)
    if opts.inputs or (opts.inputs is None and shown.size <= INPUTS_AUTO):
        shown = with_inputs(shown)
    shown = wrap(shown)
    roots = frozenset(graph.roots)
    out = [
        "digraph gradviz {",
        f"  rankdir={opts.rankdir};",
        *([f"  dpi={opts.dpi};"] if opts.dpi and fmt == "png" else []),
        '  fontname="Helvetica";',
        *_graph_label(graph, opts.title),
        '  node [shape=plain, fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#444444"];',
    ]
    marks = node_marks(graph)
    fills = norm_fills(graph, opts.color) if opts.color != "kind" else {}
    with_args = frozenset(e.dst for e in shown.edges if shown.input(e.src) is not None)
    p = opts.precision
    out.extend(
        body(
            shown,
            lambda n: _node_stmt(
                n,
                roots,
                p,
                opts.saved,
                opts.order,
                _mark(marks, n.id),
                fills.get(n.id),
                n.id in with_args,
            ),
            lambda e: _edge_stmt(e, graph, p, opts.edge_grads and not opts.order),
            p,
        )
    )
    out.extend(legend(graph))
    if opts.cuts:
        out.extend(cut_marks(graph, frozenset(shown.shown)))
    if fills:
        out.extend(norm_legend(graph, opts.color))
    if opts.order:  # gradients flow back along dashed red edges, with a legend
        out.extend(_grad_edges(shown, p, opts.edge_grads))
    out.append("}")
    return "\n".join(out) + "\n"


def _mark(marks: dict[int, list[Finding]], node_id: int) -> str | None:
    """The most serious severity of the findings that name node `node_id`, if any."""
    found = marks.get(node_id)
    return worst(found) if found else None
