"""The graph as JSON (schema ``gradviz/2``, see ``schema.json`` and docs/json-schema.md).

Keys come in a fixed order and lists keep the model's order, so the same graph gives
byte-identical JSON. The inputs that need no gradient are nodes of kind ``"input"`` after the
autograd nodes, with edges into the ops that use them (``gradviz/1``, which had no input nodes,
is still read). Non-finite numbers, which JSON cannot hold, are written as the strings
``"nan"``, ``"inf"`` and ``"-inf"``. `from_dict` reads the JSON back into the model.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from graphviz_grad._gc import on_big_graphs
from graphviz_grad.errors import GradvizError
from graphviz_grad.model import (
    Data,
    Edge,
    Finding,
    Graph,
    InputUse,
    Node,
    Output,
    Saved,
    TensorSummary,
)

SCHEMA = "gradviz/2"
#: Older schemas `from_dict` still reads.
READS = (SCHEMA, "gradviz/1")
_NONFINITE: dict[str, float] = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _encode_number(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def _decode_number(x: Any) -> Any:
    if isinstance(x, str) and x in _NONFINITE:
        return _NONFINITE[x]
    return x


def _map_data(data: Any, fn: Callable[[Any], Any]) -> Any:
    """A copy of nested lists with `fn` applied to every scalar, walked with a stack."""
    if not isinstance(data, list):
        return fn(data)
    top: list[Any] = []
    stack: list[tuple[list[Any], list[Any]]] = [(data, top)]
    while stack:
        src, dst = stack.pop()
        for item in src:
            if isinstance(item, list):
                new: list[Any] = []
                dst.append(new)
                stack.append((item, new))
            else:
                dst.append(fn(item))
    return top


def summary_to_dict(s: TensorSummary | None) -> dict[str, Any] | None:
    """One tensor summary; `data` only when kept, `note` only when set."""
    if s is None:
        return None
    d: dict[str, Any] = {"shape": list(s.shape), "dtype": s.dtype}
    if s.data is not None:
        d["data"] = _map_data(s.data, _encode_number)
    d["min"] = _encode_number(s.min)
    d["max"] = _encode_number(s.max)
    d["mean"] = _encode_number(s.mean)
    d["norm"] = _encode_number(s.norm)
    d["nan"] = s.nan
    d["inf"] = s.inf
    if s.note is not None:
        d["note"] = s.note
    return d


def _saved_to_dict(s: Saved) -> dict[str, Any]:
    return {
        "name": s.name,
        "kind": s.kind,
        "summary": summary_to_dict(s.summary),
        "node": s.node,
        "text": s.text,
        "state": s.state,
    }


def _output_to_dict(o: Output) -> dict[str, Any]:
    return {"value": summary_to_dict(o.value), "grad": summary_to_dict(o.grad)}


def _node_to_dict(n: Node) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": n.id,
        "kind": n.kind,
        "op": n.op if n.kind == "op" else None,
        "names": list(n.names),
        "shape": list(n.shape) if n.shape is not None else None,
        "dtype": n.dtype,
        "value": summary_to_dict(n.value),
        "grad": summary_to_dict(n.grad),
    }
    if n.kind == "op":
        d["outputs"] = [_output_to_dict(o) for o in n.outputs]
    d["saved"] = [_saved_to_dict(s) for s in n.saved]
    d["module"] = n.module
    d["module_type"] = n.module_type
    d["file"] = n.file
    d["line"] = n.line
    d["order"] = n.order
    d["aten"] = n.aten
    d["constants"] = [{"index": i, "value": summary_to_dict(s)} for i, s in n.constants]
    if n.checkpointed:  # optional: recomputed in backward (activation checkpointing)
        d["checkpointed"] = True
    if n.hooked:  # optional: a hook of the script's on the tensor (`register_hook`)
        d["hooked"] = True
    if n.synced_grad is not None:  # optional: DDP's all-reduced .grad of a parameter
        d["synced_grad"] = summary_to_dict(n.synced_grad)
    return d


def _edge_to_dict(e: Edge) -> dict[str, Any]:
    return {
        "src": e.src,
        "dst": e.dst,
        "index": e.index,
        "output_nr": e.output_nr,
        "grad": summary_to_dict(e.grad),
    }


def _finding_to_dict(f: Finding) -> dict[str, Any]:
    return {
        "code": f.code,
        "severity": f.severity,
        "message": f.message,
        "file": f.file,
        "line": f.line,
        "nodes": list(f.nodes),
        "hint": f.hint,
    }


def to_dict(graph: Graph) -> dict[str, Any]:
    """The graph as plain dicts and lists, keys in schema order, ready for `json.dumps`."""
    return {
        "schema": SCHEMA,
        "root": graph.root if graph.roots else None,
        "roots": list(graph.roots),
        "call": graph.call,
        "call_file": graph.call_file,
        "call_line": graph.call_line,
        "grad_source": graph.grad_source,
        "nodes": [_node_to_dict(n) for n in (*graph.nodes, *graph.input_nodes)],
        "edges": [_edge_to_dict(e) for e in (*graph.edges, *graph.input_edges)],
        "findings": [_finding_to_dict(f) for f in graph.findings],
        "notes": list(graph.notes),
        **_distributed(graph),
    }


def _distributed(graph: Graph) -> dict[str, Any]:
    """Optional keys: the torch.distributed rank, the GradScaler scale (only when set)."""
    found: dict[str, Any] = {}
    if graph.rank is not None:
        found.update(rank=graph.rank, world_size=graph.world_size)
    if graph.grad_scale is not None:
        found["grad_scale"] = _encode_number(graph.grad_scale)
    return found


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def to_json(graph: Graph, indent: int | None = 1) -> str:
    """The graph as JSON text; non-ASCII names are kept as they are.

    With `indent`, the top-level keys are indented and every node, edge and finding sits on one
    line of its own (readable, diff-friendly). `indent=None` gives one compact line. For a big
    graph, `write_json` streams the same text into a file instead of building one string.

    Example:
        >>> Path("graph.json").write_text(to_json(graph), encoding="utf-8")
    """
    if indent is None:
        return _dumps(to_dict(graph)) + "\n"
    out = io.StringIO()
    write_json(graph, out, indent)
    return out.getvalue()


#: Rows written to the file per `write` call.
_CHUNK = 2048


@on_big_graphs
def write_json(graph: Graph, out: TextIO, indent: int | None = 1) -> None:
    """Write `to_json(graph, indent)` to the text file `out`, a few thousand rows at a time:
    memory stays flat however many nodes the graph has.

    Example:
        >>> with open("graph.json", "w", encoding="utf-8") as f:
        ...     write_json(graph, f)
    """
    if indent is None:
        out.write(to_json(graph, None))
        return
    pad = " " * indent
    d = to_dict(dataclasses.replace(graph, nodes=(), edges=(), findings=()))
    sep = ",\n" + pad * 2
    rows: dict[str, Iterable[str]] = {
        "nodes": itertools.chain(
            _native_chunks(graph.nodes, _NODES, sep),
            _native_chunks((u for u in graph.input_uses() if u.new), _INPUTS, sep),
        ),
        "edges": itertools.chain(
            _native_chunks(graph.edges, _EDGES, sep),
            _native_chunks(graph.input_uses(), _INPUT_EDGES, sep),
        ),
        "findings": _chunks((_dumps(_finding_to_dict(f)) for f in graph.findings), sep),
    }
    _SHARED.clear()
    try:
        out.write("{\n")
        for n, key in enumerate(d):
            out.write(",\n" if n else "")
            if key in rows:
                _write_rows(out, f"{pad}{_dumps(key)}: ", rows[key], sep, pad)
            else:
                out.write(f"{pad}{_dumps(key)}: {_dumps(d[key])}")
        out.write("\n}\n")
    finally:
        _SHARED.clear()


def _write_rows(out: TextIO, head: str, chunks: Iterable[str], sep: str, end: str) -> None:
    """`head` then a list with one row per line, from `chunks` of rows joined by `sep`."""
    out.write(head)
    first = True
    for chunk in chunks:
        out.write(("[" + sep[1:] if first else sep) + chunk)
        first = False
    out.write("[]" if first else f"\n{end}]")


def _chunks(rows: Iterable[str], sep: str) -> Iterator[str]:
    """`rows` joined by `sep`, `_CHUNK` rows at a time."""
    for chunk in iter(lambda: list(itertools.islice(rows, _CHUNK)), []):
        yield sep.join(chunk)


#: What `_native_chunks` writes: nodes (`_node_json`), edges (`_edge_json`), the input edges
#: (`_input_edge_json`) and nodes (`_input_json`), numbered as the C++ `json_rows` numbers them.
_NODES, _EDGES, _INPUT_EDGES, _INPUTS = 0, 1, 2, 3


def _native_chunks(items: Iterable[Any], kind: int, sep: str) -> Iterator[str]:
    """The rows of `items` as `_chunks` gives them, written by the C++ `json_rows` where it is
    loaded: the same bytes, several times faster (a row it does not know is Python's own)."""
    row = (_node_json, _edge_json, _input_edge_json, _input_json)[kind]
    native = _json_rows()
    rest = iter(items)
    for part in iter(lambda: list(itertools.islice(rest, _CHUNK)), []):
        yield native(part, kind, sep, row) if native is not None else sep.join(map(row, part))


#: Whether `write_json` may use the C++ rows (tests turn them off to compare both).
NATIVE_ROWS = [True]


def _json_rows() -> Callable[..., str] | None:
    """The C++ `json_rows` of gradviz's extension when a capture has loaded it (torch is then
    imported: the extension needs it; writing JSON alone does not), else None."""
    loader = sys.modules.get("graphviz_grad.capture.native")
    if not NATIVE_ROWS[0] or loader is None:
        return None
    module = loader.load()
    return None if module is None else getattr(module, "json_rows", None)


# -- the rows as text, without building their dicts (same bytes as `_dumps(_node_to_dict(n))`) --
#: Strings seen often (dtypes, op names, files) as JSON, and shapes as JSON; bounded.
_TEXT: dict[Any, str] = {}
_TEXT_LIMIT = 4096


def _remember(cache: dict[Any, str], key: Any, text: str) -> str:
    """`text`, kept in `cache` under `key` while the cache is under its bound."""
    if len(cache) < _TEXT_LIMIT:
        cache[key] = text
    return text


def _str(x: str | None) -> str:
    text = _TEXT.get(x)
    if text is None:
        encoded = "null" if x is None else json.encoder.encode_basestring(x)  # type: ignore[attr-defined]
        text = _remember(_TEXT, x, encoded)
    return text


def _dims(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "null"
    key = ("shape", shape)
    text = _TEXT.get(key)
    if text is None:
        text = _remember(_TEXT, key, _dumps(list(shape)))
    return text


def _int(x: int | None) -> str:
    return "null" if x is None else int.__repr__(x) if type(x) is int else _dumps(x)


def _num(x: Any) -> str:
    """One scalar as the encoder writes it after `_encode_number`."""
    if type(x) is float and math.isfinite(x):
        return float.__repr__(x)
    return _dumps(_encode_number(x))


def _summary_json(s: TensorSummary | None) -> str:
    if s is None:
        return "null"
    lo = s.min
    if type(lo) is float and s.data is lo and s.max is lo and s.mean is lo and s.note is None:
        return _number_json(s, lo)
    head = f'{{"shape": {_dims(s.shape)}, "dtype": {_str(s.dtype)}'
    data = s.data
    if data is not None:
        text = _num(data) if type(data) is not list else _dumps(_map_data(data, _encode_number))
        head = f'{head}, "data": {text}'
    hi, mean, norm = s.max, s.mean, s.norm
    if (
        type(lo) is float
        and type(hi) is float
        and type(mean) is float
        and type(norm) is float
        and math.isfinite(lo + hi + mean + norm)
    ):
        stats = f'"min": {lo!r}, "max": {hi!r}, "mean": {mean!r}, "norm": {norm!r}'
    else:
        stats = f'"min": {_num(lo)}, "max": {_num(hi)}, "mean": {_num(mean)}, "norm": {_num(norm)}'
    tail = "}" if s.note is None else f', "note": {_str(s.note)}}}'
    return f'{head}, {stats}, "nan": {_int(s.nan)}, "inf": {_int(s.inf)}{tail}'


#: The JSON of summaries that many rows share (a constant `1.0001` of every op of a chain, and
#: the input node it makes), by the id of the summary, which the entry keeps alive (so the id is
#: not reused); emptied before and after each `write_json`, bounded like `_TEXT`.
_SHARED: dict[int, tuple[TensorSummary | None, str]] = {}


def _shared_json(s: TensorSummary | None) -> str:
    """`_summary_json(s)` of a summary that is likely shared by many rows."""
    found = _SHARED.get(id(s))
    if found is not None:
        return found[1]
    text = _summary_json(s)
    if len(_SHARED) < _TEXT_LIMIT:
        _SHARED[id(s)] = (s, text)
    return text


def _number_json(s: TensorSummary, x: float) -> str:
    """A one-number summary (data, min, max and mean are that very float): written once."""
    r = float.__repr__(x) if x - x == 0 else _num(x)
    norm = s.norm
    n = float.__repr__(norm) if type(norm) is float and norm - norm == 0 else _num(norm)
    return (
        f'{_summary_head(s)}, "data": {r}, "min": {r}, "max": {r}, "mean": {r}, "norm": {n}'
        f"{_counts(s)}"
    )


#: Parts of rows that many rows share, by what they are made of; bounded like `_TEXT`.
_HEADS: dict[tuple[Any, ...], str] = {}
_NODE_HEADS: dict[tuple[Any, ...], str] = {}
_WHERES: dict[tuple[Any, ...], str] = {}
_NO_COUNTS = ', "nan": 0, "inf": 0}'


def _summary_head(s: TensorSummary) -> str:
    """``{"shape": [2, 3], "dtype": "float32"`` of a summary."""
    key = (s.shape, s.dtype)
    text = _HEADS.get(key)
    if text is None:
        text = _remember(_HEADS, key, f'{{"shape": {_dims(s.shape)}, "dtype": {_str(s.dtype)}')
    return text


def _counts(s: TensorSummary) -> str:
    """``, "nan": 0, "inf": 0}``: a summary's last keys."""
    nan, inf = s.nan, s.inf
    if nan == 0 and inf == 0 and type(nan) is int and type(inf) is int:
        return _NO_COUNTS
    return f', "nan": {_int(nan)}, "inf": {_int(inf)}}}'


def _node_head(n: Node, op: bool) -> str:
    """``"kind": …, "op": …, "names": …, "shape": …, "dtype": …`` of a node."""
    key = (n.kind, n.op if op else None, n.names, n.shape, n.dtype)
    text = _NODE_HEADS.get(key)
    if text is None:
        names = "[]" if not n.names else _dumps(list(n.names))
        text = _remember(
            _NODE_HEADS,
            key,
            f'"kind": {_str(n.kind)}, "op": {_str(key[1])}, "names": {names}, '
            f'"shape": {_dims(n.shape)}, "dtype": {_str(n.dtype)}',
        )
    return text


def _node_where(n: Node) -> str:
    """``"module": …, "module_type": …, "file": …`` of a node."""
    key = (n.module, n.module_type, n.file)
    text = _WHERES.get(key)
    if text is None:
        module, kind, file = _str(n.module), _str(n.module_type), _str(n.file)
        text = _remember(_WHERES, key, f'"module": {module}, "module_type": {kind}, "file": {file}')
    return text


def _node_json(n: Node) -> str:
    value, grad = _summary_json(n.value), _summary_json(n.grad)
    op = n.kind == "op"
    outputs = ""
    if op:
        outs = n.outputs
        if len(outs) == 1 and outs[0].value is n.value and outs[0].grad is n.grad:
            outputs = f', "outputs": [{{"value": {value}, "grad": {grad}}}]'
        else:
            items = ", ".join(
                f'{{"value": {value if o.value is n.value else _summary_json(o.value)}, '
                f'"grad": {grad if o.grad is n.grad else _summary_json(o.grad)}}}'
                for o in outs
            )
            outputs = f', "outputs": [{items}]'
    saved = _dumps([_saved_to_dict(s) for s in n.saved]) if n.saved else "[]"
    constants = "[]"
    if n.constants:
        rows = (f'{{"index": {_int(i)}, "value": {_shared_json(c)}}}' for i, c in n.constants)
        constants = "[" + ", ".join(rows) + "]"
    return (
        f'{{"id": {_int(n.id)}, {_node_head(n, op)}, '
        f'"value": {value}, "grad": {grad}{outputs}, "saved": {saved}, '
        f'{_node_where(n)}, "line": {_int(n.line)}, "order": {_int(n.order)}, '
        f'"aten": {_str(n.aten)}, "constants": {constants}{_optional_json(n)}}}'
    )


def _optional_json(n: Node) -> str:
    """The optional keys of `_node_to_dict`, in its order (empty for most nodes)."""
    text = ', "checkpointed": true' if n.checkpointed else ""
    if n.hooked:
        text += ', "hooked": true'
    if n.synced_grad is not None:
        text += f', "synced_grad": {_summary_json(n.synced_grad)}'
    return text


def _input_json(use: InputUse) -> str:
    """`_node_json` of the input node that `use` makes, without making it."""
    names = "[]" if use.name is None else _dumps([use.name])
    value = use.value
    return (
        f'{{"id": {_int(use.src)}, "kind": "input", "op": null, "names": {names}, '
        f'"shape": {_dims(value.shape)}, "dtype": {_str(value.dtype)}, '
        f'"value": {_shared_json(value)}{_INPUT_TAIL}'
    )


_INPUT_TAIL = (
    ', "grad": null, "saved": [], "module": null, "module_type": null, "file": null, '
    '"line": null, "order": null, "aten": null, "constants": []}'
)


def _input_edge_json(use: InputUse) -> str:
    """`_edge_json` of the input edge of `use`."""
    return (
        f'{{"src": {_int(use.src)}, "dst": {_int(use.dst)}, "index": {_int(use.position)}, '
        '"output_nr": 0, "grad": null}'
    )


def _edge_json(e: Edge) -> str:
    return (
        f'{{"src": {_int(e.src)}, "dst": {_int(e.dst)}, "index": {_int(e.index)}, '
        f'"output_nr": {_int(e.output_nr)}, "grad": {_summary_json(e.grad)}}}'
    )


def summary_from_dict(d: dict[str, Any] | None) -> TensorSummary | None:
    """The inverse of `summary_to_dict`; `numel` is the product of the shape."""
    if d is None:
        return None
    shape = tuple(int(x) for x in d["shape"])
    data: Data | None = _map_data(d["data"], _decode_number) if "data" in d else None
    return TensorSummary(
        shape=shape,
        dtype=d["dtype"],
        numel=math.prod(shape),
        data=data,
        min=_decode_number(d["min"]),
        max=_decode_number(d["max"]),
        mean=_decode_number(d["mean"]),
        norm=_decode_number(d["norm"]),
        nan=d["nan"],
        inf=d["inf"],
        note=d.get("note"),
    )


def _saved_from_dict(d: dict[str, Any]) -> Saved:
    return Saved(
        name=d["name"],
        kind=d["kind"],
        summary=summary_from_dict(d["summary"]),
        node=d["node"],
        text=d["text"],
        state=d["state"],
    )


def _node_from_dict(d: dict[str, Any]) -> Node:
    outputs = tuple(
        Output(summary_from_dict(o["value"]), summary_from_dict(o["grad"]))
        for o in d.get("outputs", ())
    )
    constants = tuple(
        (c["index"], s)
        for c in d.get("constants", ())
        if (s := summary_from_dict(c["value"])) is not None
    )
    return Node(
        id=d["id"],
        kind=d["kind"],
        op=d["op"],
        names=tuple(d["names"]),
        shape=tuple(d["shape"]) if d["shape"] is not None else None,
        dtype=d["dtype"],
        value=summary_from_dict(d["value"]),
        grad=summary_from_dict(d["grad"]),
        outputs=outputs,
        saved=tuple(_saved_from_dict(s) for s in d["saved"]),
        module=d["module"],
        module_type=d.get("module_type"),
        file=d["file"],
        line=d["line"],
        order=d["order"],
        aten=d["aten"],
        constants=constants,
        synced_grad=summary_from_dict(d.get("synced_grad")),
        checkpointed=bool(d.get("checkpointed", False)),
        hooked=bool(d.get("hooked", False)),
    )


def _edge_from_dict(d: dict[str, Any]) -> Edge:
    return Edge(d["src"], d["dst"], d["index"], d["output_nr"], summary_from_dict(d["grad"]))


def _finding_from_dict(d: dict[str, Any]) -> Finding:
    return Finding(
        code=d["code"],
        severity=d["severity"],
        message=d["message"],
        file=d["file"],
        line=d["line"],
        nodes=tuple(d["nodes"]),
        hint=d["hint"],
    )


def _with_operands(nodes: list[Node], inputs: list[dict[str, Any]], edges: list[Edge]) -> None:
    """Give each op the operands that the input nodes' edges name (in the edges' order)."""
    first = len(nodes)
    found: dict[int, list[tuple[int, str | None]]] = {}
    for e in edges:
        if e.src >= first:
            names = inputs[e.src - first]["names"]
            found.setdefault(e.dst, []).append((e.index, names[0] if names else None))
    for dst, operands in found.items():
        nodes[dst] = dataclasses.replace(nodes[dst], operands=tuple(operands))


def _graph_from_dict(d: dict[str, Any]) -> Graph:
    nodes = [_node_from_dict(n) for n in d["nodes"] if n["kind"] != "input"]
    inputs = [n for n in d["nodes"] if n["kind"] == "input"]
    all_edges = [_edge_from_dict(e) for e in d["edges"]]
    _with_operands(nodes, inputs, all_edges)
    return Graph(
        nodes=tuple(nodes),
        edges=tuple(e for e in all_edges if e.src < len(nodes)),
        roots=tuple(d["roots"]),
        call=d["call"],
        grad_source=d["grad_source"],
        call_file=d.get("call_file"),
        call_line=d.get("call_line"),
        findings=tuple(_finding_from_dict(f) for f in d["findings"]),
        notes=tuple(d["notes"]),
        rank=d.get("rank"),
        world_size=d.get("world_size"),
        grad_scale=_decode_number(d.get("grad_scale")),
    )


def from_dict(d: dict[str, Any]) -> Graph:
    """Rebuild the model from `to_dict` output (or parsed gradviz JSON).

    Example:
        >>> graph = from_dict(json.loads(Path("graph.json").read_text(encoding="utf-8")))
    """
    if not isinstance(d, dict) or d.get("schema") not in READS:
        found = d.get("schema") if isinstance(d, dict) else type(d).__name__
        raise GradvizError(
            f"This is not gradviz JSON: expected schema {SCHEMA!r}, found {found!r}.",
            hint="Read a file written by `gradviz ... --format json` with the same version.",
        )
    try:
        return _graph_from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise GradvizError(
            f"The gradviz JSON is incomplete or malformed ({type(exc).__name__}: {exc}).",
            hint="Check it against graphviz_grad/render/schema.json.",
        ) from exc
