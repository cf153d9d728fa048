"""What every command does around its job: capture the script, report errors, check outputs."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.markup import escape

from ..errors import CallError, GradvizError, OutputError
from ._app import Format, err
from ._ranks import NotDrawing, share_report, stop_unless_drawing, with_rank_findings

if TYPE_CHECKING:
    from ..capture import Captured


def capture(
    file: Path, args: list[str] | None, target: str | None, call: int, grad_output: str | None
) -> Captured:
    """Run the script recorded and pick the graph (library errors propagate)."""
    from ..capture import CaptureOptions, capture_script
    from ..diagnose import with_findings

    if call == 0:
        raise CallError(
            "--call 0 names no call: calls are counted from 1.",
            hint="Use --call 1 for the first backward call, or --call -1 for the last.",
        )
    options = CaptureOptions(target=target, call=call, grad_output=grad_output)
    captured = capture_script(file, args or [], options)
    share_report(captured.graph)
    stop_unless_drawing()
    captured = with_findings(captured)
    captured.graph = with_rank_findings(captured.graph)
    return captured


def remarks(captured: Captured) -> None:
    """Tell the user, on stderr, where the gradients came from and what else to know."""
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
    if captured.error is not None:  # died in that backward call: its graph is shown, now fail
        fail(captured.error)


def format_for(output: str | None, fmt: Format | None) -> str:
    """The output format: --format, else the output's suffix, else svg (dot for stdout).

    A --format that contradicts the suffix (`-o out.svg -f png`) is refused."""
    if fmt is not None:
        if output and output != "-":
            from ..render import infer_format

            try:
                infer_format(output, fmt.value)
            except GradvizError as exc:
                fail(exc)
        return fmt.value
    if output and output != "-":
        suffix = Path(output).suffix.lstrip(".").lower()
        if suffix in Format.__members__:
            return suffix
        if suffix:
            fail(
                OutputError(
                    f"gradviz cannot tell the format of `{output}` from its suffix `.{suffix}`.",
                    hint="Use one of .svg .png .pdf .dot .json .html, or say --format.",
                )
            )
    if output == "-":
        return "dot"
    return "svg"


def check_output(out: str, script: Path, fmt: str) -> None:
    """Refuse, before running anything, an output that cannot or must not be written."""
    if out == "-":
        if fmt not in ("dot", "json"):
            fail(
                OutputError(
                    f"{fmt.upper()} cannot be written to the terminal.",
                    hint="Use -o FILE, or --format dot / --format json for stdout.",
                )
            )
        return
    target = Path(out)
    if script.exists() and target.exists() and target.resolve() == script.resolve():
        fail(
            OutputError(
                f"The output `{out}` is the script itself; gradviz never overwrites it.",
                hint="Choose another file name with -o.",
            )
        )
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        fail(
            OutputError(
                f"The folder `{parent}` does not exist.",
                hint="Create it first, or pick another -o.",
            )
        )


def boundary(job: Callable[[], None], timeout: float | None = None) -> None:
    """Run a command's job in the big-stack thread; turn errors into a sentence and a code."""
    from ..capture import in_big_stack

    try:
        in_big_stack(job, timeout=timeout)
    except NotDrawing:
        raise typer.Exit(0) from None
    except GradvizError as exc:
        fail(exc)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: no output was written.")
        raise typer.Exit(130) from None


LAYOUT_FORMATS = ("svg", "png", "pdf", "html")


def parse_hide(hide: str | None) -> tuple[str, ...]:
    """`--hide accumulate,views` as a tuple; an unknown word is a usage error."""
    from ..views import HIDE_CHOICES

    words = tuple(w.strip() for w in (hide or "").split(",") if w.strip())
    bad = [w for w in words if w not in HIDE_CHOICES]
    if bad:
        raise typer.BadParameter(
            f"cannot hide {bad[0]!r}; choose from {', '.join(HIDE_CHOICES)}.", param_hint="--hide"
        )
    return words


def view_for(graph: Any, fmt: str, options: Any, budget: int, full: bool) -> Any:
    """What to draw: `options` (a `ViewOptions`), fitted to `budget` for SVG/PNG/PDF unless
    `full`; says on stderr what the budget did. DOT keeps every node the options keep."""
    from rich.markup import escape

    from ..views import fit_budget, make_view

    if fmt in LAYOUT_FORMATS and not full:
        view = fit_budget(graph, options, budget)
    else:
        view = make_view(graph, options)
    for note in view.notes:
        err.print(f"[dim]note:[/] {escape(note)}")
    return view


@contextlib.contextmanager
def progress(label: str, delay: float = 1.0) -> Iterator[None]:
    """A spinner on stderr for a step that takes longer than `delay` seconds (terminals only).

    The script's own stdout is never redirected; the spinner disappears when the step ends."""
    if not err.is_terminal:
        yield
        return
    from rich.live import Live
    from rich.spinner import Spinner

    live = Live(
        Spinner("dots", text=f"{label}…"),
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


def script_stdout(quiet: bool, data_on_stdout: bool) -> contextlib.AbstractContextManager[Any]:
    """Where the script's own prints go while it runs: nowhere with `-q`; to stderr when
    gradviz's stdout carries data (`-o -`, `-f json|csv`, a piped tree), so a pipe holds exactly
    the data; else to stdout as usual. gradviz writes its own output after the script ended."""
    if quiet:
        return contextlib.redirect_stdout(io.StringIO())
    return stdout_to_stderr() if data_on_stdout else contextlib.nullcontext()


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


def for_cli(text: str) -> str:
    """A library message in the CLI's words: `fmt=` is `--format`, ``fmt="png"`` is
    ``--format png`` (the library names its own arguments, the CLI its flags)."""
    text = text.replace("`fmt=`", "`--format`")
    return re.sub(r"`fmt=['\"]?([\w-]+)['\"]?`", r"`--format \1`", text)


def fail(exc: GradvizError) -> NoReturn:
    """Print the error (and the user's own traceback, if any) and exit with its code."""
    report(exc)
    raise typer.Exit(exc.exit_code)


def report(exc: GradvizError) -> None:
    """Print the error, the user's own traceback if any, and the hint on stderr."""
    details = getattr(exc, "details", "")
    if details:
        sys.stderr.write(details)
        sys.stderr.flush()
    err.print(f"[bold red]error:[/] {escape(for_cli(exc.message))}")
    if exc.hint:
        err.print(f"[dim]hint:[/] {escape(for_cli(exc.hint))}")
