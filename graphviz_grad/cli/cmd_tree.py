"""`gradviz tree`: print the graph as a tree in the terminal."""

from __future__ import annotations

import sys

from rich.console import Console

from ._app import ArgsArg, CallOpt, PrecisionOpt, ScriptArg, SeedOpt, TargetOpt, TimeoutOpt, app
from ._run import boundary, capture, remarks


@app.command()
def tree(
    file: ScriptArg,
    args: ArgsArg = None,
    target: TargetOpt = None,
    call: CallOpt = -1,
    grad_output: SeedOpt = None,
    precision: PrecisionOpt = 4,
    timeout: TimeoutOpt = None,
) -> None:
    """Run FILE and print its autograd graph as a tree: root first, leaves last.

    Example: `gradviz tree samples/linear.py`
    """

    def job() -> None:
        from ..render.tree import GraphTree

        captured = capture(file, args, target, call, grad_output)
        sys.stdout.flush()
        Console(highlight=False).print(GraphTree(captured.graph, precision=precision))
        remarks(captured)

    boundary(job, timeout)
