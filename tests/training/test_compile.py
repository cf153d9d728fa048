"""torch.compile under gradviz: compiled exactly as without it (same graphs, no graph break, no
warning), and the graph holds what autograd really has, with torch's own values and gradients."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from helpers.oracle import close
from torch import nn

from graphviz_grad.capture import Recorder

torch_dynamo = pytest.importorskip("torch._dynamo")

BACKENDS = ["eager", "aot_eager"]


def _counting(backend: str, graphs: list[Any]) -> Callable[..., Any]:
    from torch._dynamo.backends.registry import lookup_backend

    def compiler(gm: Any, example_inputs: Any) -> Any:
        graphs.append(gm)
        return lookup_backend(backend)(gm, example_inputs)

    return compiler


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))


def _run(backend: str, recorded: bool) -> tuple[list[Any], Any, dict[str, Any], list[str]]:
    """Compile, run forward and backward; returns the graphs compiled, the recorder, the
    tensors to compare and the warnings raised."""
    torch_dynamo.reset()
    torch_dynamo.utils.counters.clear()
    graphs: list[Any] = []
    model = _model()
    compiled = torch.compile(model, backend=_counting(backend, graphs))
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    rec = Recorder(namespaces=[{"model": model}]) if recorded else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if rec is not None:
            rec.__enter__()
        try:
            out = compiled(x)
            loss = out.pow(2).mean()
            (g_out,) = torch.autograd.grad(loss, [out], retain_graph=True)
            loss.backward()
        finally:
            if rec is not None:
                rec.__exit__(None, None, None)
    seen = {"out": out.detach(), "g_out": g_out, "loss": loss.detach()}
    seen.update({n: p.grad for n, p in model.named_parameters()})
    return graphs, rec, seen, [str(w.message) for w in caught]


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_as_without_gradviz(backend: str) -> None:
    plain_graphs, _, plain, _ = _run(backend, recorded=False)
    graphs, rec, seen, caught = _run(backend, recorded=True)
    assert len(graphs) == len(plain_graphs) == 1
    assert [len(g.graph.nodes) for g in graphs] == [len(g.graph.nodes) for g in plain_graphs]
    assert dict(torch_dynamo.utils.counters["graph_break"]) == {}
    assert caught == []
    assert len(rec.calls) == 2  # the test's own two; AOT tracing its backward is not one
    for name in plain:
        assert torch.allclose(seen[name], plain[name]), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_and_gradients_are_torchs(backend: str) -> None:
    _, rec, seen, _ = _run(backend, recorded=True)
    graph = rec.graph(-1)
    root = graph.nodes[graph.root]
    assert close(root.value, seen["loss"])
    for leaf in graph.leaves:
        name = leaf.names[0].removeprefix("model.")
        assert close(leaf.grad, seen[name]), leaf.names
    out_node = graph.nodes[graph.inputs[graph.inputs[root.id][0].src][0].src]
    assert close(out_node.value, seen["out"]) and close(out_node.grad, seen["g_out"])
    assert out_node.where is not None and "test_compile.py" in out_node.where


def test_aot_region_is_one_compiled_function_node() -> None:
    _, rec, _, _ = _run("aot_eager", recorded=True)
    ops = [n.op for n in rec.graph(-1).nodes if n.kind == "op"]
    assert ops == ["MeanBackward0", "PowBackward0", "CompiledFunctionBackward"]
    node = rec.graph(-1).find("CompiledFunctionBackward")
    assert node is not None and node.module == "model"
    from graphviz_grad.teach.explain import explain_text

    text = explain_text(rec.graph(-1), width=200)
    assert "CompiledFunctionBackward is the backward that torch.compile generated" in text


def test_eager_backend_keeps_every_op() -> None:
    _, rec, _, _ = _run("eager", recorded=True)
    ops = [n.op for n in rec.graph(-1).nodes if n.kind == "op"]
    assert ops.count("AddmmBackward0") == 2 and "TanhBackward0" in ops


def test_compiled_function_not_module() -> None:
    torch_dynamo.reset()
    w = torch.tensor([0.5, -1.0], requires_grad=True)

    @torch.compile(backend="aot_eager")
    def f(x: torch.Tensor) -> torch.Tensor:
        return (x * w).sin().sum()

    with Recorder() as rec:
        loss = f(torch.tensor([1.0, 2.0]))
        loss.backward()
    leaf = rec.graph(-1).leaves[0]
    assert close(leaf.grad, w.grad)
    assert close(rec.graph(-1).nodes[0].value, loss.detach())
