"""Custom `autograd.Function`s: value, gradient, file:line and saved tensors on their node,
checked against PyTorch's own gradients; `explain` shows what their backward computed."""

from __future__ import annotations

import sys
from typing import Any

import torch
from helpers.oracle import Oracle, close, mismatches
from torch.autograd.function import once_differentiable

from graphviz_grad.capture import Recorder
from graphviz_grad.model import Graph, Node
from graphviz_grad.teach.explain import explain_text


class LegendrePolynomial3(torch.autograd.Function):
    """The PyTorch tutorial's Function (saves its input)."""

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(input)
        return 0.5 * (5 * input**3 - 3 * input)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (input,) = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input**2 - 1)


class Exp(torch.autograd.Function):
    """Saves its own output, as torch's docs show."""

    @staticmethod
    def forward(ctx: Any, i: torch.Tensor) -> torch.Tensor:
        result = i.exp()
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (result,) = ctx.saved_tensors
        return grad_output * result


class MulAdd(torch.autograd.Function):
    """Two inputs, two outputs, a once-differentiable backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.save_for_backward(x, y)
        return x * y, x + y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_mul: torch.Tensor, g_add: torch.Tensor) -> tuple[Any, Any]:
        x, y = ctx.saved_tensors
        return g_mul * y + g_add, g_mul * x + g_add


class Cube(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LegendrePolynomial3.apply(x)


def _node(graph: Graph, op: str) -> Node:
    found = [n for n in graph.nodes if n.op == op]
    assert len(found) == 1, [n.op for n in graph.nodes]
    return found[0]


def _here() -> int:
    return sys._getframe(1).f_lineno


def test_legendre_node_matches_torch() -> None:
    x = torch.linspace(-1, 1, 5)
    a = torch.tensor(0.5, requires_grad=True)
    b = torch.tensor(-0.3, requires_grad=True)
    with Recorder() as rec, Oracle() as oracle:
        u = a + b * x
        y_pred = LegendrePolynomial3.apply(u)
        line = _here() - 1
        loss = (y_pred - torch.sin(x)).pow(2).sum()
        g_y, g_u = torch.autograd.grad(loss, [y_pred, u], retain_graph=True)
        loss.backward()
    graph = rec.graph(-1)
    assert mismatches(graph, oracle.expected[-1]) == []
    node = _node(graph, "LegendrePolynomial3Backward")
    assert (node.file or "").endswith("test_custom_function.py") and node.line == line
    assert close(node.value, y_pred.detach()) and close(node.grad, g_y)
    (edge,) = graph.inputs[node.id]
    assert close(edge.grad, g_u)
    assert [s.name for s in node.saved] == ["saved_tensors[0]"]
    assert node.saved[0].node == edge.src  # the saved input is the AddBackward0 output


def test_function_saving_its_output_and_its_leaf_grads() -> None:
    w = torch.tensor([0.1, -0.2, 0.3], requires_grad=True)
    with Recorder() as rec:
        e = Exp.apply(w * 2)
        loss = e.sum()
        loss.backward()
    node = _node(rec.graph(-1), "ExpBackward")
    assert node.names == ("e",)
    ref = (w.detach() * 2).exp()
    assert close(node.value, ref) and close(node.grad, torch.ones(3))
    assert node.saved[0].node == node.id  # it saved its own output
    leaf = next(n for n in rec.graph(-1).leaves if n.names == ("w",))
    assert close(leaf.grad, 2 * ref)
    assert close(leaf.grad, w.grad)


def test_two_outputs_once_differentiable() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = torch.tensor([3.0, -1.0], requires_grad=True)
    with Recorder() as rec:
        prod, total = MulAdd.apply(x, y)
        loss = (prod * 3 + total**2).sum()
        g_prod, g_total = torch.autograd.grad(loss, [prod, total], retain_graph=True)
        loss.backward()
    node = _node(rec.graph(-1), "MulAddBackward")
    assert [o.value is not None for o in node.outputs] == [True, True]
    assert close(node.outputs[0].value, (x * y).detach())
    assert close(node.outputs[1].value, (x + y).detach())
    assert close(node.outputs[0].grad, g_prod) and close(node.outputs[1].grad, g_total)
    assert [s.name for s in node.saved] == ["saved_tensors[0]", "saved_tensors[1]"]
    assert close(rec.graph(-1).leaves[0].grad, x.grad)


def test_function_inside_a_module_records_the_module() -> None:
    cube = Cube()
    x = torch.tensor([0.5, -0.5], requires_grad=True)
    with Recorder(namespaces=[{"cube": cube}]) as rec:
        loss = cube(x).sum()
        loss.backward()
    node = _node(rec.graph(-1), "LegendrePolynomial3Backward")
    assert node.module_type == "Cube"


def test_apply_is_restored_after_recording() -> None:
    before = torch.autograd.Function.__dict__["apply"]
    with Recorder():
        assert torch.autograd.Function.__dict__["apply"] is not before
    assert torch.autograd.Function.__dict__["apply"] is before


def test_explain_shows_what_the_backward_computed() -> None:
    x = torch.linspace(-1, 1, 3)
    a = torch.tensor(0.5, requires_grad=True)
    with Recorder() as rec:
        y_pred = LegendrePolynomial3.apply(a * x)
        loss = y_pred.sum()
        loss.backward()
    text = explain_text(rec.graph(-1), width=200)
    assert "LegendrePolynomial3.backward is your own code" in text
    assert "(?)" not in text
    assert "grad in  ∂loss/∂y_pred = [1.0, 1.0, 1.0]" in text
    assert "grad out ∂loss/∂#" in text and "(input 0)" in text
    assert "saved    saved_tensors[0] = #" in text
