"""The `gradviz` command line: thin commands over the library, one error boundary.

torch and graphviz are imported inside the commands, so `gradviz --help` stays instant.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from . import __version__
from .errors import CallError, GradvizError, OutputError

if TYPE_CHECKING:
    from .job import Captured

T = TypeVar("T")

app = typer.Typer(
    name="gradviz",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="See how PyTorch computes gradients: the autograd graph of your script, with the "
    "forward value and the gradient of every node.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ROOT_PANEL = "Which graph"
OUT_PANEL = "Output"


class Format(str, Enum):
    svg = "svg"
    png = "png"
    pdf = "pdf"
    dot = "dot"
    json = "json"


ScriptArg = Annotated[
    Path,
    typer.Argument(help="The PyTorch script to run, as `python FILE` would.", show_default=False),
]
ArgsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Arguments for the script, after `--`.", show_default=False),
]
TargetOpt = Annotated[
    str | None,  # noqa: UP007
    typer.Option(
        "--target", "-t", help="Variable holding the root tensor.", rich_help_panel=ROOT_PANEL
    ),
]
CallOpt = Annotated[
    int,
    typer.Option(
        "--call",
        "-c",
        help="Which backward call to show: 1-based, negative counts from the end.",
        rich_help_panel=ROOT_PANEL,
    ),
]
SeedOpt = Annotated[
    str | None,  # noqa: UP007
    typer.Option(
        "--grad-output",
        help="Seed for a non-scalar root when gradviz computes gradients: `ones`.",
        rich_help_panel=ROOT_PANEL,
    ),
]
PrecisionOpt = Annotated[
    int, typer.Option("--precision", "-p", min=1, max=17, help="Significant digits shown.")
]
TimeoutOpt = Annotated[
    float | None,  # noqa: UP007
    typer.Option("--timeout", min=0.0, help="Stop the script after this many seconds."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gradviz {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """See how PyTorch computes gradients."""


@app.command()
def render(
    file: ScriptArg,
    args: ArgsArg = None,
    output: Annotated[
        str | None,  # noqa: UP007
        typer.Option(
            "--output", "-o", help="File to write (`-` for stdout).", rich_help_panel=OUT_PANEL
        ),
    ] = None,
    fmt: Annotated[
        Format | None,  # noqa: UP007
        typer.Option("--format", "-f", help="Output format.", rich_help_panel=OUT_PANEL),
    ] = None,
    edge_grads: Annotated[
        bool, typer.Option("--edge-grads", help="Label edges with their gradient.")
    ] = False,
    show_saved: Annotated[
        bool, typer.Option("--saved", help="List each node's saved tensors.")
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
    fmt_name = _format_for(output, fmt)
    out = output if output is not None else f"{file.stem}.{fmt_name}"
    _check_output(out, file, fmt_name)

    def job() -> None:
        from .render import write

        captured = _capture(file, args, target, call, grad_output)
        write(
            captured.graph,
            out,
            fmt_name,
            precision=precision,
            edge_grads=edge_grads,
            show_saved=show_saved,
        )
        _remarks(captured)
        if out != "-":
            err.print(f"[green]wrote[/] {out} ({len(captured.graph.nodes)} nodes)")

    _boundary(job, timeout)


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
        from .render.tree import GraphTree

        captured = _capture(file, args, target, call, grad_output)
        sys.stdout.flush()
        Console(highlight=False).print(GraphTree(captured.graph, precision=precision))
        _remarks(captured)

    _boundary(job, timeout)


# -- helpers ---------------------------------------------------------------------------------
def _capture(
    file: Path, args: list[str] | None, target: str | None, call: int, grad_output: str | None
) -> Captured:
    from .job import CaptureOptions, capture_script

    if call == 0:
        raise CallError(
            "--call 0 names no call: calls are counted from 1.",
            hint="Use --call 1 for the first backward call, or --call -1 for the last.",
        )
    options = CaptureOptions(target=target, call=call, grad_output=grad_output)
    return capture_script(file, args or [], options)


def _remarks(captured: Captured) -> None:
    graph = captured.graph
    if graph.grad_source == "gradviz":
        err.print(
            "[dim]note:[/] the script never called backward, so gradviz computed the gradients "
            "itself (no `.grad` of yours was changed)."
        )
    elif graph.call is not None:
        total = len(captured.run.recorder.calls)
        if total > 1:
            err.print(f"[dim]note:[/] showing backward call {graph.call} of {total} (--call N).")
    for note in graph.notes:
        err.print(f"[dim]note:[/] {note}")


def _format_for(output: str | None, fmt: Format | None) -> str:
    if fmt is not None:
        return fmt.value
    if output and output != "-":
        suffix = Path(output).suffix.lstrip(".").lower()
        if suffix in Format.__members__:
            return suffix
        if suffix:
            _fail(
                OutputError(
                    f"gradviz cannot tell the format of `{output}` from its suffix `.{suffix}`.",
                    hint="Use one of .svg .png .pdf .dot .json, or say --format.",
                )
            )
    if output == "-":
        return "dot"
    return "svg"


def _check_output(out: str, script: Path, fmt: str) -> None:
    if out == "-":
        if fmt not in ("dot", "json"):
            _fail(
                OutputError(
                    f"{fmt.upper()} cannot be written to the terminal.",
                    hint="Use -o FILE, or --format dot / --format json for stdout.",
                )
            )
        return
    target = Path(out)
    if script.exists() and target.exists() and target.resolve() == script.resolve():
        _fail(
            OutputError(
                f"The output `{out}` is the script itself; gradviz never overwrites it.",
                hint="Choose another file name with -o.",
            )
        )
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        _fail(
            OutputError(
                f"The folder `{parent}` does not exist.",
                hint="Create it first, or pick another -o.",
            )
        )


def _boundary(job: Callable[[], None], timeout: float | None) -> None:
    """Run a command's job in the big-stack thread; turn errors into a sentence and a code."""
    from .runner import in_big_stack

    try:
        in_big_stack(job, timeout=timeout)
    except GradvizError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: no output was written.")
        raise typer.Exit(130) from None


def _fail(exc: GradvizError) -> Any:
    details = getattr(exc, "details", "")
    if details:
        sys.stderr.write(details)
        sys.stderr.flush()
    err.print(f"[bold red]error:[/] {exc.message}")
    if exc.hint:
        err.print(f"[dim]hint:[/] {exc.hint}")
    raise typer.Exit(exc.exit_code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
