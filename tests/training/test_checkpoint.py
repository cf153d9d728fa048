"""Activation checkpointing: checkpointed nodes are marked, their recomputation in backward adds
no node and runs no extra time, and values and gradients are torch's."""

from __future__ import annotations

import torch
from helpers.oracle import Oracle, close, mismatches
from torch import nn
from torch.utils.checkpoint import checkpoint

from graphviz_grad.capture import Recorder


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.tanh(self.lin(x))


def _step(reentrant: bool) -> tuple[Block, Block, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    inner, outer = Block(), Block()
    x = torch.randn(2, 4, requires_grad=True)  # reentrant checkpointing needs an input that does
    h = checkpoint(inner, x, use_reentrant=reentrant)
    out = outer(h)
    loss = out.pow(2).sum()
    loss.backward()
    return inner, outer, h, loss


def test_non_reentrant_region_is_marked_and_matches_torch() -> None:
    with Recorder() as rec, Oracle() as oracle:
        _step(reentrant=False)
    graph = rec.graph(-1)
    assert mismatches(graph, oracle.expected[-1]) == []
    inside = [n for n in graph.nodes if n.checkpointed]
    assert sorted(n.op or "" for n in inside) == ["AddmmBackward0", "TBackward0", "TanhBackward0"]
    outside = [n.op for n in graph.nodes if n.kind == "op" and not n.checkpointed]
    assert sorted(outside) == sorted(
        [*(n.op or "" for n in inside), "PowBackward0", "SumBackward0"]
    )
    tanh_in = next(n for n in inside if n.op == "TanhBackward0")
    assert [s.text for s in tanh_in.saved] == ["checkpointed: recomputed in backward"]


def test_recomputation_runs_as_often_as_without_gradviz() -> None:
    for reentrant in (False, True):
        plain = _step(reentrant)
        with Recorder() as rec:
            recorded = _step(reentrant)
        assert recorded[0].calls == plain[0].calls == 2  # forward, then once in backward
        assert len(rec.calls) == 1  # the recomputation's own backward is not a new call
        assert close(rec.graph(-1).nodes[0].value, plain[3].detach())
        for p, q in zip(recorded[0].parameters(), plain[0].parameters()):
            assert torch.allclose(p.grad, q.grad)


def test_reentrant_region_is_one_node_with_torchs_value_and_gradient() -> None:
    with Recorder() as rec:
        _, _, h, loss = _step(reentrant=True)
    graph = rec.graph(-1)
    node = graph.find("CheckpointFunctionBackward")
    assert node is not None and node.where is not None
    assert close(node.value, h.detach())
    assert node.grad is not None and node.grad.shape == (2, 4)
