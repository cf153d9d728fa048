"""`gradviz steps -o steps.svg`: the numbers drawn are PyTorch's, NaN/inf are marked, errors."""

from __future__ import annotations

import contextlib
import io
import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.scripts import GAN
from typer.testing import CliRunner

from graphviz_grad.capture import no_graph, run_recorded
from graphviz_grad.cli import app
from graphviz_grad.errors import EXIT_CODES, PlotMissingError
from graphviz_grad.model import TensorSummary
from graphviz_grad.render.plot import (
    Series,
    plot_bytes,
    plotted,
    scale,
    steps_series,
    write_steps_plot,
)

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"

#: Plain SGD with a step far too large: the loss blows up to inf, then NaN.
DIVERGE = """\
import torch

w = torch.tensor([1.0], requires_grad=True)
for step in range(30):
    l = ((10.0 * w - 3.0) ** 2).sum()
    l.backward()
    w.data = w.data - 1.0 * w.grad.data
    w.grad.data.zero_()
"""


def calls_of(script: Path):  # type: ignore[no-untyped-def]
    with contextlib.redirect_stdout(io.StringIO()):
        return run_recorded(script, [], no_graph).recorder.calls


def hand_diverge() -> list[tuple[float, float, float]]:
    """The same loop in plain torch: (loss, w before, |dloss/dw|) per call."""
    import torch

    w = torch.tensor([1.0], requires_grad=True)
    out = []
    for _ in range(30):
        before = w.item()
        loss = ((10.0 * w - 3.0) ** 2).sum()
        (g,) = torch.autograd.grad(loss, w)
        out.append((loss.item(), before, abs(g.item())))
        w.data = w.data - 1.0 * g
    return out


@pytest.fixture(scope="module")
def diverge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("diverge") / "diverge.py"
    path.write_text(DIVERGE, encoding="utf-8")
    return path


def same(a: float | None, b: float) -> bool:
    assert a is not None
    return (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=1e-6)


def parse(data: bytes) -> ET.Element:
    return ET.fromstring(data)


def by_id(root: ET.Element, gid: str) -> ET.Element | None:
    return next((g for g in root.iter(f"{SVG}g") if g.get("id") == gid), None)


def texts(root: ET.Element) -> str:
    return " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


def test_series_are_pytorchs_numbers_nan_and_inf_included(diverge: Path) -> None:
    [loss], per_leaf = steps_series(calls_of(diverge))
    expected = hand_diverge()
    assert [s.label for pair in per_leaf for s in pair] == ["w", "‖∂loss/∂w‖"]
    ((value, grad),) = per_leaf
    for i, (lv, w, g) in enumerate(expected):
        assert same(loss.values[i], lv) and same(value.values[i], w) and same(grad.values[i], g)
    assert loss.nan == [i + 1 for i, (lv, _, _) in enumerate(expected) if math.isnan(lv)] != []
    assert loss.inf(1) == [i + 1 for i, (lv, _, _) in enumerate(expected) if lv == math.inf] != []


def test_svg_marks_every_nan_and_inf_call(diverge: Path) -> None:
    calls = calls_of(diverge)
    [loss], _ = steps_series(calls)
    root = parse(plot_bytes(calls, "svg"))
    nan = by_id(root, "gradviz-nan")
    assert nan is not None  # the first such group is the loss axis's
    marks = [u for u in nan.iter(f"{SVG}use")]
    assert len(marks) == len(loss.nan)
    assert by_id(root, "gradviz-posinf") is not None
    assert f"NaN at {len(loss.nan)} calls" in texts(root)


