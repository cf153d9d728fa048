"""`gradviz explain`: the chain rule on the learner's own graph, one node at a time.

The nodes come in the order the autograd engine executed them (`Node.order`, recorded by a
pre-hook on every node, not guessed from the graph). For each op the walk-through shows the
forward formula with names and numbers, the gradient arriving from above (upstream), each local
derivative and the product; for each leaf, the gradient it ends with. Every number printed is a
recorded value; the local derivatives are evaluated from recorded inputs.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from graphviz_grad.model import Edge, Graph, Node, Saved, TensorSummary, location, plural
from graphviz_grad.render.format import TEXT_CHARS, fmt_summary
from graphviz_grad.teach.formulas import Ctx, Formula, Local, formula, scalar, symbol
from graphviz_grad.teach.sources import Annotations

Line = tuple[str, str]


@dataclass(frozen=True)
class Step:
    """One node of the walk-through: a title and labelled lines."""

    order: int
    node: int
    title: str
    lines: tuple[Line, ...]


class Explanation:
    """A rich renderable: the backward pass of `graph`, step by step.

    Example:
        >>> Console().print(Explanation(graph))
    """

    def __init__(
        self,
        graph: Graph,
        *,
        precision: int = 4,
        notes: Annotations | None = None,
        to: int | None = None,
    ) -> None:
        self.graph = graph
        self.precision = precision
        self.notes = notes or Annotations()
        root = graph.nodes[graph.root] if graph.nodes else None
        self.root_name = root.names[0] if root is not None and root.names else "L"
        #: With `to` (a node id): only the nodes whose gradient flows into that node's, the
        #: chain rule along every path from the root to it.
        self.to = to
        self.only = above(graph, to) if to is not None else None

    # -- the text ----------------------------------------------------------------------------
    def intro(self) -> list[str]:
        g = self.graph
        if not g.nodes:
            return ["(empty graph)"]
        root = g.nodes[g.root]
        head = f"Backward pass from {self.root_name} = {self.fmt(root.value)}"
        if g.call is not None:
            where = (
                f" at {location(g.call_file, g.call_line) or g.call_file}" if g.call_file else ""
            )
            head += f" (backward call {g.call}{where})"
        elif g.grad_source == "gradviz":
            head += " (gradients computed by gradviz, not by a backward call of the script)"
        lines = [
            head + ".",
            "Nodes in the order the autograd engine ran them; at each one, "
            "gradient from above × local derivative = gradient passed down (the chain rule).",
        ]
        if _seeded(root):
            lines.append(
                f"backward was given `gradient=` v = {self.fmt(root.grad)}: each "
                f"∂{self.root_name}/∂x below is the vector-Jacobian product vᵀ·"
                f"∂{self.root_name}/∂x, the gradient of sum(v ⊙ {self.root_name})."
            )
        if self.to is not None and self.only is not None:
            target = g.nodes[self.to]
            lines.append(
                f"Only the {plural(len(self.only), 'node')} of {len(g.nodes):,} on the paths "
                f"from {self.root_name} to {symbol(target)} (#{target.id}): the ones whose "
                f"gradient makes {self.d(target)}."
            )
        return lines

    def steps(self) -> Iterator[Step]:
        nodes: Sequence[Node] = self.graph.nodes
        if self.only is not None:
            nodes = [nodes[i] for i in sorted(self.only)]
        ran = sorted((n for n in nodes if n.order is not None), key=_order)
        for node in ran:
            lines = self._leaf(node) if node.kind == "leaf" else self._op(node)
            yield Step(node.order or 0, node.id, self._title(node), tuple(lines))

    def summary(self) -> list[str]:
        only = self.only
        leaves = [n for n in self.graph.leaves if only is None or n.id in only]
        if only is not None and self.to is not None and not leaves:  # an op: its own gradient
            leaves = [self.graph.nodes[self.to]]
        lines = [f"∂{self.root_name}/∂{symbol(n)} = {self.fmt(n.grad)}" for n in leaves]
        skipped = [
            n for n in self.graph.nodes if n.order is None and (only is None or n.id in only)
        ]
        if skipped and self.graph.grad_source in ("backward", "autograd.grad"):
            returned = [n for n in skipped if n.kind == "leaf" and n.grad is not None]
            if self.graph.grad_source == "autograd.grad" and returned:
                skipped = [n for n in skipped if n not in returned]
                ids = ", ".join(f"#{n.id}" for n in returned[:10])
                lines.append(
                    f"{ids}: torch.autograd.grad returned the gradient (a leaf's node runs only "
                    "to put it in `.grad`)"
                )
            if skipped:
                ids = ", ".join(f"#{n.id}" for n in skipped[:10])
                failed = self.graph.backward_failed
                why = (
                    f"the call raised first: {failed}"
                    if failed is not None
                    else "the gradients asked for do not need them"
                )
                lines.append(f"{len(skipped)} node(s) did not run in this call ({why}): {ids}")
        return lines

    # -- pieces ------------------------------------------------------------------------------
    def fmt(self, s: TensorSummary | None) -> str:
        return fmt_summary(s, self.precision, TEXT_CHARS)

    def d(self, node: Node) -> str:
        return f"∂{self.root_name}/∂{symbol(node)}"

    def _title(self, node: Node) -> str:
        what = "leaf" if node.kind == "leaf" else node.op or "?"
        title = f"step {node.order} · {symbol(node)} · {what}"
        source = self.notes.sources.get(node.id)
        where = node.where
        if where and source:
            title += f" · {where}: {source}"
        elif source:
            title += f" · {source}"
        elif where:
            title += f" · {where}"
        return title

    def _upstream(self, node: Node) -> list[Line]:
        g = self.graph
        if node.id in g.roots:
            start = (
                "the `gradient=` given to backward" if _seeded(node) else "where backward starts"
            )
            return [("upstream", f"{self.d(node)} = {self.fmt(node.grad)} ({start})")]
        parts = self._incoming(node)
        return [("upstream", f"{self.d(node)} = {parts}")]

    def _incoming(self, node: Node) -> str:
        """The node's gradient, written as a sum when it arrives along several edges, and what
        a hook of the script's on the tensor made of it."""
        edges = self.graph.consumers[node.id]
        if len(node.outputs) > 1:  # `grad` is output 0's: what reaches that output
            edges = tuple(e for e in edges if e.output_nr == 0)
        total = self.fmt(node.grad)
        unchanged = len(edges) == 1 and edges[0].grad == node.grad
        if node.hooked and len(node.outputs) > 1:  # which output carries the hook is not kept
            if unchanged:
                return total
            return f"{total} (a hook on one of its outputs, `register_hook`, may have changed it)"
        if node.hooked and edges:
            if unchanged:
                return f"{total} (the hook on {symbol(node)} left it as it was)"
            arrived = self.fmt(edges[0].grad) if len(edges) == 1 else self._terms(edges)
            return f"{arrived}, which the hook on {symbol(node)} (`register_hook`) made {total}"
        if len(edges) < 2:
            return total
        return f"{self._terms(edges)} = {total}"

    def _other_outputs(self, node: Node) -> list[Line]:
        """Past output 0 (`split`, `unbind`, `chunk`): the value and gradient of each output a
        gradient reached; backward gets them all at once."""
        return [
            ("", f"output {k}: {self.fmt(out.value)}, gradient {self.fmt(out.grad)}")
            for k, out in enumerate(node.outputs)
            if k and out.grad is not None
        ]

    def _terms(self, edges: Sequence[Edge]) -> str:
        """The gradients arriving along `edges`, as a sum."""
        return " + ".join(f"{self.fmt(e.grad)} (from #{e.dst})" for e in edges)

    def _leaf(self, node: Node) -> list[Line]:
        into = "" if self.graph.grad_source == "gradviz" else f" → {symbol(node)}.grad"
        return [("gradient", f"{self.d(node)} = {self._incoming(node)}{into}")]

    def _op(self, node: Node) -> list[Line]:
        names = dict(self.notes.arg_names.get(node.id, {}))
        ctx = Ctx(self.graph, node, self.precision, names, symbol(node), self.d(node))
        found = formula(ctx)
        lines: list[Line] = []
        if found is None:
            return self._computed(node)
        lines.append(("forward", self._forward(ctx, found)))
        if ctx.placeholder is not None and re.search(rf"\b{ctx.placeholder}\b", found.forward):
            lines.append(("", _CONSTANT.format(c=ctx.placeholder)))
        lines.extend(self._upstream(node))
        lines.extend(self._other_outputs(node))
        for edge in self.graph.inputs[node.id]:
            if self.only is None or edge.src in self.only:  # `to`: only the inputs on its paths
                lines.extend(self._input(ctx, found, edge))
        if found.note:
            lines.append(("note", found.note))
        return lines

    def _forward(self, ctx: Ctx, f: Formula) -> str:
        node = ctx.node
        parts = [symbol(node), f.forward]
        if ctx.all_scalar and f.numbers and f.numbers != f.forward and "?" not in f.numbers:
            parts.append(f.numbers)
        parts.append(self.fmt(node.value))
        return " = ".join(parts)

    def _computed(self, node: Node) -> list[Line]:
        """A node without a formula: what its backward received and returned, as recorded."""
        function = custom_function(node)
        if node.op in TORCH_NODES:
            last = f" (last op: {node.aten})" if node.aten else ""
            head = f"{node.op} is {TORCH_NODES[node.op]}{last}"
        elif function in TORCH_FUNCTIONS:
            head = f"{node.op} is {TORCH_FUNCTIONS[function]}"
        elif function is not None:
            head = f"{function}.backward is your own code (a custom autograd.Function)"
        else:
            head = f"gradviz has no formula for {node.op} ({node.aten or 'no aten op recorded'})"
        lines: list[Line] = [("backward", head + "; what it computed, as recorded:")]
        if node.value is not None:
            lines.append(("forward", f"{symbol(node)} = {self.fmt(node.value)}"))
        lines.extend(("saved", f"{s.name} = {self._saved(s)}") for s in node.saved)
        lines.append(("grad in", self._upstream(node)[0][1]))
        lines.extend(self._other_outputs(node))
        for e in self.graph.inputs[node.id]:
            src = self.graph.nodes[e.src]
            lines.append(("grad out", f"{self.d(src)} ← {self.fmt(e.grad)} (input {e.index})"))
        return lines

    def _saved(self, saved: Saved) -> str:
        if saved.node is not None:
            name = symbol(self.graph.nodes[saved.node])
            words = (saved.text or "").split()  # "output 2 of #8": an LSTM's cell state
            if len(words) > 1 and words[0] == "output" and words[1] != "0":
                return f"output {words[1]} of {name}"
            return name
        if saved.summary is not None:
            return self.fmt(saved.summary)
        return saved.text or "?"

    def _input(self, ctx: Ctx, f: Formula, edge: Edge) -> list[Line]:
        src = self.graph.nodes[edge.src]
        local = next((x for x in f.locals if x.slot == edge.index), None)
        chain = next((x for x in f.chains if x.slot == edge.index), None)
        path = " (this path)" if len(self.graph.consumers[src.id]) > 1 else ""
        target = f"{self.d(src)}{path}"
        if ctx.all_scalar and local is not None:
            return self._scalar_input(ctx, src, local, edge, target)
        rule = chain.rule if chain is not None else _elementwise(ctx, local)
        lines: list[Line] = [("chain", f"{target} = {rule}")]
        if chain is not None and chain.shapes:
            lines.append(("shapes", chain.shapes))
        lines.append(("", f"= {self.fmt(edge.grad)}"))
        return lines

    def _scalar_input(
        self, ctx: Ctx, src: Node, local: Local, edge: Edge, target: str
    ) -> list[Line]:
        partial = f"∂{symbol(ctx.node)}/∂{symbol(src)}"
        pieces = [partial, local.text]
        if local.numbers and local.numbers not in pieces:
            pieces.append(local.numbers)
        value = ctx.fmt(local.value) if local.value is not None else None
        if value is not None and value not in pieces and not _same(local.text, local.value):
            pieces.append(value)
        up = self.fmt(ctx.node.grad)
        factor = value if value is not None else partial
        chain = (
            f"{target} = {self.d(ctx.node)} · {partial} = {up} · {factor} = {self.fmt(edge.grad)}"
        )
        return [("local", " = ".join(pieces)), ("chain", chain)]

    # -- rendering ---------------------------------------------------------------------------
    def renderables(self) -> list[Text | Table | Hanging]:
        out: list[Text | Table | Hanging] = [Text(line) for line in self.intro()]
        for step in self.steps():
            out.append(Text(""))
            out.append(Hanging(Text(step.title, style="bold")))
            grid = Table.grid(padding=(0, 1))
            grid.add_column(width=10, style="dim", no_wrap=True)
            grid.add_column(overflow="fold")
            for label, text in step.lines:
                grid.add_row(Text("  " + label), Text(text))
            out.append(grid)
        out.append(Text(""))
        out.append(Text("Leaf gradients" if self.to is None else "Gradient", style="bold"))
        summary = Table.grid()  # a line that wraps stays indented
        summary.add_column(width=2, no_wrap=True)
        summary.add_column(overflow="fold")
        for line in self.summary():
            summary.add_row("", Text(line))
        out.append(summary)
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Group(*self.renderables())


