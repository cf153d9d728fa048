"""`gradviz explain`: the backward pass of the graph, node by node, with the chain rule."""

from __future__ import annotations

import sys

from ._app import app, show
from ._options import (
    CALL,
    PRECISION,
    ArgsArg,
    CallOpt,
    ExprOpt,
    LetOpt,
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
    expr_graph,
    in_thread,
    one_source,
    remarks,
    reported,
    script_stdout,
)


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
) -> None:
    """Walk the backward pass step by step: forward formula, local derivative, upstream
    gradient and their product at every node, in the order autograd ran them.

    Example: `gradviz explain samples/linear.py`
    """
    with reported():
        script = one_source(file, expr)
        spec = call_spec(call, target)

        def job() -> None:
            from ..teach.explain import Explanation
            from ..teach.sources import from_source

            if script is None:
                found = expr_graph(expr or "", let, param, grad_output)
                show(Explanation(found.graph, precision=precision, notes=found.notes))
                return
            with script_stdout(quiet, data_on_stdout=False):
                captured, total = captures(script, args, spec, target, grad_output)
            sys.stdout.flush()
            for one in captured:
                if spec.many:
                    show(f"backward call {one.graph.call} of {total}")
                notes = from_source(one.graph)
                show(Explanation(one.graph, precision=precision, notes=notes))
            if not spec.many:
                remarks(captured[0], total)

        in_thread(job, timeout)
