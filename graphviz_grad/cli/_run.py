"""What every command does around its job: the one exit path, running the script, drawing.

`reported()` is the only place where gradviz's errors become a message, a hint and an exit code.
A command checks its options (building `DrawOptions` refuses bad values), then hands its job to
`in_thread`, which runs it in the big-stack thread that the user's script needs.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from typer.exceptions import TyperException

from .._gc import end_startup
from ..errors import (
    PIPE_CLOSED,
    GradvizError,
    InternalError,
    Interrupted,
    OutputError,
    UsageError,
)
from ._app import err
from ._ranks import NotDrawing, share_report, stop_unless_drawing, with_rank_findings

if TYPE_CHECKING:
    from ..capture import CallSpec, Captured
    from ..capture.modules import ModuleRun
    from ..model import Graph
    from ..render import DrawOptions
    from ..teach.explain import Step
    from ..teach.expr import ExprGraph
    from ..views import View

    #: What runs: a script's path, or a module (`--module`).
    Script = Path | ModuleRun


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """The one exit path: a `GradvizError` (or Ctrl-C) becomes a message, a hint, an exit code."""
    try:
        yield
    except NotDrawing:  # under torchrun, a rank that does not draw ends quietly
        raise typer.Exit(0) from None
    except GradvizError as exc:
        report(exc)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: no output was written.")
        raise typer.Exit(Interrupted.exit_code) from None
    except (typer.Exit, typer.Abort, TyperException):
        raise  # typer's own ways out (`Exit` is a RuntimeError to Python)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as `cat` does
        _stdout_to_devnull()
        raise typer.Exit(PIPE_CLOSED) from None
    except Exception as exc:  # gradviz's bug: one sentence, the traceback for the report, 70
        report(internal_error(exc))
        raise typer.Exit(InternalError.exit_code) from None


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null: what is still buffered for the closed pipe is dropped, not
    written at exit (which would raise again, with Python's own traceback)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def internal_error(exc: BaseException) -> InternalError:
    """An exception that escaped gradviz's own code outside the script (building the graphs
    after it ended, drawing, writing), as one sentence that says so and where, with the whole
    traceback as details."""
    import traceback

    own = Path(__file__).resolve().parents[1]
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith(str(own)):
            where = f", {Path(frame.filename).relative_to(own).as_posix()}:{frame.lineno}"
            break
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return InternalError(
        f"gradviz failed: {type(exc).__name__}: {first} (raised in gradviz's own code{where}).",
        hint="This is a bug in gradviz, not in your script: please report it with the command, "
        "the script and the traceback above.",
        details="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    )


def report(exc: GradvizError) -> None:
    """Print the error, the user's own traceback if any, and the hint on stderr."""
    details = getattr(exc, "details", "")
    if details:
        sys.stderr.write(details)
        sys.stderr.flush()
    label = "interrupted" if isinstance(exc, Interrupted) else "error"
    err.print(f"[bold red]{label}:[/] {escape(for_cli(exc.message))}")
    if exc.hint:
        err.print(f"[dim]hint:[/] {escape(for_cli(exc.hint))}")


def for_cli(text: str) -> str:
    """A library message in the CLI's words: `fmt=` is `--format`, ``fmt="png"`` is
    ``--format png`` (the library names its own arguments, the CLI its flags)."""
    text = text.replace("`fmt=`", "`--format`")
    return re.sub(r"`fmt=['\"]?([\w-]+)['\"]?`", r"`--format \1`", text)


def in_thread(job: Callable[[], None], timeout: float | None = None) -> None:
    """Run `job` in the big-stack thread (see `capture.in_big_stack`); errors propagate."""
    from ..capture import in_big_stack  # imports torch, still without garbage collection

    end_startup()
    in_big_stack(job, timeout=timeout)


def script_stdout(quiet: bool, data_on_stdout: bool) -> contextlib.AbstractContextManager[Any]:
    """Where the script's own prints go while it runs: nowhere with `-q`; to stderr when
    gradviz's stdout carries data (`-o -`, `-f json|csv`, a piped tree), so a pipe holds exactly
    the data; else to stdout as usual. gradviz writes its own output after the script ended."""
    if quiet:
        return _quiet()
    return stdout_to_stderr() if data_on_stdout else contextlib.nullcontext()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """`-q`: the script's prints and the warnings Python would print for it are dropped (the
    warnings are still noted: `doctor` reports them)."""
    import warnings

    shown = warnings.showwarning
    warnings.showwarning = _unshown
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        if warnings.showwarning is _unshown:
            warnings.showwarning = shown