class Hanging:
    """A text whose wrapped lines after the first are indented: a step's title, whose quoted
    source line would otherwise go on at column 0, as if a new line of the report began."""

    def __init__(self, text: Text, indent: int = 4) -> None:
        self.text, self.indent = text, indent

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width - self.indent, 20)
        for i, line in enumerate(self.text.wrap(console, width)):
            yield Text(" " * self.indent) + line if i else line


#: What an unnamed `c` in a formula is: Python numbers are written as numbers, so a `c` is a
#: tensor that needs no gradient and whose name the source line did not give away.
_CONSTANT = "{c} is a tensor that does not require grad: autograd treats it as a constant"


def _seeded(root: Node) -> bool:
    """Whether backward started from a `gradient=` (a non-scalar root, or one other than 1):
    what flows back is then a vector-Jacobian product, as the root's recorded gradient shows."""
    g = root.grad
    if g is None or g.nan + g.inf:
        return False
    return g.numel > 1 or not (g.min == 1.0 and g.max == 1.0)


def above(graph: Graph, target: int) -> set[int]:
    """`target` and every node whose gradient reaches it: the nodes on the paths from the
    roots to `target` (backward runs from the roots down to the leaves)."""
    seen = {target}
    stack = [target]
    while stack:
        for edge in graph.consumers[stack.pop()]:
            if edge.dst not in seen:
                seen.add(edge.dst)
                stack.append(edge.dst)
    return seen


