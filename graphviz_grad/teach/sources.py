"""Names for what the graph alone cannot name: the line behind each op and its constant inputs.

A constant input (the `x` in `x * w`, which needs no gradient) is recorded by value only. When the
op's source line holds exactly one operator of the op's kind, and the operand in every
differentiable position is the variable that the graph already names there, the other operand's
text names the constant. Anything that does not check out stays a plain value: a wrong name is
worse than none.
"""

from __future__ import annotations

import ast
import linecache
from collections.abc import Mapping
from dataclasses import dataclass, field

from graphviz_grad.model import Graph, Node

#: Autograd node name -> (the Python operator it comes from, whether the operands commute).
_OPERATORS: dict[str, tuple[type[ast.operator], bool]] = {
    "AddBackward0": (ast.Add, True),
    "SubBackward0": (ast.Sub, False),
    "MulBackward0": (ast.Mult, True),
    "DivBackward0": (ast.Div, False),
    "PowBackward1": (ast.Pow, False),
    "MmBackward0": (ast.MatMult, False),
    "MvBackward0": (ast.MatMult, False),
}


@dataclass(frozen=True)
class Annotations:
    """Per node id: the source text that made it, and names of its constant inputs by slot."""

    sources: Mapping[int, str] = field(default_factory=dict)
    arg_names: Mapping[int, Mapping[int, str]] = field(default_factory=dict)


def from_source(graph: Graph) -> Annotations:
    """Read each op's line from its file and name the constants the checks allow.

    Example:
        >>> notes = from_source(graph)          # graph of samples/linear.py
        >>> notes.arg_names[2]
        {0: 'x'}
    """
    sources: dict[int, str] = {}
    arg_names: dict[int, Mapping[int, str]] = {}
    for node in graph.nodes:
        if node.kind != "op" or not node.file or not node.line:
            continue
        text = linecache.getline(node.file, node.line).strip()
        if not text:
            continue
        sources[node.id] = text
        names = _constant_names(graph, node, text)
        if names:
            arg_names[node.id] = names
    return Annotations(sources, arg_names)


def _constant_names(graph: Graph, node: Node, text: str) -> dict[int, str]:
    entry = _OPERATORS.get(node.op or "")
    if entry is None:
        return {}
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    found = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, entry[0])]
    if len(found) != 1:
        return {}
    operands = [found[0].left, found[0].right]
    orders = [operands, operands[::-1]] if entry[1] else [operands]
    for order in orders:
        names = _match(graph, node, order)
        if names is not None:
            return names
    return {}


def _match(graph: Graph, node: Node, operands: list[ast.expr]) -> dict[int, str] | None:
    """Constant names if every named differentiable input sits where the graph says."""
    edges = {e.index: graph.nodes[e.src] for e in graph.inputs[node.id]}
    verified = 0
    for slot, src in edges.items():
        if slot >= len(operands):
            return None
        operand = operands[slot]
        if src.names:
            if not (isinstance(operand, ast.Name) and operand.id in src.names):
                return None
            verified += 1
    if not verified:
        return None
    names: dict[int, str] = {}
    for slot, operand in enumerate(operands):
        if slot not in edges and not isinstance(operand, ast.Constant):
            names[slot] = ast.unparse(operand)
    return names
