"""A hook of the script's on a tensor (`register_hook`) that changes its gradient: each edge
into the tensor's node carries what its consumer passed down (before the hook), the node's
`grad` what it received (after it), both equal to PyTorch's own; views say so."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

import graphviz_grad as gg
from graphviz_grad.cli import app

REVERSAL = """\
import torch
w = torch.tensor([3.0, -1.0], requires_grad=True)
w.register_hook(lambda g: g + 1)
h = w * 2
h.register_hook(lambda g: -0.5 * g)  # a gradient reversal layer
seen = h.register_hook(lambda g: None)  # one that only looks
loss = (h**2).sum() + h.sum()
loss.backward()
"""


def _oracle() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dloss/dh as the consumers pass it (no hook), h's after its hook, and w.grad."""
    w = torch.tensor([3.0, -1.0], requires_grad=True)
    h = w * 2
    before = torch.autograd.grad((h**2).sum() + h.sum(), h)[0]
    return before, -0.5 * before, 2 * (-0.5 * before) + 1


def test_edges_carry_the_gradient_before_the_hook_and_nodes_after() -> None:
    ns: dict[str, object] = {}
    with gg.record() as rec:
        exec(REVERSAL, ns)
    graph = rec.graph()
    [h] = [n for n in graph.nodes if n.names == ("h",)]
    [w] = graph.leaves
    before, after, w_grad = _oracle()
    assert h.hooked and w.hooked
    assert not any(n.hooked for n in graph.nodes if n.id not in (h.id, w.id))
    into_h = [e for e in graph.edges if e.src == h.id]
    assert len(into_h) == 2  # from the square and from the sum
    assert sum(torch.tensor(e.grad.data) for e in into_h).tolist() == before.tolist()  # type: ignore[union-attr]
    assert h.grad is not None and h.grad.data == after.tolist()
    assert w.grad is not None and w.grad.data == w_grad.tolist()
    assert ns["w"].grad.tolist() == w_grad.tolist()  # type: ignore[attr-defined]


def test_register_hook_is_the_users_own_after_the_recording() -> None:
    original = torch.Tensor.register_hook
    with gg.record():
        assert torch.Tensor.register_hook is not original
    assert torch.Tensor.register_hook is original


def _explained(script: Path, body: str) -> str:
    """`gradviz explain` of a script made of `body`, its lines joined into one."""
    script.write_text(body, encoding="utf-8")
    result = CliRunner().invoke(app, ["explain", str(script)])
    assert result.exit_code == 0
    return " ".join(result.stdout.split())


def test_explain_says_what_the_hook_made_of_the_gradient(tmp_path: Path) -> None:
    script = tmp_path / "reverse.py"
    text = _explained(
        script,
        "import torch\nw = torch.tensor(3.0, requires_grad=True)\nh = w * 2\n"
        "h.register_hook(lambda g: g * 10)\nloss = h**2\nloss.backward()\n",
    )
    # the chain rule's product is what PyTorch computed (12), not what the hook made of it
    assert "∂loss/∂h = ∂loss/∂loss · ∂loss/∂h = 1.0 · 12.0 = 12.0" in text
    assert "∂loss/∂h = 12.0, which the hook on h (`register_hook`) made 120.0" in text
    assert "= 120.0 · 2.0 = 240.0" in text
    tree = CliRunner().invoke(app, ["tree", str(script)])
    assert "#1 MulBackward0 h f32[] value=6.0 grad=120.0 [hook]" in tree.stdout
    dot = CliRunner().invoke(app, ["render", str(script), "-f", "dot", "-o", "-"])
    assert dot.exit_code == 0
    assert "n1 -> n0 [label=<12.0>];" in dot.stdout  # the edge out of h: before the hook
    assert "hook: grad after it, on edges before" in dot.stdout


def test_a_hook_on_one_output_of_a_split_is_not_said_of_the_other(tmp_path: Path) -> None:
    text = _explained(
        tmp_path / "split.py",
        "import torch\nx = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)\n"
        "a, b = x.split(2)\nb.register_hook(lambda g: g * 3)\n"
        "loss = (a * b).sum() + b.pow(2).sum()\nloss.backward()\n",
    )
    assert "the hook on a" not in text
    assert "upstream ∂loss/∂a = [3.0, 4.0]" in text  # output 0's own gradient: from `a * b`
    assert "output 1: [3.0, 4.0], gradient [21.0, 30.0]" in text  # b's: ([1, 2] + [6, 8]) · 3
    assert "= [3.0, 4.0, 21.0, 30.0]" in text  # the pieces put back together
