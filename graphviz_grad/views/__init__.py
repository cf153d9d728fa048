"""Views: pure functions from a `Graph` to what gets drawn, for big models and deep graphs.

`make_view` applies what the user asked for (`--focus`/`--radius`, `--hide`, `--depth`, `--fold`);
`fit_budget` then makes the drawing small enough for Graphviz to lay out in seconds: it collapses
modules from the deepest level up, folds repeated blocks, and as a last resort elides the nodes
farthest from the root into one node that says how many it hides. The graph itself never changes:
DOT and JSON of the whole graph stay available.

Example:
    >>> view = fit_budget(graph, ViewOptions(fold=True), budget=1500)
    >>> to_dot(graph, view=view)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from graphviz_grad._gc import on_big_graphs
from graphviz_grad.errors import UsageError
from graphviz_grad.model import Graph

from ._budget import FAN_KEEP, FAN_LIMIT, elide, trim_fans
from ._inputs import INPUTS_AUTO, with_inputs
from ._model import Group, View, ViewEdge, anchors, build
from ._modules import group_modules, max_depth
from ._select import HIDE_CHOICES, apply_focus, apply_hide, find_node, is_view_op
from ._tree import as_graph
from ._wrap import WRAP_RANKS, is_sliver, wrap

__all__ = [
    "anchors",
    "DEFAULT_BUDGET",
    "FLOOR",
    "HIDE_CHOICES",
    "INPUTS_AUTO",
    "WRAP_RANKS",
    "Group",
    "View",
    "ViewEdge",
    "ViewOptions",
    "as_graph",
    "find_node",
    "fit_budget",
    "is_sliver",
    "is_view_op",
    "make_view",
    "max_depth",
    "parse_hide",
    "tree_graph",
    "whole",
    "with_inputs",
    "wrap",
]

#: Drawn nodes above which SVG/PNG/PDF are made smaller (Graphviz needs seconds beyond this).
DEFAULT_BUDGET = 1500


@dataclass(frozen=True)
class ViewOptions:
    """What to draw: the CLI's `--depth`, `--fold`, `--focus`, `--radius` and `--hide`."""

    depth: int | None = None
    fold: bool = False
    focus: str | None = None
    radius: int = 2
    hide: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [w for w in self.hide if w not in HIDE_CHOICES]
        if bad:
            raise UsageError(
                f"Cannot hide {bad[0]!r}.", hint=f"Hide one or more of: {', '.join(HIDE_CHOICES)}."
            )
        if self.depth is not None and self.depth < 0:
            raise UsageError(f"depth={self.depth} is negative.", hint="Give a depth of 0 or more.")
        if self.radius < 0:
            raise UsageError(f"radius={self.radius} is negative.", hint="Give 0 or more edges.")


def parse_hide(text: str | None) -> tuple[str, ...]:
    """``"accumulate, views"`` -> ``("accumulate", "views")`` (checked by `ViewOptions`)."""
    return tuple(w.strip() for w in (text or "").split(",") if w.strip())


def _plan(graph: Graph, options: ViewOptions) -> tuple[list[int], list[Group], list[str]]:
    owner = list(range(len(graph.nodes)))
    groups: list[Group] = []
    notes: list[str] = []
    if options.focus is not None:
        notes.append(apply_focus(graph, owner, options.focus, options.radius))
    if options.hide:
        apply_hide(graph, owner, options.hide)
    if options.depth is not None or options.fold:
        group_modules(graph, owner, groups, options.depth, options.fold)
    return owner, groups, notes


def whole(graph: Graph) -> View:
    """Every node drawn as itself."""
    return build(graph, list(range(len(graph.nodes))), [])


def make_view(graph: Graph, options: ViewOptions | None = None) -> View:
    """The view that `options` ask for, without any budget.

    Example:
        >>> make_view(graph, ViewOptions(depth=0)).groups[0].title
        'encoder'
    """
    owner, groups, notes = _plan(graph, options or ViewOptions())
    return build(graph, owner, groups, notes)


def _size(owner: list[int], groups: list[Group]) -> int:
    return sum(1 for i, o in enumerate(owner) if o == i) + len(groups)


#: A fit that draws fewer nodes than this (one box for the whole model) says almost nothing: the
#: budget then keeps the finer attempt before it and elides that one's far end instead.
FLOOR = 4


