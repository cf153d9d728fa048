"""`gradviz steps -o FILE`: check the picture's path before the run, write it after."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from ._app import err
from ._run import check_output

if TYPE_CHECKING:
    from ..model import CallInfo


def check_plot_output(output: str, script: Path) -> None:
    """Refuse a bad -o (suffix, folder, the script itself, stdout) before running anything."""
    from ..errors import OutputError
    from ..render.plot import plot_format

    if output == "-":
        raise OutputError(
            "A steps picture cannot be written to the terminal.",
            hint="Give a file such as -o steps.svg, or leave out -o for the table.",
        )
    check_output(output, script, plot_format(output))


def write_plot(calls: Sequence[CallInfo], output: str) -> None:
    """Draw the calls into `output` and say so on stderr."""
    from ..render.plot import write_steps_plot

    write_steps_plot(calls, output)
    err.print(f"[green]wrote[/] {escape(output)} ({len(calls)} backward calls)")
