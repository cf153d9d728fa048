"""`gradviz explain`: the lesson's hand-computed numbers, the order, goldens, sums of paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.golden import check_golden as check_file
from typer.testing import CliRunner

from graphviz_grad.capture import CaptureOptions, capture_script
from graphviz_grad.cli import app
from graphviz_grad.teach.explain import Explanation, explain_text
from graphviz_grad.teach.sources import from_source

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def check_golden(name: str, text: str) -> None:
    check_file(GOLDEN / name, text)


def lesson(sample: str) -> str:
    graph = capture_script(f"samples/{sample}", [], CaptureOptions()).graph
    return explain_text(graph, width=100, notes=from_source(graph))


def test_linear_lesson_numbers() -> None:
    text = lesson("linear.py")
    assert "y_hat = x · w = 2.0 · 1.0 = 2.0" in text
    assert "∂y_hat/∂w = x = 2.0" in text
    assert "∂loss/∂w = ∂loss/∂y_hat · ∂y_hat/∂w = -4.0 · 2.0 = -8.0" in text
    assert text.rstrip().endswith("∂loss/∂w = -8.0")


def test_affine_lesson_numbers() -> None:
    text = lesson("affine.py")
    assert "∂loss/∂b = ∂loss/∂y_hat · ∂y_hat/∂b = 2.0 · 1.0 = 2.0" in text
    assert "∂loss/∂w = ∂loss/∂#3 · ∂#3/∂w = 2.0 · 1.0 = 2.0" in text
    assert "Leaf gradients\n  ∂loss/∂w = 2.0\n  ∂loss/∂b = 2.0" in text


def test_steps_follow_the_recorded_engine_order() -> None:
    graph = capture_script("samples/affine.py", [], CaptureOptions()).graph
    steps = list(Explanation(graph).steps())
    assert [s.order for s in steps] == sorted(n.order for n in graph.nodes if n.order)
    assert [graph.nodes[s.node].order for s in steps] == [1, 2, 3, 4, 5, 6]
    # the engine ran leaf b (step 4) before the multiplication that leads to w (step 5)
    assert [s.title.split(" · ")[1] for s in steps] == ["loss", "#1", "y_hat", "b", "#3", "w"]


@pytest.mark.parametrize("sample", ["linear.py", "affine.py"])
def test_explain_cli_matches_golden(sample: str) -> None:
    result = CliRunner().invoke(app, ["explain", f"samples/{sample}", "-q"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.stderr
    check_golden(sample.replace(".py", ".explain.txt"), result.stdout)


def test_several_paths_show_their_sum() -> None:
    result = CliRunner().invoke(
        app, ["explain", "--expr", "a = p*q; out = a + exp(a) + a*2", "--param", "p=0.5",
              "--param", "q=2.0"], env={"COLUMNS": "120"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "∂out/∂a = 1.0 (from #1) + 2.718 (from #5) + 2.0 (from #6) = 5.718" in result.stdout
    assert "∂out/∂p = ∂out/∂a · ∂a/∂p = 5.718 · 2.0 = 11.44" in result.stdout


def test_constant_names_come_only_from_checked_source_lines(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text(
        "import torch\nw = torch.tensor(3.0, requires_grad=True)\nx = torch.tensor(2.0)\n"
        "a = x * w\nb = w * x + x * w\nloss = a + b\nloss.backward()\n"
    )
    graph = capture_script(script, [], CaptureOptions()).graph
    notes = from_source(graph)
    a = graph.find("a")
    assert a is not None and dict(notes.arg_names[a.id]) == {0: "x"}
    # two multiplications on one line: no guess
    two = [n for n in graph.nodes if n.line == 5 and n.op == "MulBackward0"]
    assert two and all(n.id not in notes.arg_names for n in two)


def test_explain_needs_a_script_or_an_expression() -> None:
    result = CliRunner().invoke(app, ["explain"])
    assert result.exit_code == 2
    assert "Give a script FILE" in result.stderr
    both = CliRunner().invoke(app, ["explain", "samples/linear.py", "--expr", "w"])
    assert both.exit_code == 2 and "not both" in both.stderr
