"""Hostile names from a real run: a script in a folder named with quotes, markup and a newline,
whose variables, nn.Module names and custom autograd.Function class name carry the same.

The captured graph must come out intact in every format: DOT that Graphviz lays out with every
node, SVG that parses as XML, JSON that reads back, HTML with nothing broken out.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.browser import Dom
from helpers.html_graphs import decode, expected

from graphviz_grad.capture import Captured, CaptureOptions, capture_script
from graphviz_grad.diagnose import with_findings
from graphviz_grad.model import Graph
from graphviz_grad.render import DrawOptions, from_dict, render_bytes, to_dict, to_dot

ROOT = Path(__file__).resolve().parents[2]
#: Python allows any text as a class name given to type(), a module name given to add_module
#: (no dots) and a key of globals(); identifiers themselves may be non-ASCII.
BAD = 'q"<script>gvPwned=1</script>{}\\\n<!--λ]]>数据'
SCRIPT = f"""
import torch
from torch import nn

BAD = {BAD!r}


def forward(ctx, x):
    ctx.save_for_backward(x)
    return x * 2


def backward(ctx, g):
    (x,) = ctx.saved_tensors
    return g * 2 + x * 0


Hostile = type(BAD, (torch.autograd.Function,), dict(
    forward=staticmethod(forward), backward=staticmethod(backward)))
net = nn.Sequential()
net.add_module(BAD, nn.Linear(2, 1))
torch.manual_seed(0)
λ_input = torch.tensor([[1.0, 2.0]], requires_grad=True)
globals()[BAD] = λ_input
out = Hostile.apply(net(λ_input))
loss = out.sum()
loss.backward()
"""
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run") / 'dir "<script>{}\\\nλ'
    folder.mkdir()
    path = folder / 'train "<b>λ.py'
    path.write_text(SCRIPT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def captured(script: Path) -> Captured:
    return with_findings(capture_script(script, [], CaptureOptions()))


@pytest.fixture(scope="module")
def graph(captured: Captured) -> Graph:
    return captured.graph


def test_the_hostile_strings_reach_the_graph(graph: Graph, script: Path) -> None:
    ops = [n.op for n in graph.nodes]
    assert f"{BAD}Backward" in ops
    assert {n.module for n in graph.nodes if n.module} == {f"net.{BAD}"}
    leaf = next(n for n in graph.leaves if "λ_input" in n.names)
    assert BAD in leaf.names
    assert any(f"net.{BAD}.weight" in n.names for n in graph.leaves)
    assert str(script) in {n.file for n in graph.nodes if n.file}


def test_dot_lays_out_with_every_node(graph: Graph, needs_dot: None) -> None:
    dot = to_dot(graph, DrawOptions(title=BAD, saved=True, edge_grads=True))
    proc = subprocess.run(["dot", "-Tplain"], input=dot.encode(), capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    drawn = [line.split()[1] for line in lines if line.startswith("node ")]
    assert sorted(d for d in drawn if re.fullmatch(r"n\d+", d)) == sorted(
        f"n{n.id}" for n in graph.nodes
    )
    assert sum(line.startswith("edge ") for line in lines) == len(graph.edges)


def test_svg_parses_and_shows_the_names(graph: Graph, needs_dot: None) -> None:
    tree = ET.fromstring(render_bytes(graph, "svg"))
    nodes = [g for g in tree.iter(f"{SVG_NS}g") if g.get("class") == "node"]
    titles = [g.find(f"{SVG_NS}title").text for g in nodes]  # type: ignore[union-attr]
    assert sorted(t for t in titles if re.fullmatch(r"n\d+", t or "")) == sorted(
        f"n{n.id}" for n in graph.nodes
    )
    words = "\n".join(t.text or "" for t in tree.iter(f"{SVG_NS}text"))
    assert 'q"<script>gvPwned=1</script>{}\\' in words
    assert "<!--λ]]>数据Backward" in words


def test_json_reads_back(graph: Graph) -> None:
    data = json.loads(render_bytes(graph, "json"))
    assert data == to_dict(graph)
    assert to_dict(from_dict(data)) == data


def test_html_keeps_its_own_three_scripts(graph: Graph) -> None:
    page = render_bytes(graph, "html", DrawOptions(title=BAD)).decode("utf-8")
    dom = Dom.parse(page)
    scripts = dom.all("script")
    assert len(scripts) == 3 and dom.all("img") == []
    assert decode(json.loads(scripts[0].content)) == expected(graph)
    assert dom.all("title")[0].content == BAD


def test_the_cli_writes_the_page(script: Path, tmp_path: Path) -> None:
    out = tmp_path / "graph.html"
    proc = subprocess.run(
        [sys.executable, "-m", "graphviz_grad", "render", str(script), "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    scripts = Dom.parse(out.read_text(encoding="utf-8")).all("script")
    assert len(scripts) == 3
    nodes = decode(json.loads(scripts[0].content))["nodes"]
    assert f"{BAD}Backward" in [n["header"] for n in nodes]
