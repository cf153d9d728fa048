"""`gradviz doctor`: run the script and list the gradient bugs found, with where and how to fix."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.markup import escape

from ._app import app, err, show
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
    FailOn,
    FailOnOpt,
    FocusOpt,
    FoldOpt,
    FormatOpt,
    FullOpt,
    HideOpt,
    InputsOpt,
    ModuleOpt,
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
    as_script,
    call_spec,
    captures,
    check_output,
    data_to_stdout,
    draw,
    in_thread,
    output_format,
    reported,
    script_path,
    script_stdout,
    wrote,
)

if TYPE_CHECKING:
    from ..capture import Captured
    from ..model import Graph


def _in_backward(captured: Captured) -> bool:
    """Whether the script died inside the last backward call (not after it)."""
    calls = captured.run.recorder.calls
    return bool(calls) and calls[-1].error is not None


def _report(graph: Graph, heading: str | None = None, to_stderr: bool = False) -> None:
    """The findings on stdout, or on stderr when stdout carries the drawn graph (`-o -`)."""
    from ..render.findings import FindingsReport

    sys.stdout.flush()
    if heading:
        show(heading, stderr=to_stderr)
    show(FindingsReport(graph.findings, nodes=len(graph.nodes)), stderr=to_stderr)


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
    timeout: TimeoutOpt = None,
    quiet: QuietOpt = False,
    rank: RankOpt = 0,
    fail_on: FailOnOpt = FailOn["error"],
    module: ModuleOpt = False,
) -> None:
    """Run FILE and list the gradient bugs found: severity, code, file:line, what, how to fix.

    Exit code 0 when nothing at the `--fail-on` level (default `error`) or above was found, 10
    otherwise; 4 when the script itself raised (after showing what it did before). Codes:
    graph-retained, graph-grows, grad-accumulates, inplace-saved, backward-twice, cut,
    unused-param, grad-none, grad-zero, forward-nonfinite, grad-nan, grad-inf, grad-scale,
    loss-broadcast, loss-input, loss-empty, attention-mask, grad-clip, torch-warning,
    loop-nonfinite, loss-diverges, params-frozen, no-backward (see docs/doctor.md).

    Example: `gradviz doctor samples/pitfalls/cut.py -o cut.svg --fail-on warning`
    """
    with reported():
        output = setup(rank, output)
        script = as_script(file, module)
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
            inputs=inputs,
        )
        fmt_name = output_format(output, fmt) if output is not None else None
        if output is not None and fmt_name is not None:
            if spec.many:
                from ..errors import UsageError

                raise UsageError(
                    "doctor draws one graph with -o; a range of calls makes several.",
                    hint="Pick one call with --call N, or draw them with `gradviz render --call`.",
                )
            check_output(output, script_path(script), fmt_name)

        def job() -> None:
            from ..diagnose import has_errors, not_run
            from ..errors import FindingsError

            # a report piped or redirected is data too, as a piped tree is (`doctor x.py | grep`)
            with script_stdout(quiet, data_on_stdout=output == "-" or data_to_stdout()):
                found, total = captures(script, args, spec, target, grad_output)
            level = str(fail_on.value)
            failed = False
            for captured in found:
                graph = captured.graph
                heading = f"backward call {graph.call:,} of {total:,}" if spec.many else None
                _report(graph, heading, to_stderr=output == "-")
                why = not_run(captured.run.recorder.calls)
                if why is not None:
                    err.print(f"[dim]note:[/] {escape(why)}")
                elif not spec.many and graph.call is not None and total > 1:
                    seen = len(captured.run.recorder.calls)
                    err.print(
                        f"[dim]note:[/] the checks of one graph read backward call "
                        f"{graph.call:,} of {total:,} (--call N picks another); the checks "
                        f"across calls read {'all ' if seen == total else ''}{seen:,} of them."
                    )
                if output is not None and fmt_name is not None:
                    wrote(output, graph, draw(graph, output, fmt_name, options))
                failed = failed or has_errors(graph.findings, level)
            error = found[-1].error
            died_in_backward = error is not None and _in_backward(found[-1])
            if error is not None and not (died_in_backward and failed):
                raise error  # it raised after the calls shown: the script's own error and code
            if failed:
                if error is not None:
                    sys.stderr.write(getattr(error, "details", ""))
                above = "" if level == "error" else " or above"
                raise FindingsError(
                    f"gradviz doctor found a problem at `{level}` level{above} (see the table "
                    "above).",
                    hint=f"Fix the findings marked `{level}`{above}; docs/doctor.md explains each "
                    "code.",
                )

        in_thread(job, timeout)
