"""Options and helpers the teaching features add to commands: --expr/--let/--param, --order,
--call with ranges, and the choice between a script and an expression."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import GradvizError
from ._app import ROOT_PANEL, VIEW_PANEL, Format, err

if TYPE_CHECKING:
    from ..model import Graph
    from ..teach.calls import CallSpec
    from ..teach.sources import Annotations

EXPR_PANEL = "One-liner (instead of FILE)"

OptScriptArg = Annotated[
    Path | None,
    typer.Argument(
        help="The PyTorch script to run, as `python FILE` would (leave out with --expr).",
        show_default=False,
    ),
]
ExprOpt = Annotated[
    str | None,
    typer.Option(
        "--expr",
        "-e",
        help='An expression to draw instead of a script: `"(x*w - y)**2"`; chain named steps '
        'with `;`: `"y_hat = x*w; loss = (y_hat - y)**2"`.',
        rich_help_panel=EXPR_PANEL,
    ),
]
LetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--let",
        help="NAME=VALUE, a constant of the expression (no gradient): `x=2`, `v=[1, 2]`.",
        rich_help_panel=EXPR_PANEL,
    ),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="NAME=VALUE, a leaf that requires grad: `w=1.0`.",
        rich_help_panel=EXPR_PANEL,
    ),
]
CallSpecOpt = Annotated[
    str,
    typer.Option(
        "--call",
        "-c",
        help="Which backward call: N (1-based, negative counts from the end); `all` or a range "
        "such as `1:6` writes one picture per call into a folder.",
        rich_help_panel=ROOT_PANEL,
    ),
]
OrderOpt = Annotated[
    bool,
    typer.Option(
        "--order",
        help="Number each node with its step in the backward pass; draw gradients flowing back.",
        rich_help_panel=VIEW_PANEL,
    ),
]


QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Hide what the script itself prints.")
]


def hush(quiet: bool) -> contextlib.AbstractContextManager[Any]:
    """Swallow the script's stdout when `quiet` (gradviz's own output is printed after)."""
    return contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()


class UsageError(GradvizError):
    """A command was given a combination of arguments it cannot use."""

    exit_code = 2


def need_one_source(file: Path | None, expr: str | None) -> None:
    """Exactly one of FILE and --expr."""
    if file is not None and expr is not None:
        raise UsageError(
            "Give either a script FILE or --expr, not both.",
            hint="Drop FILE to draw the expression, or drop --expr to run the script.",
        )
    if file is None and expr is None:
        raise UsageError(
            "Give a script FILE to run, or an expression with --expr.",
            hint='e.g. `gradviz render samples/linear.py` or `gradviz render --expr "x*w" '
            "--let x=2 --param w=1.0`",
        )


def expr_graph(
    expr: str, lets: list[str] | None, params: list[str] | None, grad_output: str | None
) -> tuple[Graph, Annotations]:
    """The graph of a one-liner and its annotations (names of steps and constants)."""
    from ..teach.expr import evaluate, parse_bindings

    found = evaluate(
        expr,
        parse_bindings(lets or [], "--let"),
        parse_bindings(params or [], "--param"),
        grad_output=grad_output,
    )
    return found.graph, found.notes


def call_spec(text: str) -> CallSpec:
    """Parse --call, reporting a bad value like any other usage error."""
    from ..teach.calls import parse_call_spec
    from ._run import fail

    try:
        return parse_call_spec(text)
    except GradvizError as exc:
        fail(exc)


@dataclass(frozen=True)
class Picture:
    """What `render` was asked to draw, beyond the script and the call."""

    output: str | None
    fmt: Format | None
    order: bool
    edge_grads: bool
    show_saved: bool
    precision: int
    grad_output: str | None
    quiet: bool = False


def render_expr(
    expr: str, lets: list[str] | None, params: list[str] | None, pic: Picture, timeout: float | None
) -> None:
    """`render --expr`: draw a one-liner (default output `expr.svg`)."""
    from ._run import boundary, check_output, format_for

    fmt_name = format_for(pic.output, pic.fmt)
    out = pic.output if pic.output is not None else f"expr.{fmt_name}"
    check_output(out, Path("<expr>"), fmt_name)

    def job() -> None:
        from ..teach.pictures import write_picture

        graph, _ = expr_graph(expr, lets, params, pic.grad_output)
        write_picture(graph, out, fmt_name, **_opts(pic))
        if out != "-":
            err.print(f"[green]wrote[/] {out} ({len(graph.nodes)} nodes)")

    boundary(job, timeout)


def render_calls(
    file: Path, args: list[str] | None, spec: CallSpec, pic: Picture, timeout: float | None
) -> None:
    """`render --call all` / `--call 1:6`: one numbered picture per call in a folder."""
    from ._run import boundary, fail, format_for

    fmt_name = format_for(None, pic.fmt)
    if pic.output == "-":
        fail(
            UsageError(
                "Several calls make several pictures; they cannot go to standard output.",
                hint="Give a folder with -o, or pick one call with --call N.",
            )
        )
    folder = Path(pic.output) if pic.output else Path(f"{file.stem}-calls")

    def job() -> None:
        from ..teach.calls import capture_calls
        from ..teach.pictures import write_calls

        with hush(pic.quiet):
            run, graphs = capture_calls(file, args or [], spec)
        total = len(run.recorder.calls)
        written = write_calls(graphs, folder, file.stem, fmt_name, total, **_opts(pic))
        numbers = [g.call for g in graphs if g.call is not None]
        noun = "picture" if len(written) == 1 else "pictures"
        err.print(
            f"[green]wrote[/] {len(written)} {noun} to {folder}/ ({calls_shown(numbers, total)})"
        )

    boundary(job, timeout)


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


def _opts(pic: Picture) -> dict[str, Any]:
    return {
        "order": pic.order,
        "precision": pic.precision,
        "edge_grads": pic.edge_grads,
        "show_saved": pic.show_saved,
    }


def source_or_fail(file: Path | None, expr: str | None) -> Path | None:
    """The script to run, or None for --expr; neither or both is a usage error."""
    from ._run import fail

    try:
        need_one_source(file, expr)
    except GradvizError as exc:
        fail(exc)
    return file
