"""Inputs that need no gradient (`x`, `y`, numbers): recorded by capture, kind `input` in JSON,
drawn as grey nodes in small pictures."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import pytest
import torch
from helpers.graphs import lesson, lesson_with_inputs

import graphviz_grad as gg
from graphviz_grad.capture.summary import summarize
from graphviz_grad.render import DrawOptions, from_dict, to_dict, to_dot, to_json
from graphviz_grad.views import INPUTS_AUTO, fit_budget, whole, with_inputs

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


def test_capture_records_the_lessons_inputs_by_name_and_position() -> None:
    x, y = torch.tensor(2.0), torch.tensor(4.0)
    w = torch.tensor(1.0, requires_grad=True)
    with gg.record() as rec:
        loss = (x * w - y) ** 2
        loss.backward()
    graph = rec.graph(-1)
    found = {
        (graph.nodes[e.dst].op, e.index): graph.input_nodes[e.src - len(graph.nodes)]
        for e in graph.input_edges
    }
    assert set(found) == {("MulBackward0", 0), ("SubBackward0", 1), ("PowBackward0", 1)}
    assert found["MulBackward0", 0].names == ("x",)
    assert found["SubBackward0", 1].names == ("y",)
    assert found["PowBackward0", 1].names == ()
    for key, tensor in {("MulBackward0", 0): x, ("SubBackward0", 1): y}.items():
        value = found[key].value
        assert value is not None and value.data == tensor.item()
    two = found["PowBackward0", 1].value
    assert two is not None and two.data == 2
    assert all(n.kind == "input" and n.grad is None for n in graph.input_nodes)
    # ids follow the autograd nodes: no autograd id moved
    assert [n.id for n in graph.input_nodes] == list(range(len(graph.nodes), len(graph.nodes) + 3))


def test_a_named_input_used_twice_is_one_node_and_dims_are_not_inputs() -> None:
    x = torch.randn(3)
    w = torch.randn(3, requires_grad=True)
    with gg.record() as rec:
        ((x * w).sum(0) + (x + w).split(1, 0)[0].sum()).backward()
    graph = rec.graph(-1)
    named = [n for n in graph.input_nodes if n.names == ("x",)]
    assert len(named) == 1
    users = sorted(graph.nodes[e.dst].op or "" for e in graph.input_edges if e.src == named[0].id)
    assert users == ["AddBackward0", "MulBackward0"]
    # the `0` of sum(0) and the `1, 0` of split are dims, not operands
    assert not [n for n in graph.input_nodes if not n.names]


def test_large_inputs_are_summarised_as_the_op_read_them() -> None:
    x = torch.randn(64, 32)
    x[0, 0] = float("nan")  # a NaN in the data shows (forward-nonfinite blames it)
    w = torch.randn(32, 2, requires_grad=True)
    with gg.record() as rec:
        (x @ w).sum().backward()
    graph = rec.graph(-1)
    (node,) = graph.input_nodes
    assert node.names == ("x",) and node.shape == (64, 32) and node.dtype == "float32"
    assert node.value == summarize(x) and node.value.data is None and node.value.nan == 1


def schema() -> dict[str, Any]:
    text = files("graphviz_grad.render").joinpath("schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def test_json_has_input_nodes_after_the_autograd_nodes() -> None:
    d = to_dict(lesson_with_inputs())
    kinds = [n["kind"] for n in d["nodes"]]
    assert kinds == ["op", "op", "op", "leaf", "input", "input", "input"]
    assert [n["id"] for n in d["nodes"]] == list(range(7))
    x = d["nodes"][6]
    assert x["names"] == ["x"] and x["grad"] is None and x["op"] is None and "outputs" not in x
    assert {"src": 6, "dst": 2, "index": 0, "output_nr": 0, "grad": None} in d["edges"]


def test_json_with_inputs_validates_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    d = json.loads(to_json(lesson_with_inputs()))
    jsonschema.validate(d, schema(), cls=jsonschema.Draft202012Validator)
    d["nodes"][6]["kind"] = "constant"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, schema(), cls=jsonschema.Draft202012Validator)


def test_json_with_inputs_round_trips() -> None:
    graph = lesson_with_inputs()
    back = from_dict(json.loads(to_json(graph)))
    assert back == graph
    assert back.input_nodes == graph.input_nodes


def test_gradviz_1_is_still_read() -> None:
    d = to_dict(lesson())
    d["schema"] = "gradviz/1"
    assert from_dict(d) == lesson()


def test_dot_golden_with_inputs(golden: Callable[[str, str], None]) -> None:
    golden("lesson_inputs.dot", to_dot(lesson_with_inputs()))


@pytest.mark.parametrize("rankdir", ["LR", "BT", "RL"])
def test_dot_golden_rankdir(golden: Callable[[str, str], None], rankdir: str) -> None:
    dot = to_dot(lesson_with_inputs(), DrawOptions(rankdir=rankdir))  # type: ignore[arg-type]
    assert dot.replace(f"rankdir={rankdir};", "rankdir=TB;") == to_dot(lesson_with_inputs())
    golden(f"lesson_inputs_{rankdir.lower()}.dot", dot)


def test_inputs_on_off_and_automatic() -> None:
    graph = lesson_with_inputs()
    assert 'n6 [label=<<table border="1"' in to_dot(graph)  # small: drawn
    assert "n6 [" not in to_dot(graph, DrawOptions(inputs=False))
    assert "x</b> input" in to_dot(graph, DrawOptions(inputs=True))
    big = with_inputs(whole(graph))
    assert big.size == 7 and INPUTS_AUTO > 7


def test_no_inputs_beside_ops_folded_away() -> None:
    graph = lesson_with_inputs()
    view = with_inputs(fit_budget(graph, budget=2))  # the far end is elided
    drawn_ops = set(view.shown)
    for e in view.edges:
        if view.input(e.src) is not None:
            assert e.dst in drawn_ops


@needs_dot
def test_x_is_drawn_left_of_w_as_written() -> None:
    from graphviz_grad.render import render_bytes

    svg = render_bytes(lesson_with_inputs(), "svg").decode()
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2000/svg}"
    where: dict[str, float] = {}
    for g in ET.fromstring(svg).iter(f"{ns}g"):
        if g.get("class") == "node":
            xs = [float(t.get("x", "0")) for t in g.iter(f"{ns}text")]
            where[g.findtext(f"{ns}title") or ""] = min(xs)
    assert where["n6"] < where["n3"]  # x (argument 0) left of w (argument 1)


def test_cli_inputs_on_by_default_for_small_pictures_and_switchable() -> None:
    from pathlib import Path

    from typer.testing import CliRunner

    from graphviz_grad.cli import app

    root = Path(__file__).resolve().parents[2]
    lesson_py, transformer = str(root / "samples/linear.py"), str(root / "samples/transformer.py")
    runner = CliRunner()

    def dot(*args: str) -> str:
        result = runner.invoke(app, ["render", *args, "-o", "-", "-q"])
        assert result.exit_code == 0, result.stderr
        return result.stdout

    assert "<b>x</b> input" in dot(lesson_py)
    assert "input</td>" not in dot(lesson_py, "--no-inputs")
    assert "input</td>" not in dot(transformer)  # 100+ nodes: left out by default
    assert "input</td>" in dot(transformer, "--inputs")
