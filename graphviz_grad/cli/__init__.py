"""The `gradviz` command line: thin commands over the library, one error boundary.

Each command lives in its own `cmd_*` module and registers itself on `app`; every option is
declared once in `_options`; `_run.reported` is the one place errors become exit codes. torch
and graphviz are imported inside the commands, so `gradviz --help` stays instant.
"""

from __future__ import annotations

from . import (  # noqa: F401  (register the commands)
    cmd_doctor,
    cmd_explain,
    cmd_render,
    cmd_steps,
    cmd_tree,
)
from ._app import app, err

__all__ = ["app", "err", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
