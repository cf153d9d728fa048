"""The HTML explorer in a real headless browser (Debian's chromium): laid out, scripted, searchable.

Each test opens the written file from disk (no server, no network) and reads either a screenshot
or the DOM after the page's script ran and Graphviz (WebAssembly) laid out what is visible. The
page takes its instructions from the URL fragment (``#search=w``, ``#node=3``, ``#colour=grad``,
``#expand=net.3``, ``#collapse=net``, ``#step=4``), as a reader's bookmark would.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import graphs
from helpers.browser import Dom, Element, chromium, dump_dom, ink, interact, png_pixels, screenshot
from helpers.html_graphs import BAD, HOSTILE, blocks, hostile, layers, modules

from graphviz_grad.render import write
from graphviz_grad.teach.explain import explained_steps

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        chromium() is None, reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
]
BLOCKS = 40
CHAIN = 20_000
LAYERS = 100


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pages")
    made = {
        "hostile": hostile(),
        "modules": modules(),
        "blocks": blocks(BLOCKS),
        "chain": graphs.chain(CHAIN),
        "layers": layers(LAYERS),
    }
    out = {name: write(graph, folder / f"{name}.html") for name, graph in made.items()}
    lesson = graphs.lesson()
    out["lesson"] = write(lesson, folder / "lesson.html", steps=explained_steps(lesson))
    return out


def text(e: Element) -> str:
    return e.content.replace("\r\n", "\n").replace("\r", "\n")


def node_el(dom: Dom, node_id: int) -> Element:
    return next(e for e in dom.all("g", "gv-node") if e.attrs.get("data-node") == str(node_id))


def children(dom: Dom, e: Element, tag: str) -> list[Element]:
    index = dom.elements.index(e)
    return [c for c in dom.elements if c.parent == index and c.tag == tag]


def node_fill(dom: Dom, node_id: int) -> str:
    g = node_el(dom, node_id)
    shapes = [e for e in children(dom, g, "polygon") + children(dom, g, "path")]
    return next(e.attrs["fill"] for e in shapes if e.attrs.get("fill") != "none")


def node_texts(dom: Dom, node_id: int) -> list[str]:
    return [text(t) for t in children(dom, node_el(dom, node_id), "text")]


def grad_shown(dom: Dom, node_id: int) -> str:
    texts = node_texts(dom, node_id)
    return texts[texts.index("grad") + 1]


def check_ran(dom: Dom) -> Element:
    root = dom.one("div", "gradviz")
    assert "data-gv-error" not in root.attrs, root.attrs.get("data-gv-error")
    assert root.attrs.get("data-gv-ready") == "1"
    return root


def drawn(dom: Dom) -> int:
    """How many nodes the page's drawing has, counted in the SVG itself."""
    count = len(dom.all("g", "gv-node"))
    assert int(check_ran(dom).attrs["data-gv-drawn"]) == count
    return count


# -- the lesson ------------------------------------------------------------------------------
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
    assert len(dom.all("script")) == 3
    assert node_texts(dom, 3)[:2] == ["w", " leaf"] or "w" in node_texts(dom, 3)
    assert grad_shown(dom, 3) == "-8.0" and grad_shown(dom, 2) == "-4.0"


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
    assert "f32[]" in shown
    assert text(dom.one("span", "gv-count")).startswith("1 of ")
    assert "3" in [g.attrs.get("data-node") for g in dom.all("g", "gv-match")]


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


# -- backward, step by step -----------------------------------------------------------------
def test_step_zero_shows_forward_values_only(pages: dict[str, Path], tmp_path: Path) -> None:
    dom = dump_dom(pages["lesson"], "#step=0", tmp_path)
    assert check_ran(dom).attrs["data-gv-step"] == "0"
    assert [grad_shown(dom, i) for i in range(4)] == ["—"] * 4
    assert node_texts(dom, 3)[node_texts(dom, 3).index("value") + 1] == "1.0"
    assert "forward values" in text(dom.one("span", "gv-step-label"))


def test_step_one_has_not_reached_w(pages: dict[str, Path], tmp_path: Path) -> None:
    dom = dump_dom(pages["lesson"], "#step=1", tmp_path)
    check_ran(dom)
    assert grad_shown(dom, 0) == "1.0"  # the loss: where backward starts
    assert grad_shown(dom, 3) == "—"  # w: not reached yet
    assert dom.one("section", "gv-details").attrs["data-node"] == "0"
    assert "step 1 / 4" in text(dom.one("span", "gv-step-label"))
    assert len(dom.all("rect", "gv-ring")) == 1


def test_step_three_explains_the_product(pages: dict[str, Path], tmp_path: Path) -> None:
    dom = dump_dom(pages["lesson"], "#step=3", tmp_path)
    check_ran(dom)
    panel = text(dom.one("section", "gv-step-text"))
    assert "∂loss/∂w = ∂loss/∂y_hat · ∂y_hat/∂w = -4.0 ·" in panel  # upstream · local
    assert panel.endswith("= -8.0")
    assert grad_shown(dom, 2) == "-4.0" and grad_shown(dom, 3) == "—"


