"""The findings of `gradviz doctor` for the terminal: one short block per finding.

Each block is a head line (mark, severity, code, ``file:line``) and the message and the fix
below it, indented; rich wraps them at spaces, so nothing is split mid-word at 80 columns (a
word longer than the line, e.g. a very long path, is the only thing ever folded).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.padding import Padding
from rich.text import Text

from graphviz_grad.model import Finding, location
from graphviz_grad.render.marks import SEVERITY_MARK

__all__ = ["FindingsReport", "findings_text"]

#: Style of each severity's mark and word.
SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "blue"}


class FindingsReport:
    """A rich renderable: a title line, then one block per finding (or a no-findings line).

    Example:
        >>> Console().print(FindingsReport(graph.findings, nodes=len(graph.nodes)))
    """

    def __init__(self, findings: Sequence[Finding], *, nodes: int) -> None:
        self.findings = tuple(findings)
        self.nodes = nodes

    def _title(self) -> Text:
        n = len(self.findings)
        if not n:
            return Text(f"gradviz doctor: no findings ({self.nodes} nodes checked).")
        return Text(f"gradviz doctor: {n} finding{'s' if n != 1 else ''}", style="bold")

    def _block(self, f: Finding) -> Group:
        style = SEVERITY_STYLE[f.severity]
        head = Text.assemble(
            (f"{SEVERITY_MARK[f.severity]} {f.severity}", style),
            "  ",
            (f.code, "bold"),
            "  ",
            (location(f.file, f.line) or "(no source line)", "cyan"),
        )
        body = [Text(f.message, overflow="fold")]
        if f.hint:
            body.append(Text.assemble(("fix: ", "green"), f.hint, overflow="fold"))
        return Group(head, Padding(Group(*body), (0, 0, 0, 2), expand=False))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self._title()
        for f in self.findings:
            yield Text("")
            yield self._block(f)


def findings_text(findings: Sequence[Finding], *, nodes: int = 0, width: int = 80) -> str:
    """The report as plain text, `width` cells wide (tests, docs), trailing spaces removed."""
    console = Console(
        width=width, file=io.StringIO(), color_system=None, force_terminal=False, record=True
    )
    console.print(FindingsReport(findings, nodes=nodes))
    text = console.export_text(styles=False)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())
