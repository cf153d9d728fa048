"""`--call all` / `--call 1:6`: parsing, and one numbered picture per call."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphviz_grad.capture import CallSpec, parse_call_spec
from graphviz_grad.cli import app
from graphviz_grad.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("-1", CallSpec(single=-1)),
        ("3", CallSpec(single=3)),
        ("all", CallSpec()),
        ("ALL", CallSpec()),
        ("1:6", CallSpec(first=1, last=6)),
        (":10", CallSpec(last=10)),
        ("250:", CallSpec(first=250)),
    ],
)
def test_parse(text: str, spec: CallSpec) -> None:
    assert parse_call_spec(text) == spec


@pytest.mark.parametrize("text", ["0", "6:1", "0:3", "a:b", "1-3", "", "1:2:3"])
def test_bad_specs(text: str) -> None:
    """A value that names no call is bad usage (exit 2), not a call the script did not make."""
    with pytest.raises(UsageError):
        parse_call_spec(text)


def test_keep_predicate() -> None:
    spec = parse_call_spec("2:3")
    assert [n for n in range(1, 6) if spec.keep(n)] == [2, 3]
    assert all(CallSpec().keep(n) for n in (1, 10_000))


def test_render_call_range_writes_numbered_pictures(tmp_path: Path) -> None:
    out = tmp_path / "flip"
    result = CliRunner().invoke(
        app,
        ["render", str(ROOT / "samples/training_loop.py"), "--call", "2:4", "-f", "dot",
         "-o", str(out), "--order", "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["training_loop-002.dot", "training_loop-003.dot", "training_loop-004.dot"]
    text = (out / "training_loop-003.dot").read_text()
    assert "backward call 3 of 300" in text and "backward step 1" in text
    assert "wrote 3 pictures" in result.stderr


def test_render_call_range_refuses_stdout_and_empty_ranges() -> None:
    runner = CliRunner()
    sample = str(ROOT / "samples/linear.py")
    to_stdout = runner.invoke(app, ["render", sample, "--call", "all", "-o", "-", "-q"])
    assert to_stdout.exit_code == 2 and "standard output" in to_stdout.stderr
    past = runner.invoke(app, ["render", sample, "--call", "5:9", "-f", "dot", "-q"])
    assert past.exit_code == 6 and "made 1" in past.stderr


def test_tree_call_range_and_order() -> None:
    result = CliRunner().invoke(
        app, ["tree", str(ROOT / "samples/training_loop.py"), "--call", "299:", "--order"]
    )
    assert result.exit_code == 0, result.stderr
    assert "backward call 299 of 300" in result.stdout
    assert "backward call 300 of 300" in result.stdout
    assert "#0 [step 1] PowBackward0" in result.stdout
