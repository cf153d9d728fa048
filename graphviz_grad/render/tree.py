"""The graph as a terminal tree: root at the top, each node's inputs below it.

Children are a node's input edges in `next_functions` order. A node reached a second time (a DAG)
is printed once and referenced after that as ``↑ #12 label``, so the output is linear in nodes
plus edges. The guides are drawn here with an explicit stack (not `rich.tree.Tree`, which
recurses). The tree indents as deep as the graph is while the console leaves room for text;
deeper than that, a node's one continuing input is drawn flat under it (``↓ d=31 #31 …``, the
depth counted), and a node with several continuing inputs is continued in a section after the
tree (``⤷ inputs below``), so no child is ever drawn under the wrong parent. Lines wrap only
between tokens (a list breaks after a comma), with the guides continued.
"""

from __future__ import annotations

import io
import itertools
import re
from collections import deque
from collections.abc import Iterator
from typing import IO, NamedTuple

from rich.cells import cell_len, chop_cells
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from graphviz_grad._gc import BIG_GRAPH, on_big_graphs, paused
from graphviz_grad.model import Finding, Graph, Node, TensorSummary, has_nonfinite, location
from graphviz_grad.render.format import TEXT_CHARS, fmt_summary, fmt_type
from graphviz_grad.render.marks import SEVERITY_MARK, node_marks

#: Most levels of indentation, however wide the console.
MAX_INDENT = 24
#: Columns always left for a node's text, however deep the tree (fewer levels on narrow
#: consoles: 6 at 80 columns, 16 at 120; two levels are kept for the flat marker ``↓ d=N``).
MIN_TEXT_WIDTH = 48

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

#: A run of text in one style. In a line, parts are separated by one space; a part wraps as a
#: whole when it can, else between its words.
Part = tuple[str, Style]
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}
_OPEN, _CLOSE = "([{", ")]}"
#: Before the second and later lines of one part broken over lines.
_INDENT = "  "


def clean(text: str) -> str:
    """`text` on one line: control characters written as escapes (``\\n``)."""
    return text.translate(_CONTROL)


class _Item(NamedTuple):
    """One line to print: node `node` reached through output `output_nr` at `depth`.

    `cols` are the guides before the line's marker; `how` is the marker: ``root``, ``branch``
    (``├──``/``└──``, `last` says which) or ``flat`` (``↓ d=N``, the one continuing input of a
    node drawn at the indentation cap)."""

    node: int
    output_nr: int | None
    depth: int
    cols: str
    last: bool
    how: str = "branch"

    @property
    def inner(self) -> str:
        """The guides before this node's children's markers."""
        if self.how != "branch":
            return self.cols
        return self.cols + ("    " if self.last else "│   ")


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
    parts.append(("value=" + clean(fmt_summary(value, precision, TEXT_CHARS)), PLAIN))
    parts.append(("grad=" + clean(fmt_summary(grad, precision, TEXT_CHARS)), _grad_style(grad)))
    if node.checkpointed:
        parts.append(("[checkpointed]", ORDER))
    if node.hooked:  # `grad` is after the script's hook; the edges in carry it before
        parts.append(("[hook]", ORDER))
    if node.synced_grad is not None:  # DDP: `grad` is this rank's, this the all-reduced mean
        parts.append(
            (
                ".grad(all-reduced)=" + clean(fmt_summary(node.synced_grad, precision, TEXT_CHARS)),
                PLAIN,
            )
        )
    return parts


def _ref_parts(node: Node, output_nr: int | None) -> list[Part]:
    parts: list[Part] = [(f"↑ #{node.id}", ID), (clean(node.label), NAME)]
    if len(node.outputs) > 1:
        parts.append((f"out{output_nr or 0}", SHAPE))
    return parts


#: A character other than ASCII and the tree's own guides and arrows that rich counts one cell
#: wide: text without one is as wide as it is long (rich would count it character by character).
_WIDE = re.compile("[^\x00-\x7f" + "".join(c for c in "│└├─↓↑⤷" if cell_len(c) == 1) + "]")


def _cells(text: str) -> int:
    if text.isascii() or _WIDE.search(text) is None:
        return len(text)
    return cell_len(text)


def _top_words(text: str) -> list[str]:
    """`text` split at spaces outside brackets: ``f32[16, 3]`` stays one word."""
    words: list[str] = []
    depth = start = 0
    for i, char in enumerate(text):
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth = max(0, depth - 1)
        elif char == " " and depth == 0:
            words.append(text[start:i])
            start = i + 1
    words.append(text[start:])
    return [w for w in words if w]


#: How a part too long for a fresh line is split, in turn: at spaces outside brackets, at every
#: space (a list breaks after its commas), and last into pieces of the line's width.
_SPLITS = (_top_words, lambda text: [w for w in text.split(" ") if w])