def _same(text: str, value: float | None) -> bool:
    """True when `text` is already the number `value` (``"1"`` and 1.0)."""
    try:
        return float(text) == value
    except ValueError:
        return False


#: autograd.Functions of torch itself, which gradviz has no formula for either.
TORCH_FUNCTIONS = {
    "CompiledFunction": "the backward that torch.compile generated for a compiled region",
    "CheckpointFunction": "torch.utils.checkpoint's backward (it recomputes the region first)",
    "UndefinedGrad": "torch's stand-in for a gradient left undefined (`gradcheck` feeds one "
    "to check that a backward copes with it)",
    "BackwardHookFunction": "the pass-through node of a module's full backward hook",
    "CondAutogradOp": "torch.cond's backward (the backward of the branch that ran)",
    "ScanAutogradOp": "scan's backward (the backward of its body, step by step)",
    "MapAutogradOp": "map's backward (the backward of its body, per slice)",
    "WhileLoopAutogradOp": "while_loop's backward (the backward of its body, per iteration)",
}


#: C++ nodes of torch's own that are not an op's (`Node.op` is their `name()`'s last part).
TORCH_NODES = {
    "DifferentiableGraphBackward": "TorchScript's backward of a `@torch.jit.script` function's "
    "fused graph, run as one node from the function's second call on",
}


