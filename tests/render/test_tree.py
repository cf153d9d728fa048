from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from helpers.graphs import chain, diamond, large_values, lesson, multi_output, nasty
from rich.console import Console

from graphviz_grad.model import Graph
from graphviz_grad.render import GraphTree, tree_text
from graphviz_grad.render.tree import tree_text_console

LESSON = """\
#0 PowBackward0 loss f32[] value=4.0 grad=1.0
└── #1 SubBackward0 f32[] value=-2.0 grad=-4.0
    └── #2 MulBackward0 y_hat f32[] value=2.0 grad=-4.0
        └── #3 leaf w f32[] value=1.0 grad=-8.0
"""


def test_lesson_exact(golden: Callable[[str, str], None]) -> None:
    assert tree_text(lesson()) == LESSON
    golden("lesson.tree.txt", tree_text(lesson()))


def test_golden_others(golden: Callable[[str, str], None]) -> None:
    golden("diamond.tree.txt", tree_text(diamond()))
    golden("multi_output.tree.txt", tree_text(multi_output()))
    golden("large_values.tree.txt", tree_text(large_values(), width=80))


def test_dag_node_printed_once() -> None:
    lines = tree_text(diamond()).splitlines()
    assert sum(line.count("#3 leaf a") for line in lines) == 1
    assert lines[5] == "│   ├── ↑ #3 a" or "    ├── ↑ #3 a" in lines


def test_multi_output_shows_output_taken() -> None:
    text = tree_text(multi_output())
    assert "#2 SplitBackward0 out0 a, b" in text
    assert "└── ↑ #2 a out1" in text


def test_wraps_with_guides() -> None:
    lines = tree_text(large_values(), width=60).splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert lines[0].startswith("#0 MmBackward0 out")
    assert any(line.startswith("      grad=") for line in lines)


def test_nasty_names_one_line_each() -> None:
    text = tree_text(nasty())
    assert len(text.splitlines()) == 2
    assert 'say "hi", <script>alert(1)</script>, {}' in text
    assert "back\\slash, two\\nlines, ŷ∂ & co" in text


@pytest.mark.parametrize("width", [100, 60, 40])
@pytest.mark.parametrize("make", [lesson, diamond, multi_output, nasty, large_values])
def test_same_text_as_a_rich_console(make: Callable[[], Graph], width: int) -> None:
    assert tree_text(make(), width=width) == tree_text_console(make(), width=width)


def test_empty_graph() -> None:
    assert tree_text(Graph((), ())) == "(empty graph)\n"


def test_colour_only_with_a_colour_console() -> None:
    out = io.StringIO()
    Console(file=out, width=100, color_system="truecolor", force_terminal=True).print(
        GraphTree(lesson())
    )
    assert "\x1b[" in out.getvalue()
    assert "\x1b[" not in tree_text(lesson())


def test_depth_capped() -> None:
    text = tree_text(chain(60), width=200)
    lines = text.splitlines()
    assert len(lines) == 60
    assert lines[24].startswith(" " * 92 + "└── #24 ")
    assert lines[25].startswith(" " * 92 + "└── ⋮d=25 #25 ")
    assert lines[59].startswith(" " * 92 + "└── ⋮d=59 #59 leaf x")


def test_depth_cap_narrows_with_width() -> None:
    lines = tree_text(chain(40), width=100).splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[10].startswith(" " * 36 + "└── #10 ")
    assert lines[11].startswith(" " * 36 + "└── ⋮d=11 #11 ")


def test_100k_chain_is_linear() -> None:
    text = tree_text(chain(100_000))
    lines = text.splitlines()
    assert len(lines) == 100_000
    assert lines[-1].endswith("#99999 leaf x f32[] value=1.0 grad=1.0")
