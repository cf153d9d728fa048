"""docs/tutorial.md is exactly what its commands print now."""

from __future__ import annotations

import re
from pathlib import Path

from tools import tutorial


def test_tutorial_is_current() -> None:
    assert tutorial.check(), "run `python tools/tutorial.py` and commit the result"


def test_build_fills_only_console_commands() -> None:
    src = "text\n```console\n$ gradviz tree x\n```\n```python\n$ gradviz no\n```\n"
    out = tutorial.build(src, run=lambda argv: f"ran {argv}\n")
    assert "ran ['tree', 'x']" in out and "ran ['no']" not in out


def test_every_picture_of_the_tutorial_is_committed_and_made_by_a_command() -> None:
    source = tutorial.SOURCE.read_text(encoding="utf-8")
    shown = re.findall(r"!\[[^\]]*\]\((tutorial/[^)]+)\)", source)
    made = re.findall(r"^\$ gradviz .*-o (docs/tutorial/\S+)", source, flags=re.M)
    assert len(shown) >= 8
    for picture in shown:
        assert (tutorial.ROOT / "docs" / picture).exists(), picture
        assert any(("docs/" + picture).startswith(m) for m in made), f"no command makes {picture}"


def test_svg_texts_are_what_a_reader_sees(tmp_path: Path) -> None:
    svg = tmp_path / "a.svg"
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><text>w</text><g><text>-8.0</text></g></svg>'
    )
    assert tutorial.svg_texts(svg) == ["w", "-8.0"]
