"""One small exception hierarchy: the library raises these, the CLI reports them.

Every error carries a full-sentence `message`, a `hint` that says what to do next, and the
process `exit_code` the CLI leaves with. The codes are part of the documented interface.
"""

from __future__ import annotations


class GradvizError(Exception):
    """Base class of every error gradviz raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(GradvizError):
    """A command or a function was given a value or a combination of arguments it cannot use."""

    exit_code = 2


class ExprError(UsageError):
    """An expression (`--expr`) or a `--let`/`--param` value cannot be used."""


class ScriptNotFoundError(GradvizError):
    """The script to run does not exist, is a folder, or is not Python source."""

    exit_code = 3


class ScriptError(GradvizError):
    """The user's script raised; `details` holds its traceback, trimmed to the user's frames."""

    exit_code = 4

    def __init__(self, message: str, hint: str | None = None, details: str = "") -> None:
        super().__init__(message, hint)
        self.details = details


class InternalError(ScriptError):
    """gradviz's own code raised while the script ran: a bug of gradviz's, not the script's;
    `details` holds the whole traceback, gradviz's frames included, for the report."""

    exit_code = 70


class RootError(GradvizError):
    """No tensor to draw: no candidate root, or the root cannot be differentiated."""

    exit_code = 5


class CallError(GradvizError):
    """`--call` names a backward call the script did not make."""

    exit_code = 6


class OutputError(GradvizError):
    """The output cannot be written where it was asked for."""

    exit_code = 7


class GraphvizMissingError(GradvizError):
    """The Graphviz `dot` program is needed for SVG/PNG/PDF and is not installed."""

    exit_code = 8


class RenderError(GradvizError):
    """Graphviz failed to lay the graph out."""

    exit_code = 9


class FindingsError(GradvizError):
    """`gradviz doctor` found something at or above the `--fail-on` severity."""

    exit_code = 10


class PlotMissingError(GradvizError):
    """matplotlib, needed to draw `gradviz steps` as a picture, is not installed."""

    exit_code = 12


class TimeoutError_(GradvizError):
    """The script ran longer than `--timeout` allowed."""

    exit_code = 11


class ScriptExitError(GradvizError):
    """The user's script called `sys.exit(N)` with N != 0; gradviz exits with N too."""

    def __init__(self, message: str, code: int, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.exit_code = code


class Interrupted(GradvizError):
    """The user pressed Ctrl-C (or the script raised KeyboardInterrupt)."""

    exit_code = 130


#: The reader of gradviz's output went away (`gradviz tree big.py | head`): 128 + SIGPIPE, the
#: status a shell gives a program that a closed pipe stopped.
PIPE_CLOSED = 141

#: Exit codes, as documented in the README.
EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "usage": UsageError.exit_code,
    "script-not-found": ScriptNotFoundError.exit_code,
    "script-raised": ScriptError.exit_code,
    "no-root": RootError.exit_code,
    "bad-call": CallError.exit_code,
    "output": OutputError.exit_code,
    "graphviz-missing": GraphvizMissingError.exit_code,
    "render": RenderError.exit_code,
    "findings-error": FindingsError.exit_code,
    "timeout": TimeoutError_.exit_code,
    "plot-missing": PlotMissingError.exit_code,
    "interrupted": Interrupted.exit_code,
    "pipe-closed": PIPE_CLOSED,
    "internal": InternalError.exit_code,
}
