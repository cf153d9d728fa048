"""`gradviz render`: draw the graph to a file."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import (
    OUT_PANEL,
    VIEW_PANEL,
    ArgsArg,
    CallOpt,
    Format,
    PrecisionOpt,
    ScriptArg,
    SeedOpt,
    TargetOpt,
    TimeoutOpt,
    app,
    err,
)
from ._run import boundary, capture, check_output, format_for, remarks


@app.command()
def render(
    file: ScriptArg,
    args: ArgsArg = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="File to write (`-` for stdout).", rich_help_panel=OUT_PANEL
        ),
    ] = None,
    fmt: Annotated[
        Format | None,
        typer.Option("--format", "-f", help="Output format.", rich_help_panel=OUT_PANEL),
    ] = None,
    edge_grads: Annotated[
        bool,
        typer.Option(
            "--edge-grads", help="Label edges with their gradient.", rich_help_panel=VIEW_PANEL
        ),
    ] = False,
    show_saved: Annotated[
        bool,
        typer.Option("--saved", help="List each node's saved tensors.", rich_help_panel=VIEW_PANEL),
    ] = False,
    target: TargetOpt = None,
    call: CallOpt = -1,
    grad_output: SeedOpt = None,
    precision: PrecisionOpt = 4,
    timeout: TimeoutOpt = None,
) -> None:
    """Run FILE and draw its autograd graph with values and gradients.

    Example: `gradviz render samples/linear.py -o linear.svg`
    """
    fmt_name = format_for(output, fmt)
    out = output if output is not None else f"{file.stem}.{fmt_name}"
    check_output(out, file, fmt_name)

    def job() -> None:
        from ..render import write

        captured = capture(file, args, target, call, grad_output)
        write(
            captured.graph,
            out,
            fmt_name,
            precision=precision,
            edge_grads=edge_grads,
            show_saved=show_saved,
        )
        remarks(captured)
        if out != "-":
            err.print(f"[green]wrote[/] {out} ({len(captured.graph.nodes)} nodes)")

    boundary(job, timeout)