def test_lesson_loop_plot_is_svg_with_log_axes(tmp_path: Path) -> None:
    out = tmp_path / "steps.svg"
    result = CliRunner().invoke(
        app, ["steps", str(ROOT / "samples/training_loop.py"), "-q", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stderr.replace("\n", "")
    root = parse(out.read_bytes())
    for label in ("loss", "w", "‖∂loss/∂w‖"):
        assert by_id(root, f"gradviz-series-{label}") is not None
    shown = texts(root)
    assert "loss (log scale)" in shown and "‖∂loss/∂w‖ (log scale)" in shown
    assert "300 backward calls" in shown and "NaN" not in shown


def test_same_calls_give_the_same_bytes(diverge: Path) -> None:
    calls = calls_of(diverge)
    assert plot_bytes(calls, "svg") == plot_bytes(calls, "svg")


@pytest.mark.parametrize(
    ("suffix", "magic"), [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("html", b"<!DOCTYPE html>")]
)
def test_other_formats(diverge: Path, tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = write_steps_plot(calls_of(diverge), tmp_path / f"steps.{suffix}")
    data = out.read_bytes()
    assert data.startswith(magic)
    if suffix == "html":
        assert b"<svg" in data and b"gradviz-nan" in data


def test_tensor_parameters_are_drawn_by_their_norm() -> None:
    calls = calls_of(ROOT / "samples/pitfalls/cut.py")
    _, per_leaf = steps_series(calls)
    labels = [s.label for pair in per_leaf for s in pair]
    assert labels == ["‖w2‖", "‖∂loss/∂w2‖"]  # w1 is cut off the graph
    assert parse(plot_bytes(calls, "svg")) is not None


def test_plotted_numbers() -> None:
    one = TensorSummary((), "float32", 1, data=-2.0, min=-2.0, max=-2.0, mean=-2.0, norm=2.0)
    assert plotted(one) == -2.0 and plotted(one, norm=True) == 2.0
    many = TensorSummary((3,), "float32", 3, data=[1.0, 2.0, 2.0], norm=3.0)
    assert plotted(many) == 3.0
    assert math.isnan(plotted(TensorSummary((3,), "float32", 3, nan=1)) or 0.0)
    neg_inf = TensorSummary((), "float32", 1, data=-math.inf, inf=1)
    assert plotted(neg_inf) == -math.inf and plotted(neg_inf, norm=True) == math.inf
    assert plotted(None) is None


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ((1.0, 2.0, 50.0), "linear"),
        ((1.0, 1e-3, 10.0), "log"),
        ((-1e3, 0.0, 1e-2), "symlog"),
        ((0.0, 0.0), "linear"),
        ((math.nan, math.inf), "linear"),
    ],
)
def test_log_scale_only_when_values_span_decades(values: tuple[float, ...], kind: str) -> None:
    series = Series("s", tuple(range(1, len(values) + 1)), values)
    assert scale(series)[0] == kind


def test_bad_suffix_is_refused_before_the_script_runs(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("open(__file__ + '.ran', 'w').close()\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["steps", str(script), "-o", str(tmp_path / "steps.txt")])
    assert result.exit_code == EXIT_CODES["output"]
    assert ".svg, .png, .pdf or .html" in result.stderr
    assert not (tmp_path / "s.py.ran").exists()


def test_without_matplotlib_one_sentence_and_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(PlotMissingError):
        plot_bytes([], "svg")
    out = tmp_path / "steps.svg"
    result = CliRunner().invoke(
        app, ["steps", str(ROOT / "samples/linear.py"), "-q", "-o", str(out)]
    )
    assert result.exit_code == EXIT_CODES["plot-missing"] == 12
    assert "needs matplotlib" in result.stderr and "pip install" in result.stderr
    assert "Traceback" not in result.output and not out.exists()


def test_a_gan_loop_plots_each_loss_and_each_leaf_over_its_own_calls(tmp_path: Path) -> None:
    """Calls that alternate two losses get a row per loss, by its name, each over its own calls;
    the generator's parameters, in every other call, are drawn over those calls (a gap at every
    other call drew no line at all past 60 calls)."""
    script = tmp_path / "gan.py"
    script.write_text(GAN, encoding="utf-8")
    calls = calls_of(script)
    losses, per_leaf = steps_series(calls)
    assert [(s.label, s.calls) for s in losses] == [
        ("d_loss", (1, 3, 5, 7, 9, 11)),
        ("g_loss", (2, 4, 6, 8, 10, 12)),
    ]
    assert (
        [s.values for s in losses]
        == [
            tuple(c.root_value.data for c in calls[0::2]),  # type: ignore[union-attr]
            tuple(c.root_value.data for c in calls[1::2]),  # type: ignore[union-attr]
        ]
    )
    gen = next(value for value, _ in per_leaf if value.label == "‖gen.0.weight‖")
    assert gen.calls == (2, 4, 6, 8, 10, 12) and None not in gen.values
    root = parse(plot_bytes(calls, "svg"))
    assert by_id(root, "gradviz-series-d_loss") is not None
    assert by_id(root, "gradviz-series-g_loss") is not None