class _Lines:
    """Parts filled into lines of `first`, then `rest` cells, one space between parts; a part
    broken over lines goes on indented by two cells, so its pieces read as one."""

    def __init__(self, first: int, rest: int) -> None:
        self.lines: list[list[Part]] = [[]]
        self.first, self.rest = max(first, 1), max(rest, 1)
        self.used = 0
        self.bare = False  # the line holds only an indent: no space before the next part

    def room(self) -> int:
        width = self.first if len(self.lines) == 1 else self.rest
        return width - self.used - (1 if self.used and not self.bare else 0)

    def put(self, text: str, style: Style, size: int) -> None:
        if self.used and not self.bare:
            self.lines[-1].append((" ", PLAIN))
            self.used += 1
        self.lines[-1].append((text, style))
        self.used += size
        self.bare = False

    def newline(self, indent: bool = False) -> None:
        if self.used and not self.bare:
            self.lines.append([(_INDENT, PLAIN)] if indent else [])
            self.used, self.bare = (len(_INDENT), True) if indent else (0, False)

    def add(self, text: str, style: Style) -> None:
        """Place `text`: on this line if it fits, else from the next line, whole if it fits
        there, else word by word (splitting ever finer), and a word wider than a line chopped."""
        size = _cells(text)
        if size <= self.room():  # the common case: it fits where the line is
            self.put(text, style, size)
            return
        todo: list[tuple[str, int]] = [(text, 0)]
        started = False
        while todo:
            piece, level = todo.pop()
            size = _cells(piece)
            if size > self.room() and (level == 0 or size <= self.rest - len(_INDENT)):
                self.newline(indent=started)
            if size <= self.room() or level > len(_SPLITS):
                self.put(piece, style, size)
                started = True
                continue
            words = [piece]
            while len(words) == 1 and level < len(_SPLITS):
                words = _SPLITS[level](piece)
                level += 1
            if len(words) == 1:
                self.newline(indent=started)
                words = chop_cells(piece, max(1, self.room()))
                level = len(_SPLITS) + 1
            todo.extend((w, level) for w in reversed(words))


def _wrap(parts: list[Part], first: int, rest: int) -> list[list[Part]]:
    """Parts joined by spaces in lines of `first`, then `rest` cells, broken between tokens."""
    if sum(_cells(text) for text, _ in parts) + len(parts) - 1 <= first:  # the common case
        joined: list[Part] = []
        for part in parts:
            joined.extend([(" ", PLAIN), part] if joined else [part])
        return [joined]
    out = _Lines(first, rest)
    for text, style in parts:
        out.add(text, style)
    return out.lines


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
        message = (clean(f.message), PLAIN)
        for i, line in enumerate(_wrap([*head, (where, SHAPE), message], width - 2, width - 4)):
            yield [("  " if i == 0 else "    ", GUIDE), *line]