def test_step_four_reaches_w(pages: dict[str, Path], tmp_path: Path) -> None:
    dom = dump_dom(pages["lesson"], "#step=4", tmp_path)
    check_ran(dom)
    assert grad_shown(dom, 3) == "-8.0"
    panel = text(dom.one("section", "gv-step-text"))
    assert "∂loss/∂w = -8.0" in panel and "chain (#2)" in panel  # and how it was made
    assert dom.one("section", "gv-details").attrs["data-node"] == "3"


# -- a big graph of repeated blocks ----------------------------------------------------------
def test_big_graph_opens_collapsed_with_the_blocks_folded(
    pages: dict[str, Path], tmp_path: Path
) -> None:
    dom = dump_dom(pages["blocks"], "", tmp_path)
    count = drawn(dom)
    assert count <= 60 and count < 5 * BLOCKS
    folded = [
        g for g in dom.all("g", "gv-grouped") if g.attrs.get("data-group", "").startswith("f")
    ]
    assert len(folded) == 1
    label = " ".join(text(t) for t in children(dom, folded[0], "text"))
    assert "net.0 … net.39" in label and f"×{BLOCKS}" in label
    assert "of net.39" in label  # the numbers shown come from one instance, which is named


def test_expanding_and_collapsing_changes_what_is_drawn(
    pages: dict[str, Path], tmp_path: Path
) -> None:
    first = drawn(dump_dom(pages["blocks"], "", tmp_path))
    one = dump_dom(pages["blocks"], "#expand=net.3", tmp_path)
    opened = drawn(one)
    assert opened > first
    modules_drawn = {g.attrs.get("data-module") for g in one.all("g", "gv-grouped")}
    # net.3 is open; its siblings before and after it stay folded
    assert modules_drawn == {"net.0 … net.2", "net.3.fc", "net.3.act", "net.4 … net.39"}
    clusters = {g.attrs.get("data-module") for g in one.all("g", "gv-cluster")}
    assert {"net", "net.3"} <= clusters
    everything = dump_dom(pages["blocks"], "#expand=all", tmp_path)
    assert drawn(everything) == 5 * BLOCKS + 2  # every op and leaf drawn as itself
    assert not everything.all("g", "gv-grouped")
    again = dump_dom(pages["blocks"], "#expand=all&collapse=net", tmp_path)
    assert drawn(again) < first + 2


DRAWN = "Number(document.querySelector('.gradviz').getAttribute('data-gv-drawn'))"
CLICK = "document.querySelector('{}').dispatchEvent(new MouseEvent('click', {{bubbles: true}}));"
KEY = "document.dispatchEvent(new KeyboardEvent('keydown', {{key: '{}', bubbles: true}}));"


def test_clicking_a_fold_opens_it_and_its_frame_title_closes_it(
    pages: dict[str, Path], tmp_path: Path
) -> None:
    first = drawn(dump_dom(pages["blocks"], "", tmp_path))
    opened = interact(
        pages["blocks"],
        "",
        [(CLICK.format("g[data-group^=f]"), f"{DRAWN} > {first}")],
    )
    modules_drawn = {g.attrs.get("data-module") for g in opened.all("g", "gv-grouped")}
    assert modules_drawn == {"net.0 … net.38", "net.39.fc", "net.39.act"}  # the shown instance
    closed = interact(
        pages["blocks"],
        "#expand=net.39",
        [
            (
                CLICK.format('g.gv-cluster[data-module="net.39"] text.gv-collapse'),
                f"{DRAWN} == {first}",
            )
        ],
    )
    assert drawn(closed) == first


def test_arrow_keys_step_through_backward(pages: dict[str, Path], tmp_path: Path) -> None:
    step = "document.querySelector('.gradviz').getAttribute('data-gv-step')"
    dom = interact(
        pages["lesson"],
        "",
        [
            (KEY.format("ArrowRight"), f"{step} == '0'"),
            (KEY.format("ArrowRight"), f"{step} == '1'"),
            (KEY.format("ArrowRight"), f"{step} == '2'"),
            (KEY.format("ArrowLeft"), f"{step} == '1'"),
        ],
    )
    assert grad_shown(dom, 0) == "1.0" and grad_shown(dom, 1) == "—"
    assert "step 1 / 4" in text(dom.one("span", "gv-step-label"))


def test_search_expands_the_path_to_a_node(pages: dict[str, Path], tmp_path: Path) -> None:
    first = drawn(dump_dom(pages["blocks"], "", tmp_path))
    dom = dump_dom(pages["blocks"], "#search=net.17.fc.weight", tmp_path)
    assert drawn(dom) > first
    details = dom.one("section", "gv-details")
    node = int(details.attrs["data-node"])
    assert "net.17.fc.weight" in text(details)
    assert node_el(dom, node)  # drawn as itself, no longer inside a folded block
    assert len(dom.all("rect", "gv-ring")) == 1


