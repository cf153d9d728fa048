"""Diagnostics on deep chains: the checks pick their candidates before sorting by backward order,
and run with the collector paused; the findings are those of a plain walk over every node."""

from __future__ import annotations

import gc
from dataclasses import replace

from helpers.graphs import chain, scalar, vector

from graphviz_grad.diagnose import diagnose
from graphviz_grad.model import Graph, Node, Output, TensorSummary

N = 3000


def _with_grad(node: Node, grad: TensorSummary) -> Node:
    outputs = tuple(Output(o.value, grad) for o in node.outputs)
    return replace(node, grad=grad, outputs=outputs)


def scrambled(n: int, bad: dict[int, TensorSummary]) -> Graph:
    """`chain(n)` with gradients `bad` at some ids and an engine order that is not the ids'
    (every third node did not run)."""
    graph = chain(n)
    nodes = []
    for node in graph.nodes:
        order = None if node.id % 3 == 2 else (node.id * 7919) % n + 1
        node = replace(node, order=order)
        nodes.append(_with_grad(node, bad[node.id]) if node.id in bad else node)
    return replace(graph, nodes=tuple(nodes), grad_source="backward")


def first_in_backward_order(graph: Graph, field: str) -> int:
    """The reference: every node sorted by (order, id), the first whose gradient has `field`."""
    big = len(graph.nodes) + 1
    ordered = sorted(graph.nodes, key=lambda n: (n.order if n.order is not None else big, n.id))
    return next(n.id for n in ordered if n.grad is not None and getattr(n.grad, field))


def test_first_nan_and_inf_in_backward_order() -> None:
    nan, inf = scalar(float("nan")), scalar(float("inf"))
    bad = {10: nan, 2500: nan, 1200: inf, 7: inf, 2: nan}  # 2 did not run: last
    graph = scrambled(N, bad)
    found = {f.code: f.nodes for f in diagnose(graph)}
    assert found["grad-nan"] == (first_in_backward_order(graph, "nan"),)
    assert found["grad-inf"] == (first_in_backward_order(graph, "inf"),)


def test_nonfinite_in_a_later_output() -> None:
    graph = chain(50)
    node = graph.nodes[20]
    outputs = (*node.outputs, Output(node.value, scalar(float("nan"))))
    graph = replace(
        graph, nodes=tuple(replace(n, outputs=outputs) if n is node else n for n in graph.nodes)
    )
    assert [f.nodes for f in diagnose(graph) if f.code == "grad-nan"] == [(20,)]


def test_dying_gradient_found_in_a_deep_chain() -> None:
    zero, live = vector([0.0, 0.0]), vector([1.0, 2.0])
    graph = chain(N)
    nodes = [
        _with_grad(replace(n, order=n.id + 1), zero if n.id >= 2000 else live) for n in graph.nodes
    ]
    graph = replace(graph, nodes=tuple(nodes), grad_source="backward")
    found = [f for f in diagnose(graph) if f.code == "grad-zero"]
    assert len(found) == 1
    assert found[0].nodes == (1999, 2000, N - 1)


def test_collector_restored() -> None:
    assert gc.isenabled()
    diagnose(scrambled(20_001, {}))
    assert gc.isenabled()