def _unshown(*args: Any, **kwargs: Any) -> None:
    """A `warnings.showwarning` that shows nothing."""


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send stdout to stderr: `sys.stdout` and, for prints from C code or child processes,
    file descriptor 1 (when it is a real one); both are restored afterwards."""
    sys.stdout.flush()
    saved = _dup_stdout()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def _dup_stdout() -> int | None:
    """A copy of fd 1, after pointing fd 1 at stderr; None when there is no such descriptor."""
    try:
        if sys.__stdout__ is None or sys.__stdout__.fileno() != 1:
            return None
        saved = os.dup(1)
        os.dup2(2, 1)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return saved


def data_to_stdout() -> bool:
    """True when stdout is not a terminal (a pipe or a file): prints of the script go to
    stderr, so `gradviz tree x.py > tree.txt` holds only the tree."""
    return not sys.stdout.isatty()


# -- which script, which calls ---------------------------------------------------------------
def one_source(file: Path | None, expr: str | None, module: bool = False) -> Script | None:
    """The script to run, or None for --expr; neither or both is a usage error."""
    if module and file is None:
        raise UsageError(
            "--module runs FILE as a module: give its dotted name, not --expr.",
            hint="e.g. `gradviz render -m mypkg.train`",
        )
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
    return None if file is None else as_script(file, module)


def as_script(file: Path, module: bool) -> Script:
    """FILE, or with --module the module `python -m FILE` would run (`capture.modules`)."""
    if not module:
        return file
    from ..capture.modules import find_module

    return find_module(str(file))


def script_path(script: Script) -> Path:
    """The file that runs: the script, or the module's source."""
    return script if isinstance(script, Path) else script.path


def call_spec(text: str, target: str | None = None) -> CallSpec:
    """Parse --call; a range together with --target is a usage error."""
    from ..capture import parse_call_spec

    spec = parse_call_spec(text)
    if spec.many and target is not None:
        raise UsageError(
            f"--target shows one tensor, so --call {text} (several calls) cannot go with it.",
            hint="Leave out --target, or pick one call with --call N.",
        )
    return spec


def captures(
    file: Script,
    args: list[str] | None,
    spec: CallSpec,
    target: str | None,
    grad_output: str | None,
) -> tuple[list[Captured], int]:
    """The graphs `spec` picks (one, or one per call of a range) with their findings, and the
    number of backward calls the script made."""
    from dataclasses import replace

    from ..capture import Captured, CaptureOptions, capture_calls, capture_script
    from ..diagnose import with_findings

    if spec.many:
        run, graphs = capture_calls(file, args or [], spec)
        if graphs:
            share_report(graphs[-1])
        stop_unless_drawing()
        found = [with_findings(Captured(g, run)) for g in graphs]
        total = run.recorder.total_calls
        if spec.last is not None and spec.last > total:
            first = spec.first if spec.first is not None else 1
            err.print(
                f"[dim]note:[/] --call {first}:{spec.last} names calls up to {spec.last:,}; the "
                f"script made {total:,}, so calls {first:,} to {total:,} are shown."
            )
        return found, total
    options = CaptureOptions(target=target, call=spec.single or -1, grad_output=grad_output)
    captured = capture_script(file, args or [], options)
    share_report(captured.graph)
    stop_unless_drawing()
    captured = with_findings(captured)
    captured = replace(captured, graph=with_rank_findings(captured.graph))
    return [captured], captured.run.recorder.total_calls


def expr_graph(
    expr: str, lets: list[str] | None, params: list[str] | None, grad_output: str | None
) -> ExprGraph:
    """The `ExprGraph` (graph and annotations) of a one-liner."""
    from ..teach.expr import evaluate, parse_bindings

    return evaluate(
        expr,
        parse_bindings(lets or [], "--let"),
        parse_bindings(params or [], "--param"),
        grad_output=grad_output,
    )


def remarks(captured: Captured, total: int, fail: bool = True) -> None:
    """Tell the user, on stderr, where the gradients came from and what else to know; a script
    that died in or after the call shown fails now (`fail`), after its graph was shown."""
    graph = captured.graph
    if graph.grad_source == "gradviz":
        why = (
            f"no backward call of the script ({total:,} backward call{'s' if total != 1 else ''})"
            " computed this graph's gradients, so gradviz computed them"
            if total
            else "the script never called backward, so gradviz computed the gradients"
        )
        err.print(f"[dim]note:[/] {why} itself (no `.grad` of yours was changed).")
    elif graph.call is not None and total > 1:
        err.print(f"[dim]note:[/] showing backward call {graph.call:,} of {total:,} (--call N).")
    for note in graph.notes:
        err.print(f"[dim]note:[/] {escape(note)}")
    started = getattr(getattr(captured.run, "recorder", None), "subprocesses", None)
    elsewhere = started.sentence() if started is not None else None
    if elsewhere is not None:
        err.print(f"[dim]note:[/] The script {escape(elsewhere.removeprefix('it '))}.")
    overlapped = getattr(getattr(captured.run, "recorder", None), "overlapped", 0)
    if overlapped:
        from ..capture.recorder import TURN_WAIT

        n = f"{overlapped:,} backward call{'s' if overlapped != 1 else ''}"
        err.print(
            f"[dim]note:[/] {n} of other threads waited {TURN_WAIT:g} s in vain for the "
            f"one gradviz was recording, and {'were' if overlapped != 1 else 'was'} run "
            "unrecorded (gradviz records one backward call at a time)."
        )
    if fail and captured.error is not None:
        raise captured.error


