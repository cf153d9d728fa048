"""`DrawOptions`: everything that says how a graph is drawn, in one frozen object.

The CLI builds it once from its flags (an invalid value is refused there, before the script
runs) and every path — a script, `--expr`, `--call` ranges, `doctor -o`, the notebook — passes
it whole to `render.write` / `render_bytes` / `to_dot`, so no option can be dropped on the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from graphviz_grad.errors import UsageError
from graphviz_grad.views import DEFAULT_BUDGET, ViewOptions

Color = Literal["kind", "value", "grad"]
RankDir = Literal["TB", "LR", "BT", "RL"]

#: What `color` and `rankdir` accept.
COLORS: tuple[str, ...] = ("kind", "value", "grad")
RANKDIRS: tuple[str, ...] = ("TB", "LR", "BT", "RL")


@dataclass(frozen=True)
class DrawOptions:
    """How to draw a graph.

    `precision` significant digits; `edge_grads` labels edges with their gradient; `saved` lists
    each node's saved tensors; `order` numbers nodes with their backward step and draws the
    gradients flowing back; `cuts` marks where the graph was cut (`.detach()`, `no_grad`...);
    `color` fills nodes by `kind`, log `value` norm or log `grad` norm; `title` heads the
    picture; `view` says what to draw (`--depth/--fold/--focus/--hide`); `budget` is the most
    nodes laid out before the view is made smaller, unless `full`; `rankdir` is the direction of
    the data flow (TB: leaves at the top); `dpi` the resolution of PNGs; `inputs` draws the inputs
    that need no gradient (`x`, targets, Python numbers) as grey nodes (None: when the drawing is
    small enough to stay readable); `indent` indents JSON.

    Example:
        >>> write(graph, "g.png", options=DrawOptions(edge_grads=True, rankdir="LR", dpi=150))
    """

    precision: int = 4
    edge_grads: bool = False
    saved: bool = False
    order: bool = False
    cuts: bool = False
    color: Color = "kind"
    title: str | None = None
    view: ViewOptions = field(default_factory=ViewOptions)
    budget: int = DEFAULT_BUDGET
    full: bool = False
    rankdir: RankDir = "TB"
    dpi: int | None = None
    inputs: bool | None = None
    indent: int | None = 1

    def __post_init__(self) -> None:
        if not 1 <= self.precision <= 17:
            raise UsageError(
                f"precision={self.precision} is out of range.", hint="Give 1 to 17 digits."
            )
        if self.color not in COLORS:
            raise UsageError(
                f"color={self.color!r} is not a colouring.", hint=f"Use one of {', '.join(COLORS)}."
            )
        if self.rankdir not in RANKDIRS:
            raise UsageError(
                f"rankdir={self.rankdir!r} is not a direction.",
                hint=f"Use one of {', '.join(RANKDIRS)}.",
            )
        if self.dpi is not None and not 1 <= self.dpi <= 2400:
            raise UsageError(
                f"dpi={self.dpi} is out of range.", hint="Give 1 to 2400 dots per inch."
            )
        if self.budget < 2:
            raise UsageError(f"budget={self.budget} is too small.", hint="Give at least 2 nodes.")
