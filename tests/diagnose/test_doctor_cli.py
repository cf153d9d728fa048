"""`gradviz doctor` end to end, and the findings in every render (DOT, tree, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from graphviz_grad.cli import app
from graphviz_grad.errors import EXIT_CODES
from graphviz_grad.model import Finding, Graph, Node, TensorSummary
from graphviz_grad.render.dot import to_dot
from graphviz_grad.render.tree import tree_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "graphviz_grad" / "render" / "schema.json").read_text())
runner = CliRunner()


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def gradviz(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_error_finding_exits_10_and_prints_the_table() -> None:
    code, out, err = gradviz("doctor", "samples/pitfalls/inplace_saved.py")
    assert code == EXIT_CODES["findings-error"] == 10
    assert "inplace-saved" in out and "samples/pitfalls/inplace_saved.py:14" in out
    assert "modified by an inplace operation" in err  # the script's own traceback


def test_warnings_only_exit_0() -> None:
    code, out, _ = gradviz("doctor", "samples/pitfalls/cut.py")
    assert code == 0
    assert "cut" in out and "samples/pitfalls/cut.py:16" in out


def test_correct_script_has_no_findings() -> None:
    code, out, _ = gradviz("doctor", "samples/training_loop.py")
    assert code == 0
    assert "gradviz doctor: no findings (4 nodes checked)." in out


def test_doctor_draws_cut_marks_and_grad_colours(tmp_path: Path) -> None:
    out = tmp_path / "cut.dot"
    code, _, _ = gradviz("doctor", "samples/pitfalls/cut.py", "-o", str(out), "--color", "grad")
    assert code == 0
    dot = out.read_text(encoding="utf-8")
    assert "cut0 -> n3 [style=dashed" in dot
    assert "gradient norm (log scale)" in dot and 'findings [class="legend", label=' in dot


def test_doctor_no_show_cuts(tmp_path: Path) -> None:
    out = tmp_path / "cut.dot"
    assert gradviz("doctor", "samples/pitfalls/cut.py", "-o", str(out), "--no-show-cuts")[0] == 0
    assert "cut0" not in out.read_text(encoding="utf-8")


def test_render_of_a_failed_backward_draws_then_fails(tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    code, _, err = gradviz("render", "samples/pitfalls/inplace_saved.py", "-o", str(out))
    assert code == EXIT_CODES["script-raised"]
    data = json.loads(out.read_text(encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    assert [(f["code"], f["severity"], f["line"], f["nodes"]) for f in data["findings"]] == [
        ("inplace-saved", "error", 14, [2])
    ]
    assert "modified by an inplace operation" in err


def test_tree_marks_the_nodes_and_lists_findings() -> None:
    code, out, _ = gradviz("tree", "samples/pitfalls/grad_inf.py")
    assert code == 0
    assert "#3 leaf w" in out and "✖ grad-inf" in out
    assert "findings (1):" in out


def _graph() -> Graph:
    g = TensorSummary((), "float32", 1, data=float("inf"), min=None, max=None, inf=1)
    nodes = (
        Node(0, "op", "SqrtBackward0", file="s.py", line=3, grad=g),
        Node(1, "leaf", None, names=("w",)),
    )
    from graphviz_grad.model import Edge

    finding = Finding("grad-inf", "error", "Inf <here> & there.", "s.py", 3, (1,), "fix it")
    return Graph(nodes, (Edge(1, 0, 0),), findings=(finding,))


def test_dot_highlights_named_nodes_and_escapes_the_legend() -> None:
    dot = to_dot(_graph())
    assert '<table border="3"' in dot and 'color="#d62728"' in dot
    assert "Inf &lt;here&gt; &amp; there." in dot


def test_tree_text_has_marks_and_findings() -> None:
    text = tree_text(_graph(), width=80)
    assert "└── #1 leaf w" in text and "✖ grad-inf" in text.splitlines()[1]
    assert text.splitlines()[-1] == "  ✖ grad-inf s.py:3 Inf <here> & there."


RAISES_AFTER_BACKWARD = (
    "import torch\n"
    "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
    "for step in range(3):\n"
    "    loss = (w * 3).sum()\n"
    "    loss.backward()\n"
    "    w.data -= 0.1 * w.grad\n"
    "    w.grad = None\n"
    "scores = [0.5]\n"
    "print(scores[3])\n"
)


def test_script_raising_after_backward_still_gets_table_and_graph(tmp_path: Path) -> None:
    script = tmp_path / "validate.py"
    script.write_text(RAISES_AFTER_BACKWARD, encoding="utf-8")
    out_json = tmp_path / "last.json"
    code, out, err = gradviz("doctor", str(script), "-o", str(out_json))
    assert code == EXIT_CODES["script-raised"] == 4
    assert "gradviz doctor: no findings (3 nodes checked)." in out
    assert json.loads(out_json.read_text())["call"] == 3
    assert "IndexError: list index out of range" in err and "line 9" in err
    assert "after 3 backward calls" in err


def test_render_and_steps_after_the_script_raised(tmp_path: Path) -> None:
    script = tmp_path / "validate.py"
    script.write_text(RAISES_AFTER_BACKWARD, encoding="utf-8")
    svg = tmp_path / "last.svg"
    code, _, err = gradviz("render", str(script), "-o", str(svg))
    assert code == 4 and svg.exists() and "IndexError" in err
    # where the graph went is said before the script's error
    assert err.index("wrote ") < err.index("IndexError") and "last.svg (3 nodes)" in err
    code, out, err = gradviz("steps", str(script))
    assert code == 4 and "3 backward calls" in out and "IndexError" in err


def test_script_raising_before_any_backward_draws_nothing(tmp_path: Path) -> None:
    script = tmp_path / "early.py"
    script.write_text("import torch\nraise ValueError('bad data')\n", encoding="utf-8")
    svg = tmp_path / "x.svg"
    code, _, err = gradviz("render", str(script), "-o", str(svg))
    assert code == 4 and not svg.exists() and "bad data" in err


@pytest.mark.parametrize(
    ("script", "level", "expected"),
    [
        ("samples/pitfalls/cut.py", "error", 0),
        ("samples/pitfalls/cut.py", "warning", 10),
        ("samples/transformer.py", "warning", 0),
        ("samples/transformer.py", "info", 10),
        ("samples/pitfalls/inplace_saved.py", "error", 10),
    ],
)
def test_fail_on_sets_the_bar(script: str, level: str, expected: int) -> None:
    code, _, _ = gradviz("doctor", script, "--fail-on", level)
    assert code == expected


def test_fail_on_rejects_other_levels() -> None:
    code, _, err = gradviz("doctor", "samples/linear.py", "--fail-on", "fatal")
    assert code == 2 and "fatal" in err


def test_a_tie_without_backward_asks_for_target(tmp_path: Path) -> None:
    script = tmp_path / "two.py"
    script.write_text(
        "import torch\nw = torch.ones(2, requires_grad=True)\n"
        "a = (w * 2).sum()\nb = (w * 3).sum()\n",
        encoding="utf-8",
    )
    code, _, err = gradviz("doctor", str(script))
    assert code == EXIT_CODES["no-root"]
    assert "cannot tell which tensor is the loss" in err and "--target" in err
    assert "a [] has grad_fn" in err and "b [] has grad_fn" in err


def test_doctor_says_when_the_checks_across_calls_had_nothing_to_compare() -> None:
    """A script without backward calls: the loop checks cannot run, and doctor says so."""
    code, _, err = gradviz("doctor", "samples/linear_nobackward.py", "-q")
    assert code == 0
    assert "made no backward call, so the checks across calls" in err and "loss-diverges" in err
    code, _, err = gradviz("doctor", "samples/training_loop.py", "-q")
    assert code == 0 and "had nothing to compare" not in err and "no backward call" not in err


def test_a_piped_report_holds_no_print_of_the_script(tmp_path: Path) -> None:
    """`gradviz doctor train.py | grep ...`: stdout is not a terminal, so the script's prints go
    to stderr and the pipe holds the report alone (as a piped tree does)."""
    script = tmp_path / "train.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor(1.0, requires_grad=True)\n"
        "loss = (w * 3 - 1) ** 2\n"
        "print('epoch 1 loss', loss.item())\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["doctor", str(script)])  # stdout: not a terminal
    assert result.exit_code == 0, result.output
    assert "epoch 1 loss" not in result.stdout
    assert "epoch 1 loss 4.0" in result.stderr
    assert "no findings" in result.stdout
