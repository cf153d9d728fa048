"""The graph as the HTML explorer reads it: compact, columnar, every label text made in Python.

One object per node with repeated keys makes a 100k-node page tens of megabytes of JSON. Here
every column is a list of integers: texts (ops, types, formatted values and gradients, module
paths, file names) are indexes into one shared string table, so a text used by many nodes (a
type, ``—``, an op name) is stored once. Numbers are formatted here with the same functions as
the DOT labels (`fmt_summary`, `fmt_type`), so the page and the static SVG print the same digits.

Module calls come as a tree (`calls`): each op node names its innermost call, each call its
parent; calls that are identical siblings (same parent, class, name up to numbers and ops) share
a `family`, which the page can draw once with ``×N``. The page decides what is collapsed.

Example:
    >>> data = page_data(graph)
    >>> data["strings"][data["op"][0]]
    'SumBackward0'
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Protocol

from graphviz_grad.model import Edge, Graph, Node, TensorSummary, has_nonfinite
from graphviz_grad.render.format import fmt_number, fmt_summary, fmt_type
from graphviz_grad.views import INPUTS_AUTO

#: Bumped when the layout of the data changes (the page script checks it).
VERSION = 1
#: A numbered child in a module path (``layers.3``): what differs between repeated blocks.
_NUMBER = re.compile(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.|$)")
_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


class StepText(Protocol):
    """One step of the backward walk-through (`teach.explain.Step` has this shape)."""

    @property
    def order(self) -> int: ...
    @property
    def node(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def lines(self) -> tuple[tuple[str, str], ...]: ...


class _Strings:
    """An interning string table: `add` returns the index of a text, storing it once."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.items: list[str] = []

    def add(self, text: str | None) -> int:
        if text is None:
            return -1
        found = self.index.get(text)
        if found is None:
            found = self.index[text] = len(self.items)
            self.items.append(text)
        return found


def _kind(node: Node) -> str:
    """The node's kind; an unnamed number that enters an op is a ``constant`` in the page."""
    return "constant" if node.kind == "input" and not node.names else node.kind


def _header(node: Node, precision: int) -> str:
    if node.kind == "op":
        return node.op or "?"
    if _kind(node) == "constant":
        return fmt_summary(node.value, precision)
    return node.names[0] if node.names else node.kind


def _type(node: Node) -> str:
    return "constant" if _kind(node) == "constant" else fmt_type(node.shape, node.dtype)


def drawn_nodes(graph: Graph) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
    """The nodes and edges the page carries: the graph's, plus its input nodes (what needs no
    gradient: ``x``, targets, numbers) when the graph is small enough for them to stay readable,
    as in the static pictures; edges in argument order per op, so inputs sit left to right."""
    if len(graph.nodes) > INPUTS_AUTO or not graph.input_nodes:
        return graph.nodes, graph.edges
    edges = sorted((*graph.edges, *graph.input_edges), key=lambda e: (e.dst, e.index))
    return (*graph.nodes, *graph.input_nodes), tuple(edges)


def _names(node: Node) -> str:
    shown = node.names if node.kind == "op" else node.names if len(node.names) > 1 else ()
    return ", ".join(shown)


def magnitude(s: TensorSummary | None) -> float | str | None:
    """What colouring by magnitude needs: ``"bad"`` (NaN or inf), ``"zero"``, the log10 of the
    RMS of the elements (comparable across sizes), or None when unknown."""
    if s is None:
        return None
    if s.nan or s.inf:
        return "bad"
    if s.norm == 0 or (s.min == 0 and s.max == 0):
        return "zero"
    if s.norm is None or s.numel == 0 or s.norm != s.norm:
        return None
    if s.norm == math.inf:  # finite numbers whose squares pass the float range: the largest
        big = max(abs(s.min or 0.0), abs(s.max or 0.0))  # of them bounds the RMS
        return round(math.log10(big), 3) if 0 < big < math.inf else "bad"
    return round(math.log10(s.norm / math.sqrt(s.numel)), 3)


def _grad_norm(s: TensorSummary | None, precision: int) -> str:
    return fmt_number(s.norm, precision) if s is not None and s.norm is not None else "—"


