"""Small things that read as mistakes: plurals, loop variables as names, `print(graph)`, flags
in --help, suffix/format mismatches, --focus suggestions, --call range messages, library words
in library errors and CLI words in CLI errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphviz_grad.capture import CaptureOptions, capture_script, in_big_stack
from graphviz_grad.cli import app
from graphviz_grad.cli.cmd_render import calls_shown
from graphviz_grad.errors import OutputError, RootError
from graphviz_grad.model import Graph, plural
from graphviz_grad.render import write
from graphviz_grad.views import ViewOptions, make_view

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "render"))
from helpers.graphs import lesson  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def gradviz(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "100", "NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def test_plural() -> None:
    assert [plural(n, "op") for n in (0, 1, 2, 1500)] == ["0 ops", "1 op", "2 ops", "1,500 ops"]


def test_print_graph_is_one_line() -> None:
    graph = lesson()
    assert str(graph) == (
        "Graph: root #0 PowBackward0 `loss`, 4 nodes, 3 edges, backward call 1, no findings"
    )
    assert repr(graph) == f"<{graph}>"
    assert str(Graph((), ())) == "Graph: empty, 0 nodes, 0 edges, no findings"


def test_loop_variable_is_not_a_parameters_name(tmp_path: Path) -> None:
    script = tmp_path / "init.py"
    script.write_text(
        "import torch\nfrom torch import nn\n"
        "model = nn.Sequential(nn.Linear(2, 2))\n"
        "for param in model.parameters():\n    nn.init.constant_(param, 0.5)\n"
        "w = torch.tensor(2.0, requires_grad=True)\n"
        "for x in [w]:\n    pass\n"
        "loss = model(torch.ones(1, 2)).sum() * w\nloss.backward()\n",
        encoding="utf-8",
    )
    graph = in_big_stack(lambda: capture_script(script, [], CaptureOptions())).graph
    names = {n.names for n in graph.nodes if n.kind == "leaf"}
    assert names == {("model.0.bias",), ("model.0.weight",), ("w", "x")}


def test_flags_show_no_type_in_help() -> None:
    for command in ("render", "tree", "doctor", "explain", "steps"):
        code, out, _ = gradviz(command, "--help")
        assert code == 0
        assert "<bool>" not in out, command
    code, out, _ = gradviz("tree", "--help")
    assert re.search(r"--fold\s+Fold repeated", out)
    assert re.search(r"--depth\s+<int range>", out)


def test_suffix_and_format_must_agree(tmp_path: Path) -> None:
    out = tmp_path / "out.svg"
    code, _, err = gradviz("render", "samples/linear.py", "-o", str(out), "-f", "png", "-q")
    assert code == 7
    assert "says SVG but `--format png` asks for PNG" in err
    assert "fmt=" not in err
    assert not out.exists()


def test_library_errors_name_library_arguments(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as info:
        write(lesson(), tmp_path / "out.svg", fmt="png")
    assert "`fmt='png'`" in info.value.message and "--format" not in str(info.value.hint)
    with pytest.raises(OutputError) as info:
        write(lesson(), tmp_path / "out.xyz")
    assert "`fmt=`" in str(info.value.hint) and "--format" not in str(info.value.hint)
    with pytest.raises(OutputError) as info:
        write(lesson(), "-", fmt="svg")
    assert '`fmt="dot"`' in str(info.value.hint)


def test_cli_errors_name_cli_flags(tmp_path: Path) -> None:
    code, _, err = gradviz("render", "samples/linear.py", "-o", "-", "-f", "svg", "-q")
    assert code == 7
    assert "--format dot" in err and "fmt=" not in err


def test_focus_suggests_close_names() -> None:
    with pytest.raises(RootError) as info:
        make_view(lesson(), ViewOptions(focus="los"))
    assert info.value.hint is not None and "`loss`" in info.value.hint
    with pytest.raises(RootError) as info:
        make_view(lesson(), ViewOptions(focus="powbackward"))
    assert info.value.hint is not None and "`PowBackward0`" in info.value.hint
    code, _, err = gradviz("tree", "samples/linear.py", "--focus", "los")
    assert code == 5 and "Did you mean `loss`" in err


def test_call_range_message_reads_correctly(tmp_path: Path) -> None:
    assert calls_shown([1, 2, 3, 4, 5, 6], 300) == "calls 1–6 of 300"
    assert calls_shown([3], 300) == "call 3 of 300"
    assert calls_shown(list(range(1, 13)), 12) == "all 12 calls"
    assert calls_shown([1, 4, 9], 12) == "calls 1, 4, 9 of 12"
    folder = tmp_path / "flip"
    code, _, err = gradviz(
        "render", "samples/training_loop.py", "--call", "1:6", "-o", str(folder), "-f", "dot", "-q"
    )
    assert code == 0, err
    assert f"wrote 6 pictures to {folder}/ (calls 1–6 of 300)" in err


def test_the_tree_explains_its_flat_mark_when_it_uses_it(tmp_path: Path) -> None:
    """A deep chain at 80 columns is drawn with `↓ d=N` lines; the tree says once what they
    are. A shallow graph has none, and no note."""
    deep = tmp_path / "deep.py"
    deep.write_text(
        "import torch\n"
        "x = torch.tensor(1.0, requires_grad=True)\n"
        "y = x\n"
        "for _ in range(30):\n"
        "    y = y * 1.01\n"
        "y.backward()\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["tree", str(deep), "-q"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "↓ d=" in result.stdout
    assert result.stderr.count("note: `↓ d=N` marks a node at depth N") == 1
    shallow = CliRunner().invoke(app, ["tree", "samples/linear.py", "-q"], env={"COLUMNS": "80"})
    assert shallow.exit_code == 0 and "↓ d=N" not in shallow.stderr
