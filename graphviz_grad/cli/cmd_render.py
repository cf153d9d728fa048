"""`gradviz render`: draw the graph to a file."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from ._app import app, err
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
    EdgeGradsOpt,
    ExprOpt,
    FocusOpt,
    FoldOpt,
    FormatOpt,
    FullOpt,
    HideOpt,
    InputsOpt,
    LetOpt,
    ModuleOpt,
    OptScriptArg,
    OrderOpt,
    OutputOpt,
    ParamOpt,
    PrecisionOpt,
    QuietOpt,
    RadiusOpt,
    RankDirOpt,
    SavedOpt,
    SeedOpt,
    TargetOpt,
    TimeoutOpt,
    WatchOpt,
    draw_options,
    view_options,
)
from ._ranks import RankOpt, setup
from ._run import (
    call_spec,
    captures,
    check_output,
    draw,
    expr_graph,
    in_thread,
    one_source,
    output_format,
    progress,
    remarks,
    reported,
    script_path,
    script_stdout,
    wrote,
)
from ._watch import check_watch
from ._watch import watch as run_watching

if TYPE_CHECKING:
    from ..capture import CallSpec
    from ..render import DrawOptions
    from ._run import Script


@app.command()
def render(
    file: OptScriptArg = None,
    args: ArgsArg = None,
    output: OutputOpt = None,
    fmt: FormatOpt = None,
    edge_grads: EdgeGradsOpt = False,
    saved: SavedOpt = False,
    order: OrderOpt = False,
    color: ColorOpt | None = None,
    show_cuts: CutsOpt = False,
    rankdir: RankDirOpt | None = None,
    dpi: DpiOpt = None,
    inputs: InputsOpt = None,
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
    expr: ExprOpt = None,
    let: LetOpt = None,
    param: ParamOpt = None,
    timeout: TimeoutOpt = None,
    quiet: QuietOpt = False,
    rank: RankOpt = 0,
    watch: WatchOpt = False,
    module: ModuleOpt = False,
) -> None:
    """Run FILE and draw its autograd graph with values and gradients.

    Example: `gradviz render samples/linear.py -o linear.svg`
    """
    with reported():
        output = setup(rank, output)
        script = one_source(file, expr, module)
        spec = call_spec(call, target)
        check_watch(watch, expr, spec.many, output)
        options = draw_options(
            view=view_options(depth, fold, focus, radius, hide),
            precision=precision,
            edge_grads=edge_grads,
            saved=saved,
            order=order,
            cuts=show_cuts,
            color=color,
            budget=budget,
            full=full,
            rankdir=rankdir,
            dpi=dpi,
            inputs=inputs,
        )
        if script is not None and spec.many:
            return _calls(script, args, spec, output, fmt, options, timeout, quiet)
        fmt_name = output_format(output, fmt)
        stem = script.stem if script is not None else "expr"
        out = output if output is not None else f"{stem}.{fmt_name}"
        check_output(out, script_path(script) if script is not None else None, fmt_name)

        def job() -> None:
            if script is None:
                graph = expr_graph(expr or "", let, param, grad_output).graph
                wrote(out, graph, draw(graph, out, fmt_name, options))
                return
            running = progress(f"running {script.name} and capturing its graph", quiet=quiet)
            with running, script_stdout(quiet, data_on_stdout=out == "-"):
                (captured,), total = captures(script, args, spec, target, grad_output)
            view = draw(captured.graph, out, fmt_name, options)
            remarks(captured, total, fail=False)
            wrote(out, captured.graph, view)
            if captured.error is not None:
                raise captured.error  # after saying where the graph went

        if watch and script is not None:
            page = Path(out) if fmt_name == "html" else None
            run_watching(script_path(script), job, timeout, page=page)
        in_thread(job, timeout)


def _calls(
    script: Script,
    args: list[str] | None,
    spec: CallSpec,
    output: str | None,
    fmt: Enum | None,
    options: DrawOptions,
    timeout: float | None,
    quiet: bool,
) -> None:
    """`render --call all` / `--call 1:6`: one numbered picture per call, in a folder."""
    from ..errors import UsageError
    from ..render import write_calls

    if output == "-":
        raise UsageError(
            "Several calls make several pictures; they cannot go to standard output.",
            hint="Give a folder with -o, or pick one call with --call N.",
        )
    fmt_name = output_format(None, fmt)
    folder = Path(output) if output else Path(f"{script.stem}-calls")

    def job() -> None:
        with script_stdout(quiet, data_on_stdout=False):
            found, total = captures(script, args, spec, None, None)
        graphs = [c.graph for c in found]
        written = write_calls(graphs, folder, script.stem, fmt_name, total, options)
        numbers = [g.call for g in graphs if g.call is not None]
        noun = "picture" if len(written) == 1 else "pictures"
        err.print(
            f"[green]wrote[/] {len(written)} {noun} to {escape(str(folder))}/ "
            f"({calls_shown(numbers, total)})"
        )

    in_thread(job, timeout)


def calls_shown(numbers: list[int], total: int) -> str:
    """``calls 1–6 of 300``, ``call 3 of 300``, ``all 12 calls``, ``calls 1, 4, 9 of 12``."""
    if not numbers:
        return f"none of {total} calls"
    if len(numbers) == total and numbers == list(range(1, total + 1)):
        return f"all {total} calls" if total != 1 else "the only call"
    if len(numbers) == 1:
        return f"call {numbers[0]} of {total}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"calls {numbers[0]}–{numbers[-1]} of {total}"
    shown = ", ".join(str(n) for n in numbers[:6]) + (", …" if len(numbers) > 6 else "")
    return f"calls {shown} of {total}"
