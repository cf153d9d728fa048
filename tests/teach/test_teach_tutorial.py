"""docs/tutorial.md is exactly what its commands print now."""

from __future__ import annotations

from graphviz_grad.teach import tutorial


def test_tutorial_is_current() -> None:
    assert tutorial.check(), "run `python -m graphviz_grad.teach.tutorial` and commit the result"


def test_build_fills_only_console_commands() -> None:
    src = "text\n```console\n$ gradviz tree x\n```\n```python\n$ gradviz no\n```\n"
    out = tutorial.build(src, run=lambda argv: f"ran {argv}\n")
    assert "ran ['tree', 'x']" in out and "ran ['no']" not in out
