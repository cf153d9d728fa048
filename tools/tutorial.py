"""Regenerate the tutorial: `python tools/tutorial.py` (`--check` only compares).

`docs/tutorial/tutorial.in.md` is the prose. In it, every line ``$ gradviz ...`` inside a
```` ```console ```` block is run from the repository root (colourless, 100 columns) and its
output is written under it in `docs/tutorial.md`; pictures go to `docs/tutorial/`. A test runs
`--check`, so the committed outputs can never drift from what gradviz prints.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "docs" / "tutorial" / "tutorial.in.md"
TARGET = ROOT / "docs" / "tutorial.md"
WIDTH = 100
HEADER = (
    "<!-- Generated from docs/tutorial/tutorial.in.md by "
    "`python tools/tutorial.py`; edit that file, not this one. -->\n\n"
)


def run_gradviz(argv: list[str]) -> str:
    """What `gradviz ARGV` prints on stdout (and stderr, dimmed into the same block)."""
    from typer.testing import CliRunner

    from graphviz_grad.cli import app

    result = CliRunner().invoke(app, argv, env={"COLUMNS": str(WIDTH), "NO_COLOR": "1"})
    if result.exit_code == 2 and "Usage:" in result.stderr:  # a typo in the tutorial
        raise SystemExit(f"`gradviz {shlex.join(argv)}` is not a valid command:\n{result.stderr}")
    text = (result.stdout + result.stderr).replace(str(Path.cwd()) + os.sep, "")
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def build(source: str, run: Callable[[list[str]], str] = run_gradviz) -> str:
    """The tutorial with every console command's output filled in."""
    out: list[str] = [HEADER]
    in_console = False
    for line in source.splitlines(keepends=True):
        if line.startswith("```"):
            in_console = line.strip() == "```console" and not in_console
        out.append(line)
        if in_console and line.startswith("$ gradviz "):
            out.append(run(shlex.split(line[2:].strip())[1:]))
    return "".join(out)


def generate(where: Path) -> str:
    """Run the tutorial's commands with `where` as the current folder; the tutorial text."""
    source = SOURCE.read_text(encoding="utf-8")
    before = Path.cwd()
    os.chdir(where)
    try:
        return build(source)
    finally:
        os.chdir(before)


def check() -> bool:
    """True when docs/tutorial.md and its pictures are what the commands make now."""
    return not stale()


def stale() -> list[str]:
    """What is out of date: docs/tutorial.md, or a picture whose texts (labels, values, axis
    ticks) differ from a fresh one's. The commands run in a scratch copy of samples/ and of
    docs/tutorial/ without its pictures."""
    pictures = ROOT / "docs" / "tutorial"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "samples", Path(tmp) / "samples")
        fresh = Path(tmp) / "docs" / "tutorial"
        shutil.copytree(SOURCE.parent, fresh, ignore=shutil.ignore_patterns("*.svg", "*.png"))
        text = generate(Path(tmp))
        out = [
            f"docs/tutorial/{p.relative_to(fresh)}"
            for p in sorted(fresh.rglob("*.svg"))
            if not (pictures / p.relative_to(fresh)).exists()
            or svg_texts(p) != svg_texts(pictures / p.relative_to(fresh))
        ]
    if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
        out.insert(0, "docs/tutorial.md")
    return out


def svg_texts(path: Path) -> list[str]:
    """Every text of an SVG, in order: what a reader sees, whatever the renderer's version."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    return ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        old = stale()
        if not old:
            return 0
        sys.stderr.write(f"out of date: {', '.join(old)}; run `python tools/tutorial.py`\n")
        return 1
    TARGET.write_text(generate(ROOT), encoding="utf-8")
    sys.stdout.write(f"wrote {TARGET.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
