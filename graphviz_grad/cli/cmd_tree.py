"""`gradviz tree`: print the graph as a tree in the terminal."""

from __future__ import annotations

import sys

from rich.console import Console

from ._app import app, err
from ._options import (
    CALL,
    PRECISION,
    RADIUS,
    ArgsArg,
    CallOpt,
    DepthOpt,
    ExprOpt,
    FocusOpt,
    FoldOpt,
    HideOpt,
    LetOpt,
    ModuleOpt,
    OptScriptArg,
    OrderOpt,
    ParamOpt,
    PrecisionOpt,
    QuietOpt,
    RadiusOpt,
    SeedOpt,
    TargetOpt,
    TimeoutOpt,
    WatchOpt,
    view_options,
)
from ._ranks import RankOpt, setup
from ._run import (
    call_spec,
    captures,
    data_to_stdout,
    expr_graph,
    in_thread,
    one_source,
    remarks,
    reported,
    script_path,
    script_stdout,
)
from ._watch import check_watch
from ._watch import watch as run_watching


@app.command()
def tree(
    file: OptScriptArg = None,
    args: ArgsArg = None,
    target: TargetOpt = None,
    call: CallOpt = CALL,
    grad_output: SeedOpt = None,
    precision: PrecisionOpt = PRECISION,
    order: OrderOpt = False,
    depth: DepthOpt = None,
    fold: FoldOpt = False,
    focus: FocusOpt = None,
    radius: RadiusOpt = RADIUS,
    hide: HideOpt = None,
    expr: ExprOpt = None,
    let: LetOpt = None,
    param: ParamOpt = None,
    timeout: TimeoutOpt = None,
    quiet: QuietOpt = False,
    rank: RankOpt = 0,
    watch: WatchOpt = False,
    module: ModuleOpt = False,
) -> None:
    """Run FILE and print its autograd graph as a tree: root first, leaves last.

    Example: `gradviz tree samples/linear.py`
    """
    with reported():
        setup(rank, None)
        script = one_source(file, expr, module)
        spec = call_spec(call, target)
        check_watch(watch, expr, spec.many, None)
        view = view_options(depth, fold, focus, radius, hide)
        piped = data_to_stdout()

        def job() -> None:
            from ..render.tree import GraphTree, printed
            from ..views import tree_graph

            out = Console(highlight=False)
            if script is None:  # --expr: one graph, gradients computed by gradviz
                graph = expr_graph(expr or "", let, param, grad_output).graph
                printed(out, GraphTree(tree_graph(graph, view), precision=precision, order=order))
                return
            with script_stdout(quiet, data_on_stdout=piped):
                found, total = captures(script, args, spec, target, grad_output)
            sys.stdout.flush()
            flattened = False
            for captured in found:
                if spec.many:  # one tree per call, each under its call number
                    out.print(f"backward call {captured.graph.call:,} of {total:,}")
                shown = tree_graph(captured.graph, view)
                drawn = GraphTree(shown, precision=precision, order=order)
                printed(out, drawn)
                flattened = flattened or drawn.flattened
            if flattened:
                err.print(
                    "[dim]note:[/] `↓ d=N` marks a node at depth N drawn flat, not indented, so "
                    "that deep graphs fit the width: it is an input of the node at depth N-1 "
                    "above it (the `↓ d=N-1` line, or the node the first one hangs under), and "
                    "its other inputs are indented under it."
                )
            if not spec.many:
                remarks(found[0], total)

        if watch and script is not None:
            run_watching(script_path(script), job, timeout, clear=Console().clear)
        in_thread(job, timeout)
