"""The graph as a terminal tree: root at the top, each node's inputs below it.

Children are a node's input edges in `next_functions` order. A node reached a second time (a DAG)
is printed once and referenced after that as ``↑ #12 label``, so the output is linear in nodes
plus edges. The guides are drawn here with an explicit stack (not `rich.tree.Tree`, which
recurses), and indentation stops growing at a capped depth, where a ``⋮d=N`` marker takes over.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from rich.cells import cell_len, chop_cells
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from graphviz_grad.model import Finding, Graph, Node, TensorSummary, location
from graphviz_grad.render.format import fmt_summary, fmt_type, has_nonfinite
from graphviz_grad.render.marks import SEVERITY_MARK, node_marks

#: Indentation stops growing beyond this depth (further lines show ``⋮d=<depth>``).
MAX_INDENT = 24
#: Columns always left for a line's text, however deep the tree (caps indentation on narrow
#: consoles: 10 levels at 100 columns, 24 from 156 columns).
MIN_TEXT_WIDTH = 60

PLAIN = Style()
GUIDE = Style(dim=True)
ID = Style(dim=True)
OP = Style(bold=True)
LEAF = Style(color="blue", bold=True)
NAME = Style(color="cyan")
SHAPE = Style(dim=True)
GRAD_OK = Style(color="green")
GRAD_BAD = Style(color="red", bold=True)
ORDER = Style(color="magenta")
#: Finding marks, by severity.
FINDING = {
    "error": Style(color="red", bold=True),
    "warning": Style(color="yellow", bold=True),
    "info": Style(color="blue"),
}

Part = tuple[str, Style]
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def clean(text: str) -> str:
    """`text` on one line: control characters written as escapes (``\\n``)."""
    return text.translate(_CONTROL)


@dataclass(frozen=True)
class _Item:
    """One line to print: node `node` reached through output `output_nr` at `depth`."""

    node: int
    output_nr: int | None
    depth: int
    cols: str
    last: bool


def _grad_style(grad: TensorSummary | None) -> Style:
    if grad is None:
        return SHAPE
    return GRAD_BAD if has_nonfinite(grad) else GRAD_OK


def _pick(node: Node, output_nr: int | None) -> tuple[TensorSummary | None, TensorSummary | None]:
    if output_nr is not None and len(node.outputs) > 1 and output_nr < len(node.outputs):
        out = node.outputs[output_nr]
        return out.value, out.grad
    return node.value, node.grad


def _node_parts(
    node: Node, output_nr: int | None, precision: int, order: bool = False
) -> list[Part]:
    parts: list[Part] = [(f"#{node.id}", ID)]
    if order:  # `--order`: the engine's execution step, `-` when the node did not run
        parts.append((f"[step {node.order if node.order is not None else '-'}]", ORDER))
    parts.append(("leaf", LEAF) if node.kind == "leaf" else (clean(node.op or "?"), OP))
    if len(node.outputs) > 1:
        parts.append((f"out{output_nr or 0}", SHAPE))
    if node.names:
        parts.append((clean(", ".join(node.names)), NAME))
    kind = fmt_type(node.shape, node.dtype)
    if kind:
        parts.append((kind, SHAPE))
    value, grad = _pick(node, output_nr)
    parts.append(("value=" + clean(fmt_summary(value, precision)), PLAIN))
    parts.append(("grad=" + clean(fmt_summary(grad, precision)), _grad_style(grad)))
    if node.checkpointed:
        parts.append(("[checkpointed]", ORDER))
    if node.synced_grad is not None:  # DDP: `grad` is this rank's, this the all-reduced mean
        parts.append(
            (".grad(all-reduced)=" + clean(fmt_summary(node.synced_grad, precision)), PLAIN)
        )
    return parts


def _ref_parts(node: Node, output_nr: int | None) -> list[Part]:
    parts: list[Part] = [(f"↑ #{node.id}", ID), (clean(node.label), NAME)]
    if len(node.outputs) > 1:
        parts.append((f"out{output_nr or 0}", SHAPE))
    return parts


def _cells(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _wrap(parts: list[Part], first: int, rest: int) -> list[list[Part]]:
    """Parts joined by spaces in lines of `first`, then `rest` cells; long parts are chopped."""
    sizes = [_cells(text) for text, _ in parts]
    if sum(sizes) + len(parts) - 1 <= first:
        joined: list[Part] = []
        for part in parts:
            joined.extend([(" ", PLAIN), part] if joined else [part])
        return [joined]
    lines: list[list[Part]] = [[]]
    used = 0
    for (text, style), size in zip(parts, sizes, strict=True):
        width = first if len(lines) == 1 else rest
        gap = 1 if lines[-1] else 0
        if used + gap + size <= width:
            lines[-1].extend([(" ", PLAIN), (text, style)] if gap else [(text, style)])
            used += gap + size
            continue
        chunks = chop_cells(text, rest) if size > rest else [text]
        if not lines[-1]:
            lines.pop()
        lines.extend([[(chunk, style)] for chunk in chunks])
        used = _cells(chunks[-1])
    return lines


def _mark_parts(findings: list[Finding]) -> list[Part]:
    """``⚠ cut`` after a node that findings name, one part per finding code."""
    codes = dict.fromkeys((f.severity, f.code) for f in findings)
    return [(f"{SEVERITY_MARK[sev]} {code}", FINDING[sev]) for sev, code in codes]


def _findings_lines(findings: tuple[Finding, ...], width: int) -> Iterator[list[Part]]:
    """After the tree: one entry per finding (mark, code, file:line, message), wrapped."""
    if not findings:
        return
    yield []
    yield [(f"findings ({len(findings)}):", OP)]
    for f in findings:
        where = location(f.file, f.line) or "-"
        head: list[Part] = [(f"{SEVERITY_MARK[f.severity]} {f.code}", FINDING[f.severity])]
        words = [(w, PLAIN) for w in clean(f.message).split(" ") if w]
        for i, line in enumerate(_wrap([*head, (where, SHAPE), *words], width - 2, width - 4)):
            yield [("  " if i == 0 else "    ", GUIDE), *line]


class GraphTree:
    """A rich renderable: the graph as a tree, one node per line (wrapped when too long).

    Example:
        >>> Console().print(GraphTree(graph))
    """

    def __init__(
        self, graph: Graph, *, precision: int = 4, max_indent: int = MAX_INDENT, order: bool = False
    ) -> None:
        self.graph = graph
        self.order = order
        self.precision = precision
        self.max_indent = max_indent
        self._marks = node_marks(graph)

    def _items(self, cap: int) -> Iterator[tuple[_Item, bool]]:
        """Every line in print order, with whether its node was already printed."""
        graph = self.graph
        seen = [False] * len(graph.nodes)
        roots = [r for r in graph.roots if 0 <= r < len(graph.nodes)]
        stack = [_Item(r, None, 0, "", i == len(roots) - 1) for i, r in enumerate(roots)][::-1]
        while stack:
            item = stack.pop()
            if seen[item.node]:
                yield item, True
                continue
            seen[item.node] = True
            yield item, False
            stack.extend(self._children(item, cap)[::-1])

    def _children(self, item: _Item, cap: int) -> list[_Item]:
        edges = self.graph.inputs[item.node]
        depth = item.depth + 1
        cols = item.cols
        if 1 < depth <= cap:
            cols += "    " if item.last else "│   "
        n = len(edges)
        return [_Item(e.src, e.output_nr, depth, cols, i == n - 1) for i, e in enumerate(edges)]

    @staticmethod
    def _prefix(item: _Item, cap: int) -> tuple[str, str]:
        """The guides before a node's first line, and before its continuation lines."""
        if item.depth == 0:
            return "", "  "
        first = item.cols + ("└── " if item.last else "├── ")
        if item.depth > cap:
            first += f"⋮d={item.depth} "
        rest = item.cols + ("    " if item.last else "│   ") + "  "
        return first, rest

    def lines(self, width: int) -> Iterator[list[Part]]:
        """Each printed line as styled parts, for `width` cells."""
        if not self.graph.nodes:
            yield [("(empty graph)", SHAPE)]
            return
        cap = min(self.max_indent, max(1, (width - MIN_TEXT_WIDTH) // 4))
        nodes = self.graph.nodes
        for item, ref in self._items(cap):
            node = nodes[item.node]
            parts = (
                _ref_parts(node, item.output_nr)
                if ref
                else _node_parts(node, item.output_nr, self.precision, self.order)
            )
            if not ref and node.id in self._marks:
                parts.extend(_mark_parts(self._marks[node.id]))
            first, rest = self._prefix(item, cap)
            # guides and the depth marker are one cell per character
            wrapped = _wrap(parts, width - len(first), width - len(rest))
            for i, line in enumerate(wrapped):
                yield [(first if i == 0 else rest, GUIDE), *line]
        yield from _findings_lines(self.graph.findings, width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        newline = Segment.line()
        for line in self.lines(options.max_width):
            for text, style in line:
                if text:
                    yield Segment(text, style)
            yield newline


def tree_text(graph: Graph, *, width: int = 100, precision: int = 4) -> str:
    """The tree as plain text (no colour), `width` cells wide: what tests and pipes see.

    The same text a colourless `Console(width=width)` prints for `GraphTree(graph)`, joined
    directly (100k lines in well under a second).

    Example:
        >>> print(tree_text(graph, width=80))
    """
    tree = GraphTree(graph, precision=precision)
    return "".join("".join(text for text, _ in line) + "\n" for line in tree.lines(width))


def tree_text_console(graph: Graph, *, width: int = 100, precision: int = 4) -> str:
    """`tree_text` rendered through rich: a colourless recording console (slower)."""
    console = Console(
        width=width,
        file=io.StringIO(),
        color_system=None,
        force_terminal=False,
        record=True,
        legacy_windows=False,
    )
    console.print(GraphTree(graph, precision=precision))
    return console.export_text(styles=False)
