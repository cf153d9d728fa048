"""`gradviz explain`: the lesson's hand-computed numbers, the order, goldens, sums of paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.cli import cli_output
from helpers.golden import check_golden as check_file
from helpers.scripts import ANOMALY_SQRT
from typer.testing import CliRunner

from graphviz_grad.capture import CaptureOptions, capture_script
from graphviz_grad.cli import app
from graphviz_grad.teach.explain import Explanation, explain_text
from graphviz_grad.teach.sources import from_source

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def check_golden(name: str, text: str) -> None:
    check_file(GOLDEN / name, text)


def lesson(sample: str) -> str:
    graph = capture_script(f"samples/{sample}", [], CaptureOptions()).graph
    return explain_text(graph, width=100, notes=from_source(graph))


def test_linear_lesson_numbers() -> None:
    text = lesson("linear.py")
    assert "y_hat = x · w = 2.0 · 1.0 = 2.0" in text
    assert "∂y_hat/∂w = x = 2.0" in text
    assert "∂loss/∂w = ∂loss/∂y_hat · ∂y_hat/∂w = -4.0 · 2.0 = -8.0" in text
    assert text.rstrip().endswith("∂loss/∂w = -8.0")


def test_affine_lesson_numbers() -> None:
    text = lesson("affine.py")
    assert "∂loss/∂b = ∂loss/∂y_hat · ∂y_hat/∂b = 2.0 · 1.0 = 2.0" in text
    assert "∂loss/∂w = ∂loss/∂#3 · ∂#3/∂w = 2.0 · 1.0 = 2.0" in text
    assert "Leaf gradients\n  ∂loss/∂w = 2.0\n  ∂loss/∂b = 2.0" in text


def test_steps_follow_the_recorded_engine_order() -> None:
    graph = capture_script("samples/affine.py", [], CaptureOptions()).graph
    steps = list(Explanation(graph).steps())
    assert [s.order for s in steps] == sorted(n.order for n in graph.nodes if n.order)
    assert [graph.nodes[s.node].order for s in steps] == [1, 2, 3, 4, 5, 6]
    # the engine ran leaf b (step 4) before the multiplication that leads to w (step 5)
    assert [s.title.split(" · ")[1] for s in steps] == ["loss", "#1", "y_hat", "b", "#3", "w"]


@pytest.mark.parametrize("sample", ["linear.py", "affine.py"])
def test_explain_cli_matches_golden(sample: str) -> None:
    result = CliRunner().invoke(app, ["explain", f"samples/{sample}", "-q"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.stderr
    check_golden(sample.replace(".py", ".explain.txt"), result.stdout)


def test_several_paths_show_their_sum() -> None:
    result = CliRunner().invoke(
        app, ["explain", "--expr", "a = p*q; out = a + exp(a) + a*2", "--param", "p=0.5",
              "--param", "q=2.0"], env={"COLUMNS": "120"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "∂out/∂a = 1.0 (from #1) + 2.718 (from #5) + 2.0 (from #6) = 5.718" in result.stdout
    assert "∂out/∂p = ∂out/∂a · ∂a/∂p = 5.718 · 2.0 = 11.44" in result.stdout


def test_constant_names_come_only_from_checked_source_lines(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text(
        "import torch\nw = torch.tensor(3.0, requires_grad=True)\nx = torch.tensor(2.0)\n"
        "a = x * w\nb = w * x + x * w\nloss = a + b\nloss.backward()\n"
    )
    graph = capture_script(script, [], CaptureOptions()).graph
    notes = from_source(graph)
    a = graph.find("a")
    assert a is not None and dict(notes.arg_names[a.id]) == {0: "x"}
    # two multiplications on one line: no guess
    two = [n for n in graph.nodes if n.line == 5 and n.op == "MulBackward0"]
    assert two and all(n.id not in notes.arg_names for n in two)


def test_explain_needs_a_script_or_an_expression() -> None:
    result = CliRunner().invoke(app, ["explain"])
    assert result.exit_code == 2
    assert "Give a script FILE" in result.stderr
    both = CliRunner().invoke(app, ["explain", "samples/linear.py", "--expr", "w"])
    assert both.exit_code == 2 and "not both" in both.stderr


def test_to_keeps_the_paths_to_one_leaf_and_its_gradient_matches_torch() -> None:
    import torch

    graph = capture_script("samples/affine.py", [], CaptureOptions()).graph
    b = graph.find("b")
    assert b is not None
    text = explain_text(graph, width=100, notes=from_source(graph), to=b.id)
    assert "Only the 4 nodes of 6 on the paths from loss to b (#" in text
    assert "step 4 · b · leaf" in text and "· w · leaf" not in text
    assert "∂y_hat/∂b = 1" in text and "∂y_hat/∂#" not in text  # only the input on its path
    x, y = torch.tensor(1.0), torch.tensor(2.0)
    w = torch.tensor(1.0, requires_grad=True)
    bias = torch.tensor(2.0, requires_grad=True)
    (grad,) = torch.autograd.grad((x * w + bias - y) ** 2, [bias])
    assert text.rstrip().endswith(f"∂loss/∂b = {grad.item()}")


def test_to_on_the_command_line_and_its_bad_names() -> None:
    runner = CliRunner()
    env = {"COLUMNS": "100"}
    ok = runner.invoke(app, ["explain", "samples/affine.py", "-q", "--to", "w"], env=env)
    assert ok.exit_code == 0 and "on the paths from loss to w" in ok.stdout
    assert "· b · leaf" not in ok.stdout
    by_id = runner.invoke(app, ["explain", "samples/affine.py", "-q", "--to", "#0"], env=env)
    assert by_id.exit_code == 0 and "Only the 1 node of 6" in by_id.stdout
    typo = runner.invoke(app, ["explain", "samples/affine.py", "-q", "--to", "bb"], env=env)
    assert typo.exit_code == 5 and "Did you mean `b`?" in typo.stderr
    expr = runner.invoke(app, ["explain", "-e", "(x*w - y)**2", "--let", "x=2", "--let", "y=4",
                               "--param", "w=1.0", "--to", "w"], env=env)  # fmt: skip
    assert expr.exit_code == 0 and "∂L/∂w = -8.0" in expr.stdout


def test_a_big_graph_suggests_to(tmp_path: Path) -> None:
    script = tmp_path / "deep.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor(1.0, requires_grad=True)\n"
        "y = w\n"
        "for _ in range(40):\n"
        "    y = y * 1.01 + 0.1\n"
        "y.backward()\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["explain", str(script), "-q"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    assert (
        "81 nodes explained; `--to NAME` keeps the steps on the paths to one leaf (`--to w`)"
        in (result.stderr)
    )


def _explained(tmp_path: Path, name: str, source: str) -> str:
    """What `gradviz explain` prints for a script made of `source`, at 200 columns."""
    return cli_output(tmp_path, name, source, "explain")


def test_torchs_own_functions_are_not_called_the_users_code(tmp_path: Path) -> None:
    """`torch.cond`'s backward and a full backward hook's node are autograd.Functions of torch,
    not "your own code (a custom autograd.Function)"."""
    out = _explained(
        tmp_path,
        "flow.py",
        "import torch\n"
        "lin = torch.nn.Linear(2, 2)\n"
        "lin.register_full_backward_hook(lambda m, gi, go: None)\n"
        "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "out = torch.cond(w.sum() > 0, lambda t: t.cos(), lambda t: t.sin(), (w,))\n"
        "loss = lin(out).sum()\n"
        "loss.backward()\n",
    )
    assert "CondAutogradOpBackward is torch.cond's backward" in out
    assert "BackwardHookFunctionBackward is the pass-through node" in out
    assert "your own code" not in out


def test_a_written_in_class_index_reads_as_an_integer(tmp_path: Path) -> None:
    """PyTorch's n-gram tutorial: `loss_function(log_probs, torch.tensor([word_to_ix[w]]))`
    through `nn.NLLLoss`, where no source expression names the target. The formula read
    `#1[i, 93.0[i]]`; the one class index is an integer: `#1[i, 93]`."""
    out = _explained(
        tmp_path,
        "ngram.py",
        "import torch\n"
        "ix = {'the': 93}\n"
        "lf = torch.nn.NLLLoss()\n"
        "w = torch.randn(1, 100, requires_grad=True)\n"
        "loss = lf(torch.log_softmax(w, dim=1), torch.tensor([ix['the']], dtype=torch.long))\n"
        "loss.backward()\n",
    )
    assert "forward  loss = -mean_i #1[i, 93] = " in out
    assert "(-1/N at each [i, 93], 0 elsewhere)" in out


def test_a_leaf_whose_gradient_autograd_grad_returned_is_explained(tmp_path: Path) -> None:
    """Under `torch.autograd.grad` a leaf's node does not run (nothing goes into `.grad`):
    explain said "1 node(s) did not run in this call: #2" right after that leaf's gradient."""
    out = _explained(
        tmp_path,
        "jac.py",
        "import torch\n"
        "xp = torch.randn(3).requires_grad_()\n"
        "y = (xp * xp).sum()\n"
        "(g,) = torch.autograd.grad(y, xp)\n",
    )
    assert "#2: torch.autograd.grad returned the gradient (a leaf's node runs" in out
    assert "did not run in this call" not in out


