"""The graph as one self-contained interactive HTML page, or as a fragment for notebooks.

The page is an explorer: it opens with every nn.Module call collapsed into one node at the
deepest module level that keeps the first drawing small, and lays out again whatever is expanded
or collapsed, in the browser, with Graphviz compiled to WebAssembly (Viz.js, vendored in
``render/assets``, refreshed by ``tools/vendor_viz.sh``). The graph travels as compact columns
(`html_data.page_data`) in a ``<script type="application/json">`` block; the page script writes
the DOT of what is visible in the style of `render.dot`. Everything is inline: no network access,
no external fonts, scripts or styles, and a Content-Security-Policy forbids fetching anything.

The script adds pan and zoom, search (expanding the modules around a match), a details panel per
node, grouped findings, colouring by value or gradient magnitude and, when `steps` are given, a
backward step control. It writes user text only through ``textContent``; this module escapes
everything it writes itself (`escape`, `script_json`).
"""

from __future__ import annotations

import html as _html
import json
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from graphviz_grad.model import Finding, Graph, location
from graphviz_grad.render.html_data import StepText, page_data

#: Blocks every network fetch; only the inline scripts and style may run, and the inline
#: WebAssembly (Graphviz) may be compiled.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'wasm-unsafe-eval'; "
    "style-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
#: Height of the view inside a notebook cell, in CSS pixels.
FRAGMENT_HEIGHT = 520
#: Node buttons listed under one finding before "+N more".
MAX_FINDING_LINKS = 50
#: The script files of the page, in the order they run.
SCRIPTS = ("viz-global.js", "gradviz.js")

_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}
_UNSAFE = {c: "\ufffd" for c in (*range(9), 11, 12, *range(14, 32), *range(0x7F, 0xA0))}
_UNSAFE.update({c: "\ufffd" for c in range(0xD800, 0xE000)})
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_ROOT_SIZE = re.compile(r'\s(?:width|height)="[^"]*"')
_IDS = re.compile(r'\sid="(?:graph|node|edge|clust)\d+"')


def escape(text: object) -> str:
    """`text` safe as HTML text or a quoted attribute value (lone surrogates become U+FFFD)."""
    return _html.escape(str(text).translate(_UNSAFE), quote=True)


