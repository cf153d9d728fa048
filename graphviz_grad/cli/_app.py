"""The Typer app and the stderr console every command reports on.

The commands load on demand: `COMMANDS` names each one's module and the line `gradviz --help`
lists for it, and `LazyGroup` imports a module only when its command runs or shows its own help.
So `gradviz render` imports `cmd_render` and what it needs, not `doctor`'s or `steps`' modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from . import _coerce

#: Every command: its module in this package, and its help's first paragraph (which `--help`
#: lists; a test checks it against the command's docstring). In the order `--help` lists them.
COMMANDS = {
    "doctor": (
        "cmd_doctor",
        "Run FILE and list the gradient bugs found: severity, code, file:line, what, how to fix.",
    ),
    "explain": (
        "cmd_explain",
        "Walk the backward pass step by step: forward formula, local derivative, upstream "
        "gradient and their product at every node, in the order autograd ran them.",
    ),
    "render": ("cmd_render", "Run FILE and draw its autograd graph with values and gradients."),
    "steps": (
        "cmd_steps",
        "Run FILE and show every backward call: the loss, each leaf's value before the call and "
        "the gradient it got, as a table with sparklines (or CSV / JSON, or a picture with -o).",
    ),
    "tree": (
        "cmd_tree",
        "Run FILE and print its autograd graph as a tree: root first, leaves last.",
    ),
}


def _flags_as_flags() -> None:
    """Show a flag as a flag in `--help`: typer prints a `<bool>` type for every option,
    `--fold` and `--help` included, though a flag takes no value."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "gradviz", False):
        return  # an older typer (0.27.2, 0.12.5) has no such method

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.gradviz = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign,assignment]


def _script_option_hint(exc: Any, argv: list[str]) -> None:
    """An unknown option after the script (`gradviz doctor train.py --steps 20`) is most likely
    the script's own: say to pass it after `--`, with the command line that does."""
    name = getattr(exc, "option_name", None)
    if not name or name not in argv:
        return
    at = argv.index(name)
    script = next((i for i, a in enumerate(argv[1:at], 1) if a.endswith((".py", ".ipynb"))), None)
    if script is None or "--" in argv[:at]:
        return
    command = getattr(getattr(exc, "ctx", None), "command", None)
    known = {o for p in getattr(command, "params", ()) for o in (*p.opts, *p.secondary_opts)}
    own: list[str] = []
    theirs: list[str] = []
    moving = False  # an unknown option and the values after it go to the script
    for token in argv[script + 1 :]:
        if token.startswith("-") and token.split("=")[0] not in known:
            moving = True
        elif token.startswith("-"):
            moving = False
        (theirs if moving else own).append(token)
    fixed = [*argv[: script + 1], *own, "--", *theirs]
    exc.message = (
        f"No such option: {name}. Options after the script are gradviz's; pass the script's own "
        f"after `--`: gradviz {' '.join(fixed)}"
    )
    exc.possibilities = None


def load(name: str) -> Any:
    """The click command of `COMMANDS[name]`, importing its module (which registers it on `app`)."""
    module = importlib.import_module(f"{__package__}.{COMMANDS[name][0]}")
    for info in app.registered_commands:
        if getattr(info.callback, "__module__", None) == module.__name__:
            return typer.main.get_command_from_info(
                info,
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode,
            )
    raise LookupError(f"{module.__name__} registers no command")  # a bug of ours, not input


class _Commands(MutableMapping[str, Any]):
    """The group's commands by name: every name of `COMMANDS` is a key from the start (so click
    finds them and suggests them for a typo), a command's module is imported on first access."""

    def __init__(self, loaded: Mapping[str, Any]) -> None:
        self.loaded = dict(loaded)

    def __getitem__(self, name: str) -> Any:
        if name not in self.loaded and name in COMMANDS:
            self.loaded[name] = load(name)
        return self.loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self.loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(COMMANDS), **self.loaded})

    def __len__(self) -> int:
        return len({*COMMANDS, *self.loaded})


class LazyGroup(TyperGroup):
    """The `gradviz` group: its own `--help` lists `COMMANDS` from their one line each, and only
    the command that runs (or shows its help) is imported."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(self.commands)
        self.listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: Any) -> Any:
        argv = [*getattr(ctx, "_protected_args", ()), *getattr(ctx, "args", ())]
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if type(exc).__name__ == "NoSuchOption":
                _script_option_hint(exc, argv)
            raise

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        commands = self.commands
        unloaded = isinstance(commands, _Commands) and cmd_name not in commands.loaded
        if self.listing and unloaded and cmd_name in COMMANDS:
            return TyperCommand(name=cmd_name, help=COMMANDS[cmd_name][1])
        return commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


_flags_as_flags()
_coerce.install()
app = typer.Typer(
    name="gradviz",
    cls=LazyGroup,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="See how PyTorch computes gradients: the autograd graph of your script, with the "
    "forward value and the gradient of every node.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
#: gradviz's own messages; the script's stdout stays the script's. Into a pipe or a log a
#: message stays one line; on a terminal it wraps at word boundaries (the terminal's own wrap
#: cuts words: `(graph-grows` / `, grad-accumulates`).
err = Console(stderr=True, highlight=False, soft_wrap=True)
err.soft_wrap = not err.is_terminal


def show(renderable: Any, *, stderr: bool = False) -> None:
    """Print a rich renderable on stdout (or stderr): on a terminal as rich draws it; into a
    pipe or a file, the same text with each line's trailing spaces removed (rich pads tables
    and indented blocks to the console's width)."""
    console = Console(highlight=False, stderr=stderr)
    if console.is_terminal:
        console.print(renderable)
        return
    with console.capture() as captured:
        console.print(renderable)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    console.file.flush()


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
