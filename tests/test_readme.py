"""The README's examples are real: every `$ gradviz` line runs, shown output matches, the
Python block runs, and the committed picture is current."""

from __future__ import annotations

import re
import shlex
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphviz_grad.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SVG_NS = "{http://www.w3.org/2000/svg}"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def console_examples() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for every `$ ` line of the console blocks."""
    found: list[tuple[str, list[str]]] = []
    for block in blocks("console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            elif found:
                found[-1][1].append(line)
    return found


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("command", "expected"), console_examples(), ids=lambda v: str(v)[:40])
def test_console_example_runs(workdir: Path, command: str, expected: list[str]) -> None:
    argv = shlex.split(command)
    assert argv[0] == "gradviz"
    result = CliRunner().invoke(app, argv[1:])
    assert result.exit_code == 0, result.stderr
    if expected:  # what the terminal shows: stdout and stderr, interleaved
        assert result.output.rstrip("\n").splitlines() == expected


def test_python_example_runs(workdir: Path) -> None:
    (code,) = blocks("python")
    exec(compile(code, "README.md", "exec"), {"__name__": "__main__"})
    assert (workdir / "loss.svg").exists() and (workdir / "last.json").exists()


def svg_texts(path: Path) -> list[str]:
    return [t.text or "" for t in ET.parse(path).getroot().iter(f"{SVG_NS}text")]


PICTURES = [
    ("docs/linear.svg", ["render", "samples/linear.py"]),
    ("docs/img/doctor-cut.svg", ["doctor", "samples/pitfalls/cut.py"]),
]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize(("picture", "command"), PICTURES)
def test_readme_picture_is_current(workdir: Path, picture: str, command: list[str]) -> None:
    assert picture in README
    fresh = workdir / "fresh.svg"
    result = CliRunner().invoke(app, [*command, "-o", str(fresh)])
    assert result.exit_code == 0, result.stderr
    assert svg_texts(fresh) == svg_texts(ROOT / picture), (
        f"{picture} is out of date: gradviz {' '.join(command)} -o {picture}"
    )
