"""The HTML page and the notebook fragment, read as text: self-contained, well-formed, escaped.

Every user-controlled string (variable, module and op names, file paths, findings, notes, the
title) is hostile here; the page must keep exactly its own two scripts and one stylesheet, and the
JSON block must read back as the graph's JSON.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import graphs  # tests/render/graphs.py
import pytest
from browser import Dom
from html_graphs import BAD, HOSTILE, hostile, modules
from hypothesis import given
from hypothesis import strategies as st

from graphviz_grad.model import Graph
from graphviz_grad.render import from_dict, render_bytes, to_dict, to_dot, to_json, write
from graphviz_grad.render.html import asset, default_title, escape, inline_svg, script_json, to_html

ROOT = Path(__file__).resolve().parents[2]
SVG_NS = "{http://www.w3.org/2000/svg}"
GRAPHS = {
    "lesson": graphs.lesson,
    "diamond": graphs.diamond,
    "multi_output": graphs.multi_output,
    "nasty": graphs.nasty,
    "hostile": hostile,
    "modules": modules,
}


def data_block(page: str) -> object:
    dom = Dom.parse(page)
    block = [s for s in dom.all("script") if s.attrs.get("type") == "application/json"]
    assert len(block) == 1
    return json.loads(block[0].content)


def svg_of(graph: Graph) -> str:
    return render_bytes(graph, "svg").decode("utf-8")


# -- self-contained and well-formed ----------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_page_has_exactly_its_own_scripts_and_styles(name: str) -> None:
    graph = GRAPHS[name]()
    page = to_html(graph, None)
    dom = Dom.parse(page)
    scripts = dom.all("script")
    assert [s.attrs.get("type") for s in scripts] == ["application/json", None]
    assert scripts[1].content == asset("gradviz.js")
    assert len(dom.all("style")) == 1 and dom.all("style")[0].content == asset("gradviz.css")
    assert dom.all("img") == [] and dom.all("iframe") == [] and dom.all("link") == []
    assert data_block(page) == to_dict(graph)
    assert text_of(dom.one("title")) == default_title(graph)


def text_of(e: object) -> str:
    return e.content  # type: ignore[attr-defined, no-any-return]


def test_page_fetches_nothing(needs_dot: None) -> None:
    page = to_html(modules(), svg_of(modules()))
    dom = Dom.parse(page)
    for e in dom.elements:
        for key, value in e.attrs.items():
            assert key not in ("src", "href", "xlink:href", "srcset", "action"), (e.tag, key)
            assert "http:" not in value.replace("http://www.w3.org/", "") and "https:" not in value
    css = asset("gradviz.css")
    assert "@import" not in css and "url(" not in css and "@font-face" not in css
    csp = next(e for e in dom.all("meta") if e.attrs.get("http-equiv") == "Content-Security-Policy")
    assert csp.attrs["content"].startswith("default-src 'none'")


@pytest.mark.parametrize("name", ["gradviz.js", "gradviz.css"])
def test_assets_cannot_end_their_own_element(name: str) -> None:
    text = asset(name).lower()
    assert "</script" not in text and "</style" not in text and "<!--" not in text


def test_hostile_strings_are_text_in_the_page(needs_dot: None) -> None:
    graph = hostile()
    page = to_html(graph, svg_of(graph), title=BAD)
    dom = Dom.parse(page)
    assert len(dom.all("script")) == 2 and len(dom.all("style")) == 1
    assert dom.all("img") == []
    assert data_block(page) == to_dict(graph)
    assert text_of(dom.all("title")[0]) == BAD  # the page's; the SVG's titles follow
    assert dom.one("span", "gv-title").attrs["title"] == BAD
    info = text_of(dom.one("section", "gv-info"))
    assert BAD in info and HOSTILE[6] in info
    titles = [t.content for t in dom.all("title") if dom.elements[t.parent or 0].tag == "g"]
    assert sorted(t for t in titles if re.fullmatch(r"n\d+", t)) == sorted(
        f"n{n.id}" for n in graph.nodes
    )
    assert "<script>window" not in page and "</script><img" not in page


def test_the_svg_inside_stays_well_formed(needs_dot: None) -> None:
    graph = hostile()
    svg = inline_svg(svg_of(graph))
    tree = ET.fromstring(svg)  # XML: nothing unbalanced broke out of a label
    groups = [g for g in tree.iter(f"{SVG_NS}g") if g.get("class") == "node"]
    titles = sorted(g.find(f"{SVG_NS}title").text or "" for g in groups)  # type: ignore[union-attr]
    assert [t for t in titles if re.fullmatch(r"n\d+", t)] == [f"n{n.id}" for n in graph.nodes]
    assert len([g for g in tree.iter(f"{SVG_NS}g") if g.get("class") == "edge"]) == 2
    words = " ".join(t.text or "" for t in tree.iter(f"{SVG_NS}text"))
    assert "<script>window.gvPwned=1</script>" in words and "数据" in words
    assert not svg.startswith("<?xml") and "<!--" not in svg and "width=" not in svg[:200]


def test_dot_of_hostile_names_lays_out_with_every_node(needs_dot: None) -> None:
    graph = hostile()
    dot = to_dot(graph, title=BAD, show_saved=True, edge_grads=True)
    proc = subprocess.run(["dot", "-Tplain"], input=dot.encode(), capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    drawn = [line.split()[1] for line in lines if line.startswith("node ")]
    assert sorted(d for d in drawn if re.fullmatch(r"n\d+", d)) == sorted(
        f"n{n.id}" for n in graph.nodes
    )
    assert sum(line.startswith("edge ") for line in lines) == len(graph.edges)


def test_json_of_hostile_names_reads_back() -> None:
    graph = hostile()
    assert from_dict(json.loads(to_json(graph))) == graph
    assert from_dict(json.loads(to_json(graph, indent=None))) == graph


# -- escaping helpers ------------------------------------------------------------------------
@given(st.recursive(st.text() | st.integers() | st.none(), lambda c: st.lists(c, max_size=4)))
def test_script_json_never_closes_its_element_and_reads_back(data: object) -> None:
    text = script_json(data)
    assert "<" not in text and ">" not in text and "&" not in text and text.isascii()
    assert json.loads(text) == data


@given(st.text())
def test_escape_leaves_no_markup(text: str) -> None:
    out = escape(text)
    assert "<" not in out and ">" not in out and '"' not in out
    out.encode("utf-8")  # lone surrogates are replaced


def test_inline_svg_drops_prolog_size_comments_and_ids() -> None:
    svg = (
        '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<!-- x -->\n'
        '<svg width="10pt" height="20pt"\n viewBox="0 0 10 20"><g id="graph0" class="graph">'
        '<!-- n0 --><g id="node1" class="node"><title>n0</title></g></g></svg>'
    )
    assert inline_svg(svg) == (
        '<svg viewBox="0 0 10 20" class="gv-svg" role="img"><g class="graph">'
        '<g class="node"><title>n0</title></g></g></svg>'
    )


# -- writing ---------------------------------------------------------------------------------
def test_write_infers_html_from_the_suffix(tmp_path: Path, needs_dot: None) -> None:
    out = write(graphs.lesson(), tmp_path / "lesson.html")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert len(Dom.parse(page).all("g", "node")) == 4
    assert render_bytes(graphs.lesson(), "html") == out.read_bytes()  # deterministic


def test_page_without_graphviz_shows_the_tree() -> None:
    page = to_html(graphs.lesson(), None)
    dom = Dom.parse(page)
    assert dom.all("svg") == []
    assert "#3 leaf w" in text_of(dom.one("div", "gv-canvas"))


def test_fragment_is_scoped_for_notebooks() -> None:
    frag = to_html(graphs.lesson(), None, standalone=False)
    assert frag.startswith('<div class="gradviz"') and "<html" not in frag
    assert len(Dom.parse(frag).all("style")) == 1
    rules = re.findall(r"^([^\s{}@/*][^{]*)\{", asset("gradviz.css"), re.M)
    assert rules and all(
        sel.strip().startswith(".gradviz") for rule in rules for sel in rule.split(",")
    )


def test_cli_renders_html(tmp_path: Path, needs_dot: None) -> None:
    out = tmp_path / "linear.html"
    proc = subprocess.run(
        [sys.executable, "-m", "graphviz_grad", "render", "samples/linear.py", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    graph = from_dict(data_block(out.read_text(encoding="utf-8")))  # type: ignore[arg-type]
    assert graph.find("w").grad.data == -8.0  # type: ignore[union-attr]
    assert shutil.which("dot")
