"""The Typer app and the stderr console every command reports on."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from .. import __version__


def _flags_as_flags() -> None:
    """Show a flag as a flag in `--help`: typer prints a `<bool>` type for every option,
    `--fold` and `--help` included, though a flag takes no value."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "gradviz", False):
        return

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.gradviz = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign,assignment]


_flags_as_flags()
app = typer.Typer(
    name="gradviz",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="See how PyTorch computes gradients: the autograd graph of your script, with the "
    "forward value and the gradient of every node.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
#: gradviz's own messages; the script's stdout stays the script's.
err = Console(stderr=True, highlight=False, soft_wrap=True)


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
