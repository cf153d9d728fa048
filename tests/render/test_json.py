from __future__ import annotations

import dataclasses
import json
import math
import random
import struct
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import pytest
from helpers.graphs import (
    NASTY,
    chain,
    diamond,
    large_values,
    lesson,
    multi_output,
    nasty,
    scalar,
    vector,
)

from graphviz_grad.errors import GradvizError
from graphviz_grad.model import Edge, Graph, Node, Output, TensorSummary
from graphviz_grad.render import from_dict, to_dict, to_json
from graphviz_grad.render import json as json_module
from graphviz_grad.render.json import write_json

ALL = [lesson, diamond, multi_output, nasty, large_values]


def _native_rows() -> Any:
    from graphviz_grad.capture import native

    module = native.load()
    return None if module is None else getattr(module, "json_rows", None)


@pytest.fixture(params=["python", "c++"])
def rows(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Rows written by Python's `_node_json` and the rest, or by the extension's `json_rows`
    (skipped where it is not built)."""
    if request.param == "c++":
        if _native_rows() is None:
            pytest.skip("the C++ extension is not built (make native, g++ needed)")
        monkeypatch.setattr(json_module, "NATIVE_ROWS", [True])
    else:
        monkeypatch.setattr(json_module, "NATIVE_ROWS", [False])
    return str(request.param)


def schema() -> dict[str, Any]:
    text = files("graphviz_grad.render").joinpath("schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def test_top_level_keys_in_order() -> None:
    assert list(to_dict(lesson())) == [
        "schema",
        "root",
        "roots",
        "call",
        "call_file",
        "call_line",
        "grad_source",
        "nodes",
        "edges",
        "findings",
        "notes",
    ]


def test_lesson_golden(golden: Callable[[str, str], None]) -> None:
    golden("lesson.json", to_json(lesson()))


def test_node_fields() -> None:
    d = to_dict(lesson())
    op, leaf = d["nodes"][0], d["nodes"][3]
    assert list(op)[:9] == [
        "id", "kind", "op", "names", "shape", "dtype", "value", "grad", "outputs",
    ]  # fmt: skip
    assert "outputs" not in leaf and leaf["op"] is None and leaf["kind"] == "leaf"
    assert leaf["grad"]["data"] == -8.0
    assert "note" not in leaf["grad"]
    assert d["edges"][0] == {
        "src": 1,
        "dst": 0,
        "index": 0,
        "output_nr": 0,
        "grad": d["edges"][0]["grad"],
    }
    assert "data" not in to_dict(large_values())["nodes"][1]["value"]


def test_nonfinite_is_valid_json() -> None:
    text = to_json(diamond())
    parsed = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert parsed["nodes"][3]["grad"]["data"] == [0.5, -0.5, "nan"]
    back = from_dict(parsed)
    data = back.nodes[3].grad.data if back.nodes[3].grad else None
    assert isinstance(data, list) and math.isnan(data[2])


@pytest.mark.parametrize("make", [*ALL, lambda: every_key()])
def test_validates_against_schema(make: Callable[[], Graph]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.validate(json.loads(to_json(make())), schema(), cls=jsonschema.Draft202012Validator)


def test_schema_rejects_leaf_with_outputs() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    d = json.loads(to_json(lesson()))
    d["nodes"][3]["outputs"] = []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, schema(), cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("make", [lesson, multi_output, nasty, large_values, lambda: every_key()])
def test_round_trip(make: Callable[[], Graph]) -> None:
    graph = make()
    assert from_dict(json.loads(to_json(graph))) == graph


def test_round_trip_text_with_nan() -> None:
    text = to_json(diamond())
    assert to_json(from_dict(json.loads(text))) == text


def test_round_trip_constants() -> None:
    v = vector([1.0])
    node = Node(0, "op", "AddBackward0", outputs=(Output(v, v),), constants=((1, v),))
    graph = Graph((node,), ())
    assert from_dict(to_dict(graph)) == graph


def test_nasty_names() -> None:
    text = to_json(nasty())
    assert "ŷ∂ & co" in text  # ensure_ascii=False
    names = [n for node in json.loads(text)["nodes"] for n in node["names"]]
    assert tuple(names) == NASTY


def test_from_dict_rejects_other_json() -> None:
    with pytest.raises(GradvizError, match="not gradviz JSON"):
        from_dict({"schema": "other"})
    with pytest.raises(GradvizError, match="malformed"):
        from_dict({"schema": "gradviz/1"})


def test_100k_chain() -> None:
    text = to_json(chain(100_000))
    assert json.loads(text)["nodes"][-1]["kind"] == "leaf"


def test_layout_one_item_per_line() -> None:
    lines = to_json(lesson()).splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert lines[1] == ' "schema": "gradviz/2",'
    assert sum(line.startswith('  {"id": ') for line in lines) == 4
    assert json.loads(to_json(lesson(), indent=None)) == json.loads(to_json(lesson(), indent=4))
    assert len(to_json(lesson(), indent=None).splitlines()) == 1


def _reference(graph: Graph) -> str:
    """`to_json` as the encoder writes it from `to_dict`, one row per line (the streamed writer
    builds the same text without the dicts)."""
    d = to_dict(graph)
    parts = []
    for key, value in d.items():
        if key in ("nodes", "edges", "findings") and value:
            rows = ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in value)
            parts.append(f" {json.dumps(key)}: [\n{rows}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def every_key() -> Graph:
    """The lesson with every optional key: a checkpointed op, a DDP leaf with a hook, a rank, an
    input."""
    g = lesson()
    nodes = list(g.nodes)
    op = next(n for n in nodes if n.kind == "op")
    two = TensorSummary((), "float32", 1, 2.0, 2.0, 2.0, 2.0, 2.0)
    nodes[op.id] = dataclasses.replace(
        op, checkpointed=True, constants=((1, two),), operands=((1, None),)
    )
    leaf = next(n for n in nodes if n.kind == "leaf")
    nodes[leaf.id] = dataclasses.replace(leaf, synced_grad=two, hooked=True)
    return dataclasses.replace(g, nodes=tuple(nodes), rank=1, world_size=2)


@pytest.mark.parametrize("make", [*ALL, every_key, lambda: chain(3)])
def test_streamed_text_is_the_encoders(make: Callable[[], Graph], rows: str) -> None:
    graph = make()
    assert to_json(graph) == _reference(graph)


def test_streamed_in_chunks(tmp_path: Any, rows: str) -> None:
    graph = chain(5000)  # more rows than one chunk
    path = tmp_path / "chain.json"
    with path.open("w", encoding="utf-8") as f:
        write_json(graph, f)
    assert path.read_text(encoding="utf-8") == _reference(graph)


def with_inputs(n: int) -> Graph:
    """`chain(n)` whose ops take inputs that need no gradient: unnamed numbers (one node per use),
    a named `y` whose value changes every 7 ops (one node per value), a NaN, -0.0, an int."""
    graph = chain(n)
    kinds: list[tuple[str | None, TensorSummary]] = [
        (None, scalar(1.0001, "float64")),
        ("y", scalar(0.0)),  # replaced by its value at each op below
        ("z", scalar(float("nan"))),
        (None, scalar(-0.0)),
        ("k", TensorSummary((), "int64", 1, 2, 2, 2, 2, 2)),
    ]
    nodes = []
    for node in graph.nodes:
        if node.kind != "op":
            nodes.append(node)
            continue
        name, value = kinds[node.id % len(kinds)]
        if name == "y":
            value = scalar(float((node.id // 7) % 3))
        nodes.append(dataclasses.replace(node, constants=((1, value),), operands=((1, name),)))
    return dataclasses.replace(graph, nodes=tuple(nodes))


def test_streamed_inputs_are_the_encoders(rows: str) -> None:
    graph = with_inputs(3000)
    assert len(graph.input_nodes) < len(graph.input_edges) == 2999
    assert to_json(graph) == _reference(graph)


def test_input_uses_make_the_input_nodes_and_edges() -> None:
    graph = with_inputs(500)
    uses = list(graph.input_uses())
    first = len(graph.nodes)
    assert [(u.src, u.dst, u.position) for u in uses] == [
        (e.src, e.dst, e.index) for e in graph.input_edges
    ]
    made = [u for u in uses if u.new]
    assert [u.src for u in made] == list(range(first, first + len(graph.input_nodes)))
    assert [(u.name, u.value) for u in made] == [
        (n.names[0] if n.names else None, n.value) for n in graph.input_nodes
    ]


def _floats(seed: int, count: int) -> list[float]:
    """Doubles of every kind: any bits, float32 values, plain sizes, large and tiny integers."""
    rng = random.Random(seed)
    found = [0.0, -0.0, 1e-5, 1e-4, 9.999e-5, 1e16, 9999999999999998.0, 1e15, 5e-324, 1e22, 1e23]
    found += [1.7976931348623157e308, 2.2250738585072014e-308, 0.1, 1 / 3, 147642.15625]
    for _ in range(count):
        kind = rng.random()
        if kind < 0.4:
            found.append(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0])
        elif kind < 0.7:
            found.append(struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0])
        elif kind < 0.85:
            found.append(rng.uniform(-1e6, 1e6))
        else:
            found.append(float(rng.randint(-(10**18), 10**18)) * 10.0 ** rng.randint(-30, 30))
    return found


def test_native_floats_are_pythons_repr(rows: str) -> None:
    """`float.__repr__`'s text for every float, NaN and Inf as the strings: the C++ writer lays
    out `std::to_chars`'s shortest digits as Python does."""
    xs = _floats(0, 100_000)
    edges = tuple(
        Edge(k, k + 1, 0, 0, TensorSummary((), "float64", 1, x, x, x, x, abs(x)))
        for k, x in enumerate(xs)
    )
    graph = Graph(nodes=lesson().nodes, edges=edges)
    assert to_json(graph) == _reference(graph)


def odd_values() -> Graph:
    """Values the C++ writer does not write itself (its rows are Python's): a float where an int
    goes, a tuple in `data`, a huge int, a lone surrogate in a name, a NaN count that is a
    float; and values it does write: every JSON escape in a note, strings, None and NaN in
    nested `data`, a bool."""
    g = lesson()
    nodes = list(g.nodes)
    odd = TensorSummary((2,), "float32", 2, (1.0, 2.0), 1.0, 2.0, 1.5, 2.2, nan=0.0)
    text = TensorSummary(
        (), "bool", 1, True, True, True, 1.0, 1.0, note='\x00\x1f"\\\b\f\n\r\té\x7f'
    )
    nodes[0] = dataclasses.replace(nodes[0], line=3.0, value=odd, names=("\ud800",))  # type: ignore[arg-type]
    nodes[1] = dataclasses.replace(nodes[1], order=10**30)
    nodes[3] = dataclasses.replace(nodes[3], value=text)
    nodes[2] = dataclasses.replace(
        nodes[2],
        value=TensorSummary((1,), "str", 1, ["a", [1, None, float("nan")]]),  # type: ignore[list-item]
    )
    return dataclasses.replace(g, nodes=tuple(nodes))


def test_odd_values_are_pythons_rows(rows: str) -> None:
    graph = odd_values()
    assert to_json(graph) == _reference(graph)