def custom_function(node: Node) -> str | None:
    """The class name of a custom `autograd.Function` node (`LegendrePolynomial3Backward`,
    `CompiledFunctionBackward`): torch names its own nodes with a number (`MulBackward0`)."""
    op = node.op or ""
    if node.kind != "op" or node.aten is not None or not op.endswith("Backward"):
        return None
    return op.removesuffix("Backward") or None


def _order(node: Node) -> int:
    return node.order or 0


def _elementwise(ctx: Ctx, local: Local | None) -> str:
    """The tensor rule of an elementwise op: upstream ⊙ local, summed where it broadcast."""
    g = ctx.grad_name
    if local is None:
        return f"{g} (rule not written out)"
    text = f"({local.text})" if " " in local.text else local.text
    rule = g if local.text == "1" else f"{g} ⊙ {text}"
    src = ctx.summary(local.slot)
    if src is not None and ctx.node.shape is not None and tuple(src.shape) != ctx.node.shape:
        rule += f", summed to {list(src.shape)} (it was broadcast)"
    return rule


def explain_text(
    graph: Graph,
    *,
    width: int = 100,
    precision: int = 4,
    notes: Annotations | None = None,
    to: int | None = None,
) -> str:
    """The walk-through as plain text, `width` cells wide: what tests and the docs show.

    Example:
        >>> print(explain_text(graph, width=80))
    """
    console = Console(
        width=width, file=io.StringIO(), color_system=None, force_terminal=False, record=True
    )
    console.print(Explanation(graph, precision=precision, notes=notes, to=to))
    text = console.export_text(styles=False)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