def test_nodes_a_failed_call_never_reached_are_said_to_be_cut_off_by_the_error(
    tmp_path: Path,
) -> None:
    """Anomaly mode stops the call at SqrtBackward0: the nodes below it did not run because the
    call raised, not because "the gradients asked for do not need them"."""
    out = _explained(tmp_path, "nan.py", ANOMALY_SQRT)
    said = " ".join(out.split())
    assert "did not run in this call (the call raised first: Function 'SqrtBackward0'" in said
    assert "do not need them" not in said
    assert "∂loss/∂w = —" in said


def test_an_in_place_leaky_relu_has_its_formula(tmp_path: Path) -> None:
    """`nn.LeakyReLU(inplace=True)` (DCGAN's discriminator) makes `LeakyReluBackward1`, which
    saves its result: the same rule as the out-of-place op, on the input as it was."""
    out = _explained(
        tmp_path,
        "leaky.py",
        "import torch\n"
        "import torch.nn.functional as F\n"
        "w = torch.tensor([1.5, -2.0, 0.5], requires_grad=True)\n"
        "h = w * 2.0\n"
        "F.leaky_relu(h, 0.1, inplace=True)\n"
        "loss = (h * torch.tensor([1.0, 2.0, 3.0])).sum()\n"
        "loss.backward()\n",
    )
    assert "∂loss/∂#3 = ∂loss/∂h ⊙ (1 if #3 > 0 else 0.1)" in out
    assert "= [1.0, 0.2, 3.0]" in out
    assert "gradviz has no formula" not in out