def _attempts(options: ViewOptions, levels: int) -> list[ViewOptions]:
    """Ever coarser options: fold repeated blocks first (nothing else hidden), then collapse
    module calls from the deepest level up, still folded."""
    top = levels if options.depth is None else options.depth
    keep = (options.focus, options.radius, options.hide)
    tries = [] if options.fold or not levels else [ViewOptions(options.depth, True, *keep)]
    tries += [ViewOptions(d, True, *keep) for d in range(min(top, levels) - 1, -1, -1)]
    return tries


def _describe(attempt: ViewOptions) -> str:
    folded = "folded repeated blocks (as --fold)"
    if attempt.depth is None:
        return folded
    depth = attempt.depth
    return f"{folded} and collapsed the module calls at depth {depth} (as --depth {depth})"


def _choose(
    graph: Graph,
    options: ViewOptions,
    budget: int,
    finest: tuple[list[int], list[Group], list[str]],
) -> tuple[list[int], list[Group], list[str], str]:
    """The first attempt that fits `budget`. When none does, or a module collapse would leave
    almost nothing drawn, the last attempt too big for the budget, with its far end elided; or,
    in a graph with a wide fan-in, `finest` (the plan of `options`) with all but a few whole
    terms of it elided (`elide`)."""
    best = (*finest, "")
    for attempt in _attempts(options, max_depth(graph)):
        owner, groups, notes = _plan(graph, attempt)
        size = _size(owner, groups)
        if size <= budget and (attempt.depth is None or size >= min(FLOOR, budget)):
            return owner, groups, notes, _describe(attempt)
        if size > budget:
            best = (owner, groups, notes, _describe(attempt))
    owner, groups, notes, done = best
    cut = elide(graph, *finest[:2], budget) if _fan_in(graph) else None
    if cut is not None and cut[2]:  # a few whole terms of a wide fan-in: no collapse needed
        (owner, groups, widest), notes, done = cut, finest[2], ""
    else:
        owner, groups, widest = elide(graph, owner, groups, budget)
    hidden = len(groups[-1].members)
    where = (
        f"the {hidden:,} nodes past the first {FAN_KEEP - 1} and the last of the {widest:,} "
        "inputs of a node (each term whole)"
        if widest
        else f"the {hidden:,} nodes farthest from the root"
    )
    done = (done + ", then " if done else "") + f"elided {where} into one node"
    return owner, groups, notes, done


def _fan_in(graph: Graph) -> bool:
    """Whether a node of `graph` has more inputs than `elide` follows whole (`FAN_LIMIT`)."""
    return any(len(edges) > FAN_LIMIT for edges in graph.inputs)


def fit_budget(
    graph: Graph, options: ViewOptions | None = None, budget: int = DEFAULT_BUDGET
) -> View:
    """The view of `options`, made to fit `budget` drawn nodes; its notes say what was done.

    Folding repeated blocks comes first (it hides nothing that is not drawn once), then module
    calls collapse from the deepest level up; a view that would draw almost nothing is never
    chosen over a finer one with its far end elided.
    """
    options = options or ViewOptions()
    finest = _plan(graph, options)
    owner, groups, notes = finest
    before = _size(owner, groups)
    if before <= budget:
        return _unslivered(graph, options, _trimmed(build(graph, owner, groups, notes)))
    owner, groups, notes, done = _choose(graph, options, budget, finest)
    notes.append(
        f"{before:,} nodes are above the layout budget of {budget:,}: {done} "
        f"({_size(owner, groups):,} drawn). Use --full to draw everything (slow), --budget N, "
        "or --format dot / json for the whole graph."
    )
    return _trimmed(build(graph, owner, groups, notes))


def _unslivered(graph: Graph, options: ViewOptions, view: View) -> View:
    """A view too long and narrow to wrap (nested blocks) is folded, when folding shortens it."""
    if options.fold or not is_sliver(view):
        return view
    folded = make_view(graph, replace(options, fold=True))
    if folded.size >= view.size:
        return view
    note = (
        f"the {view.size:,} nodes would draw as a long narrow strip: folded repeated blocks "
        f"(as --fold; {folded.size:,} drawn). Use --full to draw every node."
    )
    return _trimmed(replace(folded, notes=(*folded.notes, note)))


def _trimmed(view: View) -> View:
    view, note = trim_fans(view)
    return replace(view, notes=(*view.notes, note)) if note else view


@on_big_graphs
def tree_graph(graph: Graph, options: ViewOptions | None = None) -> Graph:
    """What `gradviz tree` prints: `graph` itself, or its view as a graph (same node ids)."""
    if options is None or options == ViewOptions():
        return graph
    view = make_view(graph, options)
    return as_graph(view)
