"""Nested (jagged) tensors: recorded, with values and gradients checked against torch's own.

A jagged nested tensor's size is symbolic in its ragged dimension (`j1`): gradviz took `int()` of
it and stopped the script at its first op with an `AttributeError` (and blamed the script). A
nested value is now summarised over all its components' numbers, its ragged size shown as -1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import graphviz_grad as gg
from graphviz_grad.capture.summary import shape_of, summarize


def _nested() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    w = torch.randn(4, 4, requires_grad=True)
    parts = [torch.randn(2, 4), torch.randn(3, 4)]
    return w, torch.nested.nested_tensor(parts, layout=torch.jagged)


def test_a_jagged_matmul_is_recorded_with_torchs_gradients() -> None:
    w, nt = _nested()
    with gg.record() as rec:
        out = torch.matmul(nt, w).relu()
        loss = out.values().sum()
        loss.backward()
    graph = rec.graph()
    relu = next(n for n in graph.nodes if n.op == "ReluBackward0")
    assert relu.value is not None and relu.value.shape == (2, -1, 4)
    assert relu.value.note == "nested tensor of 2 components: statistics of all their numbers"
    expected = torch.matmul(nt, w.detach()).relu().values()
    assert relu.value.numel == 20
    assert relu.value.mean == pytest.approx(expected.double().mean().item())
    assert relu.value.max == expected.max().item()
    (leaf,) = graph.leaves
    w2, nt2 = _nested()
    (grad,) = torch.autograd.grad(torch.matmul(nt2, w2).relu().values().sum(), [w2])
    assert leaf.grad is not None and leaf.grad.data == grad.tolist()


def test_a_strided_nested_tensor_and_an_empty_one() -> None:
    nt = torch.nested.nested_tensor([torch.ones(2), torch.full((3,), 2.0)])
    found = summarize(nt)
    assert (found.numel, found.mean, found.min, found.max) == (5, 8.0 / 5, 1.0, 2.0)
    assert found.note is not None and found.note.startswith("nested tensor of 2 components")
    assert shape_of(torch.randn(2, 3)) == (2, 3)
    empty = summarize(torch.nested.nested_tensor([], dtype=torch.float32))
    assert empty.numel == 0


def test_a_nested_leaf_through_a_linear_layer(tmp_path: Path) -> None:
    """A jagged leaf that requires grad, through `nn.Linear`: the layout query torch makes
    through the dispatcher used to hang the recorder (reading `grad_fn` there never returns)."""
    script = tmp_path / "nested.py"
    script.write_text(
        "import torch\n"
        "torch.manual_seed(0)\n"
        "parts = [torch.randn(2, 4), torch.randn(3, 4)]\n"
        "nt = torch.nested.nested_tensor(parts, layout=torch.jagged, requires_grad=True)\n"
        "lin = torch.nn.Linear(4, 2)\n"
        "loss = lin(nt).sin().values().pow(2).sum()\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    out = tmp_path / "nested.json"
    done = subprocess.run(  # its own process: a hang fails the test instead of the suite
        [sys.executable, "-m", "graphviz_grad", "render", str(script), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(gg.__file__).parents[1])},
    )
    assert done.returncode == 0, done.stderr
    nodes = json.loads(out.read_text(encoding="utf-8"))["nodes"]
    leaf = next(n for n in nodes if n["names"] == ["nt"])
    assert leaf["shape"] == [2, -1, 4]
    ns: dict[str, object] = {}
    exec(script.read_text(encoding="utf-8").replace("loss.backward()\n", ""), ns)
    nt, loss = ns["nt"], ns["loss"]
    assert isinstance(nt, torch.Tensor) and isinstance(loss, torch.Tensor)
    (grad,) = torch.autograd.grad(loss, [nt])
    values = grad.values().double()
    found = leaf["grad"]
    assert found["note"].startswith("nested tensor of 2 components")
    assert found["mean"] == pytest.approx(values.mean().item())
    assert found["norm"] == pytest.approx(values.norm().item())
    assert (found["min"], found["max"]) == (values.min().item(), values.max().item())