@pytest.mark.parametrize(
    ("write", "base", "src"),
    [
        ("buf[1] = w * 3", "with the written elements zeroed", "at the written elements"),
        ("buf[1].add_(w * 3)", "the written elements through the derivative of `add_`", "`add_`"),
    ],
)
def test_a_write_through_a_view_has_its_line_and_rule(
    tmp_path: Path, write: str, base: str, src: str
) -> None:
    """`buf[i] = x` (the seq2seq tutorial's `encoder_outputs[ei] = ...`) makes `CopySlices`,
    the base's node: explain shows its line and source and how the gradient splits, and its
    numbers are torch's (the recorded value is the base after the write)."""
    out = _explained(
        tmp_path,
        "slices.py",
        "import torch\n"
        "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "buf = torch.ones(3, 2, requires_grad=True) * 1.0\n"
        f"{write}\n"
        "loss = (buf * buf).sum()\n"
        "loss.backward()\n",
    )
    step = out[out.index("CopySlices") :]
    assert step.startswith("CopySlices · ") and step.split("\n")[0].endswith(
        f"slices.py:4: {write}"
    )
    assert base in step and src in step
    before = 1.0 if "add_" in write else 0.0
    assert f"[{before + 3.0}, {before + 6.0}]" in step.split("\n")[1]  # the value after the write


def test_rl_and_attention_ops_have_their_rules(tmp_path: Path) -> None:
    """`Categorical.log_prob` (gather, logsumexp), masked attention's scores (baddbmm) and the
    LSTM's saved states: found without a formula, and the LSTM's saved hidden and cell states
    were labelled as its main output."""
    out = _explained(
        tmp_path,
        "rl.py",
        "import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
        "logits = torch.randn(2, 3, requires_grad=True)\n"
        "dist = torch.distributions.Categorical(logits=logits)\n"
        "loss = -dist.log_prob(torch.tensor([0, 2])).sum()\n"
        "att = nn.MultiheadAttention(4, 1, batch_first=True)\n"
        "x = torch.randn(1, 3, 4)\n"
        "y, _ = att(x, x, x, attn_mask=torch.triu(torch.ones(3, 3, dtype=torch.bool), 1))\n"
        "o, (h, c) = nn.LSTM(4, 4)(torch.randn(2, 1, 4))\n"
        "(loss + y.sum() + o.sum() + c.sum()).backward()\n",
    )
    for op in ("GatherBackward0", "LogsumexpBackward0", "BaddbmmBackward0"):
        assert f"· {op} ·" in out and f"no formula for {op}" not in out
    assert "added back along dim -1 at the index" in out
    assert "softmax(logits, dim=(-1,))" in out
    assert "result1 = output 1 of o" in out and "result2 = output 2 of o" in out


def test_a_conv_without_bias_has_none_not_a_constant(tmp_path: Path) -> None:
    """`Conv2d(..., bias=False)` (every conv before a BatchNorm): explain wrote its bias as `c`,
    "a tensor that does not require grad", a tensor that does not exist."""
    out = _explained(
        tmp_path,
        "convnb.py",
        "import torch\ntorch.manual_seed(0)\n"
        "conv = torch.nn.Conv2d(1, 1, 2, bias=False)\n"
        "x = torch.ones(1, 1, 3, 3)\n"
        "out = conv(x)\n"
        "out.sum().backward()\n",
    )
    assert "= conv(x, conv.weight, None, stride=(1, 1)" in out
    assert "does not require grad" not in out.split("conv.weight, None")[1].split("upstream")[0]