#: Above this many nodes the HTML page gets no step texts (the walk-through is for learning).
MAX_STEP_NODES = 5_000


def explained_steps(graph: Graph, precision: int = 4) -> tuple[Step, ...]:
    """`explain`'s steps of `graph`, with the names its script's source gives (none for
    graphs too big to step through by hand)."""
    from graphviz_grad.teach.sources import from_source

    if len(graph.nodes) > MAX_STEP_NODES:
        return ()
    steps = tuple(Explanation(graph, precision=precision, notes=from_source(graph)).steps())
    return tuple(_with_products(graph, steps))


def _with_products(graph: Graph, steps: tuple[Step, ...]) -> list[Step]:
    """Each leaf's step with the chain-rule lines that made its gradient (upstream · local =
    product, from the steps of the ops that use it), so its panel shows the arithmetic."""
    from dataclasses import replace

    at = {s.node: s for s in steps}
    out = []
    for step in steps:
        if graph.nodes[step.node].kind != "leaf" or not step.lines:
            out.append(step)
            continue
        target = step.lines[0][1].split(" = ", 1)[0] + " = "
        extra = [
            (f"chain (#{e.dst})", text)
            for e in graph.consumers[step.node]
            if e.dst in at
            for key, text in at[e.dst].lines
            if key == "chain" and text.startswith(target)
        ]
        out.append(replace(step, lines=(*step.lines, *extra)))
    return out


__all__ = ["Explanation", "Step", "above", "explain_text", "explained_steps", "scalar"]
