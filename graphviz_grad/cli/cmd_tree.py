"""`gradviz tree`: print the graph as a tree in the terminal."""

from __future__ import annotations

import sys

from rich.console import Console

from ._app import (
    ArgsArg,
    DepthOpt,
    FocusOpt,
    FoldOpt,
    HideOpt,
    PrecisionOpt,
    RadiusOpt,
    SeedOpt,
    TargetOpt,
    TimeoutOpt,
    WatchOpt,
    app,
)
from ._ranks import RankOpt, setup
from ._run import (
    boundary,
    capture,
    data_to_stdout,
    parse_hide,
    remarks,
    script_stdout,
)
from ._teach import (
    CallSpecOpt,
    ExprOpt,
    LetOpt,
    OptScriptArg,
    OrderOpt,
    ParamOpt,
    call_spec,
    expr_graph,
    source_or_fail,
)
from ._watch import check_watch
from ._watch import watch as run_watching


@app.command()
def tree(
    file: OptScriptArg = None,
    args: ArgsArg = None,
    target: TargetOpt = None,
    call: CallSpecOpt = "-1",
    grad_output: SeedOpt = None,
    precision: PrecisionOpt = 4,
    timeout: TimeoutOpt = None,
    order: OrderOpt = False,
    expr: ExprOpt = None,
    let: LetOpt = None,
    param: ParamOpt = None,
    depth: DepthOpt = None,
    fold: FoldOpt = False,
    focus: FocusOpt = None,
    radius: RadiusOpt = 2,
    hide: HideOpt = None,
    watch: WatchOpt = False,
    rank: RankOpt = 0,
) -> None:
    """Run FILE and print its autograd graph as a tree: root first, leaves last.

    Example: `gradviz tree samples/linear.py`
    """

    setup(rank, None)
    spec = call_spec(call)
    check_watch(watch, expr, spec.many, None)
    script = source_or_fail(file, expr)
    hidden = parse_hide(hide)
    piped = data_to_stdout()

    def job() -> None:
        from ..render.tree import GraphTree
        from ..teach.calls import capture_calls

        if script is None:  # --expr: one graph, gradients computed by gradviz
            graph = expr_graph(expr or "", let, param, grad_output)[0]
            Console(highlight=False).print(GraphTree(graph, precision=precision, order=order))
            return
        if spec.many:  # --call all / 1:6: one tree per call, each under its call number
            with script_stdout(False, data_on_stdout=piped):
                run, graphs = capture_calls(script, args or [], spec)
            sys.stdout.flush()
            out = Console(highlight=False)
            for g in graphs:
                out.print(f"backward call {g.call} of {len(run.recorder.calls)}")
                out.print(GraphTree(g, precision=precision, order=order))
            return
        from ..views import ViewOptions, tree_graph

        with script_stdout(False, data_on_stdout=piped):
            captured = capture(script, args, target, spec.single or -1, grad_output)
        shown = tree_graph(captured.graph, ViewOptions(depth, fold, focus, radius, hidden))
        sys.stdout.flush()
        Console(highlight=False).print(GraphTree(shown, precision=precision, order=order))
        remarks(captured)

    if watch and script is not None:
        run_watching(script, job, timeout, clear=Console().clear)
    boundary(job, timeout)
