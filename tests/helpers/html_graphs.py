"""Hand-built graphs for the HTML tests: hostile strings everywhere, nn.Module groups, a big
net of repeated blocks, and `decode`, which reads the page's columnar data back per node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphviz_grad.model import Edge, Finding, Graph, Node, Output, Saved, TensorSummary
from graphviz_grad.render.format import fmt_summary, fmt_type
from helpers.graphs import scalar, vector

#: Strings that break naive DOT, SVG, HTML, JSON or JavaScript: quotes, markup that would end a
#: <script> or open a comment, braces, backslashes, newlines, non-ASCII, a JSON line separator.
HOSTILE = (
    "q\"uote's",
    "<script>window.gvPwned=1</script>",
    "</script><img src=x onerror=window.gvPwned=2>",
    "<!--{}-->",
    "back\\slash\\n",
    "two\nlines\r\ttab",
    "ŷ∂ λ 数据 & co \u2028 end",
    "]]></svg>${x}`",
)
BAD = "".join(HOSTILE)


def hostile() -> Graph:
    """Every user-controlled string of the model set to hostile text."""
    v, g = vector([1.0, 2.0]), vector([0.5, -0.5])
    where = dict(file=f"/tmp/{HOSTILE[0]}/{HOSTILE[5]}/{HOSTILE[6]}.py", line=3)
    nodes = (
        Node(
            0,
            "op",
            f"{HOSTILE[1]}Backward",
            HOSTILE[:2],
            (),
            "float32",
            scalar(4.0),
            scalar(1.0),
            outputs=(Output(scalar(4.0), scalar(1.0)),),
            saved=(Saved(BAD, "value", text=BAD), Saved("self", "tensor", v, node=1)),
            module=f"net.{HOSTILE[3]}",
            module_type=HOSTILE[4],
            aten=BAD,
            **where,
        ),
        Node(
            1,
            "op",
            f"{HOSTILE[2]}Backward0",
            HOSTILE[2:5],
            (2,),
            "float32",
            v,
            g,
            outputs=(Output(v, g),),
            module=f"net.{HOSTILE[3]}.{HOSTILE[7]}",
            module_type="Linear",
            **where,
        ),
        Node(2, "leaf", None, HOSTILE[5:], (2,), "float32", v, g),
    )
    edges = (Edge(1, 0, 0, 0, v), Edge(2, 1, 0, 0, g))
    findings = (Finding("GV999", "warning", BAD, HOSTILE[6], 7, (2, 0), BAD),)
    return Graph(
        nodes,
        edges,
        roots=(0,),
        call=1,
        grad_source="backward",
        call_file=BAD,
        call_line=9,
        findings=findings,
        notes=HOSTILE,
    )


def modules() -> Graph:
    """A two-layer model: model.0 (Linear) -> model.1 (ReLU) -> loss, parameters as leaves."""
    s = scalar(0.5)
    op = dict(shape=(), dtype="float32", value=s, grad=s, outputs=(Output(s, s),))
    top = ("model", "Sequential", 1)
    relu = dict(module="model.1", module_type="ReLU", scopes=(top, ("model.1", "ReLU", 1)))
    linear = dict(module="model.0", module_type="Linear", scopes=(top, ("model.0", "Linear", 1)))
    nodes = (
        Node(0, "op", "SumBackward0", ("loss",), **op),
        Node(1, "op", "ReluBackward0", (), **relu, **op),  # type: ignore[arg-type]
        Node(2, "op", "MulBackward0", (), **linear, **op),  # type: ignore[arg-type]
        Node(3, "leaf", None, ("model.0.weight",), (), "float32", s, s),
        Node(4, "leaf", None, ("x",), (), "float32", s, scalar(float("nan"))),
    )
    edges = (Edge(1, 0, 0), Edge(2, 1, 0), Edge(3, 2, 0), Edge(4, 2, 1))
    return Graph(nodes, edges, roots=(0,), grad_source="gradviz")


def blocks(count: int = 40) -> Graph:
    """`net`: `count` identical Blocks (a Linear then a Tanh) in an nn.Sequential, then a sum.

    Ids in walk order from the loss: per block (last first) tanh, add (bias), mm (weight),
    then the two parameter leaves; `x` (a leaf) feeds the first block.
    """
    s = scalar(0.5)
    nodes: list[Node] = [Node(0, "op", "SumBackward0", ("loss",), (), "float32", s, scalar(1.0))]
    edges: list[Edge] = []
    below = 0
    for b in reversed(range(count)):
        net, block = ("net", "Sequential", 1), (f"net.{b}", "Block", 1)
        fc, act = (f"net.{b}.fc", "Linear", 1), (f"net.{b}.act", "Tanh", 1)
        i = len(nodes)
        grad = scalar(0.01 * (b + 1))
        op = dict(shape=(), dtype="float32", value=s, grad=grad, order=None)
        nodes += [
            Node(i, "op", "TanhBackward0", (), scopes=(net, block, act), **op),  # type: ignore[arg-type]
            Node(i + 1, "op", "AddBackward0", (), scopes=(net, block, fc), **op),  # type: ignore[arg-type]
            Node(i + 2, "op", "MulBackward0", (), scopes=(net, block, fc), **op),  # type: ignore[arg-type]
            Node(i + 3, "leaf", None, (f"net.{b}.fc.bias",), (), "float32", s, grad),
            Node(i + 4, "leaf", None, (f"net.{b}.fc.weight",), (), "float32", s, grad),
        ]
        edges += [
            Edge(i, below, 0),
            Edge(i + 1, i, 0),
            Edge(i + 2, i + 1, 0),
            Edge(i + 3, i + 1, 1),
            Edge(i + 4, i + 2, 1),
        ]
        below = i + 2
    x = len(nodes)
    nodes.append(Node(x, "leaf", None, ("x",), (), "float32", s, None))
    edges.append(Edge(x, below, 0))
    return Graph(tuple(nodes), tuple(edges), roots=(0,), grad_source="backward")


def layers(pairs: int = 100) -> Graph:
    """`net`: an nn.Sequential of `pairs` (Linear, Tanh) children, net.0 ... net.{2 pairs - 1},
    as the issue's 400-block net: no block module to fold, one long chain of modules."""
    s = scalar(0.5)
    nodes: list[Node] = [Node(0, "op", "SumBackward0", ("loss",), (), "float32", s, scalar(1.0))]
    edges: list[Edge] = []
    below = 0
    net = ("net", "Sequential", 1)
    for b in reversed(range(pairs)):
        lin, act = (f"net.{2 * b}", "Linear", 1), (f"net.{2 * b + 1}", "Tanh", 1)
        i = len(nodes)
        op = dict(shape=(), dtype="float32", value=s, grad=s)
        nodes += [
            Node(i, "op", "TanhBackward0", (), scopes=(net, act), **op),  # type: ignore[arg-type]
            Node(i + 1, "op", "AddBackward0", (), scopes=(net, lin), **op),  # type: ignore[arg-type]
            Node(i + 2, "op", "MulBackward0", (), scopes=(net, lin), **op),  # type: ignore[arg-type]
            Node(i + 3, "leaf", None, (f"net.{2 * b}.weight",), (), "float32", s, s),
        ]
        edges += [
            Edge(i, below, 0),
            Edge(i + 1, i, 0),
            Edge(i + 2, i + 1, 0),
            Edge(i + 3, i + 2, 1),
        ]
        below = i + 2
    x = len(nodes)
    nodes.append(Node(x, "leaf", None, ("x",), (), "float32", s, None))
    edges.append(Edge(x, below, 0))
    return Graph(tuple(nodes), tuple(edges), roots=(0,), grad_source="backward")


