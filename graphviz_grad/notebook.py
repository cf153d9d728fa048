"""How a `Graph` shows itself in Jupyter and in rich: the methods on `Graph` call these.

In a notebook a graph displays as the interactive view (`render.html`, as a fragment that
keeps its styles to itself), with the plain SVG and the text tree as alternatives for frontends
that show only those; in rich (`rich.print(graph)`) it prints as the tree. Rendering is imported
here, when a graph is first shown, so `graphviz_grad.model` stays free of rendering and torch.

Example:
    >>> graph = graphviz_grad.trace(loss)
    >>> graph                      # last expression of a cell: the interactive view
    >>> rich.print(graph)          # the tree
"""

from __future__ import annotations

from collections.abc import Callable, Container

from graphviz_grad.errors import GraphvizMissingError
from graphviz_grad.model import Graph
from graphviz_grad.render import render_bytes
from graphviz_grad.render.html import to_html
from graphviz_grad.render.tree import GraphTree, tree_text

SVG = "image/svg+xml"
HTML = "text/html"
PLAIN = "text/plain"


def svg(graph: Graph) -> str | None:
    """Graphviz's SVG of `graph`, or None when Graphviz's `dot` is not installed."""
    try:
        return render_bytes(graph, "svg").decode("utf-8")
    except GraphvizMissingError:
        return None


def html(graph: Graph, svg_text: str | None = None) -> str:
    """The interactive view as a notebook fragment (the tree instead of a drawing without dot)."""
    return to_html(graph, svg_text if svg_text is not None else svg(graph), standalone=False)


def plain(graph: Graph) -> str:
    """The tree as plain text: what a text-only frontend (or a terminal IPython) shows."""
    return tree_text(graph).rstrip("\n")


def _wanted(mime: str, include: Container[str] | None, exclude: Container[str] | None) -> bool:
    return (include is None or mime in include) and (exclude is None or mime not in exclude)


def mimebundle(
    graph: Graph,
    include: Container[str] | None = None,
    exclude: Container[str] | None = None,
) -> dict[str, str]:
    """The Jupyter mime bundle: HTML view, SVG and text, each made only when asked for.

    Graphviz runs at most once: the SVG goes both into the bundle and into the HTML view.
    """
    drawn = (
        svg(graph) if _wanted(SVG, include, exclude) or _wanted(HTML, include, exclude) else None
    )
    makers: dict[str, Callable[[], str | None]] = {
        HTML: lambda: to_html(graph, drawn, standalone=False),
        SVG: lambda: drawn,
        PLAIN: lambda: plain(graph),
    }
    bundle: dict[str, str] = {}
    for mime, make in makers.items():
        if _wanted(mime, include, exclude) and (data := make()) is not None:
            bundle[mime] = data
    return bundle


def rich_tree(graph: Graph) -> GraphTree:
    """The renderable that `rich` prints for a graph."""
    return GraphTree(graph)