def test_a_cnn_layers_have_their_rules(tmp_path: Path) -> None:
    """BatchNorm and max pooling, in most CNN tutorials, had no formula. BatchNorm in eval mode
    is an affine map of the running statistics: a different rule, which says so."""
    out = _explained(
        tmp_path,
        "cnn.py",
        "import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
        "net = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2), nn.ReLU(),\n"
        "                    nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 1))\n"
        "x = torch.randn(4, 1, 8, 8)\n"
        "net(x).sum().backward()\n"
        "net.eval()\n"
        "loss = net(x).sum()\n"
        "loss.backward()\n",
    )
    for op in ("NativeBatchNormBackward0", "MaxPool2DWithIndicesBackward0"):
        assert f"· {op} ·" in out and f"no formula for {op}" not in out
    assert "put where its window's maximum was" in out
    assert "√(running_var + 1e-05)" in out and "in eval mode (`model.eval()`)" in out


def test_a_parameter_named_c_keeps_the_placeholder_apart(tmp_path: Path) -> None:
    """The polynomial tutorial's `self.c * x ** 2`: explain wrote `model.c · c`, where the
    second c was the constant `x ** 2`. With a `model.c` around, the placeholder is `const`."""
    out = _explained(
        tmp_path,
        "poly.py",
        "import torch\n"
        "class Poly(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.c = torch.nn.Parameter(torch.tensor(0.25))\n"
        "    def forward(self, x):\n"
        "        return self.c * x ** 2\n"
        "model = Poly()\n"
        "loss = model(torch.linspace(-1, 1, 5)).sum()\n"
        "loss.backward()\n",
    )
    assert "= model.c · const =" in out and "model.c · c " not in out


def test_a_wrapped_step_title_goes_on_indented(tmp_path: Path) -> None:
    """At 80 columns a step's title broke inside its quoted source line and went on at column
    0 (`step 3 · pred · ReluBackward0 · quickstart.py:40: logits =` / `self.linear_relu_stack(x)`),
    reading as a new line of the report. The rest of the title is indented now."""
    out = cli_output(
        tmp_path,
        "wide.py",
        "import torch\nw = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "a_rather_long_name_for_the_loss = (w * w).sum() * 3.0 + w.sum() * 2.0 + 1.0\n"
        "a_rather_long_name_for_the_loss.backward()\n",
        "explain",
        60,
    )
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("step 1 "))
    assert len(lines[first]) <= 60 and lines[first + 1].startswith("    ")
    assert not lines[first + 1].startswith("     ")  # four spaces, then the source goes on


def test_a_complex_product_is_explained_with_the_conjugate_torch_uses(tmp_path: Path) -> None:
    """PyTorch's gradient of `z * c` for complex tensors is `g · conj(c)` (the conjugate
    Wirtinger derivative): explain wrote `⊙ c`. A real number factor stays as it is."""
    out = _explained(
        tmp_path,
        "cplx.py",
        "import torch\n"
        "z = torch.tensor([1 + 2j, -1j], requires_grad=True)\n"
        "c = torch.tensor([1 + 1j, 2 - 1j])\n"
        "loss = (z * c * 0.5).abs().sum()\n"
        "loss.backward()\n",
    )
    said = " ".join(out.split())
    assert "∂loss/∂z = ∂loss/∂#3 ⊙ conj(c)" in said
    assert "⊙ 0.5" in said and "conj(0.5)" not in said
    z = torch.tensor([1 + 2j, -1j], requires_grad=True)
    c = torch.tensor([1 + 1j, 2 - 1j])
    w = z * c
    (g,) = torch.autograd.grad((w * 0.5).abs().sum(), [w])
    (gz,) = torch.autograd.grad((z * c * 0.5).abs().sum(), [z])
    assert torch.allclose(gz, g * c.conj())  # the rule the text states, as torch computes it


def test_a_torchscript_fused_backward_is_named_and_explained(tmp_path: Path) -> None:
    """From its second call on, a `@torch.jit.script` function runs as one fused node whose
    class is torch's generic `CppFunction`: it is named by its `name()`
    (`DifferentiableGraphBackward`) and explained as TorchScript's, not "no formula for
    CppFunction (aten.mul.Tensor)"."""
    out = _explained(
        tmp_path,
        "jit.py",
        "import torch\n"
        "@torch.jit.script\n"
        "def gate(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:\n"
        "    return a * torch.sigmoid(a) * torch.tanh(b)\n"
        "a = torch.randn(4, requires_grad=True)\n"
        "b = torch.randn(4, requires_grad=True)\n"
        "for _ in range(3):\n"
        "    gate(a * 1.0, b * 1.0).sum().backward()\n",
    )
    said = " ".join(out.split())
    assert "DifferentiableGraphBackward is TorchScript's backward of a `@torch.jit.script`" in said
    assert "CppFunction" not in said