def test_big_graph_screenshot_is_not_blank(pages: dict[str, Path], tmp_path: Path) -> None:
    shot = screenshot(pages["blocks"], "#expand=net.3", tmp_path, size=(1000, 700))
    share, colours = ink(shot, box=(0, 60, 1000 - 360, 700))
    assert share > 0.02 and colours > 20


def test_a_long_chain_opens_as_its_ends_and_one_folded_middle(
    pages: dict[str, Path], tmp_path: Path
) -> None:
    dom = dump_dom(pages["chain"], "", tmp_path)
    assert drawn(dom) == 1 + 3 + 1 + 3 + 1  # the root, 3 ops, the middle, 3 ops, the leaf x
    middle = next(g for g in dom.all("g", "gv-grouped") if g.attrs["data-group"].startswith("k"))
    label = " ".join(text(t) for t in children(dom, middle, "text"))
    assert f"{CHAIN - 2 - 6:,} ops in a chain" in label
    assert f"MulBackward0 ×{CHAIN - 2 - 6:,}" in label
    found = dump_dom(pages["chain"], "#node=9000", tmp_path)
    assert node_el(found, 9000) and found.one("section", "gv-details").attrs["data-node"] == "9000"
    assert drawn(found) < 50  # the chain opened only where the node is


def test_a_long_sequential_opens_as_a_chain_of_its_modules(
    pages: dict[str, Path], tmp_path: Path
) -> None:
    dom = dump_dom(pages["layers"], "", tmp_path)  # net open: its 200 children are a chain
    assert drawn(dom) == 1 + 3 + 1 + 3 + 1  # the loss, 3 modules, the middle, 3 modules, x
    assert drawn(dump_dom(pages["layers"], "#collapse=net", tmp_path)) == 3  # x, net, the loss
    middle = next(g for g in dom.all("g", "gv-grouped") if g.attrs["data-group"].startswith("k"))
    label = " ".join(text(t) for t in children(dom, middle, "text"))
    assert f"{2 * LAYERS - 6} nodes in a chain" in label
    assert f"Tanh → Linear ×{LAYERS - 3}" in label  # the middle starts after Linear, Tanh, Linear
    found = dump_dom(pages["layers"], "#search=net.100.weight", tmp_path)
    assert text(found.one("h2", "gv-node-title")) == "#200 leaf"  # net.100.weight: 1 + 4 * 49 + 3
    assert drawn(found) < 30  # net.100 opened inside the chain, the rest still folded


# -- hostile text, modules, colour -----------------------------------------------------------
def test_hostile_names_stay_text(pages: dict[str, Path], tmp_path: Path) -> None:
    dom = dump_dom(pages["hostile"], "#search=" + quote(HOSTILE[1] + "Backward"), tmp_path)
    check_ran(dom)
    assert len(dom.all("script")) == 3
    assert dom.all("img") == [] and len(dom.all("style")) == 1
    assert text(dom.one("h2", "gv-node-title")) == "#0 " + HOSTILE[1] + "Backward"
    shown = text(dom.one("section", "gv-details"))
    assert ", ".join(HOSTILE[:2]).replace("\r", "\n") in shown
    assert BAD.replace("\r", "\n") in shown  # the finding's message, and the aten op
    info = text(dom.one("section", "gv-info"))
    assert BAD.replace("\r", "\n") in info
    assert len(dom.all("g", "gv-node")) == 3


def test_collapsing_a_module_draws_it_as_one_node_with_its_parameter(
    pages: dict[str, Path], tmp_path: Path
) -> None:
    dom = dump_dom(pages["modules"], "#collapse=model", tmp_path)
    check_ran(dom)
    assert sorted(
        g.attrs["data-node"] for g in dom.all("g", "gv-node") if "data-node" in g.attrs
    ) == [
        "0",
        "4",
    ]
    group = dom.one("g", "gv-grouped")
    assert group.attrs["data-module"] == "model"
    label = " ".join(text(t) for t in children(dom, group, "text"))
    assert "Sequential" in label and "hides 2 ops" in label and "0.weight ‖grad‖=0.5" in label
    boxes = [e for e in dom.all("input") if e.attrs.get("data-module")]
    assert [b.attrs["data-module"] for b in boxes] == ["model", "model.0", "model.1"]
    assert drawn(dump_dom(pages["modules"], "#expand=all", tmp_path)) == 5


def test_colouring_by_gradient_recolours_the_nodes(pages: dict[str, Path], tmp_path: Path) -> None:
    plain = dump_dom(pages["modules"], "#expand=all", tmp_path)
    by_grad = dump_dom(pages["modules"], "#expand=all&colour=grad", tmp_path)
    assert check_ran(by_grad).attrs["data-colour"] == "grad"
    assert node_fill(by_grad, 4) == "#ff6b6b"  # x's gradient holds NaN
    assert node_fill(plain, 4) != "#ff6b6b"
    assert node_fill(by_grad, 0).startswith("rgb(")
    assert "rms" in text(by_grad.one("div", "gv-legend"))