class _Builder:
    def __init__(self, graph: Graph, precision: int) -> None:
        self.graph = graph
        self.all_nodes, self.all_edges = drawn_nodes(graph)
        self.precision = precision
        self.s = _Strings()
        self.call_index: dict[tuple[int, str, int], int] = {}
        self.calls: dict[str, list[int]] = {k: [] for k in ("path", "type", "parent", "number")}

    def text(self, summary: TensorSummary | None) -> int:
        return self.s.add(fmt_summary(summary, self.precision))

    def call_of(self, node: Node) -> int:
        """The index of `node`'s innermost module call, adding its enclosing calls as needed."""
        parent = -1
        for path, kind, call in node.scopes:
            key = (parent, path, call)
            found = self.call_index.get(key)
            if found is None:
                found = self.call_index[key] = len(self.calls["path"])
                self.calls["path"].append(self.s.add(path))
                self.calls["type"].append(self.s.add(kind))
                self.calls["parent"].append(parent)
                self.calls["number"].append(call)
            parent = found
        return parent

    def nodes(self) -> dict[str, list[int]]:
        cols: dict[str, list[int]] = {
            k: []
            for k in ("kind", "op", "names", "type", "value", "grad", "bad", "order", "call")
            + ("file", "line", "aten", "module", "gnorm")
        }
        mags: dict[str, list[float | str | None]] = {"vmag": [], "gmag": []}
        for node in self.all_nodes:
            cols["kind"].append(self.s.add(_kind(node)))
            cols["op"].append(self.s.add(_header(node, self.precision)))
            cols["names"].append(self.s.add(_names(node)))
            cols["type"].append(self.s.add(_type(node)))
            cols["value"].append(self.text(node.value))
            cols["grad"].append(self.text(node.grad))
            bad = has_nonfinite(node.grad) or any(has_nonfinite(o.grad) for o in node.outputs)
            cols["bad"].append(int(bad))
            cols["order"].append(-1 if node.order is None else node.order)
            cols["call"].append(self.call_of(node))
            cols["file"].append(self.s.add(node.file))
            cols["line"].append(node.line or 0)
            cols["aten"].append(self.s.add(node.aten))
            module = f"{node.module} ({node.module_type})" if node.module_type else node.module
            cols["module"].append(self.s.add(module))
            leaf = node.kind != "op"
            cols["gnorm"].append(self.s.add(_grad_norm(node.grad, self.precision)) if leaf else -1)
            mags["vmag"].append(magnitude(node.value))
            mags["gmag"].append(magnitude(node.grad))
        self.mags = mags
        return cols

    def sparse(self) -> dict[str, dict[str, list[list[int]]]]:
        """Per node id (as text), the rows only some nodes have: several outputs, saved
        tensors, constant inputs; each row a pair of string indexes."""
        out: dict[str, dict[str, list[list[int]]]] = {"outputs": {}, "saved": {}, "constants": {}}
        p = self.precision
        for node in self.all_nodes:
            key = str(node.id)
            if len(node.outputs) > 1:
                out["outputs"][key] = [
                    [self.text(o.value), self.text(o.grad)] for o in node.outputs
                ]
            if node.saved:
                out["saved"][key] = [
                    [self.s.add(v.name), self.s.add(_saved(v, p))] for v in node.saved
                ]
            if node.constants:
                out["constants"][key] = [
                    [self.s.add(f"arg {i}"), self.text(c)] for i, c in node.constants
                ]
        return out

    def families(self, call_of_node: Sequence[int]) -> list[int]:
        """Per call, its family id (-1 when it has no identical sibling)."""
        ops: list[list[str]] = [[] for _ in self.calls["path"]]
        parent = self.calls["parent"]
        for node, call in zip(self.all_nodes, call_of_node, strict=True):
            while call >= 0:
                ops[call].append(node.op or "")
                call = parent[call]
        strings = self.s.items
        seen: dict[tuple[object, ...], list[int]] = {}
        for c, path in enumerate(self.calls["path"]):
            sig = (parent[c], self.calls["type"][c], _NUMBER.sub("#", strings[path]))
            seen.setdefault((*sig, tuple(sorted(ops[c]))), []).append(c)
        family = [-1] * len(parent)
        for number, members in enumerate(m for m in seen.values() if len(m) > 1):
            for c in members:
                family[c] = number
        return _renumber(family)


def _renumber(family: list[int]) -> list[int]:
    """Family ids 0, 1, 2... in order of first appearance, -1 kept."""
    ids: dict[int, int] = {}
    return [-1 if f < 0 else ids.setdefault(f, len(ids)) for f in family]


def _saved(saved: Any, precision: int) -> str:
    if saved.state == "freed":
        return "(freed)"
    text = (
        fmt_summary(saved.summary, precision)
        if saved.summary is not None
        else (saved.text if saved.text is not None else "—")
    )
    if saved.state == "stale":
        text += " (modified in place: stale)"
    return text + (f" = #{saved.node}" if saved.node is not None else "")


def _findings(graph: Graph) -> list[dict[str, Any]]:
    found = sorted(graph.findings, key=lambda f: _SEVERITY_RANK.get(f.severity, 3))
    return [
        {
            "code": f.code,
            "severity": f.severity,
            "message": f.message,
            "where": f"{f.file}:{f.line}" if f.file else "",
            "hint": f.hint or "",
            "nodes": [n for n in f.nodes if 0 <= n < len(graph.nodes)],
        }
        for f in found
    ]


def _steps(steps: Sequence[StepText], strings: _Strings) -> dict[str, list[Any]]:
    return {
        "order": [s.order for s in steps],
        "node": [s.node for s in steps],
        "title": [strings.add(s.title) for s in steps],
        "lines": [[[strings.add(k), strings.add(v)] for k, v in s.lines] for s in steps],
    }


def page_data(
    graph: Graph, *, precision: int = 4, steps: Sequence[StepText] = ()
) -> dict[str, Any]:
    """Everything the page needs to draw and explain `graph`, as columns of integers."""
    b = _Builder(graph, precision)
    cols = b.nodes()
    edges = b.all_edges
    data: dict[str, Any] = {
        "version": VERSION,
        "count": len(b.all_nodes),
        "roots": list(graph.roots),
        "gradviz": graph.grad_source == "gradviz",
        **cols,
        **b.mags,
        "edges": {
            "src": [e.src for e in edges],
            "dst": [e.dst for e in edges],
            "index": [e.index for e in edges],
            "output": [e.output_nr for e in edges],
        },
        **b.sparse(),
        "findings": _findings(graph),
    }
    data["calls"] = {**b.calls, "family": b.families(cols["call"])}
    data["steps"] = _steps(steps, b.s)
    data["strings"] = b.s.items
    return data
