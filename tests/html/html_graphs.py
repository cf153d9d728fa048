"""Hand-built graphs for the HTML tests: hostile strings everywhere, and nn.Module groups."""

from __future__ import annotations

from graphs import scalar, vector  # tests/render/graphs.py

from graphviz_grad.model import Edge, Finding, Graph, Node, Output, Saved

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
    nodes = (
        Node(0, "op", "SumBackward0", ("loss",), **op),
        Node(1, "op", "ReluBackward0", (), module="model.1", module_type="ReLU", **op),
        Node(2, "op", "MulBackward0", (), module="model.0", module_type="Linear", **op),
        Node(3, "leaf", None, ("model.0.weight",), (), "float32", s, s),
        Node(4, "leaf", None, ("x",), (), "float32", s, scalar(float("nan"))),
    )
    edges = (Edge(1, 0, 0), Edge(2, 1, 0), Edge(3, 2, 0), Edge(4, 2, 1))
    return Graph(nodes, edges, roots=(0,), grad_source="gradviz")
