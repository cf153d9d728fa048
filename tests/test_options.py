"""One options object on every path: view options reach --expr and --call ranges, bad values are
refused before anything runs, and the CLI and the library agree on formats (`.gv` is DOT)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphviz_grad.cli import app
from graphviz_grad.errors import UsageError
from graphviz_grad.render import DrawOptions
from graphviz_grad.views import ViewOptions

ROOT = Path(__file__).resolve().parent.parent
EXPR = ["--expr", "y_hat = x*w; loss = (y_hat - y)**2", "--let", "x=2", "--let", "y=4"]
EXPR += ["--param", "w=1.0"]


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def gradviz(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "120"})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("render", "samples/linear.py"),
        ("render", *EXPR),
        ("render", "samples/training_loop.py", "--call", "1:2"),
        ("tree", "samples/linear.py"),
        ("tree", *EXPR),
        ("tree", "samples/training_loop.py", "--call", "1:2"),
        ("doctor", "samples/linear.py"),
    ],
    ids=["render", "render-expr", "render-range", "tree", "tree-expr", "tree-range", "doctor"],
)
def test_unknown_hide_word_is_refused_on_every_path(args: tuple[str, ...], tmp_path: Path) -> None:
    code, out, err = gradviz(*args, "--hide", "bogus", "-q")
    assert code == UsageError.exit_code, err
    assert "Cannot hide 'bogus'" in err and "accumulate, views" in err
    assert out == ""  # refused before the script ran: nothing printed


def test_view_options_reach_the_expression_path() -> None:
    code, out, _ = gradviz("tree", *EXPR)
    assert code == 0 and "leaf w" in out
    code, out, _ = gradviz("tree", *EXPR, "--hide", "accumulate")
    assert code == 0 and "leaf w" not in out and "PowBackward0" in out


def test_view_options_reach_every_picture_of_a_call_range(tmp_path: Path) -> None:
    folder = tmp_path / "calls"
    code, _, err = gradviz(
        "render", "samples/training_loop.py", "--call", "1:2", "-o", str(folder), "-f", "dot",
        "--hide", "accumulate", "-q",
    )  # fmt: skip
    assert code == 0, err
    pictures = sorted(folder.glob("*.dot"))
    assert len(pictures) == 2
    for picture in pictures:
        text = picture.read_text(encoding="utf-8")
        assert "MulBackward0" in text and "> leaf<" not in text and "</b> leaf" not in text


def test_gv_suffix_is_dot_for_the_cli_as_for_the_library(tmp_path: Path) -> None:
    out = tmp_path / "linear.gv"
    code, _, err = gradviz("render", "samples/linear.py", "-o", str(out), "-q")
    assert code == 0, err
    assert out.read_text(encoding="utf-8").startswith("digraph gradviz {")


def test_a_suffix_that_names_another_format_is_refused(tmp_path: Path) -> None:
    code, _, err = gradviz(
        "render", "samples/linear.py", "-o", str(tmp_path / "x.svg"), "-f", "png"
    )
    assert code == 7 and "says SVG but `--format png` asks for PNG" in err
    assert not (tmp_path / "x.svg").exists()


def test_draw_options_refuse_bad_values() -> None:
    for bad in ({"precision": 0}, {"color": "pink"}, {"rankdir": "UP"}, {"dpi": 0}, {"budget": 1}):
        with pytest.raises(UsageError):
            DrawOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="Cannot hide"):
        ViewOptions(hide=("bogus",))


def test_cli_defaults_are_the_library_defaults() -> None:
    from graphviz_grad.cli import _options

    assert DrawOptions().precision == _options.PRECISION
    assert DrawOptions().budget == _options.BUDGET
    assert ViewOptions().radius == _options.RADIUS
    assert dataclasses.fields(DrawOptions)  # frozen dataclass, passed whole


def test_rankdir_and_dpi_reach_the_drawing(tmp_path: Path) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's `dot` is not installed")
    code, out, _ = gradviz("render", "samples/linear.py", "-o", "-", "--rankdir", "LR", "-q")
    assert code == 0 and "rankdir=LR;" in out
    small, big = tmp_path / "a.png", tmp_path / "b.png"
    assert gradviz("render", "samples/linear.py", "-o", str(small), "-q")[0] == 0
    assert gradviz("render", "samples/linear.py", "-o", str(big), "--dpi", "192", "-q")[0] == 0
    assert big.stat().st_size > small.stat().st_size


@pytest.mark.parametrize("command", ["render", "tree", "doctor", "explain", "steps"])
def test_quiet_on_every_command_that_runs_a_script(command: str) -> None:
    code, out, _ = gradviz(command, "samples/linear.py", "-q")
    assert code == 0
    assert "y_hat:" not in out  # the script's own prints are hidden


def test_view_options_with_html_say_where_they_apply(tmp_path: Path) -> None:
    """The page lays itself out in the browser: a view option is not dropped silently."""
    out = tmp_path / "mlp.html"
    code, _, err = gradviz("render", "samples/mlp.py", "-o", str(out), "--depth", "0", "-q")
    assert code == 0 and out.exists()
    assert "shape SVG, PNG, PDF and DOT only" in err
    code, _, err = gradviz("render", "samples/mlp.py", "-o", str(out), "-q")
    assert code == 0 and "shape SVG" not in err
