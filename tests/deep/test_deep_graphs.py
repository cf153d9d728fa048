"""Deep graphs: a long chain is captured, written as JSON and as a tree, and freed, without any
recursion on its depth (Python's or the C stack's).

The 100,000-op chain runs in CI; the 1,000,000-op chain takes minutes and gigabytes, so it runs
only with GRADVIZ_DEEP_1M=1 (and in `python benchmarks/run.py`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from graphviz_grad.capture import CaptureOptions, capture_script, in_big_stack
from graphviz_grad.render import to_dot, to_json, tree_text
from graphviz_grad.views import fit_budget

SCRIPT = """\
import torch

x = torch.tensor(1.0, requires_grad=True)
y = x
for _ in range({steps}):
    y = y * 1.0001 + 0.1

loss = y
loss.backward()
"""
#: Lines the tree prints beyond one per node and one per edge (none today; a margin for notes).
TREE_SLACK = 5


def capture_chain(tmp_path: Path, ops: int) -> dict[str, object]:
    """Capture the chain, write JSON and tree, free everything: all in the big-stack thread."""
    script = tmp_path / "chain.py"
    script.write_text(SCRIPT.format(steps=ops // 2), encoding="utf-8")

    def job() -> dict[str, object]:
        captured = capture_script(script, [], CaptureOptions())
        graph = captured.graph
        x_grad = float(captured.run.namespace["x"].grad)
        captured.run.namespace.clear()  # frees the autograd graph, deep recursion in C++
        text = to_json(graph)
        tree = tree_text(graph, width=100)
        view = fit_budget(graph, budget=1500)
        return {
            "graph": graph,
            "x_grad": x_grad,
            "json": json.loads(text),
            "tree_lines": tree.count("\n"),
            "view": view,
            "dot": to_dot(graph, view=view),
        }

    return in_big_stack(job)


def check_chain(result: dict[str, object], ops: int) -> None:
    graph = result["graph"]
    data = result["json"]
    assert len(graph.nodes) == ops + 1  # type: ignore[attr-defined]
    kinds = [n["kind"] for n in data["nodes"]]  # type: ignore[index]
    assert kinds.count("op") + kinds.count("leaf") == ops + 1
    assert set(kinds) <= {"op", "leaf", "input"}  # inputs: the chain's Python numbers
    ids = {n["id"] for n in data["nodes"] if n["kind"] != "input"}  # type: ignore[index]
    graph_edges = [e for e in data["edges"] if e["src"] in ids]  # type: ignore[index]
    assert len(graph_edges) == ops
    leaf = graph.nodes[-1]  # type: ignore[attr-defined]
    assert leaf.kind == "leaf"
    assert leaf.grad.data == pytest.approx(result["x_grad"], rel=1e-5)
    assert result["x_grad"] == pytest.approx(1.0001 ** (ops // 2), rel=1e-3)
    assert result["tree_lines"] <= len(graph.nodes) + len(graph.edges) + TREE_SLACK  # type: ignore[attr-defined,operator]
    view = result["view"]
    assert view.size == 1500  # type: ignore[attr-defined]
    assert view.groups[-1].kind == "elided"  # type: ignore[attr-defined]
    lines = result["dot"].splitlines()  # type: ignore[attr-defined]
    drawn = [x for x in lines if " -> " in x and "invis" not in x and "rank=same" not in x]
    assert len(drawn) == 1499  # the long chain is wrapped into columns by invisible edges


@pytest.mark.slow
def test_chain_100k(tmp_path: Path) -> None:
    check_chain(capture_chain(tmp_path, 100_000), 100_000)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("GRADVIZ_DEEP_1M") != "1",
    reason="minutes and gigabytes: set GRADVIZ_DEEP_1M=1 (the benchmark runs it too)",
)
def test_chain_1m(tmp_path: Path) -> None:
    check_chain(capture_chain(tmp_path, 1_000_000), 1_000_000)
