"""The notebook magic: `%load_ext graphviz_grad`, then `%%gradviz` on a cell or `%gradviz EXPR`.

``%%gradviz [options]`` runs the cell as IPython would (in the notebook's namespace, so later
cells see its variables; its output and errors show as usual) inside a `record()`, then shows
the graph the command line would draw for a script with the same code: the last backward call,
else `loss`, else the only new tensor with a `grad_fn` (``--target NAME`` picks one).
``%gradviz [options] EXPR`` evaluates EXPR in the notebook and shows its tensor's graph: the one
recorded by an earlier ``%%gradviz`` cell when EXPR is that cell's tensor, else traced now
(gradients computed by gradviz; no ``.grad`` changes).

Options: ``--target/-t NAME``, ``--call/-c N``, ``--grad-output ones``, ``--order``,
``--edge-grads``, ``--saved``, ``--precision/-p N``, ``--depth K``, ``--fold``, ``--budget N``,
``--full``, ``--tree`` (the text tree instead of the picture), ``--output/-o FILE`` (also write
it, format from the suffix) and ``--quiet/-q`` (hide what the cell prints). A bad option or an
error of gradviz's prints one sentence and a hint, without a traceback.

Example:
    In [1]: %load_ext graphviz_grad
    In [2]: %%gradviz --order
       ...: w = torch.tensor(1.0, requires_grad=True)
       ...: loss = (2.0 * w - 4.0) ** 2
       ...: loss.backward()
    In [3]: %gradviz (w * 3.0) ** 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphviz_grad.errors import GradvizError
from graphviz_grad.model import Graph

if TYPE_CHECKING:
    from graphviz_grad.render import DrawOptions
    from graphviz_grad.views import View

#: The graphs of the latest ``%%gradviz`` cell: `%gradviz EXPR` shows them for its tensors.
_last: dict[str, Any] = {}


class MagicUsageError(GradvizError):
    """The options of a ``%gradviz`` line cannot be used."""

    exit_code = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit the kernel
        raise MagicUsageError(
            f"%gradviz: {message}.", hint="Options: " + " ".join(sorted(_FLAGS)) + "."
        )


def _parser() -> _Parser:
    p = _Parser(prog="%gradviz", add_help=False)
    p.add_argument("-t", "--target")
    p.add_argument("-c", "--call", type=int, default=-1)
    p.add_argument("--grad-output")
    p.add_argument("--order", action="store_true")
    p.add_argument("--edge-grads", action="store_true")
    p.add_argument("--saved", action="store_true")
    p.add_argument("-p", "--precision", type=int, default=4)
    p.add_argument("--depth", type=int)
    p.add_argument("--fold", action="store_true")
    p.add_argument("--budget", type=int, default=1500)
    p.add_argument("--full", action="store_true")
    p.add_argument("--tree", action="store_true")
    p.add_argument("-o", "--output")
    p.add_argument("-q", "--quiet", action="store_true")
    return p


#: Options that take a value (the rest are flags), for splitting `%gradviz [options] EXPR`.
_VALUED = {"-t", "--target", "-c", "--call", "--grad-output", "-p", "--precision", "--depth"}
_VALUED |= {"--budget", "-o", "--output"}
_FLAGS = _VALUED | {"--order", "--edge-grads", "--saved", "--fold", "--full", "--tree"}
_FLAGS |= {"-q", "--quiet"}


@dataclass(frozen=True)
class Drawing:
    """A graph as the magic shows it: the interactive view drawn with the magic's options."""

    graph: Graph
    options: argparse.Namespace

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from graphviz_grad.notebook import html, plain

        if self.options.tree:
            return {"text/plain": plain_tree(self.graph, self.options.precision)}
        svg = _svg(self.graph, self.options)
        bundle = {"text/html": html(self.graph, svg), "text/plain": plain(self.graph)}
        if svg is not None:
            bundle["image/svg+xml"] = svg
        return bundle


def plain_tree(graph: Graph, precision: int) -> str:
    from graphviz_grad.render.tree import tree_text

    return tree_text(graph, precision=precision).rstrip("\n")


def _draw_options(o: argparse.Namespace) -> DrawOptions:
    from graphviz_grad.render import DrawOptions
    from graphviz_grad.views import ViewOptions

    return DrawOptions(
        precision=o.precision,
        edge_grads=o.edge_grads,
        saved=o.saved,
        order=o.order,
        view=ViewOptions(depth=o.depth, fold=o.fold),
        budget=o.budget,
        full=o.full,
    )


def _view(graph: Graph, fmt: str, options: DrawOptions) -> View:
    from graphviz_grad.render import choose_view

    view = choose_view(graph, fmt, options)
    for note in view.notes:
        _note(note)
    return view


def _svg(graph: Graph, o: argparse.Namespace) -> str | None:
    from graphviz_grad.errors import GraphvizMissingError
    from graphviz_grad.render import render_bytes

    try:
        options = _draw_options(o)
        view = _view(graph, "svg", options)
        return render_bytes(graph, "svg", options, view=view).decode("utf-8")
    except GraphvizMissingError:
        _note("Graphviz's `dot` is not installed: showing the tree instead of the drawing.")
        return None


def _note(text: str) -> None:
    sys.stderr.write(f"note: {text}\n")


def _report(exc: GradvizError) -> None:
    """One sentence and a hint on stderr, as the command line says it (no traceback); what
    capture says of "the script" is said of the cell."""
    details = getattr(exc, "details", "")
    sys.stderr.write(f"{details}error: {_cell_words(exc.message)}\n")
    if exc.hint:
        sys.stderr.write(f"hint: {_cell_words(exc.hint)}\n")


