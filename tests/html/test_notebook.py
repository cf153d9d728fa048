"""Graphs in Jupyter and rich, and the lesson notebook in samples/, executed so it stays right."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from helpers import graphs
from helpers.browser import Dom
from rich.console import Console

from graphviz_grad.render import tree_text

ROOT = Path(__file__).resolve().parents[2]
LESSON = ROOT / "samples" / "lesson.ipynb"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MIMES = {"text/html", "image/svg+xml", "text/plain"}


@pytest.fixture
def no_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend Graphviz's `dot` is not installed."""
    monkeypatch.setattr("graphviz_grad.render.shutil.which", lambda name: None)


def test_mimebundle_has_the_view_the_drawing_and_the_tree(needs_dot: None) -> None:
    graph = graphs.lesson()
    bundle = graph._repr_mimebundle_()
    assert set(bundle) == MIMES
    assert bundle["image/svg+xml"] == graph._repr_svg_()
    assert bundle["text/html"] == graph._repr_html_()
    assert bundle["text/plain"] == tree_text(graph).rstrip("\n")
    dom = Dom.parse(bundle["text/html"])
    assert len(dom.all("g", "node")) == 4 and len(dom.all("script")) == 3


def test_mimebundle_honours_include_and_exclude() -> None:
    graph = graphs.lesson()
    assert set(graph._repr_mimebundle_(include={"text/plain"})) == {"text/plain"}
    assert "text/html" not in graph._repr_mimebundle_(exclude={"text/html"})


def test_without_graphviz_the_view_still_draws(no_dot: None) -> None:
    graph = graphs.lesson()
    assert graph._repr_svg_() is None
    bundle = graph._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    canvas = Dom.parse(bundle["text/html"]).one("div", "gv-canvas")
    assert "laying out" in canvas.content  # the view lays itself out in the browser


def test_rich_prints_the_tree() -> None:
    graph = graphs.lesson()
    console = Console(width=100, file=io.StringIO(), color_system=None, record=True)
    console.print(graph)
    assert console.export_text() == tree_text(graph, width=100)


def test_ipython_displays_all_three(needs_dot: None) -> None:
    formatters = pytest.importorskip("IPython.core.formatters")
    data, _ = formatters.DisplayFormatter().format(graphs.lesson())
    assert set(data) >= MIMES


def test_the_lesson_notebook_is_stored_without_outputs() -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(LESSON, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_the_lesson_notebook_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, needs_dot: None
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(LESSON, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    streams = "".join(o.text for o in outputs if o.output_type == "stream")
    assert "loss: 4.0  w.grad: -8.0" in streams
    assert "-8.0 None" in streams  # trace: gradviz's gradient, and w2.grad untouched
    shown = [o.data for o in outputs if o.output_type in ("execute_result", "display_data")]
    views = [d for d in shown if 'class="gradviz"' in d.get("text/html", "")]
    assert len(views) == 2 and all("image/svg+xml" in d for d in views)
    assert {"text/plain": "(-8.0, -8.0)"} in shown
    printed = [o.data["text/plain"] for o in outputs if o.output_type == "display_data"]
    assert any("#3 leaf w" in ANSI.sub("", text) for text in printed)  # rich.print(graph)
    assert (tmp_path / "lesson.html").stat().st_size > 0