def decode(data: dict[str, Any]) -> dict[str, Any]:
    """The page's columns read back: one dict per node, the edges, the module calls."""
    S = data["strings"]

    def text(col: str, i: int) -> str | None:
        k = data[col][i]
        return None if k < 0 else S[k]

    nodes = [
        {
            "kind": text("kind", i),
            "header": text("op", i),
            "names": text("names", i),
            "type": text("type", i),
            "value": text("value", i),
            "grad": text("grad", i),
            "order": data["order"][i],
            "scopes": _scopes(data, data["call"][i]),
        }
        for i in range(data["count"])
    ]
    e = data["edges"]
    edges = list(zip(e["src"], e["dst"], e["index"], e["output"], strict=True))
    return {"nodes": nodes, "edges": edges}


def _scopes(data: dict[str, Any], call: int) -> list[tuple[str, str, int]]:
    calls, S = data["calls"], data["strings"]
    out = []
    while call >= 0:
        out.append((S[calls["path"][call]], S[calls["type"][call]], calls["number"][call]))
        call = calls["parent"][call]
    return out[::-1]


def expected(graph: Graph, precision: int = 4) -> dict[str, Any]:
    """What `decode` must give for `graph`: the DOT labels' texts, node by node, with the input
    nodes (x, targets, numbers) after the autograd nodes when the graph has at most 50 nodes."""

    def fmt(s: TensorSummary | None) -> str:
        return fmt_summary(s, precision)

    small = len(graph.nodes) <= 50
    nodes = [_expected_node(n, fmt) for n in (*graph.nodes, *(graph.input_nodes if small else ()))]
    edges = [(e.src, e.dst, e.index, e.output_nr) for e in graph.edges]
    if small and graph.input_edges:
        both = (*graph.edges, *graph.input_edges)
        ordered = sorted(both, key=lambda e: (e.dst, e.index))
        edges = [(e.src, e.dst, e.index, e.output_nr) for e in ordered]
    return {"nodes": nodes, "edges": edges}


def _expected_node(n: Node, fmt: Callable[[TensorSummary | None], str]) -> dict[str, Any]:
    constant = n.kind == "input" and not n.names
    header = n.op or "?" if n.kind == "op" else n.names[0] if n.names else n.kind
    return {
        "kind": "constant" if constant else n.kind,
        "header": fmt(n.value) if constant else header,
        "names": ", ".join(n.names if n.kind == "op" or len(n.names) > 1 else ()),
        "type": "constant" if constant else fmt_type(n.shape, n.dtype),
        "value": fmt(n.value),
        "grad": fmt(n.grad),
        "order": -1 if n.order is None else n.order,
        "scopes": list(n.scopes),
    }