def script_json(data: Any) -> str:
    """`data` as JSON that cannot end its ``<script>`` block: ``<``, ``>`` and ``&`` (and
    everything non-ASCII) are written as ``\\u`` escapes, which `json.loads` reads back as is."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.translate(_SCRIPT_ESCAPES)


@cache
def asset(name: str) -> str:
    """The text of ``render/assets/<name>`` (the page's script and stylesheet)."""
    return resources.files("graphviz_grad.render").joinpath(f"assets/{name}").read_text("utf-8")


def inline_svg(svg: str) -> str:
    """Graphviz's SVG made ready to sit inside HTML: no prolog or comments, no fixed size (the
    page sizes it) and no element ids (several graphs can share one notebook page)."""
    start = svg.find("<svg")
    body = _COMMENT.sub("", svg[start:] if start >= 0 else "")
    if not body:
        return ""
    head_end = body.index(">")
    head = re.sub(r"\s+", " ", _ROOT_SIZE.sub("", body[:head_end]))
    return _IDS.sub("", head + ' class="gv-svg" role="img"' + body[head_end:])


def default_title(graph: Graph) -> str:
    """``gradviz: loss (backward call 3)``: the root's name and the call shown."""
    name = graph.nodes[graph.root].label if graph.nodes and graph.roots else "empty graph"
    call = f" (backward call {graph.call})" if graph.call is not None else ""
    return f"gradviz: {name}{call}"


_SOURCES = {
    "backward": "computed by the script's backward()",
    "autograd.grad": "computed by the script's torch.autograd.grad()",
    "gradviz": "computed by gradviz (not by a backward call of the script; no .grad was changed)",
    "none": "not computed",
}


def _info_rows(graph: Graph) -> list[tuple[str, str]]:
    leaves = len(graph.leaves)
    rows = [
        ("nodes", f"{len(graph.nodes)} ({leaves} {'leaf' if leaves == 1 else 'leaves'})"),
        ("edges", str(len(graph.edges))),
        ("gradients", _SOURCES.get(graph.grad_source, graph.grad_source)),
    ]
    if graph.call is not None:
        at = location(graph.call_file, graph.call_line) or graph.call_file
        where = f" at {at}" if at else ""
        rows.append(("call", f"backward call {graph.call}{where}"))
    return rows


def _node_button(graph: Graph, node_id: int) -> str:
    label = graph.nodes[node_id].label if 0 <= node_id < len(graph.nodes) else "?"
    return (
        f'<button type="button" class="gv-link" data-goto="{node_id}">'
        f"#{node_id} {escape(label)}</button>"
    )


def _finding_html(graph: Graph, f: Finding) -> str:
    at = location(f.file, f.line) or f.file
    where = f'<div class="gv-hint gv-text">{escape(at)}</div>' if at else ""
    hint = f'<div class="gv-hint gv-text">hint: {escape(f.hint)}</div>' if f.hint else ""
    shown = f.nodes[:MAX_FINDING_LINKS]
    nodes = " ".join(_node_button(graph, n) for n in shown)
    more = len(f.nodes) - len(shown)
    if more > 0:
        nodes += f' <span class="gv-hint">+{more:,} more (search #id)</span>'
    count = len(f.nodes)
    counted = f' <span class="gv-count-badge">{count:,} {"node" if count == 1 else "nodes"}</span>'
    return (
        f'<details class="gv-finding"><summary><span class="gv-sev-{escape(f.severity)}">'
        f"{escape(f.severity)} {escape(f.code)}</span> "
        f'<span class="gv-text">{escape(f.message)}</span>{counted if count else ""}</summary>'
        f"{where}{hint}{f'<div>{nodes}</div>' if nodes else ''}</details>"
    )


def info_html(graph: Graph) -> str:
    """The graph-level facts, notes and findings (readable without the script too)."""
    rows = "".join(
        f'<tr><td>{escape(k)}</td><td class="gv-text">{escape(v)}</td></tr>'
        for k, v in _info_rows(graph)
    )
    out = [f"<h3>graph</h3><table>{rows}</table>"]
    if graph.notes:
        notes = "".join(f'<div class="gv-hint gv-text">{escape(n)}</div>' for n in graph.notes)
        out.append(f"<h3>notes</h3>{notes}")
    if graph.findings:
        out.append("<h3>findings</h3>" + "".join(_finding_html(graph, f) for f in graph.findings))
    return "".join(out)


def _bar(title: str, stepper: str = "") -> str:
    return (
        '<header class="gv-bar">'
        f'<span class="gv-title" title="{escape(title)}">{escape(title)}</span>'
        + stepper
        + '<input type="search" class="gv-search" placeholder="Search names, ops, modules"'
        ' aria-label="Search nodes" autocomplete="off" spellcheck="false">'
        '<span class="gv-count" aria-live="polite"></span>'
        '<label>Colour <select class="gv-colour" aria-label="Colour nodes by">'
        '<option value="kind" selected>node kind</option>'
        '<option value="value">value magnitude</option>'
        '<option value="grad">gradient magnitude</option></select></label>'
        '<button type="button" class="gv-zoom-in" title="Zoom in">+</button>'
        '<button type="button" class="gv-zoom-out" title="Zoom out">\u2212</button>'
        '<button type="button" class="gv-fit" title="Show the whole graph (f)">Fit</button>'
        "</header>"
    )


def _modules_box(graph: Graph) -> str:
    if not any(n.scopes or n.module for n in graph.nodes):
        return ""
    return (
        '<section class="gv-modules-box"><h3>modules</h3><div>'
        '<button type="button" class="gv-collapse-all">collapse all</button> '
        '<button type="button" class="gv-expand-all">expand all</button></div>'
        '<div class="gv-modules"></div></section>'
    )


def _steps_bar(steps: Sequence[StepText]) -> str:
    if not steps:
        return ""
    return (
        '<span class="gv-stepper" role="group" aria-label="Backward steps">'
        '<button type="button" class="gv-step-first" title="Forward values only (step 0)">'
        "\u00ab</button>"
        '<button type="button" class="gv-step-prev" title="Previous backward step (\u2190)">'
        "\u25c0</button>"
        '<span class="gv-step-label" aria-live="polite"></span>'
        '<button type="button" class="gv-step-next" title="Next backward step (\u2192)">'
        "\u25b6</button>"
        '<button type="button" class="gv-step-last" title="Every gradient (last step)">'
        "\u00bb</button></span>"
    )


def _canvas(svg: str | None) -> str:
    first = inline_svg(svg) if svg else ""
    return (
        f'<div class="gv-canvas">{first}'
        '<div class="gv-status gv-hint" aria-live="polite">laying out the graph\u2026</div>'
        '<div class="gv-legend"></div></div>'
    )


def view_html(
    graph: Graph,
    svg: str | None,
    *,
    title: str,
    page: bool,
    steps: Sequence[StepText] = (),
    precision: int = 4,
) -> str:
    """The view itself: toolbar, canvas, side panel, the graph's data and the scripts."""
    cls = "gradviz gv-page" if page else "gradviz"
    style = "" if page else f' style="height: {FRAGMENT_HEIGHT}px"'
    data = page_data(graph, precision=precision, steps=steps)
    return (
        f'<div class="{cls}"{style}>'
        + ("" if page else f"<style>{asset('gradviz.css')}</style>")
        + _bar(title, _steps_bar(steps))
        + '<div class="gv-main">'
        + _canvas(svg)
        + '<aside class="gv-panel"><section class="gv-details" aria-live="polite"></section>'
        + f'<section class="gv-info">{info_html(graph)}</section>'
        + _modules_box(graph)
        + "</aside></div>"
        + f'<script type="application/json" class="gv-data">{script_json(data)}</script>'
        + "".join(f"<script>{asset(name)}</script>" for name in SCRIPTS)
        + "</div>"
    )


def to_html(
    graph: Graph,
    svg: str | None = None,
    *,
    title: str | None = None,
    standalone: bool = True,
    steps: Sequence[StepText] = (),
    precision: int = 4,
) -> str:
    """The interactive explorer of `graph`: a whole page, or with `standalone=False` a fragment
    for a notebook cell. The page lays the graph out itself; `svg` (Graphviz's drawing of the
    whole graph, optional) is shown until it has. `steps` (`teach.explain.Explanation.steps()`)
    add the backward step control, with each step's explanation in the side panel.

    Example:
        >>> steps = tuple(Explanation(graph).steps())
        >>> Path("graph.html").write_text(to_html(graph, steps=steps), encoding="utf-8")
    """
    title = title if title is not None else default_title(graph)
    view = view_html(graph, svg, title=title, page=standalone, steps=steps, precision=precision)
    if not standalone:
        return view
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="gradviz">'
        f"<title>{escape(title)}</title><style>{asset('gradviz.css')}</style></head>\n"
        f"<body>{view}</body></html>\n"
    )
