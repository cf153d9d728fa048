"""The big-graph options of `gradviz render` and `gradviz tree`, end to end."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphviz_grad.cli import app

ROOT = Path(__file__).resolve().parent.parent.parent
SVG = "{http://www.w3.org/2000/svg}"
runner = CliRunner()
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def gradviz(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def svg_nodes(path: Path) -> list[str]:
    root = ET.fromstring(path.read_bytes())
    return [
        g.findtext(f"{SVG}title") or "" for g in root.iter(f"{SVG}g") if g.get("class") == "node"
    ]


@needs_dot
def test_depth_zero_draws_one_node_per_top_level_module(tmp_path: Path) -> None:
    out = tmp_path / "t.svg"
    code, _, err = gradviz("render", "samples/transformer.py", "--depth", "0", "-o", str(out))
    assert code == 0, err
    groups = [t for t in svg_nodes(out) if t.startswith("g")]
    assert len(groups) == 2  # encoder, head
    text = out.read_text(encoding="utf-8")
    assert "TransformerEncoder · hides" in text and "Linear · hides" in text


@needs_dot
def test_budget_says_what_it_did(tmp_path: Path) -> None:
    out = tmp_path / "t.svg"
    code, _, err = gradviz("render", "samples/transformer.py", "--budget", "30", "-o", str(out))
    assert code == 0, err
    assert "above the layout budget of 30" in err and "--full" in err
    assert len(svg_nodes(out)) <= 30 + 1  # + a findings box, when there is one


def test_dot_holds_the_whole_graph_whatever_the_budget(tmp_path: Path) -> None:
    out = tmp_path / "t.dot"
    code, _, err = gradviz("render", "samples/transformer.py", "--budget", "30", "-o", str(out))
    assert code == 0, err
    assert "layout budget" not in err
    assert "g0 [" not in out.read_text(encoding="utf-8")


def test_fold_in_the_tree() -> None:
    code, out, err = gradviz("tree", "samples/lstm.py", "--fold")
    assert code == 0, err
    assert "[cell ×5: LSTMCell, hides" in out


def test_focus_in_the_tree() -> None:
    code, out, err = gradviz("tree", "samples/linear.py", "--focus", "w", "--radius", "1")
    assert code == 0, err
    lines = [line for line in out.splitlines() if "#" in line]
    assert len(lines) == 2 and "MulBackward0" in lines[0] and "leaf w" in lines[1]


def test_unknown_focus_is_a_clear_error() -> None:
    code, _, err = gradviz("tree", "samples/linear.py", "--focus", "nope")
    assert code == 5
    assert "no node named `nope`" in err and "hint:" in err


@pytest.mark.parametrize("command", ["render", "tree"])
def test_unknown_hide_is_a_usage_error(command: str) -> None:
    code, _, err = gradviz(command, "samples/linear.py", "--hide", "leaves")
    assert code == 2
    assert "accumulate" in err and "views" in err
