"""The HTML page and the notebook fragment, read as text: self-contained, well-formed, escaped.

Every user-controlled string (variable, module and op names, file paths, findings, notes, the
title) is hostile here; the page must keep exactly its own three scripts (data, Graphviz, the
explorer) and one stylesheet, and the columnar data block must read back node by node as the texts
the DOT labels show.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import graphs
from helpers.browser import Dom
from helpers.gradviz_proc import gradviz
from helpers.html_graphs import BAD, HOSTILE, blocks, decode, expected, hostile, modules
from hypothesis import given
from hypothesis import strategies as st

from graphviz_grad.model import Finding, Graph
from graphviz_grad.render import (
    DrawOptions,
    from_dict,
    render_bytes,
    to_dot,
    to_json,
    write,
)
from graphviz_grad.render.html import (
    MAX_FINDING_LINKS,
    SCRIPTS,
    asset,
    default_title,
    escape,
    info_html,
    inline_svg,
    script_json,
    to_html,
)

ROOT = Path(__file__).resolve().parents[2]
SVG_NS = "{http://www.w3.org/2000/svg}"
GRAPHS = {
    "lesson": graphs.lesson,
    "diamond": graphs.diamond,
    "multi_output": graphs.multi_output,
    "nasty": graphs.nasty,
    "hostile": hostile,
    "modules": modules,
    "blocks": blocks,
}


def data_block(page: str) -> dict[str, object]:
    dom = Dom.parse(page)
    block = [s for s in dom.all("script") if s.attrs.get("type") == "application/json"]
    assert len(block) == 1
    found: dict[str, object] = json.loads(block[0].content)
    return found


def svg_of(graph: Graph) -> str:
    return render_bytes(graph, "svg").decode("utf-8")


# -- self-contained and well-formed ----------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_page_has_exactly_its_own_scripts_and_styles(name: str) -> None:
    graph = GRAPHS[name]()
    page = to_html(graph, None)
    dom = Dom.parse(page)
    scripts = dom.all("script")
    assert [s.attrs.get("type") for s in scripts] == ["application/json", None, None]
    assert [s.content for s in scripts[1:]] == [asset(name) for name in SCRIPTS]
    assert len(dom.all("style")) == 1 and dom.all("style")[0].content == asset("gradviz.css")
    assert dom.all("img") == [] and dom.all("iframe") == [] and dom.all("link") == []
    assert decode(data_block(page)) == expected(graph)
    assert text_of(dom.one("title")) == default_title(graph)


def test_data_is_columnar_and_shares_its_texts() -> None:
    data = data_block(to_html(blocks(), None))
    strings = data["strings"]
    assert isinstance(strings, list) and len(strings) == len(set(strings))
    for column in ("kind", "op", "names", "type", "value", "grad", "order", "call"):
        values = data[column]
        assert isinstance(values, list) and len(values) == data["count"] == 202
        assert all(isinstance(v, int) for v in values)
    assert strings.count("f32[]") == 1 and strings.count("TanhBackward0") == 1
    calls = data["calls"]
    assert isinstance(calls, dict)
    net_blocks = [c for c, p in enumerate(calls["path"]) if strings[p].count(".") == 1]
    assert len(net_blocks) == 40 and {calls["family"][c] for c in net_blocks} == {0}


def test_findings_are_one_line_each_with_a_count() -> None:
    graph = blocks()
    many = tuple(range(1, 201))
    findings = (
        Finding("GV101", "warning", "tanh saturates", "net.py", 3, many, "lower the lr"),
        Finding("GV102", "info", "one node", None, None, (5,)),
    )
    html = info_html(Graph(graph.nodes, graph.edges, graph.roots, findings=findings))
    dom = Dom.parse(html)
    rows = dom.all("details", "gv-finding")
    assert len(rows) == 2
    summaries = [text_of(e) for e in dom.all("summary")]
    assert "200 nodes" in summaries[0] and "tanh saturates" in summaries[0]
    assert "1 node" in summaries[1]
    assert len(dom.all("button", "gv-link")) == MAX_FINDING_LINKS + 1
    assert f"+{200 - MAX_FINDING_LINKS} more" in html


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


@pytest.mark.parametrize("name", [*SCRIPTS, "gradviz.css"])
def test_assets_cannot_end_their_own_element(name: str) -> None:
    text = asset(name).lower()
    assert "</script" not in text and "</style" not in text and "<!--" not in text


def test_hostile_strings_are_text_in_the_page(needs_dot: None) -> None:
    graph = hostile()
    page = to_html(graph, svg_of(graph), title=BAD)
    dom = Dom.parse(page)
    assert len(dom.all("script")) == 3 and len(dom.all("style")) == 1
    assert dom.all("img") == []
    assert decode(data_block(page)) == expected(graph)
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
    dot = to_dot(graph, DrawOptions(title=BAD, saved=True, edge_grads=True))
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
def test_write_infers_html_from_the_suffix(tmp_path: Path) -> None:
    out = write(graphs.lesson(), tmp_path / "lesson.html")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert decode(data_block(page)) == expected(graphs.lesson())
    assert render_bytes(graphs.lesson(), "html") == out.read_bytes()  # deterministic


def test_html_needs_no_graphviz_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page lays itself out in the browser, so writing it never runs `dot`."""
    monkeypatch.setattr("graphviz_grad.render.shutil.which", lambda name: None)
    page = render_bytes(blocks(), "html").decode("utf-8")
    assert Dom.parse(page).all("svg") == []
    assert "laying out the graph" in text_of(Dom.parse(page).one("div", "gv-status"))


def test_fragment_is_scoped_for_notebooks() -> None:
    frag = to_html(graphs.lesson(), None, standalone=False)
    assert frag.startswith('<div class="gradviz"') and "<html" not in frag
    assert len(Dom.parse(frag).all("style")) == 1
    rules = re.findall(r"^([^\s{}@/*][^{]*)\{", asset("gradviz.css"), re.M)
    assert rules and all(
        sel.strip().startswith(".gradviz") for rule in rules for sel in rule.split(",")
    )


def test_cli_renders_html(tmp_path: Path) -> None:
    out = tmp_path / "linear.html"
    proc = subprocess.run(
        [sys.executable, "-m", "graphviz_grad", "render", "samples/linear.py", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = data_block(out.read_text(encoding="utf-8"))
    nodes = decode(data)["nodes"]
    w = next(n for n in nodes if n["header"] == "w")
    assert w["grad"] == "-8.0" and w["order"] == 4
    steps = data["steps"]
    assert isinstance(steps, dict) and steps["order"] == [1, 2, 3, 4]
    strings = data["strings"]
    assert isinstance(strings, list)
    texts = [strings[v] for lines in steps["lines"] for _, v in lines]
    assert any("-4.0 · 2.0 = -8.0" in t for t in texts)  # explain's chain rule, in the page


def test_a_page_of_numbers_whose_norm_passes_the_float_range(tmp_path: Path) -> None:
    """A diverging float64 model (numbers near 1e154 and up: finite, their norm inf): the page's
    colouring by magnitude takes the largest number's log10 (the page failed: "Out of range
    float values are not JSON compliant")."""
    script = tmp_path / "big.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([1.3e154, -1.3e154], dtype=torch.float64, requires_grad=True)\n"
        "(w * 2.0).sum().backward()\n",
        encoding="utf-8",
    )
    out = tmp_path / "big.html"
    proc = gradviz("render", str(script), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    data = data_block(out.read_text(encoding="utf-8"))
    vmag = data["vmag"]
    assert isinstance(vmag, list)
    assert vmag[:3] == ["zero", 154.415, 154.114]  # the sum (0), w * 2, w
