"""`gradviz explain`: the backward pass of the graph, node by node, with the chain rule."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from ._app import app, err, show
from ._options import (
    CALL,
    PRECISION,
    VIEW_PANEL,
    ArgsArg,
    CallOpt,
    ExprOpt,
    LetOpt,
    ModuleOpt,
    OptScriptArg,
    ParamOpt,
    PrecisionOpt,
    QuietOpt,
    SeedOpt,
    TargetOpt,
    TimeoutOpt,
)
from ._run import (
    call_spec,
    captures,
    data_to_stdout,
    expr_graph,
    in_thread,
    one_source,
    remarks,
    reported,
    script_stdout,
)

#: Past this many nodes, `explain` suggests `--to`.
LONG = 60


@app.command()
def explain(
    file: OptScriptArg = None,
    args: ArgsArg = None,
    expr: ExprOpt = None,
    let: LetOpt = None,
    param: ParamOpt = None,
    target: TargetOpt = None,
    call: CallOpt = CALL,
    grad_output: SeedOpt = None,
    precision: PrecisionOpt = PRECISION,
    timeout: TimeoutOpt = None,
    quiet: QuietOpt = False,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Only the steps on the paths from the root to this node: a leaf (`w`, "
            "`model.0.weight`), a variable or an id (#12). How its gradient was made.",
            rich_help_panel=VIEW_PANEL,
        ),
    ] = None,
    module: ModuleOpt = False,
) -> None:
    """Walk the backward pass step by step: forward formula, local derivative, upstream
    gradient and their product at every node, in the order autograd ran them.

    Example: `gradviz explain samples/linear.py`
    """
    with reported():
        script = one_source(file, expr, module)
        spec = call_spec(call, target)

        def job() -> None:
            from ..teach.explain import Explanation
            from ..teach.sources import from_source
            from ..views import find_node

            if script is None:
                found = expr_graph(expr or "", let, param, grad_output)
                only = None if to is None else find_node(found.graph, to).id
                show(Explanation(found.graph, precision=precision, notes=found.notes, to=only))
                return
            # redirected (`explain x.py > steps.txt`), the file holds the explanation only
            with script_stdout(quiet, data_on_stdout=data_to_stdout()):
                captured, total = captures(script, args, spec, target, grad_output)
            sys.stdout.flush()
            for one in captured:
                if spec.many:
                    show(f"backward call {one.graph.call:,} of {total:,}")
                notes = from_source(one.graph)
                only = None if to is None else find_node(one.graph, to).id
                show(Explanation(one.graph, precision=precision, notes=notes, to=only))
            graph = captured[-1].graph
            if to is None and len(graph.nodes) > LONG:
                leaf = next((n.names[0] for n in graph.leaves if n.names), "w")
                err.print(
                    f"[dim]note:[/] {len(graph.nodes):,} nodes explained; `--to NAME` keeps "
                    f"the steps on the paths to one leaf (`--to {escape(leaf)}`)."
                )
            if not spec.many:
                remarks(captured[0], total)

        in_thread(job, timeout)