# -- outputs ---------------------------------------------------------------------------------
def output_format(output: str | None, fmt: Enum | None) -> str:
    """The output format: --format, else the output's suffix, else svg (dot for stdout)."""
    from ..render import infer_format

    return infer_format(output or "", fmt.value if fmt is not None else None)


def check_output(out: str, script: Path | None, fmt: str) -> None:
    """Refuse, before running anything, an output that cannot or must not be written."""
    from ..render import TEXT_FORMATS

    if out == "-":
        if fmt not in TEXT_FORMATS:
            raise OutputError(
                f"{fmt.upper()} cannot be written to stdout (-o -): gradviz writes only DOT and "
                "JSON there.",
                hint="Use -o FILE, or --format dot / --format json for stdout.",
            )
        return
    target = Path(out)
    if out.endswith(("/", os.sep)) or target.is_dir():
        folder = out.rstrip("/" + os.sep) or out
        raise OutputError(
            f"The output `{out}` names a folder, not a file"
            + ("." if target.is_dir() else f", and the folder `{folder}` does not exist."),
            hint=f"Name a file in it: -o {folder}/graph.{fmt}.",
        )
    if target.is_file() and not target.stat().st_mode & 0o222:
        raise OutputError(
            f"The output `{out}` is read-only; gradviz does not replace it.",
            hint=f"Make it writable (chmod u+w {out}) or choose another file with -o.",
        )
    same = script is not None and script.exists() and target.exists()
    if same and target.resolve() == script.resolve():  # type: ignore[union-attr]
        raise OutputError(
            f"The output `{out}` is the script itself; gradviz never overwrites it.",
            hint="Choose another file name with -o.",
        )
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(
            f"The folder `{parent}` does not exist.", hint="Create it first, or pick another -o."
        )


def draw(graph: Graph, out: str, fmt: str, options: DrawOptions) -> View | None:
    """Write `graph` as `options` say, saying on stderr what the layout budget did; the view
    drawn (None for JSON, which always holds the whole graph)."""
    from rich.markup import escape

    from ..render import choose_view, write

    view = None
    if fmt == "html" and _shapes_view(options):
        err.print(
            "[dim]note:[/] the HTML page opens collapsed and lays out what you expand in the "
            "browser, so --depth/--fold/--focus/--hide/--budget/--full shape SVG, PNG, PDF and "
            "DOT only (in the page: click modules, search, or #expand=PATH in the URL)."
        )
    if fmt not in ("json", "html"):  # JSON holds the whole graph; the page lays out itself
        with progress("choosing what to draw"):
            view = choose_view(graph, fmt, options)
        for note in view.notes:
            err.print(f"[dim]note:[/] {escape(note)}")
    layout = " (Graphviz layout)" if fmt not in ("dot", "json") else ""
    steps = _page_steps(graph, options) if fmt == "html" else ()
    with progress(f"writing {fmt.upper()}{layout}"):
        write(graph, out, fmt, options, view=view, steps=steps)
    return view


def _page_steps(graph: Graph, options: DrawOptions) -> tuple[Step, ...]:
    """The explained backward steps the HTML page shows (`teach` is imported for pages only)."""
    from ..teach.explain import explained_steps

    return explained_steps(graph, options.precision)


def _shapes_view(options: DrawOptions) -> bool:
    """Whether the user asked for a view (or budget) that only the static pictures honour."""
    from ..render import DrawOptions as Defaults
    from ..views import ViewOptions

    base = Defaults()
    return (
        options.view != ViewOptions() or options.budget != base.budget or options.full != base.full
    )


def wrote(out: str, graph: Graph, view: View | None) -> None:
    """``wrote linear.svg (4 nodes)`` on stderr (nothing for stdout)."""
    if out == "-":
        return
    total = len(graph.nodes)
    drawn = f", {view.size} drawn" if view is not None and view.size != total else ""
    err.print(f"[green]wrote[/] {escape(out)} ({total} nodes{drawn})")


class _Line:
    """The spinner's line: the step, and while a script runs what it has done so far."""

    def __init__(self, label: str) -> None:
        from rich.spinner import Spinner

        self.label = label
        self.spinner = Spinner("dots", text=f"{label}…")

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.text import Text

        from ..capture import live_status

        status = live_status()
        self.spinner.update(text=Text(f"{self.label}… {status}" if status else f"{self.label}…"))
        yield self.spinner


@contextlib.contextmanager
def progress(label: str, delay: float = 1.0, quiet: bool = False) -> Iterator[None]:
    """A spinner on stderr for a step that takes longer than `delay` seconds (terminals only,
    not with `quiet`); while a script runs it counts its backward calls and optimizer steps.

    The script's own stdout is never redirected; the spinner disappears when the step ends."""
    if quiet or not err.is_terminal:
        yield
        return
    from rich.live import Live

    live = Live(
        _Line(label),
        console=err,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    timer = threading.Timer(delay, live.start)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        live.stop()
