from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
from helpers.graphs import NASTY, chain, diamond, large_values, lesson, multi_output, nasty

from graphviz_grad.model import Graph
from graphviz_grad.render import DrawOptions, render_bytes, to_dot
from graphviz_grad.render.dot import FILL_LEAF, FILL_OP, FILL_ROOT, GRADVIZ_NOTE, html

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")
SVG = "{http://www.w3.org/2000/svg}"


def run_dot(text: str) -> bytes:
    done = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert not done.stderr, done.stderr.decode()
    return done.stdout


def test_lesson_golden(golden: Callable[[str, str], None]) -> None:
    golden("lesson.dot", to_dot(lesson()))
    golden("lesson_edges_saved.dot", to_dot(lesson(), DrawOptions(edge_grads=True, saved=True)))


def test_deterministic() -> None:
    assert to_dot(diamond(), DrawOptions(edge_grads=True)) == to_dot(
        diamond(), DrawOptions(edge_grads=True)
    )


def test_lesson_content() -> None:
    dot = to_dot(lesson())
    assert "rankdir=TB" in dot
    assert "<b>w</b> leaf" in dot
    assert "n1 -> n0;" in dot and "n3 -> n2;" in dot
    node_lines = [
        line for line in dot.splitlines() if line.startswith("  n") and "label=<<table" in line
    ]
    assert [line.split()[0] for line in node_lines] == ["n0", "n1", "n2", "n3"]
    assert FILL_ROOT in node_lines[0] and FILL_OP in node_lines[1] and FILL_LEAF in node_lines[3]
    assert '<td align="left">-8.0</td>' in node_lines[3]


def test_nonfinite_grad_red_and_gradviz_note() -> None:
    dot = to_dot(diamond())
    leaf_a = next(line for line in dot.splitlines() if line.startswith("  n3 "))
    assert 'color="#d62728"' in leaf_a
    assert GRADVIZ_NOTE in dot
    assert GRADVIZ_NOTE not in to_dot(lesson())


def test_multi_output_rows_and_edge_labels() -> None:
    dot = to_dot(multi_output(), DrawOptions(edge_grads=True))
    assert "out0 value" in dot and "out1 grad" in dot
    assert "n2 -> n1 [label=<out0: [3.0, 4.0]>];" in dot
    assert "n2 -> n1 [label=<out1: [1.0, 2.0]>];" in dot
    assert "n1 -> n0 [label=<[1.0, 1.0]>];" in dot


def test_escape() -> None:
    assert html('a"<b>&{}\\') == "a&quot;&lt;b&gt;&amp;&#123;&#125;&#92;"
    assert html("x\ny") == "x<br/>y"
    assert html("ŷ∂") == "ŷ∂"
    assert html("bell\x07") == "bell\ufffd"


def test_nasty_names_escaped() -> None:
    dot = to_dot(nasty(), DrawOptions(title='<b>"title"</b>', edge_grads=True, saved=True))
    assert "<script>" not in dot
    assert "&lt;script&gt;" in dot
    assert "ŷ∂ &amp; co" in dot
    assert "&#92;" in dot


@needs_dot
@pytest.mark.parametrize("make", [lesson, diamond, multi_output, nasty, large_values])
def test_dot_parses(make: Callable[[], Graph]) -> None:
    run_dot(to_dot(make(), DrawOptions(edge_grads=True, saved=True, title="t")))


@needs_dot
def test_nasty_survives_into_svg() -> None:
    svg = run_dot(to_dot(nasty())).decode("utf-8")
    texts = "".join(t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text"))
    for name in NASTY:
        for piece in name.split("\n"):
            assert piece in texts


@needs_dot
@pytest.mark.parametrize("make", [lesson, diamond, multi_output])
def test_svg_has_a_node_per_graph_node(make: Callable[[], Graph]) -> None:
    graph = make()
    root = ET.fromstring(render_bytes(graph, "svg"))
    titles = [g.findtext(f"{SVG}title") for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    assert titles == [f"n{n.id}" for n in graph.nodes]


@needs_dot
@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_binary_formats(fmt: str) -> None:
    data = render_bytes(lesson(), fmt)
    assert data.startswith(b"\x89PNG" if fmt == "png" else b"%PDF")


def test_100k_chain_does_not_recurse() -> None:
    graph = chain(100_000)
    dot = to_dot(graph, DrawOptions(edge_grads=True))
    edges = [line for line in dot.splitlines() if "->" in line and "rank=same" not in line]
    assert len(edges) == 99_999
    assert "rank=same" in dot  # a chain that long is wrapped into columns
