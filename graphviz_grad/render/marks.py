"""How findings look in the pictures: node highlights, the findings legend, cut marks, and the
colouring of nodes by value or gradient norm (`--color value|grad`). Pure functions of the `Graph`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Collection

from ..model import SEVERITY_RANK as RANK
from ..model import Finding, Graph, location

#: Border colour of a highlighted node, and of the severity dot in the legend.
SEVERITY_COLOR = {"error": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
#: Tree marks per severity.
SEVERITY_MARK = {"error": "✖", "warning": "⚠", "info": "ℹ"}
#: Fill colours from small to large gradient norms (a blue-to-red ramp, colour-blind safe ends).
GRAD_RAMP = ("#4575b4", "#74add1", "#abd9e9", "#e0f3f8", "#ffffbf", "#fee090", "#fdae61", "#f46d43")
GRAD_NONE = "#ffffff"
#: Characters per line of a finding in the DOT legend.
LEGEND_WIDTH = 90


def node_marks(graph: Graph) -> dict[int, list[Finding]]:
    """Per node id, the findings that name it (most serious first)."""
    marks: dict[int, list[Finding]] = {}
    for f in graph.findings:
        for n in f.nodes:
            if 0 <= n < len(graph.nodes):
                marks.setdefault(n, []).append(f)
    for found in marks.values():
        found.sort(key=lambda f: RANK[f.severity])
    return marks


def worst(findings: list[Finding]) -> str:
    return min((f.severity for f in findings), key=lambda s: RANK[s])


def _where(f: Finding) -> str:
    return location(f.file, f.line) or "-"


def legend(graph: Graph) -> list[str]:
    """A DOT node listing every finding, coloured by severity (empty without findings)."""
    from ..render.dot import html

    if not graph.findings:
        return []
    rows = [
        f'<tr><td colspan="2" align="left"><b>gradviz doctor: {len(graph.findings)} '
        "finding(s)</b></td></tr>"
    ]
    for f in graph.findings:
        color = SEVERITY_COLOR[f.severity]
        head = f'<font color="{color}"><b>{SEVERITY_MARK[f.severity]} {html(f.code)}</b></font>'
        text = "<br/>".join(html(line) for line in textwrap.wrap(f.message, LEGEND_WIDTH))
        where = html(_where(f))
        rows.append(
            f'<tr><td align="left" valign="top">{head}<br/>{where}</td>'
            f'<td align="left" balign="left">{text}</td></tr>'
        )
    table = (
        '<table border="1" cellborder="0" cellspacing="0" cellpadding="4" color="#999999" '
        f'bgcolor="#fffdf5">{"".join(rows)}</table>'
    )
    return [f'  findings [class="legend", label=<{table}>];']


def cut_marks(graph: Graph, shown: Collection[int]) -> list[str]:
    """A dashed scissors mark per cut, pointing at the nodes that consume the cut tensor."""
    from ..render.dot import html

    out = []
    color = SEVERITY_COLOR["warning"]
    cuts = [f for f in graph.findings if f.code == "cut"]
    for k, f in enumerate(cuts):
        text = html(f"✂ cut{' at line ' + str(f.line) if f.line else ''}")
        out.append(
            f'  cut{k} [class="legend", shape=plaintext, '
            f'label=<<font color="{color}"><b>{text}</b></font>>];'
        )
        out.extend(
            f'  cut{k} -> n{n} [style=dashed, color="{color}", arrowhead=tee];'
            for n in f.nodes
            if n in shown
        )
    return out


def _log_norms(graph: Graph, which: str) -> dict[int, float]:
    found = {}
    for n in graph.nodes:
        s = n.grad if which == "grad" else n.value
        if s is not None and s.norm is not None and s.norm > 0 and math.isfinite(s.norm):
            found[n.id] = math.log10(s.norm)
    return found


def norm_fills(graph: Graph, which: str = "grad") -> dict[int, str]:
    """Per node, a fill colour by log10 of its `which` ("grad" or "value") norm; white: none."""
    logs = _log_norms(graph, which)
    if not logs:
        return {}
    lo, hi = min(logs.values()), max(logs.values())
    span = max(hi - lo, 1e-9)
    fills = {}
    for n in graph.nodes:
        if n.id not in logs:
            fills[n.id] = GRAD_NONE
            continue
        k = min(len(GRAD_RAMP) - 1, int((logs[n.id] - lo) / span * len(GRAD_RAMP)))
        fills[n.id] = GRAD_RAMP[k]
    return fills


def norm_legend(graph: Graph, which: str = "grad") -> list[str]:
    """The colour scale of `norm_fills`: one cell per colour, labelled with the norm it starts."""
    logs = _log_norms(graph, which)
    if not logs:
        return []
    lo, hi = min(logs.values()), max(logs.values())
    step = max(hi - lo, 1e-9) / len(GRAD_RAMP)
    cells = "".join(
        f'<td bgcolor="{c}">{10 ** (lo + i * step):.2g}</td>' for i, c in enumerate(GRAD_RAMP)
    )
    word = "gradient" if which == "grad" else "value"
    head = f'<tr><td colspan="{len(GRAD_RAMP)}">{word} norm (log scale)</td></tr>'
    table = (
        '<table border="1" cellborder="0" cellspacing="0" cellpadding="3" color="#999999">'
        f"{head}<tr>{cells}</tr></table>"
    )
    return [f'  grad_scale [class="legend", label=<{table}>];']
