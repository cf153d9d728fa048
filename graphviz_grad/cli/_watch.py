"""`--watch`: run a command's job again each time the script, or a module it imports from its
own folder, is saved.

The script runs in this process (`capture.run_script`), so before each re-run the modules it
imported from its folder are dropped from `sys.modules`: the next run imports the saved file.
Files are polled by modification time and size (no dependency, works on every file system and
editor); a change counts once the files have been still for a moment, so an editor's several
writes make one re-run. A failed run prints its error and the loop keeps watching; Ctrl-C stops
it with exit code 0.

For an HTML output a small server on 127.0.0.1 serves the page with live reload (`_live`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import linecache
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.markup import escape

from .._gc import end_startup
from ..errors import GradvizError
from ._app import err

if TYPE_CHECKING:
    from ._live import LiveServer

#: Seconds between two looks at the files, and how long they must be still before a re-run.
POLL_S = 0.25
SETTLE_S = 0.15

Stamp = tuple[int, int] | None


def _system_roots() -> tuple[str, ...]:
    """Folders whose modules are never the user's: Python's, installed packages, gradviz."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(__file__).parents[1])}
    roots |= {p for p in sys.path if "site-packages" in p or "dist-packages" in p}
    return tuple(os.path.realpath(r) + os.sep for r in roots if r)


def user_modules(folder: Path, before: Iterable[str]) -> dict[str, Path]:
    """Modules imported since `before` whose file lies in `folder` (not an installed package)."""
    root = os.path.realpath(folder) + os.sep
    system = _system_roots()
    known = set(before)
    found = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name in known or name == "__main__" or not isinstance(file, str):
            continue
        if not os.path.isabs(file):  # e.g. torch.ops ("_ops.py"): not a file on disk
            continue
        real = os.path.realpath(file)
        if real.startswith(root) and not real.startswith(system):
            found[name] = Path(real)
    return found


def _stamp(path: Path) -> Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def stamps(paths: Iterable[Path]) -> dict[Path, Stamp]:
    """Each file's (mtime, size) now; None for a file that is missing."""
    return {p: _stamp(p) for p in paths}


def wait_for_change(baseline: Mapping[Path, Stamp]) -> list[Path]:
    """Block until a file differs from `baseline` (and the files are still again); those files.

    The baseline is taken before the run, so a save made while the script runs is not lost."""
    now = stamps(baseline)
    while now == baseline:
        time.sleep(POLL_S)
        now = stamps(baseline)
    while True:  # let the editor finish writing
        time.sleep(SETTLE_S)
        later = stamps(baseline)
        if later == now:
            return [p for p in baseline if baseline[p] != now[p]]
        now = later


def run_once(job: Callable[[], None], timeout: float | None) -> str | None:
    """Run the command's job once; None when it worked, else its error (already printed)."""
    from ..capture import in_big_stack
    from ._run import report

    try:
        in_big_stack(job, timeout=timeout)
    except GradvizError as exc:
        report(exc)
        return exc.message
    except typer.Exit as exc:  # the job reported its own error (e.g. the script died in backward)
        return None if exc.exit_code == 0 else f"The run failed (exit code {exc.exit_code})."
    return None


def watch(
    script: Path,
    job: Callable[[], None],
    timeout: float | None = None,
    page: Path | None = None,
    clear: Callable[[], None] | None = None,
) -> NoReturn:
    """Run `job`, then again on every save of `script` or its folder's imported modules.

    With `page` (an HTML output) the page is also served on 127.0.0.1 with live reload."""
    from .. import capture  # noqa: F401  (torch, imported before the collector resumes)

    end_startup()
    folder = script.resolve().parent
    before = frozenset(sys.modules)
    live = _serve(page) if page is not None else None
    files = [script.resolve()]
    try:
        while True:
            at_start = stamps(files)
            _run_and_tell(job, timeout, live, clear)
            # Still watch what an earlier run imported: a run that failed early imports less.
            files = sorted({*files, *user_modules(folder, before).values()})
            baseline = {p: at_start[p] if p in at_start else _stamp(p) for p in files}
            err.print(f"[dim]watching {len(files)} file(s) for changes; Ctrl-C stops.[/]")
            changed = wait_for_change(baseline)
            _forget(folder, before, changed)
            names = ", ".join(p.name for p in changed)
            err.print(
                f"[bold]{time.strftime('%H:%M:%S')}[/] {escape(names)} changed: running again"
            )
    except KeyboardInterrupt:
        err.print("stopped watching.")
        raise typer.Exit(0) from None
    finally:
        if live is not None:
            live.close()


def _serve(page: Path) -> LiveServer:
    """The live-reload server for `page` (imported here: only an HTML --watch needs http)."""
    from ._live import LiveServer

    return LiveServer(page.resolve())


def _run_and_tell(
    job: Callable[[], None],
    timeout: float | None,
    live: LiveServer | None,
    clear: Callable[[], None] | None,
) -> None:
    if clear is not None:
        clear()
    linecache.checkcache()
    error = run_once(job, timeout)
    if live is not None:
        live.update(error)
        if live.version == 1:
            err.print(f"[bold]live page:[/] {live.url} (reloads itself on every save)")


def _forget(folder: Path, before: Iterable[str], changed: Iterable[Path]) -> None:
    """Drop the script's own modules so that the next run imports the saved files.

    The changed files' bytecode caches go too: Python checks a cache by the source's mtime in
    whole seconds and its size, so a quick edit that keeps the size would load the old code."""
    for name in user_modules(folder, before):
        sys.modules.pop(name, None)
    for path in changed:
        with contextlib.suppress(OSError, ValueError):
            Path(importlib.util.cache_from_source(str(path))).unlink(missing_ok=True)
    importlib.invalidate_caches()


def check_watch(watching: bool, expr: str | None, many: bool, output: str | None) -> None:
    """--watch needs a script to watch, one graph and a file to rewrite (a usage error else)."""
    from ..errors import UsageError

    if not watching:
        return
    if expr is not None:
        why = "--watch follows a script file; an --expr one-liner has none to watch."
    elif many:
        why = "--watch redraws one call; --call with several calls is not supported with it."
    elif output == "-":
        why = "--watch rewrites a file on every save; it cannot write to standard output."
    else:
        return
    raise UsageError(why, hint="e.g. `gradviz render samples/linear.py -o linear.html --watch`")
