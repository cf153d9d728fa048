"""Formulas: every op of the issue has a rule, and for scalars each local derivative times the
upstream gradient is the gradient PyTorch recorded on the edge (the chain rule, checked)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

import graphviz_grad as gg
from graphviz_grad.model import Graph
from graphviz_grad.teach.explain import Explanation
from graphviz_grad.teach.expr import evaluate
from graphviz_grad.teach.formulas import RULES, Ctx, formula, scalar, symbol

SCALAR_EXPRESSIONS = [
    "a + b", "a - b", "a * b", "a / b", "-a", "a ** 3", "a ** b", "exp(a)", "log(a)",
    "sqrt(a)", "abs(a - 3)", "sin(a)", "cos(a)", "tanh(a)", "sigmoid(a)", "relu(a)",
    "leaky_relu(a - 3)", "gelu(a)", "2 * a - b / 4", "a * a * b",
]  # fmt: skip


def _graph(expr: str) -> Graph:
    return evaluate(expr, {}, {"a": 1.5, "b": 0.5}).graph


def _checked_edges(graph: Graph) -> int:
    """Assert local · upstream == recorded edge gradient for every scalar edge; count them."""
    checked = 0
    for node in graph.nodes:
        if node.kind != "op":
            continue
        ctx = Ctx(graph, node)
        found = formula(ctx)
        assert found is not None, node.op
        up = scalar(node.grad)
        for edge in graph.inputs[node.id]:
            local = next(x for x in found.locals if x.slot == edge.index)
            assert local.value is not None, (node.op, edge.index)
            got = scalar(edge.grad)
            assert up is not None and got is not None
            assert math.isclose(up * local.value, got, rel_tol=1e-5, abs_tol=1e-6), (
                node.op,
                local,
            )
            checked += 1
    return checked


@pytest.mark.parametrize("expr", SCALAR_EXPRESSIONS)
def test_scalar_chain_products_match_recorded_gradients(expr: str) -> None:
    graph = _graph(expr)
    assert _checked_edges(graph) >= 1


@pytest.mark.parametrize("expr", SCALAR_EXPRESSIONS)
def test_leaf_gradients_match_torch(expr: str) -> None:
    graph = _graph(expr)
    a = torch.tensor(1.5, requires_grad=True)
    b = torch.tensor(0.5, requires_grad=True)
    env = {"a": a, "b": b, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt}
    env |= {"sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    env |= {"relu": torch.relu, "leaky_relu": F.leaky_relu, "gelu": F.gelu}
    env |= {"abs": torch.abs}
    out = eval(expr, {"__builtins__": {}}, env)  # the test's own fixed strings
    grads = torch.autograd.grad(out, [a, b], allow_unused=True)
    for name, g in zip(("a", "b"), grads):
        node = graph.find(name)
        if g is None:
            continue
        assert node is not None and node.grad is not None
        assert scalar(node.grad) == pytest.approx(g.item(), rel=1e-6)


def _tensor_graphs() -> list[Graph]:
    torch.manual_seed(0)
    M = torch.randn(3, 4, requires_grad=True)
    N = torch.randn(4, 2, requires_grad=True)
    v = torch.randn(2, requires_grad=True)
    builds = [
        lambda: (M @ N).sum() + torch.matmul(M, N[:, 0]).mean(),
        lambda: F.linear(M, N.t(), v).sum(),
        lambda: M.t().transpose(0, 1).view(12).reshape(3, 4).unsqueeze(0).squeeze(0)
        .expand(2, 3, 4).sum(dim=1).sum(),
        lambda: M[1].sum() + M[:, 1:3].sum() + M[[0, 2]].sum(),
        lambda: torch.cat([M, M]).sum() + torch.stack([v, v]).sum(),
        lambda: F.softmax(M, dim=1)[0, 1] + F.log_softmax(M, 1)[1, 2],
        lambda: F.mse_loss(M, torch.zeros(3, 4)) + F.cross_entropy(M, torch.tensor([0, 1, 3])),
    ]  # fmt: skip
    graphs = []
    for build in builds:
        with gg.record() as rec:
            graphs.append(rec.trace(build()))
    return graphs


def test_every_op_of_the_issue_has_a_rule() -> None:
    seen: set[str] = set()
    for graph in _tensor_graphs():
        for node in graph.nodes:
            if node.kind == "op":
                seen.add(node.op or "")
                assert formula(Ctx(graph, node)) is not None, node.op
    wanted = {
        "MmBackward0", "MvBackward0", "AddmmBackward0", "TBackward0", "TransposeBackward0",
        "ViewBackward0", "ExpandBackward0", "SqueezeBackward1", "UnsqueezeBackward0",
        "SelectBackward0", "SliceBackward0", "IndexBackward0", "CatBackward0", "StackBackward0",
        "SoftmaxBackward0", "LogSoftmaxBackward0", "MseLossBackward0", "NllLossBackward0",
        "SumBackward0", "SumBackward1", "MeanBackward0",
    }  # fmt: skip
    assert wanted <= seen
    assert wanted <= set(RULES)


def test_matmul_is_written_with_shapes() -> None:
    graph = _tensor_graphs()[0]
    mm = next(n for n in graph.nodes if n.op == "MmBackward0")
    found = formula(Ctx(graph, mm, grad_name="∂L/∂Y"))
    assert found is not None
    rules = {c.slot: (c.rule, c.shapes) for c in found.chains}
    assert rules[0] == ("∂L/∂Y @ Nᵀ", "[3, 4] = [3, 2] @ [2, 4]")
    assert rules[1] == ("Mᵀ @ ∂L/∂Y", "[4, 2] = [4, 3] @ [3, 2]")


def test_unknown_op_says_so_and_still_shows_gradients() -> None:
    w = torch.tensor(2.0, requires_grad=True)
    with gg.record() as rec:
        graph = rec.trace(torch.atan(w) * 3)
    steps = list(Explanation(graph).steps())
    atan = next(s for s in steps if "AtanBackward0" in s.title)
    texts = [t for _, t in atan.lines]
    assert any("no formula for AtanBackward0" in t for t in texts)
    assert any("∂L/∂w ← 0.6" in t for t in texts)  # 3 / (1 + 2²), the recorded gradient
    assert symbol(graph.nodes[0]) == "#0"


def test_negative_dims_and_indices_read_as_the_user_wrote_them() -> None:
    """Autograd hands negative int64 attributes to Python as unsigned (`dim=-1` reads
    18446744073709551615): the capture stores them signed, so the formulas, the labels and the
    JSON say `dim=-1` and `ignore_index=-100`."""
    x = torch.randn(2, 3, requires_grad=True)
    with gg.record() as rec:
        p = F.log_softmax(x, dim=-1)
        loss = F.nll_loss(p, torch.tensor([0, 2])) + x.sum(-1).sum() + x.transpose(-1, 0).sum()
        graph = rec.trace(loss)
    saved = {(n.op, s.name): s.text for n in graph.nodes for s in n.saved if s.kind == "value"}
    assert saved[("LogSoftmaxBackward0", "dim")] == "-1"
    assert saved[("NllLossBackward0", "ignore_index")] == "-100"
    assert saved[("SumBackward1", "dim")] == "(-1,)"
    assert (saved[("TransposeBackward0", "dim0")], saved[("TransposeBackward0", "dim1")]) == (
        "-1",
        "0",
    )
    texts = [t for step in Explanation(graph).steps() for _, t in step.lines]
    assert any("log_softmax(x, dim=-1)" in t for t in texts), texts
    assert not any("18446744073709551" in t for t in texts)


@pytest.mark.parametrize(
    ("build", "forward", "pieces"),
    [
        (lambda x, h: torch.cat([x, h], dim=1), "cat([const, h], dim=1)", {1: "slice 1"}),
        (lambda x, h: torch.cat([h, x], dim=1), "cat([h, …], dim=1)", {0: "slice 0"}),
        (lambda x, h: torch.cat([h, x, h], dim=1), "cat([h, const, h], dim=1)",
         {0: "slice 0", 2: "slice 2"}),
        (lambda x, h: torch.stack([x, h]), "stack([const, h], dim=0)", {1: "index 1"}),
    ],
)  # fmt: skip
def test_cat_keeps_the_place_of_an_input_that_needs_no_gradient(
    build: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    forward: str,
    pieces: dict[int, str],
) -> None:
    """`c = cat([x, h])` with a constant `x`: `h` gets slice 1 of c's gradient, as torch gives
    it; the constant keeps its place in the list and does not take the output's name `c`."""
    x = torch.tensor([[1.0, 2.0]])
    w = torch.tensor([[3.0, 4.0]], requires_grad=True)
    with gg.record() as rec:
        h = w * 1.0
        c = build(x, h)
        graph = rec.trace(c.sum())
    cat = next(n for n in graph.nodes if n.op in ("CatBackward0", "StackBackward0"))
    found = formula(Ctx(graph, cat, out_name="c", grad_name="∂L/∂c"))
    assert found is not None
    assert found.forward == forward
    assert {ch.slot: ch.rule.split("∂L/∂c ")[1].split(" along")[0] for ch in found.chains} == pieces
