"""Every command-line option, declared once: its flags, help text, panel and default.

Commands take these `Annotated` types as parameters (Typer needs each in the signature), with the
defaults below, which are the library's own defaults (`DrawOptions`, `ViewOptions`), so the CLI
and the library cannot disagree. `draw_options` turns the flags into the one `DrawOptions` object,
refusing an invalid value before any script runs.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..render.formats import FORMATS
from ..render.options import COLORS, RANKDIRS, DrawOptions
from ..views import ViewOptions, parse_hide

ROOT_PANEL = "Which graph"
OUT_PANEL = "Output"
VIEW_PANEL = "What to show"
BIG_PANEL = "Big graphs"
EXPR_PANEL = "One-liner (instead of FILE)"
RUN_PANEL = "Running the script"

#: Output formats, as `--format` lists them.
Format = Enum("Format", {f: f for f in FORMATS}, type=str)  # type: ignore[misc]
Color = Enum("Color", {c: c for c in COLORS}, type=str)  # type: ignore[misc]
RankDir = Enum("RankDir", {r: r for r in RANKDIRS}, type=str)  # type: ignore[misc]
#: `gradviz doctor --fail-on`: the least serious finding that makes it exit with code 10.
FailOn = Enum("FailOn", {s: s for s in ("error", "warning", "info")}, type=str)  # type: ignore[misc]

_DRAW = DrawOptions()
_VIEW = ViewOptions()
PRECISION = _DRAW.precision
BUDGET = _DRAW.budget
RADIUS = _VIEW.radius
CALL = "-1"

# -- the script ------------------------------------------------------------------------------
ScriptArg = Annotated[
    Path,
    typer.Argument(help="The PyTorch script to run, as `python FILE` would.", show_default=False),
]
OptScriptArg = Annotated[
    Path | None,
    typer.Argument(
        help="The PyTorch script to run, as `python FILE` would (leave out with --expr).",
        show_default=False,
    ),
]
ModuleOpt = Annotated[
    bool,
    typer.Option(
        "--module",
        "-m",
        help="FILE is a module: run it as `python -m FILE` would, from this folder and inside "
        "its package (`-m mypkg.train`).",
    ),
]
ArgsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Arguments for the script, after `--`.", show_default=False),
]
WatchOpt = Annotated[
    bool,
    typer.Option(
        "--watch",
        "-w",
        help="Run again and redraw whenever the script (or a module it imports from its folder) "
        "is saved; an HTML output is served on 127.0.0.1 and reloads itself. Ctrl-C stops.",
        rich_help_panel=RUN_PANEL,
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=0.0,
        help="Stop the script after this many seconds.",
        rich_help_panel=RUN_PANEL,
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="Hide what the script prints to stdout, and Python's warnings for it (its stderr "
        "and logging still show).",
        rich_help_panel=RUN_PANEL,
    ),
]

# -- which graph -----------------------------------------------------------------------------
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target", "-t", help="Variable holding the root tensor.", rich_help_panel=ROOT_PANEL
    ),
]
CallOpt = Annotated[
    str,
    typer.Option(
        "--call",
        "-c",
        help="Which backward call: N (1-based, negative counts from the end), `all`, or a range "
        "such as `1:6` (one result per call).",
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

# -- one-liners ------------------------------------------------------------------------------
ExprOpt = Annotated[
    str | None,
    typer.Option(
        "--expr",
        "-e",
        help='An expression to draw instead of a script: `"(x*w - y)**2"`; chain named steps '
        'with `;`: `"y_hat = x*w; loss = (y_hat - y)**2"`.',
        rich_help_panel=EXPR_PANEL,
    ),
]
LetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--let",
        help="NAME=VALUE, a constant of the expression (no gradient): `x=2`, `v=[1, 2]`.",
        rich_help_panel=EXPR_PANEL,
    ),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="NAME=VALUE, a leaf that requires grad: `w=1.0`.",
        rich_help_panel=EXPR_PANEL,
    ),
]

# -- output ----------------------------------------------------------------------------------
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="File to write (`-` for stdout: dot or json); a folder for several calls.",
        rich_help_panel=OUT_PANEL,
    ),
]
FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format",
        "-f",
        help="Output format (default: from the suffix).",
        rich_help_panel=OUT_PANEL,
    ),
]
RankDirOpt = Annotated[
    RankDir,
    typer.Option(
        "--rankdir",
        help="Direction of the data flow: TB (leaves at the top), LR, BT or RL.",
        rich_help_panel=OUT_PANEL,
    ),
]
DpiOpt = Annotated[
    int | None,
    typer.Option("--dpi", min=1, max=2400, help="Resolution of a PNG.", rich_help_panel=OUT_PANEL),
]

# -- what to show ----------------------------------------------------------------------------
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
EdgeGradsOpt = Annotated[
    bool,
    typer.Option(
        "--edge-grads", help="Label edges with their gradient.", rich_help_panel=VIEW_PANEL
    ),
]
SavedOpt = Annotated[
    bool,
    typer.Option("--saved", help="List each node's saved tensors.", rich_help_panel=VIEW_PANEL),
]
OrderOpt = Annotated[
    bool,
    typer.Option(
        "--order",
        help="Number each node with its step in the backward pass; draw gradients flowing back.",
        rich_help_panel=VIEW_PANEL,
    ),
]
InputsOpt = Annotated[
    bool | None,
    typer.Option(
        "--inputs/--no-inputs",
        help="Draw the inputs that need no gradient (x, targets, numbers) as grey nodes "
        "(default: when the picture is small).",
        show_default=False,
        rich_help_panel=VIEW_PANEL,
    ),
]
ColorOpt = Annotated[
    Color,
    typer.Option(
        "--color",
        help="Fill nodes by `kind` (leaf, op, root), log `value` norm or log `grad` norm.",
        rich_help_panel=VIEW_PANEL,
    ),
]
CutsOpt = Annotated[
    bool,
    typer.Option(
        "--show-cuts/--no-show-cuts",
        help="Mark where the graph is cut (detach, .data, no_grad, .item()).",
        rich_help_panel=VIEW_PANEL,
    ),
]
FailOnOpt = Annotated[
    FailOn,
    typer.Option(
        "--fail-on",
        help="Exit with code 10 when a finding is at this level or above (for CI jobs).",
        rich_help_panel=OUT_PANEL,
    ),
]

# -- big graphs ------------------------------------------------------------------------------
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
        help="Most nodes to lay out in SVG/PNG/PDF/HTML before collapsing.",
        rich_help_panel=BIG_PANEL,
    ),
]
FullOpt = Annotated[
    bool,
    typer.Option(
        "--full", help="Draw every node, whatever the budget (slow).", rich_help_panel=BIG_PANEL
    ),
]


def view_options(
    depth: int | None, fold: bool, focus: str | None, radius: int, hide: str | None
) -> ViewOptions:
    """`--depth/--fold/--focus/--radius/--hide` as one `ViewOptions` (checked)."""
    return ViewOptions(depth, fold, focus, radius, parse_hide(hide))


def draw_options(
    *,
    view: ViewOptions,
    precision: int = PRECISION,
    edge_grads: bool = False,
    saved: bool = False,
    order: bool = False,
    cuts: bool = False,
    color: Enum | None = None,
    budget: int = BUDGET,
    full: bool = False,
    rankdir: Enum | None = None,
    dpi: int | None = None,
    inputs: bool | None = None,
) -> DrawOptions:
    """The flags of a command that draws, as the one `DrawOptions` it passes on (checked)."""
    return DrawOptions(
        precision=precision,
        edge_grads=edge_grads,
        saved=saved,
        order=order,
        cuts=cuts,
        color=color.value if color is not None else "kind",
        view=view,
        budget=budget,
        full=full,
        rankdir=rankdir.value if rankdir is not None else "TB",
        dpi=dpi,
        inputs=inputs,
    )
