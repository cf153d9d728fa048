"""`gradviz doctor`: run the script and list the gradient bugs found, with where and how to fix."""

from __future__ import annotations

import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated

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
from ._ranks import RankOpt, setup
from ._run import boundary, capture, check_output, fail, format_for, script_stdout

if TYPE_CHECKING:
    from ..model import Graph

#: Exit code when a finding is at `error` level (errors.EXIT_CODES["findings-error"]).
FINDINGS_ERROR = 10
_DRAWN = ("svg", "png", "pdf", "dot", "json")


class Color(str, Enum):
    kind = "kind"
    grad = "grad"


def _write(graph: Graph, out: str, fmt: str, precision: int, cuts: bool, color: Color) -> None:
    from ..render import write

    write(graph, out, fmt, precision=precision, show_cuts=cuts, color=color.value)


def _report(graph: Graph, to_stderr: bool) -> None:
    """The findings on stdout, or on stderr when stdout carries the drawn graph (`-o -`)."""
    from rich.console import Console

    from ..render.findings import FindingsReport

    sys.stdout.flush()
    console = Console(highlight=False, stderr=to_stderr)
    console.print(FindingsReport(graph.findings, nodes=len(graph.nodes)))


@app.command()
def doctor(
    file: ScriptArg,
    args: ArgsArg = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Also draw the diagnosed graph to this file (`-` for stdout: dot or json).",
            rich_help_panel=OUT_PANEL,
        ),
    ] = None,
    fmt: Annotated[
        Format | None,
        typer.Option("--format", "-f", help="Format of --output.", rich_help_panel=OUT_PANEL),
    ] = None,
    show_cuts: Annotated[
        bool,
        typer.Option(
            "--show-cuts/--no-show-cuts",
            help="Mark where the graph is cut (detach, .data, no_grad, .item()).",
            rich_help_panel=VIEW_PANEL,
        ),
    ] = True,
    color: Annotated[
        Color,
        typer.Option(
            "--color",
            help="Fill nodes by `kind` (leaf, op, root) or by log `grad` norm.",
            rich_help_panel=VIEW_PANEL,
        ),
    ] = Color.kind,
    target: TargetOpt = None,
    call: CallOpt = -1,
    grad_output: SeedOpt = None,
    precision: PrecisionOpt = 4,
    timeout: TimeoutOpt = None,
    rank: RankOpt = 0,
) -> None:
    """Run FILE and list the gradient bugs found: severity, code, file:line, what, how to fix.

    Exit code 0 when nothing at `error` level was found, 10 otherwise. Codes: graph-retained,
    graph-grows, grad-accumulates, inplace-saved, backward-twice, cut, unused-param, grad-none,
    grad-zero, grad-nan, grad-inf, grad-scale (see docs/doctor.md).

    Example: `gradviz doctor samples/pitfalls/cut.py -o cut.svg`
    """
    output = setup(rank, output)
    fmt_name = format_for(output, fmt) if output is not None else None
    if output is not None and fmt_name is not None:
        if fmt_name not in _DRAWN:
            raise typer.BadParameter(f"choose one of {', '.join(_DRAWN)}.", param_hint="--format")
        check_output(output, file, fmt_name)
    codes: list[int] = []

    def job() -> None:
        from ..diagnose import has_errors

        with script_stdout(False, data_on_stdout=output == "-"):
            captured = capture(file, args, target, call, grad_output)
        graph = captured.graph
        _report(graph, to_stderr=output == "-")
        if output is not None and fmt_name is not None:
            _write(graph, output, fmt_name, precision, show_cuts, color)
            if output != "-":
                err.print(f"[green]wrote[/] {output} ({len(graph.nodes)} nodes)")
        if has_errors(graph.findings):
            if captured.error is not None:
                sys.stderr.write(getattr(captured.error, "details", ""))
            codes.append(FINDINGS_ERROR)
        elif captured.error is not None:
            fail(captured.error)

    boundary(job, timeout)
    if codes:
        raise typer.Exit(codes[0])