#: After a node whose inputs continue in a section below the tree.
_CONTINUED = ("⤷ inputs below", SHAPE)


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
        #: Whether the last printing drew a node flat (``↓ d=N``): the command explains the mark.
        self.flattened = False

    def _items(self, cap: int) -> Iterator[tuple[_Item, str]]:
        """Every line in print order, with what it is: ``node``, ``ref`` (printed before),
        ``cut`` (inputs continued below) or ``section`` (the heading of a continuation)."""
        graph = self.graph
        seen = [False] * len(graph.nodes)
        roots = [r for r in graph.roots if 0 <= r < len(graph.nodes)]
        stack = [_Item(r, None, 0, "", i == len(roots) - 1, "root") for i, r in enumerate(roots)]
        stack.reverse()
        later: deque[_Item] = deque()
        while stack or later:
            if not stack:
                item = later.popleft()
                yield item, "section"
                stack.extend(reversed(self._children(item, "")))
                continue
            item = stack.pop()
            if seen[item.node]:
                yield item, "ref"
                continue
            seen[item.node] = True
            children = self._layout(item, cap, seen)
            if children is None:
                later.append(item)
                yield item, "cut"
                continue
            yield item, "node"
            stack.extend(reversed(children))

    def _layout(self, item: _Item, cap: int, seen: list[bool]) -> list[_Item] | None:
        """The children of `item` to print under it; None when they must continue below.

        Below the cap the children branch as usual. At the cap, inputs that end there (leaves,
        nodes printed before) still branch (indented under a flat `item`), one more that
        continues is drawn flat, and two or more that continue make `item` a cut."""
        inner = item.inner
        if len(inner) < 4 * cap:
            return self._children(item, inner)
        edges = self.graph.inputs[item.node]
        going = [e for e in edges if self.graph.inputs[e.src] and not seen[e.src]]
        if len(going) > 1:
            return None
        ends = [e for e in edges if not (going and e is going[0])]
        # a flat node's inputs that end are indented under it (they add no depth, so the width
        # stays bounded): drawn beside it, they would read as inputs of the node above
        flat = item.how == "flat"
        cols = inner + "    " if flat else inner
        out = [
            _Item(
                e.src, e.output_nr, item.depth + 1, cols, i == len(ends) - 1 and (flat or not going)
            )
            for i, e in enumerate(ends)
        ]
        if going:
            edge = going[0]
            out.append(_Item(edge.src, edge.output_nr, item.depth + 1, inner, True, "flat"))
            self.flattened = True
        return out

    def _children(self, item: _Item, cols: str) -> list[_Item]:
        """`item`'s inputs as branches after the guides `cols`."""
        edges = self.graph.inputs[item.node]
        n = len(edges)
        return [
            _Item(e.src, e.output_nr, item.depth + 1, cols, i == n - 1) for i, e in enumerate(edges)
        ]

    @staticmethod
    def _prefix(item: _Item) -> tuple[str, str]:
        """The guides before a node's first line, and before its continuation lines."""
        if item.how == "root":
            return "", "  "
        if item.how == "flat":
            return item.cols + f"↓ d={item.depth} ", item.cols + "    "
        first = item.cols + ("└── " if item.last else "├── ")
        return first, item.inner + "  "

    def _section(self, item: _Item) -> list[Part]:
        node = self.graph.nodes[item.node]
        return [
            ("inputs of", SHAPE),
            (f"#{node.id}", ID),
            (clean(node.label), NAME),
            (f"(depth {item.depth}):", SHAPE),
        ]

    def _parts(self, item: _Item, what: str) -> list[Part]:
        node = self.graph.nodes[item.node]
        if what == "ref":
            return _ref_parts(node, item.output_nr)
        parts = _node_parts(node, item.output_nr, self.precision, self.order)
        if node.id in self._marks:
            parts.extend(_mark_parts(self._marks[node.id]))
        if what == "cut":
            parts.append(_CONTINUED)
        return parts

    def lines(self, width: int) -> Iterator[list[Part]]:
        """Each printed line as styled parts, for `width` cells."""
        if not self.graph.nodes:
            yield [("(empty graph)", SHAPE)]
            return
        cap = max(1, min(self.max_indent, (width - MIN_TEXT_WIDTH) // 4 - 2))
        for item, what in self._items(cap):
            if what == "section":
                yield []
                yield from _wrap(self._section(item), width, width)
                continue
            first, rest = self._prefix(item)
            # guides are one cell per character
            wrapped = _wrap(self._parts(item, what), width - len(first), width - len(rest))
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


@on_big_graphs
def tree_text(graph: Graph, *, width: int = 100, precision: int = 4) -> str:
    """The tree as plain text (no colour), `width` cells wide: what tests and pipes see.

    The same text a colourless `Console(width=width)` prints for `GraphTree(graph)`, joined
    directly (100k lines in well under a second).

    Example:
        >>> print(tree_text(graph, width=80))
    """
    out = io.StringIO()
    write_tree(GraphTree(graph, precision=precision), out, width)
    return out.getvalue()


#: Lines written to the file per `write` call.
_CHUNK = 4096


def write_tree(tree: GraphTree, out: IO[str], width: int) -> None:
    """Write `tree` as plain text to `out`, `width` cells wide, a few thousand lines at a time:
    the text a colourless console prints for it, without a rich segment per part."""
    with paused(len(tree.graph.nodes) > BIG_GRAPH):
        lines = (_plain(line, width) for line in tree.lines(width))
        for chunk in iter(lambda: list(itertools.islice(lines, _CHUNK)), []):
            out.write("".join(chunk))


def _plain(line: list[Part], width: int) -> str:
    """One line's text and its newline, cropped to `width` cells as a console crops it."""
    text = "".join([t for t, _ in line])
    if _cells(text) > width:
        segments = Segment.adjust_line_length([Segment(t) for t, _ in line], width, pad=False)
        text = "".join(s.text for s in segments)
    return text + "\n"


def printed(console: Console, tree: GraphTree) -> None:
    """Print `tree` on `console`. Without colour (a pipe, a file) the lines go straight into the
    console's file: the same text, and a million-line tree in seconds rather than minutes.
    Anything else (a colour terminal, a recording console, Jupyter) prints through rich.

    Example:
        >>> printed(Console(), GraphTree(graph))
    """
    if console.color_system is not None or console.record or console.is_jupyter:
        console.print(tree)
    elif not console.quiet:
        write_tree(tree, console.file, console.width)
        console.file.flush()


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
