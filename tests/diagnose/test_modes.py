"""Every check runs in every mode: a script without backward (gradviz's own pass), `trace()` and
`record()` in Python, and `--expr`. The pitfalls are the same as with a backward call."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import graphviz_grad as gg
from graphviz_grad.capture import CaptureOptions, capture_script
from graphviz_grad.cli import app
from graphviz_grad.diagnose import diagnose, with_findings
from graphviz_grad.model import Finding

ROOT = Path(__file__).resolve().parents[2]


def script_findings(tmp_path: Path, body: str) -> tuple[Finding, ...]:
    script = tmp_path / "user.py"
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    captured = with_findings(capture_script(script, [], CaptureOptions()))
    assert captured.graph.grad_source == "gradviz"  # no backward call: gradviz's own pass
    return captured.graph.findings


def codes(found: tuple[Finding, ...]) -> list[tuple[str, str, int | None]]:
    return [(f.code, f.severity, f.line) for f in found]


def test_detach_without_backward_is_a_cut(tmp_path: Path) -> None:
    found = script_findings(
        tmp_path,
        """\
        import torch
        w1 = torch.tensor([1.5, 2.5], requires_grad=True)
        w2 = torch.tensor([0.5, 0.25], requires_grad=True)
        h = (w1 * 2.0).detach()
        loss = (h * w2).sum()
        """,
    )
    assert ("cut", "warning", 4) in codes(found)
    assert any(f.code == "unused-param" and "`w1`" in f.message for f in found)


def test_no_grad_block_without_backward_is_a_cut(tmp_path: Path) -> None:
    found = script_findings(
        tmp_path,
        """\
        import torch
        w1 = torch.tensor([1.5, 2.5], requires_grad=True)
        w2 = torch.tensor([0.5, 0.25], requires_grad=True)
        with torch.no_grad():
            h = torch.tanh(w1 * 2.0)
        loss = (h * w2).sum()
        """,
    )
    cut = next(f for f in found if f.code == "cut")
    assert cut.line == 5 and "torch.no_grad()" in cut.message


def test_broadcast_and_warning_without_backward(tmp_path: Path) -> None:
    found = script_findings(
        tmp_path,
        """\
        import torch
        import torch.nn.functional as F
        x = torch.arange(12.0).reshape(4, 3)
        y = torch.arange(4.0)
        w = torch.tensor([[0.1], [0.2], [0.3]], requires_grad=True)
        h = x @ w
        print(h.grad)
        loss = F.mse_loss(h, y)
        """,
    )
    assert codes(found) == [("torch-warning", "warning", 7), ("loss-broadcast", "warning", 8)]


def test_nan_without_backward(tmp_path: Path) -> None:
    found = script_findings(
        tmp_path,
        """\
        import torch
        w = torch.tensor([0.0, 1.0], requires_grad=True)
        loss = torch.sqrt(w).sum()
        """,
    )
    assert codes(found) == [("grad-inf", "error", 3)]


def test_record_and_trace_in_python_find_the_cut() -> None:
    with gg.record() as rec:
        w1 = torch.tensor([1.5, 2.5], requires_grad=True)
        w2 = torch.tensor([0.5, 0.25], requires_grad=True)
        h = (w1 * 2.0).detach()
        loss = (h * w2).sum()
        graph = rec.trace(loss)
    found = diagnose(graph, rec.calls, watch=rec.watch, namespace={"w1": w1, "w2": w2})
    assert [f.code for f in found] == ["cut", "unused-param"]


def test_trace_alone_runs_the_graph_checks() -> None:
    pred = torch.tensor([[0.5], [1.0], [1.5]], requires_grad=True)
    target = torch.tensor([1.0, 2.0, 3.0])
    with pytest.warns(UserWarning, match="target size"):
        loss = F.mse_loss(pred, target)
    found = diagnose(gg.trace(loss))
    assert [(f.code, f.nodes) for f in found] == [("loss-broadcast", (0, 2))]
    assert "of shape [3, 1]" in found[0].message and "to [3, 3]" in found[0].message


def test_expr_gets_findings() -> None:
    result = CliRunner().invoke(
        app, ["tree", "--expr", "sqrt(w) * v", "--param", "w=0", "--param", "v=2"]
    )
    assert result.exit_code == 0, result.output
    assert "✖ grad-inf" in result.stdout and "<expr" not in result.stdout


def test_graph_retained_pitfall_without_backward_is_found(tmp_path: Path) -> None:
    source = (ROOT / "samples" / "pitfalls" / "graph_retained.py").read_text(encoding="utf-8")
    lines = [ln for ln in source.splitlines() if "backward" not in ln and ".grad" not in ln]
    found = script_findings(tmp_path, "\n".join(lines) + "\n")
    assert [f.code for f in found] == ["graph-retained"]
    assert "adds up the tensors of 30 iterations" in found[0].message
    assert "without a backward call" in found[0].message
