"""`gradviz steps`: one row per backward call, against PyTorch's own numbers; formats; thinning."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from helpers.cli import cli_output
from helpers.scripts import GAN
from typer.testing import CliRunner

from graphviz_grad.capture import no_graph, run_recorded
from graphviz_grad.cli import app
from graphviz_grad.teach.steps import (
    auto_every,
    ordinal,
    rows,
    sparkline,
    steps_text,
    to_csv,
    to_json,
)

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="module")
def loop_calls():  # type: ignore[no-untyped-def]
    with __import__("contextlib").redirect_stdout(io.StringIO()):
        return run_recorded(ROOT / "samples/training_loop.py", [], no_graph).recorder.calls


def hand_loop() -> list[tuple[float, float, float]]:
    """The lesson's loop by hand with torch: (loss, w before, dloss/dw) per call."""
    import torch

    w = torch.tensor([1.0], requires_grad=True)
    out = []
    for _ in range(100):
        for x, y in zip([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]):
            loss = (x * w - y) ** 2
            (g,) = torch.autograd.grad(loss, [w])
            out.append((loss.item(), w.item(), g.item()))
            w.data = w.data - 0.01 * g.item()
    return out


def test_rows_match_torch_for_every_call(loop_calls) -> None:  # type: ignore[no-untyped-def]
    table = rows(loop_calls)
    expected = hand_loop()
    assert len(table) == len(expected) == 300
    for row, (loss, w, g) in zip(table, expected):
        value, grad = row.leaves["w"]
        assert row.root is not None and value is not None and grad is not None
        assert row.root.data == pytest.approx([loss] if isinstance(row.root.data, list) else loss)
        assert value.data == pytest.approx([w])
        assert grad.data == pytest.approx([g])
    assert table[0].leaves["w"][1].data == [-2.0]  # the lesson's first `grad: 1.0 2.0 -2.0`


def test_every_thins_rows_and_keeps_the_last(loop_calls) -> None:  # type: ignore[no-untyped-def]
    assert [r.call for r in rows(loop_calls, every=100)] == [1, 101, 201, 300]


def test_csv_and_json(loop_calls) -> None:  # type: ignore[no-untyped-def]
    lines = list(csv.reader(io.StringIO(to_csv(loop_calls, every=150))))
    assert lines[0] == ["call", "root", "w", "grad_w", "nodes"]
    assert lines[1] == ["1", "1.0", "1.0", "-2.0", "4"]
    data = json.loads(to_json(loop_calls, every=150))
    assert [c["call"] for c in data["calls"]] == [1, 151, 300]
    assert data["calls"][0]["leaves"]["w"] == {"value": 1.0, "grad": -2.0}
    assert data["calls"][0]["root_name"] == "l"  # the lesson's `l = loss(x_val, y_val)`


