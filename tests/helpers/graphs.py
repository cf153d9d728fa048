"""Small hand-built graphs for the render tests (no torch needed)."""

from __future__ import annotations

import math
from dataclasses import replace

from graphviz_grad.model import Edge, Finding, Graph, Node, Output, Saved, TensorSummary


def scalar(x: float, dtype: str = "float32") -> TensorSummary:
    """A 0-dim tensor holding `x`."""
    finite = math.isfinite(x)
    return TensorSummary(
        shape=(),
        dtype=dtype,
        numel=1,
        data=x,
        min=x if finite else None,
        max=x if finite else None,
        mean=x if finite else None,
        norm=abs(x) if finite else None,
        nan=int(math.isnan(x)),
        inf=int(math.isinf(x)),
    )


def vector(xs: list[float], dtype: str = "float32") -> TensorSummary:
    """A small 1-d tensor whose data is kept."""
    finite = [x for x in xs if math.isfinite(x)]
    return TensorSummary(
        shape=(len(xs),),
        dtype=dtype,
        numel=len(xs),
        data=list(xs),
        min=min(finite) if finite else None,
        max=max(finite) if finite else None,
        mean=sum(finite) / len(finite) if finite else None,
        norm=math.sqrt(sum(x * x for x in finite)),
        nan=sum(math.isnan(x) for x in xs),
        inf=sum(math.isinf(x) for x in xs),
    )


def big(shape: tuple[int, ...], mean: float = 0.01, nan: int = 0) -> TensorSummary:
    """A large tensor: statistics only, no data."""
    return TensorSummary(
        shape=shape,
        dtype="float32",
        numel=math.prod(shape),
        min=-0.5,
        max=0.75,
        mean=mean,
        norm=12.25,
        nan=nan,
    )


def lesson() -> Graph:
    """loss = (x*w - y)**2 at x=2, y=4, w=1 (x and y need no grad)."""
    nodes = (
        Node(
            0,
            "op",
            "PowBackward0",
            ("loss",),
            (),
            "float32",
            scalar(4.0),
            scalar(1.0),
            outputs=(Output(scalar(4.0), scalar(1.0)),),
            file="lesson.py",
            line=7,
            order=1,
            aten="aten::pow.Tensor_Scalar",
            saved=(
                Saved("self", "tensor", scalar(-2.0), node=1),
                Saved("exponent", "value", text="2"),
            ),
        ),
        Node(
            1,
            "op",
            "SubBackward0",
            (),
            (),
            "float32",
            scalar(-2.0),
            scalar(-4.0),
            outputs=(Output(scalar(-2.0), scalar(-4.0)),),
            file="lesson.py",
            line=7,
            order=2,
            aten="aten::sub.Tensor",
            saved=(Saved("alpha", "value", text="1"),),
        ),
        Node(
            2,
            "op",
            "MulBackward0",
            ("y_hat",),
            (),
            "float32",
            scalar(2.0),
            scalar(-4.0),
            outputs=(Output(scalar(2.0), scalar(-4.0)),),
            file="lesson.py",
            line=6,
            order=3,
            aten="aten::mul.Tensor",
            saved=(
                Saved("self", "tensor", scalar(2.0)),
                Saved("other", "tensor", state="freed", node=3),
            ),
        ),
        Node(3, "leaf", None, ("w",), (), "float32", scalar(1.0), scalar(-8.0), order=4),
    )
    edges = (
        Edge(1, 0, 0, 0, scalar(-4.0)),
        Edge(2, 1, 0, 0, scalar(-4.0)),
        Edge(3, 2, 1, 0, scalar(-8.0)),
    )
    return Graph(
        nodes, edges, roots=(0,), call=1, grad_source="backward", call_file="lesson.py", call_line=8
    )


def diamond() -> Graph:
    """z = a*b + a*c, with `a` shared: a DAG where node #3 (leaf a) is reached twice."""
    v = vector([1.0, 2.0, 3.0])
    g = vector([0.5, -0.5, float("nan")])
    nodes = (
        Node(0, "op", "AddBackward0", ("z",), (3,), "float32", v, v, outputs=(Output(v, v),)),
        Node(1, "op", "MulBackward0", (), (3,), "float32", v, v, outputs=(Output(v, v),)),
        Node(2, "op", "MulBackward0", (), (3,), "float32", v, v, outputs=(Output(v, v),)),
        Node(3, "leaf", None, ("a",), (3,), "float32", v, g),
        Node(4, "leaf", None, ("b",), (3,), "float32", v, v),
        Node(5, "leaf", None, ("c", "c_alias"), (3,), "float32", v, v),
    )
    edges = (
        Edge(1, 0, 0),
        Edge(2, 0, 1),
        Edge(3, 1, 0),
        Edge(4, 1, 1),
        Edge(3, 2, 0),
        Edge(5, 2, 1),
    )
    findings = (
        Finding(
            "GV101", "error", "NaN in the gradient of a.", "d.py", 3, (3,), "Check the inputs."
        ),
    )
    return Graph(
        nodes, edges, roots=(0,), grad_source="gradviz", findings=findings, notes=("a note",)
    )


