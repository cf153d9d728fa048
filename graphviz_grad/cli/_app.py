"""The Typer app, the stderr console, and the options every command shares."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
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

ROOT_PANEL = "Which graph"
OUT_PANEL = "Output"
VIEW_PANEL = "What to show"


class Format(str, Enum):
    svg = "svg"
    png = "png"
    pdf = "pdf"
    dot = "dot"
    json = "json"
    html = "html"


ScriptArg = Annotated[
    Path,
    typer.Argument(help="The PyTorch script to run, as `python FILE` would.", show_default=False),
]
ArgsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Arguments for the script, after `--`.", show_default=False),
]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target", "-t", help="Variable holding the root tensor.", rich_help_panel=ROOT_PANEL
    ),
]
CallOpt = Annotated[
    int,
    typer.Option(
        "--call",
        "-c",
        help="Which backward call to show: 1-based, negative counts from the end.",
        rich_help_panel=ROOT_PANEL,
    ),
]
SeedOpt = Annotated[
    str | None,
    typer.Option(
        "--grad-output",
        help="Seed for a non-scalar root when gradviz computes gradients: `ones`.",
        rich_help_panel=ROOT_PANEL,
    ),
]
PrecisionOpt = Annotated[
    int,
    typer.Option(
        "--precision",
        "-p",
        min=1,
        max=17,
        help="Significant digits shown.",
        rich_help_panel=VIEW_PANEL,
    ),
]
WatchOpt = Annotated[
    bool,
    typer.Option(
        "--watch",
        "-w",
        help="Run again and redraw whenever the script (or a module it imports from its folder) "
        "is saved; an HTML output is served on 127.0.0.1 and reloads itself. Ctrl-C stops.",
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", min=0.0, help="Stop the script after this many seconds."),
]

BIG_PANEL = "Big graphs"
DepthOpt = Annotated[
    int | None,
    typer.Option(
        "--depth",
        min=0,
        help="Draw each module call K levels deep as one node, with all it contains "
        "(0: one node per top-level module, 1: their children).",
        rich_help_panel=BIG_PANEL,
    ),
]
FoldOpt = Annotated[
    bool,
    typer.Option(
        "--fold",
        help="Fold repeated identical blocks into one, with ×N.",
        rich_help_panel=BIG_PANEL,
    ),
]
FocusOpt = Annotated[
    str | None,
    typer.Option(
        "--focus",
        help="Show only the neighbourhood of this node (id or name).",
        rich_help_panel=BIG_PANEL,
    ),
]
RadiusOpt = Annotated[
    int,
    typer.Option(
        "--radius", min=0, help="Edges around --focus to show.", rich_help_panel=BIG_PANEL
    ),
]
HideOpt = Annotated[
    str | None,
    typer.Option(
        "--hide",
        help="Hide `accumulate` (leaf nodes) and/or `views` (reshape plumbing), comma-separated.",
        rich_help_panel=BIG_PANEL,
    ),
]
BudgetOpt = Annotated[
    int,
    typer.Option(
        "--budget",
        min=2,
        help="Most nodes to lay out in SVG/PNG/PDF before collapsing.",
        rich_help_panel=BIG_PANEL,
    ),
]
FullOpt = Annotated[
    bool,
    typer.Option(
        "--full", help="Draw every node, whatever the budget (slow).", rich_help_panel=BIG_PANEL
    ),
]


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
