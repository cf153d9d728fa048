"""The layout budget's elide on long graphs: its walk stops once it has the nodes it keeps, and
keeps exactly those a whole breadth-first walk over the drawn edges puts first."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import pytest
from helpers.graphs import chain, comb, spine

from graphviz_grad.model import Graph
from graphviz_grad.views import fit_budget
from graphviz_grad.views._model import drawn_edges


def nearest(graph: Graph, keep: int) -> list[int]:
    """The reference: every node ordered breadth first from the root over every drawn edge."""
    owner = list(range(len(graph.nodes)))
    inputs: dict[int, list[int]] = {}
    for e in drawn_edges(graph, owner):
        inputs.setdefault(e.dst, []).append(e.src)
    order, seen, queue = [graph.root], {graph.root}, deque([graph.root])
    while queue:
        for src in inputs.get(queue.popleft(), ()):
            if src not in seen:
                seen.add(src)
                order.append(src)
                queue.append(src)
    order += [i for i in owner if i not in seen]
    return sorted(order[:keep])


@pytest.mark.parametrize("budget", [2, 50, 400])
@pytest.mark.parametrize("make", [lambda: chain(3000), lambda: comb(1000), lambda: spine(1500)])
def test_elide_keeps_the_nodes_nearest_the_root(make: Callable[[], Graph], budget: int) -> None:
    graph = make()
    view = fit_budget(graph, budget=budget)
    assert list(view.shown) == nearest(graph, budget - 1)
    elided = view.groups[-1]
    assert elided.kind == "elided"
    assert len(elided.members) == len(graph.nodes) - (budget - 1)
