"""`gradviz render`: draw the graph to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import (
    OUT_PANEL,
    VIEW_PANEL,
    ArgsArg,
    BudgetOpt,
    DepthOpt,
    FocusOpt,
    FoldOpt,
    Format,
    FullOpt,
    HideOpt,
    PrecisionOpt,
    RadiusOpt,
    SeedOpt,
    TargetOpt,
    TimeoutOpt,
    WatchOpt,
    app,
    err,
)
from ._ranks import RankOpt, setup
from ._run import (
    boundary,
    capture,
    check_output,
    format_for,
    parse_hide,
    progress,
    remarks,
    script_stdout,
    view_for,
)
from ._teach import (
    CallSpecOpt,
    ExprOpt,
    LetOpt,
    OptScriptArg,
    OrderOpt,
    ParamOpt,
    Picture,
    QuietOpt,
    call_spec,
    render_calls,
    render_expr,
    source_or_fail,
)
from ._watch import check_watch
from ._watch import watch as run_watching


@app.command()
def render(
    file: OptScriptArg = None,
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
    call: CallSpecOpt = "-1",
    grad_output: SeedOpt = None,
    precision: PrecisionOpt = 4,
    timeout: TimeoutOpt = None,
    depth: DepthOpt = None,
    fold: FoldOpt = False,
    focus: FocusOpt = None,
    radius: RadiusOpt = 2,
    hide: HideOpt = None,
    budget: BudgetOpt = 1500,
    full: FullOpt = False,
    order: OrderOpt = False,
    expr: ExprOpt = None,
    let: LetOpt = None,
    param: ParamOpt = None,
    quiet: QuietOpt = False,
    watch: WatchOpt = False,
    rank: RankOpt = 0,
) -> None:
    """Run FILE and draw its autograd graph with values and gradients.

    Example: `gradviz render samples/linear.py -o linear.svg`
    """
    output = setup(rank, output)
    spec = call_spec(call)
    pic = Picture(output, fmt, order, edge_grads, show_saved, precision, grad_output, quiet)
    check_watch(watch, expr, spec.many, output)
    if (file := source_or_fail(file, expr)) is None:
        return render_expr(expr or "", let, param, pic, timeout)
    if spec.many:
        return render_calls(file, args, spec, pic, timeout)
    fmt_name = format_for(output, fmt)
    out = output if output is not None else f"{file.stem}.{fmt_name}"
    check_output(out, file, fmt_name)
    hidden = parse_hide(hide)

    def job() -> None:
        from ..teach.pictures import write_picture as write
        from ..views import ViewOptions

        running = progress(f"running {file.name} and capturing its graph")
        with running, script_stdout(quiet, data_on_stdout=out == "-"):
            captured = capture(file, args, target, spec.single or -1, grad_output)
        options = ViewOptions(depth, fold, focus, radius, hidden)
        view = None
        if fmt_name not in ("json", "html"):  # the HTML page chooses in the browser
            with progress("choosing what to draw"):
                view = view_for(captured.graph, fmt_name, options, budget, full)
        layout = " (Graphviz layout)" if fmt_name not in ("dot", "json") else ""
        with progress(f"writing {fmt_name.upper()}{layout}"):
            write(
                captured.graph,
                out,
                fmt_name,
                precision=precision,
                edge_grads=edge_grads,
                show_saved=show_saved,
                view=view,
                order=order,
            )
        remarks(captured)
        if out != "-":
            total = len(captured.graph.nodes)
            drawn = f", {view.size} drawn" if view is not None and view.size != total else ""
            err.print(f"[green]wrote[/] {out} ({total} nodes{drawn})")

    if watch:
        run_watching(file, job, timeout, page=Path(out) if fmt_name == "html" else None)
    boundary(job, timeout)
