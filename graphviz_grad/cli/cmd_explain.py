"""`gradviz explain`: the backward pass of the graph, node by node, with the chain rule."""

from __future__ import annotations

import sys

from rich.console import Console

from ._app import ArgsArg, CallOpt, PrecisionOpt, SeedOpt, TargetOpt, TimeoutOpt, app
from ._run import boundary, capture, fail, remarks
from ._teach import (
    ExprOpt,
    LetOpt,
    OptScriptArg,
    ParamOpt,
    QuietOpt,
    expr_graph,
    hush,
    need_one_source,
)


@app.command()
def explain(
    file: OptScriptArg = None,
    args: ArgsArg = None,
    expr: ExprOpt = None,
    let: LetOpt = None,
    param: ParamOpt = None,
    target: TargetOpt = None,
    call: CallOpt = -1,
    grad_output: SeedOpt = None,
    precision: PrecisionOpt = 4,
    timeout: TimeoutOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Walk the backward pass step by step: forward formula, local derivative, upstream
    gradient and their product at every node, in the order autograd ran them.

    Example: `gradviz explain samples/linear.py`
    """
    from ..errors import GradvizError

    try:
        need_one_source(file, expr)
    except GradvizError as exc:
        fail(exc)

    def job() -> None:
        from ..teach.explain import Explanation
        from ..teach.sources import from_source

        captured = None
        if file is not None:
            with hush(quiet):
                captured = capture(file, args, target, call, grad_output)
            graph, notes = captured.graph, from_source(captured.graph)
        else:
            graph, notes = expr_graph(expr or "", let, param, grad_output)
        sys.stdout.flush()
        Console(highlight=False).print(Explanation(graph, precision=precision, notes=notes))
        if captured is not None:
            remarks(captured)

    boundary(job, timeout)