def _cell_words(text: str) -> str:
    return text.replace("The script", "The cell").replace("the script", "the cell")


def _write(graph: Graph, o: argparse.Namespace) -> None:
    from graphviz_grad.render import infer_format, write

    fmt = infer_format(o.output)
    options = _draw_options(o)
    view = _view(graph, fmt, options) if fmt != "json" else None
    write(graph, o.output, fmt, options, view=view)
    _note(f"wrote {o.output} ({len(graph.nodes)} nodes)")


def _show(graph: Graph, o: argparse.Namespace) -> None:
    from IPython.display import display

    for text in graph.notes:
        _note(text)
    if o.output:
        _write(graph, o)
    display(Drawing(graph, o))


def cell_magic(shell: Any, line: str, cell: str) -> None:
    """``%%gradviz [options]``: run the cell recorded, then show its graph."""
    try:
        o = _parser().parse_args(shlex.split(line))
        graph = _run_cell(shell, cell, o)
        if graph is not None:
            _show(graph, o)
    except GradvizError as exc:
        _report(exc)


def _run_cell(shell: Any, cell: str, o: argparse.Namespace) -> Graph | None:
    from graphviz_grad.capture import Captured, CaptureOptions, Recorder, ScriptRun, pick_graph
    from graphviz_grad.capture.script import failed_in_backward
    from graphviz_grad.diagnose import with_findings

    ns = shell.user_ns
    before = dict(ns)
    quiet = contextlib.redirect_stdout(io.StringIO()) if o.quiet else contextlib.nullcontext()
    with Recorder(keep=o.call, namespaces=[ns]) as rec, quiet:
        result = shell.run_cell(cell, store_history=False)
    _last["graphs"] = rec.graphs
    hidden = getattr(shell, "user_ns_hidden", {})  # In, Out, exit, get_ipython...
    mine = {k: v for k, v in ns.items() if k not in hidden and not k.startswith("_")}
    new = mine if o.target else {k: v for k, v in mine.items() if before.get(k, _GONE) is not v}
    run = ScriptRun(Path("<cell>"), new, rec)
    options = CaptureOptions(target=o.target, call=o.call, grad_output=o.grad_output)
    if not result.success and not failed_in_backward(run, options):
        return None  # IPython has shown the cell's error
    return with_findings(Captured(pick_graph(run, options), run)).graph


_GONE = object()


def line_magic(shell: Any, line: str) -> None:
    """``%gradviz [options] EXPR``: the graph of the tensor EXPR evaluates to."""
    try:
        flags, expr = split_line(line)
        o = _parser().parse_args(flags)
        if not expr:
            raise MagicUsageError(
                "%gradviz needs an expression: the tensor to draw.",
                hint="e.g. `%gradviz loss`, or `%%gradviz` on the first line of a cell.",
            )
        _show(_graph_of(shell, expr, o), o)
    except GradvizError as exc:
        _report(exc)


def split_line(line: str) -> tuple[list[str], str]:
    """``--order -p 3 (x*w - y)**2`` -> (["--order", "-p", "3"], "(x*w - y)**2").

    Options come first: a word starting with ``--``, or one of the short options; the rest of
    the line, as typed, is the expression (so ``-x`` is an expression)."""
    rest = line.strip()
    flags: list[str] = []
    while rest.startswith("--") or rest.partition(" ")[0] in _FLAGS:
        word, _, rest = rest.partition(" ")
        flags.append(word)
        rest = rest.strip()
        if word in _VALUED and "=" not in word:
            value, _, rest = rest.partition(" ")
            flags.append(value)
            rest = rest.strip()
    return flags, rest


def _graph_of(shell: Any, expr: str, o: argparse.Namespace) -> Graph:
    """EXPR's graph: recorded by an earlier %%gradviz cell, else evaluated and traced now
    (inside a recording, so that the new ops show their forward values)."""
    import torch

    from graphviz_grad.capture import Recorder

    with Recorder(namespaces=[shell.user_ns]) as rec:
        try:
            value = shell.ev(expr)
        except Exception as exc:
            raise MagicUsageError(
                f"%gradviz could not evaluate `{expr}`: {type(exc).__name__}: {exc}",
                hint="Give an expression over the notebook's variables, e.g. `%gradviz loss`.",
            ) from None
        if not isinstance(value, torch.Tensor):
            raise MagicUsageError(
                f"`{expr}` is a {type(value).__name__}, not a tensor.",
                hint="Give the tensor whose graph to draw, e.g. `%gradviz loss`.",
            )
        recorded = _recorded(value)
        if recorded is not None:
            return recorded
        if value.grad_fn is None:
            raise MagicUsageError(
                f"`{expr}` has no autograd graph (no grad_fn).",
                hint="Compute it from a leaf created with `requires_grad=True`.",
            )
        return rec.trace(value, grad_output=o.grad_output)


def _recorded(value: Any) -> Graph | None:
    """The graph an earlier %%gradviz cell recorded for `value`'s backward call, if any."""
    graphs: dict[int, Graph] = _last.get("graphs", {})
    calls = value.grad_fn.metadata.get("gradviz_calls") if value.grad_fn is not None else None
    for number in reversed(calls or []):
        if number in graphs:
            return graphs[number]
    return None


def register(shell: Any) -> None:
    """Register ``%gradviz`` and ``%%gradviz`` with an IPython shell."""

    def gradviz(line: str, cell: str | None = None) -> None:
        if cell is None:
            return line_magic(shell, line)
        return cell_magic(shell, line, cell)

    gradviz.__doc__ = __doc__
    shell.register_magic_function(gradviz, magic_kind="line_cell", magic_name="gradviz")
