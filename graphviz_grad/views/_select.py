"""Choosing what to draw: the neighbourhood of one node (`--focus`), hidden plumbing (`--hide`)."""

from __future__ import annotations

import difflib
import re
from collections import deque

from graphviz_grad.errors import RootError
from graphviz_grad.model import Graph, Node

from ._model import CONTRACT, DROP

#: What `--hide` accepts.
HIDE_CHOICES = ("accumulate", "views")

#: Autograd nodes of ops that only reinterpret memory (view, reshape, transpose, expand...).
VIEW_OPS = frozenset(
    {
        "AliasBackward",
        "AsStridedBackward",
        "ExpandBackward",
        "PermuteBackward",
        "ReshapeAliasBackward",
        "SqueezeBackward",
        "TBackward",
        "TransposeBackward",
        "UnsafeViewBackward",
        "UnsqueezeBackward",
        "ViewBackward",
    }
)
_TRAILING_DIGITS = re.compile(r"\d+$")


def is_view_op(node: Node) -> bool:
    """True for view and reshape plumbing (``ViewBackward0``, ``TBackward0``...)."""
    return node.kind == "op" and _TRAILING_DIGITS.sub("", node.op or "") in VIEW_OPS


def find_node(graph: Graph, key: str) -> Node:
    """The node `key` names: an id (``12`` or ``#12``), a variable name, or an op name."""
    text = key.strip()
    digits = text.removeprefix("#")
    if digits.isdigit():
        if int(digits) < len(graph.nodes):
            return graph.nodes[int(digits)]
        raise RootError(
            f"The graph has no node #{digits}: its ids go from 0 to {len(graph.nodes) - 1}.",
            hint="Run `gradviz tree` or write JSON to see the node ids.",
        )
    node = graph.find(text)
    if node is None:
        raise RootError(
            f"The graph has no node named `{text}` (no variable, parameter or op by that name).",
            hint=_close_names(graph, text)
            or "Give a node id such as 12, a variable name, or an op such as MulBackward0.",
        )
    return node


def _close_names(graph: Graph, text: str) -> str | None:
    """``Did you mean `model.0.weight`?`` from the graph's names and ops, or None."""
    known = dict.fromkeys(name for n in graph.nodes for name in (*n.names, n.op) if name)
    close = difflib.get_close_matches(text, list(known), n=3, cutoff=0.6)
    if not close:
        lowered = text.lower()
        close = [k for k in known if lowered in k.lower()][:3]
    if not close:
        return None
    return "Did you mean " + " or ".join(f"`{c}`" for c in close) + "?"


def neighbourhood(graph: Graph, centre: int, radius: int) -> list[bool]:
    """Per node, whether it is at most `radius` edges from `centre` (either direction)."""
    near = [False] * len(graph.nodes)
    near[centre] = True
    queue = deque([(centre, 0)])
    while queue:
        node, dist = queue.popleft()
        if dist == radius:
            continue
        for e in (*graph.inputs[node], *graph.consumers[node]):
            other = e.src if e.dst == node else e.dst
            if not near[other]:
                near[other] = True
                queue.append((other, dist + 1))
    return near


def apply_focus(graph: Graph, owner: list[int], key: str, radius: int) -> str:
    """Drop every node farther than `radius` from the focused node; return a note."""
    centre = find_node(graph, key)
    near = neighbourhood(graph, centre.id, radius)
    for i, keep in enumerate(near):
        if not keep:
            owner[i] = DROP
    kept = sum(near)
    return (
        f"focus on #{centre.id} {centre.label}: {kept} of {len(graph.nodes)} nodes within {radius}"
    )


def apply_hide(graph: Graph, owner: list[int], hide: tuple[str, ...]) -> None:
    """Drop leaves (``accumulate``) and bridge over view ops (``views``); roots always stay."""
    roots = set(graph.roots)
    for node in graph.nodes:
        if owner[node.id] < 0 or node.id in roots:
            continue
        if "accumulate" in hide and node.kind == "leaf":
            owner[node.id] = DROP
        elif "views" in hide and is_view_op(node):
            owner[node.id] = CONTRACT