def multi_output() -> Graph:
    """a, b = x.split(2); loss = (a * b).sum(): SplitBackward0 has two outputs."""
    a, b = vector([1.0, 2.0]), vector([3.0, 4.0])
    ga, gb = vector([3.0, 4.0]), vector([1.0, 2.0])
    x = vector([1.0, 2.0, 3.0, 4.0])
    nodes = (
        Node(
            0,
            "op",
            "SumBackward0",
            ("loss",),
            (),
            "float32",
            scalar(11.0),
            scalar(1.0),
            outputs=(Output(scalar(11.0), scalar(1.0)),),
        ),
        Node(
            1,
            "op",
            "MulBackward0",
            (),
            (2,),
            "float32",
            vector([3.0, 8.0]),
            vector([1.0, 1.0]),
            outputs=(Output(vector([3.0, 8.0]), vector([1.0, 1.0])),),
        ),
        Node(
            2,
            "op",
            "SplitBackward0",
            ("a", "b"),
            (2,),
            "float32",
            a,
            ga,
            outputs=(Output(a, ga), Output(b, gb)),
        ),
        Node(3, "leaf", None, ("x",), (4,), "float32", x, vector([3.0, 4.0, 1.0, 2.0])),
    )
    edges = (
        Edge(1, 0, 0, 0, vector([1.0, 1.0])),
        Edge(2, 1, 0, 0, ga),
        Edge(2, 1, 1, 1, gb),
        Edge(3, 2, 0, 0, vector([3.0, 4.0, 1.0, 2.0])),
    )
    return Graph(nodes, edges, roots=(0,), grad_source="backward")


def chain(n: int) -> Graph:
    """n nodes in a line: #0 <- #1 <- ... <- #n-1 (a leaf)."""
    one = scalar(1.0)
    ops = [
        Node(i, "op", "MulBackward0", (), (), "float32", one, one, outputs=(Output(one, one),))
        for i in range(n - 1)
    ]
    nodes = (*ops, Node(n - 1, "leaf", None, ("x",), (), "float32", one, one))
    edges = tuple(Edge(i + 1, i, 0, 0, one) for i in range(n - 1))
    return Graph(nodes, edges, roots=(0,))


NASTY = ('say "hi"', "<script>alert(1)</script>", "{}", "back\\slash", "two\nlines", "ŷ∂ & co")


def nasty() -> Graph:
    """Names that break naive DOT, HTML, JSON or terminal output."""
    v = scalar(3.0)
    nodes = (
        Node(
            0,
            "op",
            "MulBackward0",
            NASTY[:3],
            (),
            "float32",
            v,
            scalar(1.0),
            outputs=(Output(v, scalar(1.0)),),
            file='we"ird<>.py',
            line=1,
        ),
        Node(1, "leaf", None, NASTY[3:], (), "float32", scalar(1.5), scalar(2.0)),
    )
    return Graph(
        nodes, (Edge(1, 0, 0, 0, scalar(2.0)),), roots=(0,), notes=('note with <tags> & "quotes"',)
    )


def large_values() -> Graph:
    """A 64x128 weight with statistics only, and a gradient holding NaN."""
    nodes = (
        Node(
            0,
            "op",
            "MmBackward0",
            ("out",),
            (8, 128),
            "float32",
            big((8, 128)),
            big((8, 128), nan=3),
            outputs=(Output(big((8, 128)), big((8, 128), nan=3)),),
        ),
        Node(
            1,
            "leaf",
            None,
            ("weight",),
            (64, 128),
            "float32",
            big((64, 128)),
            big((64, 128), nan=1),
        ),
    )
    return Graph(nodes, (Edge(1, 0, 0),), roots=(0,))


def lesson_with_inputs() -> Graph:
    """`lesson` with what capture records of its inputs: x into ×, y into −, 2 into **."""
    graph = lesson()
    two = TensorSummary((), "int64", 1, 2, min=2, max=2, mean=2, norm=2)
    consts = {
        0: ((1, two),),  # pow(r, 2)
        1: ((1, scalar(4.0)),),  # sub(y_hat, y)
        2: ((0, scalar(2.0)),),  # mul(x, w)
    }
    names: dict[int, tuple[tuple[int, str | None], ...]] = {
        0: ((1, None),),
        1: ((1, "y"),),
        2: ((0, "x"),),
    }
    nodes = tuple(
        replace(n, constants=consts[n.id], operands=names[n.id]) if n.id in consts else n
        for n in graph.nodes
    )
    return replace(graph, nodes=nodes)


def spine(n: int) -> Graph:
    """An unrolled loop: n `AddBackward0` in a line, each also taking a leaf `b<i>`."""
    one = scalar(1.0)
    nodes: list[Node] = []
    edges: list[Edge] = []
    for i in range(n):
        nodes.append(Node(2 * i, "op", "AddBackward0", (), (), "float32", one, one))
        nodes.append(Node(2 * i + 1, "leaf", None, (f"b{i}",), (), "float32", one, one))
        edges.append(Edge(2 * i + 1, 2 * i, 0, 0, one))
        if i + 1 < n:
            edges.append(Edge(2 * i + 2, 2 * i, 0, 1, one))
    return Graph(tuple(nodes), tuple(edges), roots=(0,))


def comb(n: int) -> Graph:
    """n `MulBackward0` in a line, each also taking a side branch `ExpBackward0 <- leaf`."""
    one = scalar(1.0)
    nodes: list[Node] = []
    edges: list[Edge] = []
    for i in range(n):
        nodes.append(Node(3 * i, "op", "MulBackward0", (), (), "float32", one, one))
        nodes.append(Node(3 * i + 1, "op", "ExpBackward0", (), (), "float32", one, one))
        nodes.append(Node(3 * i + 2, "leaf", None, (f"x{i}",), (), "float32", one, one))
        edges.append(Edge(3 * i + 1, 3 * i, 0, 0, one))
        edges.append(Edge(3 * i + 2, 3 * i + 1, 0, 0, one))
        if i + 1 < n:
            edges.append(Edge(3 * i + 3, 3 * i, 0, 1, one))
    return Graph(tuple(nodes), tuple(edges), roots=(0,))
