"""The HTML page in a real headless browser (Debian's chromium): drawn, scripted, searchable.

Each test opens the written file from disk (no server, no network) and reads either a screenshot
or the DOM after the page's script ran. The page takes its instructions from the URL fragment
(``#search=w``, ``#node=3``, ``#colour=grad``, ``#collapse=model``), as a reader's bookmark would.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

import graphs  # tests/render/graphs.py
import pytest
from browser import Dom, Element, chromium, dump_dom, ink, png_pixels, screenshot
from html_graphs import BAD, HOSTILE, hostile, modules

from graphviz_grad.render import write

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        chromium() is None, reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` is not installed"),
]


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pages")
    made = {"lesson": graphs.lesson(), "hostile": hostile(), "modules": modules()}
    return {name: write(graph, folder / f"{name}.html") for name, graph in made.items()}


def text(e: Element) -> str:
    return e.content.replace("\r\n", "\n").replace("\r", "\n")


def node_fill(dom: Dom, node_id: int) -> str:
    g = next(e for e in dom.all("g", "gv-node") if e.attrs.get("data-node") == str(node_id))
    index = dom.elements.index(g)
    shapes = [e for e in dom.elements if e.parent == index and e.tag in ("polygon", "path")]
    return next(e.attrs["fill"] for e in shapes if e.attrs.get("fill") != "none")


def check_ran(dom: Dom) -> Element:
    root = dom.one("div", "gradviz")
    assert root.attrs.get("data-gv-ready") == "1"
    assert "data-gv-error" not in root.attrs
    return root


def test_screenshot_shows_the_drawn_graph(pages: dict[str, Path], tmp_path: Path) -> None:
    shot = screenshot(pages["lesson"], "", tmp_path, size=(900, 600))
    width, height, _, _ = png_pixels(shot)
    assert (width, height) == (900, 600)
    share, colours = ink(shot, box=(0, 60, 900 - 360, 600))  # the canvas, left of the panel
    assert share > 0.02, f"the canvas is blank ({share:.3%} of its pixels carry ink)"
    assert colours > 20


def test_every_node_and_edge_is_in_the_dom(pages: dict[str, Path], tmp_path: Path) -> None:
    dom = dump_dom(pages["lesson"], "", tmp_path)
    check_ran(dom)
    nodes = dom.all("g", "gv-node")
    assert sorted(int(g.attrs["data-node"]) for g in nodes) == [0, 1, 2, 3]
    assert len(dom.all("g", "gv-edge")) == 3
    assert len(dom.all("script")) == 2


def test_search_jumps_to_the_node_and_shows_its_details(
    pages: dict[str, Path], tmp_path: Path
) -> None:
    dom = dump_dom(pages["lesson"], "#search=w", tmp_path)
    check_ran(dom)
    details = dom.one("section", "gv-details")
    assert details.attrs.get("data-node") == "3"
    assert text(dom.one("h2", "gv-node-title")) == "#3 leaf"
    shown = text(details)
    assert "names" in shown and "w" in shown
    assert "-8.0" in shown  # dloss/dw, as the lesson computes by hand
    assert "[]" in shown and "float32" in shown
    assert text(dom.one("span", "gv-count")).startswith("1 of ")
    assert "3" in [g.attrs["data-node"] for g in dom.all("g", "gv-match")]


def test_a_node_fragment_shows_saved_tensors_and_links(
    pages: dict[str, Path], tmp_path: Path
) -> None:
    dom = dump_dom(pages["lesson"], "#node=2", tmp_path)
    check_ran(dom)
    shown = text(dom.one("section", "gv-details"))
    assert "MulBackward0" in shown and "y_hat" in shown
    assert "saved for backward" in shown and "(freed)" in shown
    assert "lesson.py:6" in shown
    assert "aten::mul.Tensor" in shown


def test_hostile_names_stay_text(pages: dict[str, Path], tmp_path: Path) -> None:
    dom = dump_dom(pages["hostile"], "#search=" + quote(HOSTILE[1] + "Backward"), tmp_path)
    check_ran(dom)
    assert len(dom.all("script")) == 2
    assert dom.all("img") == [] and len(dom.all("style")) == 1
    assert text(dom.one("h2", "gv-node-title")) == "#0 " + HOSTILE[1] + "Backward"
    shown = text(dom.one("section", "gv-details"))
    assert ", ".join(HOSTILE[:2]).replace("\r", "\n") in shown
    assert BAD.replace("\r", "\n") in shown  # the finding's message, and the aten op
    info = text(dom.one("section", "gv-info"))
    assert BAD.replace("\r", "\n") in info
    assert len(dom.all("g", "gv-node")) == 3


def test_collapsing_a_module_folds_its_nodes_and_parameters(
    pages: dict[str, Path], tmp_path: Path
) -> None:
    dom = dump_dom(pages["modules"], "#collapse=model", tmp_path)
    check_ran(dom)
    folded = {g.attrs["data-node"] for g in dom.all("g", "gv-node") if "gv-collapsed" in g.classes}
    assert folded == {"1", "2", "3"}  # model.1, model.0 and the parameter model.0.weight
    group = dom.one("g", "gv-group")
    assert group.attrs["data-module"] == "model"
    assert "model (3 nodes)" in text(group)
    boxes = [e for e in dom.all("input") if e.attrs.get("data-module")]
    assert [b.attrs["data-module"] for b in boxes] == ["model", "model.0", "model.1"]


def test_colouring_by_gradient_recolours_the_nodes(pages: dict[str, Path], tmp_path: Path) -> None:
    plain = dump_dom(pages["modules"], "", tmp_path)
    by_grad = dump_dom(pages["modules"], "#colour=grad", tmp_path)
    assert check_ran(by_grad).attrs["data-colour"] == "grad"
    assert node_fill(by_grad, 4) == "#ff6b6b"  # x's gradient holds NaN
    assert node_fill(plain, 4) != "#ff6b6b"
    assert node_fill(by_grad, 0).startswith("rgb(")
    assert "rms" in text(by_grad.one("div", "gv-legend"))