def test_sparkline() -> None:
    assert sparkline([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == "▁▂▃▄▅▆▇█"
    assert sparkline([1.0, None, 1.0]) == "▁ ▁"
    assert sparkline([]) == ""
    assert len(sparkline([float(i) for i in range(1000)], width=40)) == 40


def test_sparkline_of_a_constant_series_is_flat() -> None:
    # 1,157 calls in 24 buckets of 48 or 49: a mean of v / n terms came out 0.5000000000000001
    # in some buckets, and a parameter that never changed was drawn with spikes
    assert sparkline([0.5] * 1157, width=24) == "▁" * 24
    assert sparkline([0.1] * 1001, width=7) == "▁" * 7


def test_steps_text_matches_golden(loop_calls, golden) -> None:  # type: ignore[no-untyped-def]
    golden("training_loop.steps.txt", steps_text(loop_calls, every=50, width=100))


def test_unzeroed_gradient_is_pointed_out() -> None:
    result = CliRunner().invoke(
        app, ["steps", "docs/tutorial/no_zero_grad.py"], env={"COLUMNS": "100"}
    )
    assert result.exit_code == 0, result.stderr
    assert "w.grad was not zero when call(s) 2, 3 began" in result.stdout


def test_a_gradient_set_by_hand_from_autograd_grad_is_not_called_added_up(
    tmp_path: Path,
) -> None:
    """`torch.autograd.grad` adds nothing to `.grad` (a WGAN-GP critic step sets `p.grad` from
    it): a `.grad` left over when such a call begins is no sum, as `doctor` knows too."""
    script = tmp_path / "by_hand.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "for _ in range(3):\n"
        "    (g,) = torch.autograd.grad((w * w).sum(), [w])\n"
        "    w.grad = g\n"
        "    with torch.no_grad():\n"
        "        w -= 0.1 * w.grad\n"
    )
    result = CliRunner().invoke(app, ["steps", str(script)], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.stderr
    assert "3 backward calls" in result.stdout
    assert "was not zero" not in result.stdout


def test_a_gan_loop_gets_a_root_column_a_line_per_loss_and_no_false_sum(tmp_path: Path) -> None:
    """Calls that alternate two losses (a GAN's `d_loss` and `g_loss`) name each call's root
    and follow each loss on its own line; the generator's call adds to the discriminator's
    `.grad`, but `opt_d.zero_grad()` drops that sum before any update uses it: no note (as
    `doctor` says nothing). At 80 columns no line is longer than 80."""
    script = tmp_path / "gan.py"
    script.write_text(GAN, encoding="utf-8")
    result = CliRunner().invoke(app, ["steps", str(script)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["call", "root", "value", "nodes"]
    assert [line.split()[1] for line in lines[2:6]] == ["d_loss", "g_loss", "d_loss", "g_loss"]
    assert "was not zero" not in result.stdout
    over = [line.split() for line in lines if "→" in line]
    d_loss, g_loss = over[0], over[1]  # the roots first, each from its own first call
    assert d_loss[0] == "d_loss" and d_loss[2] == lines[2].split()[2]
    assert g_loss[0] == "g_loss" and g_loss[2] == lines[3].split()[2]
    gen = next(row for row in over if row[0] == "gen.0.weight")
    assert " " not in gen[1] and len(gen[1]) == 6  # its 6 calls, no gaps for the other 6
    assert max(map(len, lines)) <= 80, [line for line in lines if len(line) > 80]


def test_leaves_whose_gradients_add_up_at_the_same_calls_share_one_note(tmp_path: Path) -> None:
    script = tmp_path / "no_zero.py"
    script.write_text(
        "import torch\n"
        "model = torch.nn.Linear(3, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for _ in range(3):\n"
        "    model(torch.ones(2, 3)).sum().backward()\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["steps", str(script)], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and notes[0].startswith(
        "note: model.bias.grad, model.weight.grad were not zero when call(s) 2, 3 began, so the "
    ), notes
    assert "an update used the sum" in result.stdout


def test_steps_cli_formats_and_no_backward() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["steps", "samples/linear.py", "-q", "-f", "csv"])
    assert out.exit_code == 0 and out.stdout == "call,root,w,grad_w,nodes\n1,4.0,1.0,-8.0,4\n"
    none = runner.invoke(app, ["steps", "samples/linear_nobackward.py", "-q"])
    assert none.exit_code == 6 and "made no backward call" in none.stderr
    assert "Use `gradviz explain samples/linear_nobackward.py`" in none.stderr


def test_steps_without_backward_or_graph_does_not_suggest_explain(tmp_path: Path) -> None:
    """PyTorch's pruning tutorial makes no backward call and leaves no tensor with a graph:
    `explain` would fail too, so the hint does not send the user there."""
    script = tmp_path / "prune.py"
    script.write_text(
        "import torch\n"
        "layer = torch.nn.Linear(3, 2)\n"
        "with torch.no_grad():\n"
        "    layer.weight.mul_(0.5)\n",
        encoding="utf-8",
    )
    none = CliRunner().invoke(app, ["steps", str(script), "-q"])
    assert none.exit_code == 6 and "made no backward call" in none.stderr
    assert "gradviz explain" not in none.stderr
    assert "Nor does it leave a tensor with an autograd graph to explain" in none.stderr


@pytest.fixture(scope="module")
def mlp_calls():  # type: ignore[no-untyped-def]
    with __import__("contextlib").redirect_stdout(io.StringIO()):
        return run_recorded(ROOT / "samples/mlp.py", [], no_graph).recorder.calls


@pytest.mark.parametrize("width", [80, 120])
def test_module_loop_fits_the_width(mlp_calls, width: int, golden) -> None:  # type: ignore[no-untyped-def]
    """At 80 and 120 columns an nn.Module loop is one row per call and one per parameter, and
    nothing is cut to `…`; the root column carries the loss's name."""
    text = steps_text(mlp_calls, width=width)
    golden(f"mlp.steps.{width}.txt", text)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    assert text.splitlines()[1].split() == ["call", "loss", "nodes"]
    for name in ("model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias"):
        assert sum(line.split()[0] == name for line in text.splitlines() if line.strip()) == 1


def test_wide_console_keeps_one_column_per_leaf(mlp_calls) -> None:  # type: ignore[no-untyped-def]
    text = steps_text(mlp_calls, width=200)
    assert text.splitlines()[1].split()[:4] == ["call", "loss", "model.2.bias", "∂/∂model.2.bias"]
    assert "…" not in text


def test_long_names_become_blocks() -> None:
    from graphviz_grad.model import CallInfo, LeafStep, TensorSummary

    def num(x: float) -> TensorSummary:
        return TensorSummary(shape=(), dtype="float32", numel=1, data=x)

    name = "encoder.layers.0.self_attn.out_proj.weight"
    calls = [
        CallInfo(
            i,
            "backward",
            None,
            None,
            num(1.0 / i),
            (LeafStep(name, num(i), num(-i)),),
            3,
            2,
            root_name="loss",
        )
        for i in range(1, 4)
    ]
    lines = steps_text(calls, width=60).splitlines()
    assert name in lines
    assert lines[lines.index(name) + 1].strip().startswith("value ")
    assert "…" not in "\n".join(lines)


def test_sparkline_shows_nan_and_inf() -> None:
    """A loop whose loss turns NaN/inf used to crash `steps` (cannot convert NaN to integer)."""
    nan, inf = float("nan"), float("inf")
    assert sparkline([1.0, 2.0, nan, inf, -inf]) == "▁█!↑↓"
    assert sparkline([nan, nan]) == "!!"
    assert sparkline([1e38, 3e38, inf]) == "▁█↑"
    long = [float(i) for i in range(100)] + [nan] * 100
    assert sparkline(long, width=10) == "▁▃▅▆█!!!!!"


def test_sparkline_of_huge_finite_numbers_averages_them() -> None:
    """A diverging loss near the float range: the sum of a bucket overflows, and `math.fsum`
    raises on that rather than giving inf (steps crashed with OverflowError)."""
    assert sparkline([1e308, 1.2e308, 1.5e308, 1.7e308], width=2) == "▁█"


def test_json_of_a_loop_that_turned_nan_is_valid_json() -> None:
    from graphviz_grad.model import CallInfo, LeafStep, TensorSummary

    def num(x: float) -> TensorSummary:
        return TensorSummary(shape=(), dtype="float32", numel=1, data=x)

    calls = [
        CallInfo(i, "backward", None, None, num(v), (LeafStep("w", num(v), num(-v)),), 3, 2)
        for i, v in enumerate([1.0, float("inf"), float("nan")], start=1)
    ]
    parsed = json.loads(to_json(calls), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert [c["root"] for c in parsed["calls"]] == [1.0, "inf", "nan"]
    assert parsed["calls"][1]["leaves"]["w"]["grad"] == "-inf"


def test_a_tensor_leaf_that_turned_nan_ends_its_line_in_nan() -> None:
    """A vector's summary keeps the statistics of its finite rest (an all-NaN one has no norm):
    its line went blank and ended at the last finite norm, `1.5 → 2.5`, as if it recovered."""
    from graphviz_grad.model import CallInfo, LeafStep, TensorSummary

    def vec(norm: float | None, nan: int = 0) -> TensorSummary:
        return TensorSummary((4,), "float32", 4, None, norm=norm, nan=nan)

    def num(x: float) -> TensorSummary:
        return TensorSummary(shape=(), dtype="float32", numel=1, data=x)

    steps = [(1.5, 0), (2.5, 0), (None, 4), (2.0, 1)]
    calls = [
        CallInfo(i, "backward", None, None, num(i), (LeafStep("w", vec(*v), vec(*v)),), 3, 2)
        for i, v in enumerate(steps, start=1)
    ]
    lines = steps_text(calls, width=80).splitlines()
    assert "w     ▁█!!  1.5 → nan" in lines and "∂/∂w  ▁█!!  1.5 → nan" in lines
    assert "    3   3.0  ‖nan‖  ‖nan‖      3" in lines


@pytest.mark.parametrize(
    ("total", "k"),
    [(1, 1), (100, 1), (101, 5), (250, 5), (300, 10), (1000, 20), (3000, 100), (30_000, 1000)],
)
def test_a_long_run_gets_a_round_every(total: int, k: int) -> None:
    assert auto_every(total) == k
    assert total <= 100 or len(range(0, total, k)) <= 50


def test_ordinals() -> None:
    got = [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 1000)]
    assert got == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st",
        "111th", "1,000th",
    ]  # fmt: skip


def test_the_table_of_a_long_run_is_thinned_unless_asked_and_csv_keeps_every_call() -> None:
    runner = CliRunner()
    env = {"COLUMNS": "100"}
    loop = "samples/training_loop.py"
    table = runner.invoke(app, ["steps", loop, "-q"], env=env)
    assert table.exit_code == 0
    assert table.stdout.startswith("300 backward calls, every 10th shown")
    listed = [line.split()[0] for line in table.stdout.splitlines()[2:33]]
    assert listed == [str(n) for n in range(1, 301, 10)] + ["300"]
    assert "the table shows every 10th and the last (`--every 1` shows all" in table.stderr
    full = runner.invoke(app, ["steps", loop, "-q", "--every", "1"], env=env)
    assert full.stdout.startswith("300 backward calls\n") and "every 10th" not in full.stderr
    assert len(full.stdout.splitlines()) > 300
    csv_out = runner.invoke(app, ["steps", loop, "-q", "-f", "csv"], env=env)
    assert len(csv_out.stdout.splitlines()) == 301


def test_the_leaf_lines_fit_when_the_heading_is_the_widest_name(tmp_path: Path) -> None:
    # "over all calls" is wider than `model.coef.0`: the sparklines leave room for it
    script = tmp_path / "poly.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "class Poly(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.coef = nn.ParameterList(nn.Parameter(torch.tensor(-1.5)) for _ in range(3))\n"
        "    def forward(self, x):\n"
        "        a, b, c = self.coef\n"
        "        return a + b * x + c * x ** 2\n"
        "model = Poly()\n"
        "x = torch.linspace(-3, 3, 200)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=1e-6)\n"
        "for _ in range(30):\n"
        "    loss = ((model(x) - torch.sin(x)) ** 2).sum() * 1e4\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    calls = run_recorded(script, [], no_graph).recorder.calls
    for width in (72, 80):
        text = steps_text(calls, width=width)
        assert "over all calls" in text and "…" not in text
        assert max(len(line) for line in text.splitlines()) <= width


def test_csv_gives_tensor_leaves_numeric_norm_columns(mlp_calls) -> None:  # type: ignore[no-untyped-def]
    table = list(csv.DictReader(io.StringIO(to_csv(mlp_calls))))
    first = rows(mlp_calls)[0]
    name, (value, grad) = next((n, p) for n, p in first.leaves.items() if p[0].numel > 1)
    assert value.norm is not None and grad is not None and grad.norm is not None
    assert float(table[0][f"{name}_norm"]) == value.norm
    assert float(table[0][f"grad_{name}_norm"]) == grad.norm
    assert table[0][name] and table[0][name] != table[0][f"{name}_norm"]  # the summary stays


def test_csv_of_scalar_leaves_has_no_norm_columns(loop_calls) -> None:  # type: ignore[no-untyped-def]
    header = to_csv(loop_calls).splitlines()[0]
    assert header == "call,root,w,grad_w,nodes"


def test_tensors_that_share_a_name_get_a_column_each(tmp_path: Path) -> None:
    """Layer-by-layer training (pytorch/examples' forward-forward): each layer's `self.weight`
    is its own tensor, of its own shape. They were one column and one sparkline; now each has
    its own, named with its shape."""
    script = tmp_path / "layers.py"
    script.write_text(
        "import torch\n"
        "class Layer:\n"
        "    def __init__(self, n, m):\n"
        "        self.weight = torch.ones(n, m, requires_grad=True)\n"
        "    def train(self):\n"
        "        for _ in range(2):\n"
        "            (self.weight ** 2).sum().backward()\n"
        "            with torch.no_grad():\n"
        "                self.weight -= 0.1 * self.weight.grad\n"
        "                self.weight.grad.zero_()\n"
        "for layer in [Layer(2, 3), Layer(3, 3)]:\n"
        "    layer.train()\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["steps", str(script), "-q", "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    header = next(csv.reader(io.StringIO(result.stdout)))
    assert [h for h in header if h.startswith("self.weight") and h.endswith("]")] == [
        "self.weight [2, 3]",
        "self.weight [3, 3]",
    ]
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [bool(r["self.weight [2, 3]"]) for r in rows] == [True, True, False, False]


@pytest.mark.parametrize(
    ("layers", "rounds", "columns"),
    [
        # two layers' biases of one shape, two calls each: a column each
        ("[Layer(3), Layer(3)]", 2, ["self.bias", "self.bias (2)"]),
        # a new tensor at every call (a new batch, a rebuilt `w`): one column, counted
        ("[Layer(3) for _ in range(6)]", 1, ["self.bias (6 tensors)"]),
    ],
)
def test_tensors_of_one_name_and_shape_are_told_apart(
    tmp_path: Path, layers: str, rounds: int, columns: list[str]
) -> None:
    """Forward-forward's layer biases are all [500]: the shape cannot tell them apart, and their
    sparkline joined layer 0's last value to layer 1's first. Each tensor object that lasts
    several calls gets its own column; a name that is a new tensor at each call keeps one."""
    script = tmp_path / "layers.py"
    script.write_text(
        "import torch\n"
        "class Layer:\n"
        "    def __init__(self, n):\n"
        "        self.bias = torch.ones(n, requires_grad=True)\n"
        "    def train(self):\n"
        f"        for _ in range({rounds}):\n"
        "            (self.bias ** 2).sum().backward()\n"
        "            with torch.no_grad():\n"
        "                self.bias -= 0.1 * self.bias.grad\n"
        "                self.bias.grad.zero_()\n"
        f"for layer in {layers}:\n"
        "    layer.train()\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["steps", str(script), "-q", "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    header = next(csv.reader(io.StringIO(result.stdout)))
    assert [h for h in header if h.startswith("self.bias") and not h.endswith("_norm")] == columns


def test_calls_made_inside_torch_are_told_apart(tmp_path: Path) -> None:
    """`gradcheck` and `autograd.functional` make backward calls of their own (189 calls for the
    double-backward tutorial's 5): the table says how many, from which of torch's files, and
    for which of the script's lines."""
    out = cli_output(
        tmp_path,
        "hvp.py",
        "import torch\nfrom torch.autograd.functional import hvp\n"
        "x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)\n"
        "_, hv = hvp(lambda t: (t ** 3).sum(), x, torch.ones(3))\n"
        "(x ** 2).sum().backward()\n",
        "steps",
    )
    said = " ".join(out.split())
    assert "calls were made inside torch's own code (torch/autograd/functional.py)" in said
    assert "for the script's line 4, not by the script's own backward calls" in said
