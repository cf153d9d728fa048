"""Names for what the graph alone cannot name: the line behind each op and its constant inputs.

A constant input (the `x` in `x * w`, which needs no gradient) is recorded by value only. When the
op's source line holds exactly one operator of the op's kind, and the operand in every
differentiable position is the variable that the graph already names there, the other operand's
text names the constant. A loss function called once on its line (`F.mse_loss(pred, target)`)
names its target the same way, from its positional arguments. Anything that does not check out
stays a plain value: a wrong name is worse than none.
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


#: Autograd node name -> the functions whose positional arguments are its inputs, in order.
_CALLS: dict[str, frozenset[str]] = {
    "MseLossBackward0": frozenset({"mse_loss"}),
    "L1LossBackward0": frozenset({"l1_loss"}),
    "SmoothL1LossBackward0": frozenset({"smooth_l1_loss"}),
    "HuberLossBackward0": frozenset({"huber_loss"}),
    "BinaryCrossEntropyBackward0": frozenset({"binary_cross_entropy"}),
    "BinaryCrossEntropyWithLogitsBackward0": frozenset({"binary_cross_entropy_with_logits"}),
    "NllLossBackward0": frozenset({"nll_loss"}),
}


def _parse(text: str) -> ast.AST | None:
    try:
        return ast.parse(text)
    except SyntaxError:
        # a line that opens a block or continues on the next line: try it as an expression
        try:
            return ast.parse(text.rstrip(":").rstrip("\\").strip(" =("), mode="eval")
        except SyntaxError:
            return None


def _constant_names(graph: Graph, node: Node, text: str) -> dict[int, str]:
    tree = _parse(text)
    if tree is None:
        return {}
    if node.op in _CALLS:
        return _call_names(graph, node, tree, _CALLS[node.op or ""])
    entry = _OPERATORS.get(node.op or "")
    if entry is None:
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


def _call_names(
    graph: Graph, node: Node, tree: ast.AST, functions: frozenset[str]
) -> dict[int, str]:
    """`F.mse_loss(pred, target)` alone of its kind on the line: name the constant arguments."""
    calls = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and _function_name(n.func) in functions
    ]
    if len(calls) != 1 or any(isinstance(a, ast.Starred) for a in calls[0].args):
        return {}
    operands = list(calls[0].args[:2])
    names = _match(graph, node, operands, need_verified=False)
    return names or {}


def _function_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def _match(
    graph: Graph, node: Node, operands: list[ast.expr], need_verified: bool = True
) -> dict[int, str] | None:
    """Constant names if every named differentiable input sits where the graph says (a named
    input written as another name, or as an expression, is a mismatch)."""
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
    if not verified and need_verified:
        return None
    names: dict[int, str] = {}
    for slot, operand in enumerate(operands):
        if slot not in edges and not isinstance(operand, ast.Constant):
            names[slot] = ast.unparse(operand)
    return names
