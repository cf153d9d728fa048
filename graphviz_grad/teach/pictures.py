"""Pictures for teaching: one graph with the backward order drawn in, or one per call.

`write_picture` is `render.write` plus `order` (each node's backward step, dashed red gradient
edges, a legend). `write_calls` writes one numbered picture per backward call into a folder,
so a learner can flip through them and watch the weights move.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphviz_grad.errors import OutputError
from graphviz_grad.model import Graph
from graphviz_grad.teach.calls import numbered

if TYPE_CHECKING:
    from graphviz_grad.teach.explain import Step


def write_picture(
    graph: Graph,
    path: Path | str,
    fmt: str,
    *,
    order: bool = False,
    precision: int = 4,
    edge_grads: bool = False,
    show_saved: bool = False,
    title: str | None = None,
    view: Any = None,
) -> Path:
    """Write `graph` like `render.write`; with `order`, draw the backward pass into it. An HTML
    page gets the backward step control, with `explain`'s text for every step."""
    from graphviz_grad import render

    return render.write(
        graph,
        path,
        fmt,
        precision=precision,
        edge_grads=edge_grads,
        show_saved=show_saved,
        title=title,
        view=view,
        order=order and fmt in ("svg", "png", "pdf", "dot"),
        steps=explained_steps(graph, precision) if fmt == "html" else (),
    )


#: Above this many nodes the HTML page gets no step texts (the walk-through is for learning).
MAX_STEP_NODES = 5_000


def explained_steps(graph: Graph, precision: int = 4) -> tuple[Step, ...]:
    """`explain`'s steps of `graph`, with the names its script's source gives (none for
    graphs too big to step through by hand)."""
    from graphviz_grad.teach.explain import Explanation
    from graphviz_grad.teach.sources import from_source

    if len(graph.nodes) > MAX_STEP_NODES:
        return ()
    steps = tuple(Explanation(graph, precision=precision, notes=from_source(graph)).steps())
    return tuple(_with_products(graph, steps))


def _with_products(graph: Graph, steps: tuple[Step, ...]) -> list[Step]:
    """Each leaf's step with the chain-rule lines that made its gradient (upstream · local =
    product, from the steps of the ops that use it), so its panel shows the arithmetic."""
    from dataclasses import replace

    at = {s.node: s for s in steps}
    out = []
    for step in steps:
        if graph.nodes[step.node].kind != "leaf" or not step.lines:
            out.append(step)
            continue
        target = step.lines[0][1].split(" = ", 1)[0] + " = "
        extra = [
            (f"chain (#{e.dst})", text)
            for e in graph.consumers[step.node]
            if e.dst in at
            for key, text in at[e.dst].lines
            if key == "chain" and text.startswith(target)
        ]
        out.append(replace(step, lines=(*step.lines, *extra)))
    return out


def write_calls(
    graphs: Sequence[Graph], folder: Path, stem: str, fmt: str, total: int, **opts: object
) -> list[Path]:
    """One picture per graph, ``folder/stem-001.svg``..., titled with its call number."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(
            f"`{folder}` is a file; --call with several calls writes into a folder.",
            hint="Give a folder with -o, e.g. -o pictures/",
        )
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for graph in graphs:
        number = graph.call or 0
        path = numbered(folder, stem, number, total, fmt)
        title = f"backward call {number} of {total}"
        written.append(write_picture(graph, path, fmt, title=title, **opts))  # type: ignore[arg-type]
    return written
