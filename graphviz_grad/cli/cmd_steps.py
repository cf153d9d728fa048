"""`gradviz steps`: one row per backward call of a run, and sparklines of how it moved."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from ..model import plural
from ._app import app, err, show
from ._options import (
    OUT_PANEL,
    PRECISION,
    ArgsArg,
    ModuleOpt,
    PrecisionOpt,
    QuietOpt,
    ScriptArg,
    TimeoutOpt,
)
from ._ranks import RankOpt, setup, stop_unless_drawing
from ._run import (
    as_script,
    data_to_stdout,
    in_thread,
    progress,
    reported,
    script_path,
    script_stdout,
)


class StepsFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def steps(
    file: ScriptArg,
    args: ArgsArg = None,
    fmt: Annotated[
        StepsFormat,
        typer.Option(
            "--format", "-f", help="Table (terminal), csv or json.", rich_help_panel=OUT_PANEL
        ),
    ] = StepsFormat.table,
    every: Annotated[
        int | None,
        typer.Option(
            "--every",
            "-k",
            min=1,
            help="Show every K-th call (and the last). Default: every call; in the table, "
            "past 100 calls, a round K that leaves about 50 rows.",
            show_default=False,
            rich_help_panel=OUT_PANEL,
        ),
    ] = None,
    precision: PrecisionOpt = PRECISION,
    timeout: TimeoutOpt = None,
    quiet: QuietOpt = False,
    rank: RankOpt = 0,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Draw the loss, values and gradient norms over the calls into "
            "steps.svg / .png / .pdf / .html (needs matplotlib: `pip install 'gradviz[plot]'`).",
            rich_help_panel=OUT_PANEL,
        ),
    ] = None,
    module: ModuleOpt = False,
) -> None:
    """Run FILE and show every backward call: the loss, each leaf's value before the call and
    the gradient it got, as a table with sparklines (or CSV / JSON, or a picture with -o).

    Example: `gradviz steps samples/training_loop.py --every 30`
    """

    def job() -> None:
        from ..capture import no_graph, run_recorded
        from ..errors import CallError
        from ..teach.steps import (
            StepsTable,
            auto_every,
            distinct_leaves,
            ordinal,
            to_csv,
            to_json,
        )

        # the table redirected (`steps x.py > steps.txt`) is data too
        data = output is None and (fmt is not StepsFormat.table or data_to_stdout())
        with (
            progress(f"running {script.name}", quiet=quiet),
            script_stdout(quiet, data_on_stdout=data),
        ):
            run = run_recorded(script, args or [], no_graph, partial=True)
        stop_unless_drawing()
        calls = run.recorder.calls
        if not calls:
            hint = (
                f"Use `gradviz explain {'-m ' if module else ''}{file}` to see the gradients of "
                "one graph."
            )
            import torch

            values = run.variables.values()
            if not any(isinstance(v, torch.Tensor) and v.grad_fn is not None for v in values):
                hint = (
                    "Nor does it leave a tensor with an autograd graph to explain: `steps` lists "
                    "the backward calls (`loss.backward()`) of a training loop."
                )
            elsewhere = run.recorder.subprocesses.sentence()
            if elsewhere is not None:
                hint = (
                    f"Its own process made none: {elsewhere}. To see a worker's steps, call its "
                    "function in the main process (`train(...)` instead of "
                    "`mp.Process(target=train, ...).start()`)."
                )
            raise CallError(
                f"The script `{script_path(script).name}` made no backward call, so there are no "
                "steps to show.",
                hint=hint,
            )
        calls = distinct_leaves(calls)
        sys.stdout.flush()
        k = every
        if k is None:
            k = auto_every(len(calls)) if fmt is StepsFormat.table else 1
        if output is not None:
            from ._plot import write_plot

            write_plot(calls, output)
        elif fmt is StepsFormat.csv:
            sys.stdout.write(to_csv(calls, k))
        elif fmt is StepsFormat.json:
            sys.stdout.write(to_json(calls, k))
        else:
            show(StepsTable(calls, every=k, precision=precision))
        sys.stdout.flush()
        if output is None:
            recorded = f"{plural(len(calls), 'backward call')} recorded"
            if every is None and k > 1:
                recorded += (
                    f"; the table shows every {ordinal(k)} and the last (`--every 1` shows "
                    "all, `--format csv` has every call)"
                )
            err.print(f"[dim]note:[/] {recorded}.")
        if run.error is not None:  # the calls before the error are shown; now report it
            raise run.error

    with reported():
        output = setup(rank, output)
        script = as_script(file, module)
        if output is not None:
            from ._plot import check_plot_output

            check_plot_output(output, script_path(script))
        in_thread(job, timeout)
