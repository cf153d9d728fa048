"""The `gradviz` command line: thin commands over the library, one error boundary.

Each command lives in its own `cmd_*` module and registers itself on `app`, which imports only
the command that runs (`_app.COMMANDS`); every option is declared once in `_options`;
`_run.reported` is the one place errors become exit codes. torch and graphviz are imported inside
the commands, so `gradviz --help` stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._gc import pause_startup

if TYPE_CHECKING:
    from ._app import app, err

__all__ = ["app", "err", "main"]


def main() -> None:
    """Console-script entry point: the collector waits until the script is about to run
    (`_gc.pause_startup`), then the app starts."""
    pause_startup()
    _loaded().app()


def __getattr__(name: str) -> Any:
    # `app` and `err` load the app on first use, so `main` can pause the collector before.
    if name in ("app", "err"):
        return getattr(_loaded(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _loaded() -> Any:
    """The `_app` module; its commands load when used (`_app.LazyGroup`)."""
    from . import _app

    return _app
