from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import replace

import pytest
from helpers.graphs import chain, comb, diamond, large_values, lesson, multi_output, nasty, spine
from rich.cells import cell_len
from rich.console import Console

from graphviz_grad.model import Graph
from graphviz_grad.render import GraphTree, tree_text
from graphviz_grad.render.tree import MIN_TEXT_WIDTH, printed, tree_text_console

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


@pytest.mark.parametrize("width", [120, 100, 80, 60, 40])
@pytest.mark.parametrize(
    "make",
    [lesson, diamond, multi_output, nasty, large_values, lambda: spine(30), lambda: comb(30)],
)
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


def test_indents_as_deep_as_the_graph_while_room_is_left() -> None:
    lines = tree_text(chain(8), width=80).splitlines()
    for depth in range(1, 8):
        assert lines[depth].startswith(" " * (4 * depth - 4) + f"└── #{depth} ")


@pytest.mark.parametrize("width", [80, 120])
def test_long_chain_goes_flat_with_a_depth_counter(width: int) -> None:
    cap = (width - MIN_TEXT_WIDTH) // 4 - 2
    lines = [line for line in tree_text(chain(60), width=width).splitlines() if "#" in line]
    assert len(lines) == 60
    assert lines[cap].startswith(" " * (4 * cap - 4) + f"└── #{cap} ")
    guides = " " * (4 * cap)
    assert lines[cap + 1].startswith(guides + f"↓ d={cap + 1} #{cap + 1} MulBackward0")
    assert lines[58].startswith(guides + "↓ d=58 #58 MulBackward0")
    assert lines[59].startswith(guides + "    └── #59 leaf x")  # indented under its ↓ node


def test_children_stay_under_their_parent_past_the_cap() -> None:
    """The old cap drew deep children as siblings of their parent; now every child is drawn
    one level under its parent, flat under it, or in a section headed by its parent; and the
    inputs of a flat node that end are indented under it, not beside it."""
    for graph in (chain(40), spine(40), comb(40)):
        parents = _parents(tree_text(graph, width=80))
        expected = {e.src: e.dst for e in graph.edges}
        assert parents == expected


def _parents(text: str) -> dict[int, int]:
    """Who each printed node hangs under, read back from the guides alone."""
    parents: dict[int, int] = {}
    open_at: dict[int, int] = {}  # column of a marker -> the node whose children start there
    for line in text.splitlines():
        if line.startswith("inputs of #"):
            open_at = {0: int(line.split()[2][1:])}
            continue
        m = re.match(r"^([│ ]*)(├── |└── |↓ d=\d+ )(?:↑ )?#(\d+) ", line)
        if m is None:
            if re.match(r"^#(\d+) ", line):
                open_at = {0: int(line.split()[0][1:])}
            continue
        col, marker, node = len(m.group(1)), m.group(2), int(m.group(3))
        parents[node] = open_at[col]
        if not line[m.end(2) :].startswith("↑"):
            if marker.startswith("↓"):  # its flat input follows at its column, the rest under it
                open_at[col] = node
            open_at[col + 4] = node
            open_at = {c: n for c, n in open_at.items() if c <= col + 4}
    return parents


def test_a_node_with_several_deep_inputs_continues_below() -> None:
    text = tree_text(comb(20), width=80)
    assert "⤷ inputs below" in text
    assert "\ninputs of #18 MulBackward0 (depth 6):\n├── #19 ExpBackward0" in text


@pytest.mark.parametrize("width", [80, 120])
def test_goldens_at_80_and_120_columns(width: int, golden: Callable[[str, str], None]) -> None:
    for name, graph in [
        ("large_values", large_values()),
        ("multi_output", multi_output()),
        ("spine", spine(24)),
        ("comb", comb(16)),
    ]:
        golden(f"{name}.{width}.tree.txt", tree_text(graph, width=width))


@pytest.mark.parametrize("width", [40, 60, 80, 120])
@pytest.mark.parametrize("make", [lesson, diamond, multi_output, nasty, large_values])
def test_lines_fit_and_break_only_between_tokens(make: Callable[[], Graph], width: int) -> None:
    wide = tree_text(make(), width=100_000)
    text = tree_text(make(), width=width)
    assert max(cell_len(line) for line in text.splitlines()) <= width
    assert _tokens(text) == _tokens(wide)


def _tokens(text: str) -> list[str]:
    """The words of the node lines, guides and layout markers left out, sorted."""
    lines = [line for line in text.splitlines() if not line.startswith("inputs of #")]
    words = " ".join(lines).replace("⤷ inputs below", "").split()
    return sorted(w for w in words if not set(w) <= set("│├└─↓") and not re.match(r"d=\d+$", w))


def test_100k_chain_is_linear() -> None:
    text = tree_text(chain(100_000))
    lines = text.splitlines()
    assert len(lines) == 100_000
    assert lines[-1].endswith("#99999 leaf x f32[] value=1.0 grad=1.0")


def _rich(graph: Graph, width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(GraphTree(graph))
    return out.getvalue()


def _direct(graph: Graph, width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False)
    printed(console, GraphTree(graph))
    return out.getvalue()


def wide_names(n: int) -> Graph:
    """A chain whose names are two cells per character: lines that rich crops at a narrow width."""
    graph = chain(n)
    nodes = tuple(replace(node, names=("宽" * (node.id % 40),)) for node in graph.nodes)
    return replace(graph, nodes=nodes)


@pytest.mark.parametrize("width", [100, 80, 40, 12])
@pytest.mark.parametrize(
    "make", [lesson, nasty, lambda: chain(300), lambda: comb(60), lambda: wide_names(200)]
)
def test_printed_straight_into_the_file_is_richs_text(
    make: Callable[[], Graph], width: int
) -> None:
    graph = make()
    assert _direct(graph, width) == _rich(graph, width) == tree_text(graph, width=width)


def test_printed_through_rich_with_colour() -> None:
    out = io.StringIO()
    printed(Console(file=out, width=80, color_system="standard"), GraphTree(lesson()))
    assert "\x1b[" in out.getvalue()
    assert re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue()) == tree_text(lesson(), width=80)
