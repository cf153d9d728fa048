"""The building blocks of Graphviz HTML-like labels: escaping, table rows, value/grad rows.

Every DOT writer in `render/` (nodes, module groups, legends) builds its tables from these, so a
node and a folded module look alike and user text is escaped in one place.
"""

from __future__ import annotations

from graphviz_grad.model import TensorSummary, has_nonfinite
from graphviz_grad.render.format import fmt_summary

#: Colour of a non-finite gradient, and of a node whose gradient has one.
BORDER_BAD = "#d62728"

#: Characters that are not safe inside an HTML-like label, and what replaces them.
_HTML_ESCAPES: dict[str, str] = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#39;",
    "\\": "&#92;",
    "{": "&#123;",
    "}": "&#125;",
    "\n": "<br/>",
    "\r": "",
    "\t": " ",
}


def _escape_table() -> dict[int, str]:
    table = {ord(ch): rep for ch, rep in _HTML_ESCAPES.items()}
    bad = [*range(32), *range(0x7F, 0xA0), *range(0xD800, 0xE000)]
    for code in bad:
        table.setdefault(code, "\ufffd")
    return table


_TABLE = _escape_table()


def html(text: str) -> str:
    """`text` made safe for a Graphviz HTML-like label; newlines become line breaks."""
    return text.translate(_TABLE)


def row(*cells: str, bold: bool = False) -> str:
    """One table row; the cells are already escaped. A single cell spans both columns."""
    if len(cells) == 1:
        inner = f"<b>{cells[0]}</b>" if bold else cells[0]
        return f'<tr><td colspan="2">{inner}</td></tr>'
    head, body = cells
    return f'<tr><td align="left">{head}</td><td align="left">{body}</td></tr>'


def value_rows(
    value: TensorSummary | None, grad: TensorSummary | None, precision: int, prefix: str = ""
) -> list[str]:
    grad_text = html(fmt_summary(grad, precision))
    if has_nonfinite(grad):
        grad_text = f'<font color="{BORDER_BAD}">{grad_text}</font>'
    return [
        row(f"{prefix}value", html(fmt_summary(value, precision))),
        row(f"{prefix}grad", grad_text),
    ]
