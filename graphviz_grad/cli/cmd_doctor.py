"""`gradviz doctor`: run the script and list the gradient bugs found, with where and how to fix."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ._app import app
from ._options import (
    BUDGET,
    CALL,
    PRECISION,
    RADIUS,
    ArgsArg,
    BudgetOpt,
    CallOpt,
    ColorOpt,
    CutsOpt,
    DepthOpt,
    DpiOpt,
    FocusOpt,
    FoldOpt,
    FormatOpt,
    FullOpt,
    HideOpt,
    OutputOpt,
    PrecisionOpt,
    QuietOpt,
    RadiusOpt,
    RankDirOpt,
    ScriptArg,
    SeedOpt,
    TargetOpt,
    TimeoutOpt,
    draw_options,
    view_options,
)
from ._ranks import RankOpt, setup
from ._run import (
    call_spec,
    captures,
    check_output,
    draw,
    hush,
    in_thread,
    output_format,
    reported,
    wrote,
)

if TYPE_CHECKING:
    from rich.table import Table

    from ..model import Finding, Graph

_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "blue"}


def findings_table(findings: tuple[Finding, ...]) -> Table:
    """The findings as a rich table: severity, code, where, what, how to fix."""
    from rich.table import Table

    from ..model import location

    table = Table(title=f"gradviz doctor: {len(findings)} finding(s)", show_lines=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("where", overflow="fold", min_width=12)
    table.add_column("what", overflow="fold", ratio=3)
    table.add_column("how to fix", overflow="fold", ratio=2)
    for f in findings:
        style = _STYLE[f.severity]
        table.add_row(
            f"[{style}]{f.severity}[/]",
            f.code,
            location(f.file, f.line) or "-",
            f.message,
            f.hint or "",
            style=None,
        )
    return table


def _report(graph: Graph, heading: str | None = None) -> None:
    from rich.console import Console

    sys.stdout.flush()
    console = Console(highlight=False)
    if heading:
        console.print(heading)
    if graph.findings:
        console.print(findings_table(graph.findings))
    else:
        console.print(f"gradviz doctor: no findings ({len(graph.nodes)} nodes checked).")


@app.command()
def doctor(
    file: ScriptArg,
    args: ArgsArg = None,
    output: OutputOpt = None,
    fmt: FormatOpt = None,
    show_cuts: CutsOpt = True,
    color: ColorOpt | None = None,
    rankdir: RankDirOpt | None = None,
    dpi: DpiOpt = None,
    target: TargetOpt = None,
    call: CallOpt = CALL,
    grad_output: SeedOpt = None,
    precision: PrecisionOpt = PRECISION,
    depth: DepthOpt = None,
    fold: FoldOpt = False,
    focus: FocusOpt = None,
    radius: RadiusOpt = RADIUS,
    hide: HideOpt = None,
    budget: BudgetOpt = BUDGET,
    full: FullOpt = False,
    timeout: TimeoutOpt = None,
    quiet: QuietOpt = False,
    rank: RankOpt = 0,
) -> None:
    """Run FILE and list the gradient bugs found: severity, code, file:line, what, how to fix.

    Exit code 0 when nothing at `error` level was found, 10 otherwise. Codes: graph-retained,
    graph-grows, grad-accumulates, inplace-saved, backward-twice, cut, unused-param, grad-none,
    grad-zero, grad-nan, grad-inf, grad-scale (see docs/doctor.md).

    Example: `gradviz doctor samples/pitfalls/cut.py -o cut.svg`
    """
    with reported():
        output = setup(rank, output)
        spec = call_spec(call, target)
        options = draw_options(
            view=view_options(depth, fold, focus, radius, hide),
            precision=precision,
            cuts=show_cuts,
            color=color,
            budget=budget,
            full=full,
            rankdir=rankdir,
            dpi=dpi,
        )
        fmt_name = output_format(output, fmt) if output is not None else None
        if output is not None and fmt_name is not None:
            if spec.many:
                from ..errors import UsageError

                raise UsageError(
                    "doctor draws one graph with -o; a range of calls makes several.",
                    hint="Pick one call with --call N, or draw them with `gradviz render --call`.",
                )
            check_output(output, file, fmt_name)

        def job() -> None:
            from ..diagnose import has_errors
            from ..errors import FindingsError

            with hush(quiet):
                found, total = captures(file, args, spec, target, grad_output)
            failed = False
            for captured in found:
                graph = captured.graph
                heading = f"backward call {graph.call} of {total}" if spec.many else None
                _report(graph, heading)
                if output is not None and fmt_name is not None:
                    wrote(output, graph, draw(graph, output, fmt_name, options))
                failed = failed or has_errors(graph.findings)
            error = found[-1].error
            if failed:
                if error is not None:
                    sys.stderr.write(getattr(error, "details", ""))
                raise FindingsError(
                    "gradviz doctor found a problem at `error` level (see the table above).",
                    hint="Fix the findings marked `error`; docs/doctor.md explains each code.",
                )
            if error is not None:
                raise error

        in_thread(job, timeout)
