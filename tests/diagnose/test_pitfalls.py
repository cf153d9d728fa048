"""Each pitfall script gives exactly its findings (code, severity, line, nodes); correct scripts
give no warning or error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.gradviz_proc import gradviz
from helpers.scripts import ANOMALY_SQRT

from graphviz_grad.capture import Captured, CaptureOptions, capture_script
from graphviz_grad.diagnose import CODES, has_errors, with_findings
from graphviz_grad.diagnose.loop import diverges as loop_diverges
from graphviz_grad.errors import ScriptError
from graphviz_grad.model import CallInfo, Finding, TensorSummary

ROOT = Path(__file__).resolve().parents[2]
PITFALLS = ROOT / "samples" / "pitfalls"

#: Per pitfall: (code, severity, line, nodes) of every finding, in report order.
EXPECTED: dict[str, list[tuple[str, str, int | None, tuple[int, ...]]]] = {
    "graph_retained.py": [("graph-retained", "warning", 27, (0,))],
    "graph_grows.py": [
        ("graph-grows", "warning", 17, tuple(range(3, 17))),
        ("grad-accumulates", "info", 16, (17,)),
    ],
    "grad_accumulates.py": [("grad-accumulates", "warning", 17, (2, 4))],
    "inplace_saved.py": [("inplace-saved", "error", 14, (2,))],
    "backward_twice.py": [
        ("backward-twice", "error", 14, (3, 4)),
        ("grad-accumulates", "info", 17, (5,)),
    ],
    "cut.py": [("unused-param", "warning", 15, ()), ("cut", "warning", 16, (3,))],
    "unused_param.py": [("unused-param", "warning", 27, ())],
    "grad_none.py": [("grad-none", "warning", 9, (5, 6)), ("torch-warning", "warning", 17, ())],
    "grad_zero.py": [
        ("grad-zero", "warning", 14, (1, 8, 9)),
        ("grad-zero", "warning", 14, (3, 4, 5, 7)),
    ],
    "forward_nonfinite.py": [
        ("forward-nonfinite", "error", 14, (9, 0)),
        ("grad-nan", "error", 14, (10,)),
    ],
    "grad_nan.py": [("grad-nan", "error", 8, (3,)), ("grad-inf", "error", 8, (1,))],
    "grad_inf.py": [("grad-inf", "error", 8, (3,))],
    "grad_scale.py": [("grad-scale", "warning", 13, (6,))],
    "loss_broadcast.py": [("loss-broadcast", "warning", 15, (0, 2))],
    "loss_input.py": [("loss-input", "warning", 17, (0, 2))],
    "loss_empty.py": [("loss-empty", "error", 16, (0, 2, 3, 5))],
    "attention_mask.py": [("attention-mask", "warning", 20, (16,))],
    "grad_clip.py": [("grad-clip", "warning", 17, ()), ("loss-diverges", "warning", 18, ())],
    "torch_warning.py": [("torch-warning", "warning", 15, ())],
    "loop_nonfinite.py": [
        ("grad-nan", "error", 12, (2,)),
        ("loop-nonfinite", "error", 13, ()),
    ],
    "loss_diverges.py": [("loss-diverges", "warning", 14, ())],
    "params_frozen.py": [("params-frozen", "warning", 17, ())],
    "no_backward.py": [("no-backward", "error", 17, ())],
}

#: Per pitfall, the op (or leaf name) of the first node of its main finding.
FIRST_NODE: dict[str, str] = {
    "inplace_saved.py": "SigmoidBackward0",
    "backward_twice.py": "TanhBackward0",
    "cut.py": "MmBackward0",
    "grad_none.py": "MulBackward0",
    "grad_zero.py": "AddmmBackward0",
    "grad_nan.py": "SubBackward0",
    "grad_inf.py": "w",
    "grad_scale.py": "w_age",
    "graph_grows.py": "SubBackward0",
    "loss_broadcast.py": "MseLossBackward0",
    "loss_input.py": "NllLossBackward0",
    "loss_empty.py": "NllLossBackward0",
    "forward_nonfinite.py": "LogBackward0",
    "attention_mask.py": "BaddbmmBackward0",
}

CORRECT = ["training_loop.py", "mlp.py", "linear.py", "affine.py", "quadratic.py", "lstm.py"]


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def run(path: Path) -> Captured:
    return with_findings(capture_script(path, [], CaptureOptions()))


def _coded(tmp_path: Path, text: str, code: str, name: str = "script.py") -> list[Finding]:
    """The findings of one code for a script made of `text`."""
    script = tmp_path / name
    script.write_text(text, encoding="utf-8")
    return [f for f in run(script).graph.findings if f.code == code]


def _torch_warning(tmp_path: Path, text: str) -> Finding:
    """The one `torch-warning` finding of a script made of `text`."""
    [warned] = _coded(tmp_path, text, "torch-warning", "warns.py")
    return warned


def _main(found: tuple[Finding, ...], name: str) -> Finding:
    code = name.removesuffix(".py").replace("_", "-")
    return next(f for f in found if f.code == code)


def test_there_is_one_pitfall_per_code() -> None:
    scripts = sorted(p.name for p in PITFALLS.glob("*.py"))
    assert scripts == sorted(EXPECTED)
    assert sorted(c.replace("-", "_") + ".py" for c in CODES) == scripts


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pitfall_findings(name: str) -> None:
    captured = run(PITFALLS / name)
    found = captured.graph.findings
    assert [(f.code, f.severity, f.line, f.nodes) for f in found] == EXPECTED[name]
    main = _main(found, name)
    assert main.file == f"samples/pitfalls/{name}"
    assert main.message.endswith(".") and main.hint
    if name in FIRST_NODE:
        node = captured.graph.nodes[main.nodes[0]]
        assert FIRST_NODE[name] in (node.op, *node.names)


@pytest.mark.parametrize("name", ["inplace_saved.py", "backward_twice.py"])
def test_script_that_dies_in_backward_still_gives_its_graph(name: str) -> None:
    captured = run(PITFALLS / name)
    assert captured.error is not None and captured.error.exit_code == 4
    assert captured.graph.notes and captured.graph.notes[0].startswith("backward failed")
    assert has_errors(captured.graph.findings)


def test_inplace_finding_names_op_line_and_versions() -> None:
    f = run(PITFALLS / "inplace_saved.py").graph.findings[0]
    assert "`mul_` at line 14" in f.message
    assert "version 1, backward needs version 0" in f.message
    assert "SigmoidBackward0 at line 13 saved `result`" in f.message


def test_retained_finding_counts_iterations_and_nodes() -> None:
    f = run(PITFALLS / "graph_retained.py").graph.findings[0]
    assert "`total` keeps the graphs of 30 iterations alive: 121 nodes" in f.message


def test_grows_finding_reports_growth_per_call() -> None:
    f = run(PITFALLS / "graph_grows.py").graph.findings[0]
    assert "grows by 1 node per backward call (from 4 to 18 over 15 calls" in f.message
    assert "`w` is updated with grad tracking on at line 17" in f.message


def test_nan_finding_says_whether_forward_was_finite() -> None:
    found = run(PITFALLS / "grad_nan.py").graph.findings
    assert all("forward value was finite" in f.message for f in found)


def test_a_nan_made_by_a_backward_formula_is_reported_at_that_ops_line(tmp_path: Path) -> None:
    """`h = x * w` then `r = torch.sqrt(h)` at h = 0: the first NaN gradient is `h`'s, but the
    formula that made it is sqrt's, so the finding points at sqrt's line (6), the one to fix."""
    [f] = _coded(
        tmp_path,
        "import torch\n"
        "w = torch.tensor([1.0, 2.0, 0.5], requires_grad=True)\n"
        "x = torch.tensor([4.0, 0.0, 1.0])\n"
        "\n"
        "h = x * w\n"
        "r = torch.sqrt(h)\n"
        "(r * torch.tensor([1.0, 0.0, 1.0])).sum().backward()\n",
        "grad-nan",
    )
    assert f.line == 6
    assert "`h` at line 5 (coming back through #2 SqrtBackward0 `r` at line 6)" in f.message


def test_a_nan_that_nan_to_num_hid_and_masked_fill_drops_is_a_warning(tmp_path: Path) -> None:
    """A fully padded sequence: softmax over a row of only -inf makes NaN, `nan_to_num` hides it
    in the forward pass, backward still multiplies by it, and `masked_fill`'s backward drops it:
    every leaf's gradient is finite (as torch computes them). A warning at the softmax line that
    names `nan_to_num`, not an error that says to fix the -inf mask."""
    source = (
        "import torch, torch.nn.functional as F\n"
        "q = torch.randn(2, 4, 8, requires_grad=True)\n"
        "k = torch.randn(2, 4, 8, requires_grad=True)\n"
        "pad = torch.tensor([[False] * 4, [True] * 4])\n"
        "att = q @ k.transpose(-2, -1)\n"
        "att = att.masked_fill(pad[:, None, :], float('-inf'))\n"
        "w = F.softmax(att, dim=-1)\n"
        "w = torch.nan_to_num(w, nan=0.0)\n"
        "w.pow(2).mean().backward()\n"
    )
    [f] = _coded(tmp_path, source, "grad-nan")
    assert (f.severity, f.line) == ("warning", 7)
    said = " ".join(f.message.split())
    assert "(a softmax over only -inf: a row masked in full), which #" in said
    assert "NanToNumBackward0 `w` at line 8 replaced" in said
    assert "no leaf's gradient is NaN or Inf" in said
    namespace: dict[str, object] = {}
    exec(source.replace(".backward()", ".backward(); gq, gk = q.grad, k.grad"), namespace)
    assert torch.isfinite(namespace["gq"]).all() and torch.isfinite(namespace["gk"]).all()


def test_accumulation_before_a_step_is_info(tmp_path: Path) -> None:
    script = tmp_path / "micro.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "opt = torch.optim.SGD([w], lr=0.1)\n"
        "for step in range(3):\n"
        "    for micro in range(4):\n"
        "        loss = (w * (micro + 2.0)).sum()\n"
        "        loss.backward()\n"
        "    opt.step()\n"
        "    opt.zero_grad()\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    assert [(f.code, f.severity, f.line) for f in found] == [("grad-accumulates", "info", 7)]
    # the 4 micro-batches of a step, not the 10 calls that found a gradient held
    assert "the gradients of up to 4 calls add up before they are zeroed" in found[0].message


_GAN = (
    "import torch\n"
    "torch.manual_seed(0)\n"
    "G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)\n"
    "og = torch.optim.SGD(G.parameters(), lr=0.1)\n"
    "od = torch.optim.SGD(D.parameters(), lr=0.1)\n"
    "real = torch.randn(8, 2) + 1\n"
    "for it in range(4):\n"
    "    fake = G(torch.randn(8, 2))\n"
    "    od.zero_grad()\n"
    "    (D(fake.detach()).mean() - D(real).mean()).backward()\n"
    "    od.step()\n"
    "    og.zero_grad()\n"
    "    (-D(fake).mean()).backward()  # fills D's .grad too, zeroed before D's next step\n"
    "    og.step()\n"
)


def test_a_gans_generator_step_through_the_discriminator_is_no_accumulation(
    tmp_path: Path,
) -> None:
    """The generator's backward adds to D's `.grad` after D's update; no update uses that sum
    (D's next step zeroes it first), as in PyTorch's DCGAN tutorial."""
    script = tmp_path / "gan.py"
    script.write_text(_GAN, encoding="utf-8")
    assert [f.code for f in run(script).graph.findings] == []


def test_a_gan_that_never_zeroes_the_discriminator_still_accumulates(tmp_path: Path) -> None:
    script = tmp_path / "gan.py"
    script.write_text(_GAN.replace("    od.zero_grad()\n", ""), encoding="utf-8")
    found = run(script).graph.findings
    assert [(f.code, f.severity) for f in found] == [("grad-accumulates", "warning")]


def _gan_ending_in_ds_step(g_step: bool) -> str:
    """A GAN whose generator steps every other iteration (`g_step`: at all), so that the last
    call, the one shown, is the discriminator's, on `G(z).detach()`."""
    script = _GAN
    g_lines = "    og.zero_grad()\n"
    head, _, tail = script.partition(g_lines)
    if not g_step:
        return head
    indented = "".join("    " + x for x in (g_lines + tail).splitlines(True))
    return head + "    if it % 2 == 0:\n" + indented


def test_gradients_taken_by_autograd_grad_need_no_update(tmp_path: Path) -> None:
    """PyTorch's per-sample-gradients and Jacobian tutorials call `torch.autograd.grad` once per
    sample (or row) and update nothing: the gradients are what they want, not `params-frozen`
    ("the update never reaches it"). A `loss.backward()` before them is no loop either."""
    script = tmp_path / "per_sample.py"
    script.write_text(
        "import torch\n"
        "torch.manual_seed(0)\n"
        "model = torch.nn.Linear(4, 2)\n"
        "x, y = torch.randn(8, 4), torch.randn(8, 2)\n"
        "((model(x) - y) ** 2).mean().backward()\n"
        "def grad_of(i):\n"
        "    loss = ((model(x[i : i + 1]) - y[i : i + 1]) ** 2).mean()\n"
        "    return torch.autograd.grad(loss, list(model.parameters()))\n"
        "per_sample = [grad_of(i) for i in range(8)]\n"
        "xp = torch.randn(3).requires_grad_()\n"
        "rows = [torch.autograd.grad((xp * xp).sum() * v, xp)[0] for v in torch.ones(3)]\n",
        encoding="utf-8",
    )
    assert [f.code for f in run(script).graph.findings] == []


def test_a_root_made_from_an_unnamed_leaf_is_no_non_leaf_parameter(tmp_path: Path) -> None:
    """`bar = torch.randn(3, requires_grad=True).sum()`, drawn with `--target bar`: `bar` is the
    root, the loss, not a parameter whose `.grad` the user expects (`grad-none`)."""
    script = tmp_path / "bar.py"
    script.write_text(
        "import torch\nbar = torch.randn(3, requires_grad=True).sum()\n", encoding="utf-8"
    )
    captured = capture_script(script, [], CaptureOptions(target="bar"))
    assert [f.code for f in with_findings(captured).graph.findings] == []
    script.write_text(
        "import torch\nw = torch.randn(3, requires_grad=True) * 0.01\nloss = (w * 2).sum()\n",
        encoding="utf-8",
    )
    found = with_findings(capture_script(script, [], CaptureOptions())).graph.findings
    assert [f.code for f in found] == ["grad-none"]  # `w` still is: it is no root


def test_one_unused_parameter_is_told_in_the_singular(tmp_path: Path) -> None:
    [f] = _coded(
        tmp_path,
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(2, 1)\n"
        "        self.scale = torch.nn.Parameter(torch.ones(1))\n"
        "    def forward(self, x):\n"
        "        return self.fc(x)\n"
        "net = Net()\n"
        "net(torch.randn(4, 2)).sum().backward()\n",
        "unused-param",
    )
    assert f.message.startswith("1 parameter of `net` (Net) gets no gradient: `net.scale`.")
    assert f.message.endswith("but the root does not depend on it.")


def test_a_gans_detached_fake_in_the_discriminators_step_is_an_info(tmp_path: Path) -> None:
    """`D(fake.detach())` in D's step cuts G off on purpose: G's own backward call (line 14)
    trains it. Before, the call shown (D's, the last) warned that no gradient flows past it."""
    script = tmp_path / "gan.py"
    script.write_text(_gan_ending_in_ds_step(g_step=True), encoding="utf-8")
    found = run(script).graph.findings
    assert [(f.code, f.severity, f.line) for f in found] == [("cut", "info", 10)]
    assert "`G`, which computed it, gets its gradients from the backward call at line 14" in (
        found[0].message
    )
    assert found[0].hint.startswith("Nothing, if `G` is meant to learn from that call only.")


def test_a_gans_first_step_shown_with_call_says_what_went_unseen(tmp_path: Path) -> None:
    """`--call 1` on a GAN: call 1 is the discriminator's step, and gradviz stops watching after
    it, before the generator's own step. The cut and the generator's unused parameters stay
    warnings (gradviz cannot know), and each says that a later call went unseen."""
    script = tmp_path / "gan.py"
    script.write_text(_gan_ending_in_ds_step(g_step=True), encoding="utf-8")
    captured = with_findings(capture_script(script, [], CaptureOptions(call=1)))
    found = {f.code: f for f in captured.graph.findings}
    assert found["cut"].severity == "warning"
    assert (
        "gradviz stopped watching after call 1 (--call), so it cannot tell whether a later "
        "backward call trains what it was computed from" in found["cut"].message
    )
    assert found["unused-param"].message.endswith(
        "gradviz stopped watching after this call (--call), so it cannot tell whether a later "
        "backward call trains `G`."
    )
    whole = run(script).graph.findings
    assert all("stopped watching" not in f.message for f in whole)


def test_a_detached_model_that_nothing_else_trains_is_still_a_warning(tmp_path: Path) -> None:
    script = tmp_path / "gan.py"
    script.write_text(_gan_ending_in_ds_step(g_step=False), encoding="utf-8")
    cut = next(f for f in run(script).graph.findings if f.code == "cut")
    assert (cut.severity, cut.line) == ("warning", 10)
    assert "no gradient flows back past it" in cut.message


_DQN = (
    "import copy\n"
    "import torch\n"
    "torch.manual_seed(0)\n"
    "policy = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))\n"
    "target_net = copy.deepcopy(policy)\n"
    "opt = torch.optim.SGD(policy.parameters(), lr=0.01)\n"
    "for step in range(4):\n"
    "    s, s2, r = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8)\n"
    "    q = policy(s).max(1).values\n"
    "    with torch.no_grad():\n"
    "        target = r + 0.9 * target_net(s2).max(1).values\n"
    "    loss = ((q - target) ** 2).mean()\n"
    "    opt.zero_grad()\n"
    "    loss.backward()\n"
    "    opt.step()\n"
    "    if step == 2:\n"
    "        target_net.load_state_dict(policy.state_dict())\n"
)


def test_a_dqn_target_network_under_no_grad_is_neither_a_cut_nor_unused(tmp_path: Path) -> None:
    """Its parameters are in no optimizer while the policy's are: no gradient is meant to
    reach them."""
    script = tmp_path / "dqn.py"
    script.write_text(_DQN, encoding="utf-8")
    assert [f.code for f in run(script).graph.findings] == []


def test_a_cut_before_trained_parameters_is_still_reported(tmp_path: Path) -> None:
    script = tmp_path / "dqn.py"
    both = "torch.optim.SGD([*policy.parameters(), *target_net.parameters()], lr=0.01)"
    script.write_text(_DQN.replace("torch.optim.SGD(policy.parameters(), lr=0.01)", both))
    codes = [(f.code, f.severity) for f in run(script).graph.findings]
    assert ("cut", "warning") in codes and ("unused-param", "warning") in codes


@pytest.mark.parametrize("name", CORRECT)
def test_correct_scripts_give_no_warning_or_error(name: str) -> None:
    found = run(ROOT / "samples" / name).graph.findings
    assert [f for f in found if f.severity != "info"] == []


def test_template_layer_is_info_only() -> None:
    found = run(ROOT / "samples" / "transformer.py").graph.findings
    assert [(f.code, f.severity) for f in found] == [("unused-param", "info")]
    assert "`layer` was never called" in found[0].message


@pytest.mark.parametrize(
    "body",
    [
        "w.data = w.data - 0.1 * w.grad.data\n",
        "with torch.no_grad():\n    w -= 0.1 * w.grad\n",
        "opt.step()\n",
        "print(loss.item(), loss.detach().numpy(), w.data)\nopt.step()\n",
    ],
    ids=["data", "no_grad", "optimizer", "logging"],
)
def test_correct_updates_and_logging_are_never_cuts(tmp_path: Path, body: str) -> None:
    script = tmp_path / "update.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "opt = torch.optim.SGD([w], lr=0.1)\n"
        "for step in range(3):\n"
        "    loss = ((w * 3.0 - 1.5) ** 2).sum()\n"
        "    loss.backward()\n"
        + "".join("    " + line + "\n" for line in body.splitlines())
        + "    w.grad = None\n",
        encoding="utf-8",
    )
    assert run(script).graph.findings == ()


def test_item_turned_into_a_new_leaf_is_a_cut(tmp_path: Path) -> None:
    script = tmp_path / "item.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([1.5, 2.5], requires_grad=True)\n"
        "value = (w * 1.25).sum()\n"
        "loss = torch.tensor(value.item(), requires_grad=True) * 2.0\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    cut = next(f for f in found if f.code == "cut")
    assert cut.line == 4 and "`.item()`" in cut.message
    assert any(f.code == "unused-param" and "`w`" in f.message for f in found)


def test_no_grad_result_feeding_the_loss_is_a_cut(tmp_path: Path) -> None:
    script = tmp_path / "nograd.py"
    script.write_text(
        "import torch\n"
        "w1 = torch.tensor([1.5, 2.5], requires_grad=True)\n"
        "w2 = torch.tensor([0.5, 0.25], requires_grad=True)\n"
        "with torch.no_grad():\n"
        "    h = torch.tanh(w1 * 2.0)\n"
        "h2 = h + 1.0\n"
        "loss = (h2 * w2).sum()\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    cut = next(f for f in found if f.code == "cut")
    assert cut.line == 5 and "torch.no_grad()" in cut.message


def test_broadcast_finding_gives_both_shapes() -> None:
    f = run(PITFALLS / "loss_broadcast.py").graph.findings[0]
    assert "`pred` of shape [8, 1]" in f.message and "to [8, 8]" in f.message
    assert "64 differences instead of 8" in f.message


def test_torch_warning_keeps_pytorchs_words_and_line() -> None:
    f = run(PITFALLS / "torch_warning.py").graph.findings[0]
    assert f.message.startswith("Warned at line 15 (UserWarning): The .grad attribute")


def test_loop_nonfinite_names_the_first_call_and_the_forward() -> None:
    f = _main(run(PITFALLS / "loop_nonfinite.py").graph.findings, "loop_nonfinite.py")
    assert "backward call 2 at line 13" in f.message
    assert "the forward pass produced it" in f.message


def test_a_loss_non_finite_from_the_first_call_blames_no_earlier_update(tmp_path: Path) -> None:
    script = tmp_path / "inf_from_start.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([2.0, 3.0], requires_grad=True)\n"
        "for step in range(3):\n"
        "    loss = (w * 1e38).pow(2).sum()\n"
        "    loss.backward()\n"
        "    with torch.no_grad():\n"
        "        w -= 0.1 * w.grad\n"
        "        w.grad.zero_()\n",
        encoding="utf-8",
    )
    f = next(f for f in run(script).graph.findings if f.code == "loop-nonfinite")
    assert f.message.startswith("The loss is non-finite from the first backward call at line 5")
    assert "from the initial values" in f.message and "earlier update" not in f.message
    (tmp_path / "nan_leaf.py").write_text(
        "import torch\n"
        "b = torch.tensor([float('nan'), 1.0], requires_grad=True)\n"
        "for step in range(2):\n"
        "    loss = torch.nan_to_num(b * 2.0).sum()\n"
        "    loss.backward()\n",
        encoding="utf-8",
    )
    found = run(tmp_path / "nan_leaf.py").graph.findings
    f = next(f for f in found if f.code == "loop-nonfinite")
    assert f.message.startswith("From the first backward call at line 5, `b` itself is non-finite")
    assert "it was so from the start" in f.message


def test_gradient_turning_nan_in_a_loop_blames_the_backward(tmp_path: Path) -> None:
    script = tmp_path / "nan_backward.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([4.0, 1.0], requires_grad=True)\n"
        "for step in range(3):\n"
        "    x = w * (1.0 - step)\n"
        "    loss = torch.sqrt(x * x).sum() * 0.0\n"
        "    loss.backward()\n"
        "    w.data -= 0.1 * w.grad\n"
        "    w.grad = None\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    f = next(f for f in found if f.code == "loop-nonfinite")
    assert "backward call 2 at line 6" in f.message and "backward pass produced it" in f.message


def test_divergence_blames_the_learning_rate() -> None:
    f = run(PITFALLS / "loss_diverges.py").graph.findings[0]
    assert "from 30 to 2.3e+19 (call 12), 18 orders of magnitude up" in f.message
    assert "learning rate" in f.message


def test_loss_going_to_inf_is_reported_twice_over(tmp_path: Path) -> None:
    """The issue's loop: the loss goes to inf and `w.grad` to 1e36; no longer "no findings"."""
    script = tmp_path / "to_inf.py"
    script.write_text(
        "import torch\n"
        "x = torch.tensor([1.0, 2.0, 3.0, 4.0])\n"
        "w = torch.zeros(1, requires_grad=True)\n"
        "for step in range(60):\n"
        "    loss = ((w * x - 2 * x) ** 2).mean()\n"
        "    loss.backward()\n"
        "    with torch.no_grad():\n"
        "        w -= 0.5 * w.grad\n"
        "    w.grad = None\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    codes = {f.code for f in found}
    assert {"loop-nonfinite", "loss-diverges"} <= codes
    assert has_errors(found)


def test_frozen_parameters_give_each_its_own_gradient() -> None:
    f = run(PITFALLS / "params_frozen.py").graph.findings[0]
    assert "`model.bias` unchanged from call 1, gradient norm 0.0822" in f.message
    assert "`model.weight` unchanged from call 1, gradient norm 5.56" in f.message


def test_a_skipped_step_with_an_inf_gradient_is_not_a_loop_error(tmp_path: Path) -> None:
    """GradScaler's way: one call's gradient is inf, the update is skipped, the loop goes on."""
    script = tmp_path / "skipped.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "for step in range(4):\n"
        "    loss = (w * w).sum()\n"
        "    if step == 1:\n"
        "        loss = loss + torch.sqrt(w - w.detach()).sum()\n"
        "    loss.backward()\n"
        "    with torch.no_grad():\n"
        "        if torch.isfinite(w.grad).all():\n"
        "            w -= 0.01 * w.grad\n"
        "    w.grad = None\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    assert "loop-nonfinite" not in {f.code for f in found}


def test_graph_grows_names_the_update_not_the_loss_line() -> None:
    """With --call 3 the loss line holds more ops than the two updates: still, the finding
    names the update `w = w - lr * w.grad`, not the line that computes this step's loss."""
    path = ROOT / "samples/pitfalls/graph_grows.py"
    found = with_findings(capture_script(path, [], CaptureOptions(call=3))).graph.findings
    grows = next(f for f in found if f.code == "graph-grows")
    assert grows.line == 17 and "`w` is updated" in grows.message


def test_pytorchs_own_no_grad_in_spectral_norm_is_not_a_cut(tmp_path: Path) -> None:
    """Spectral norm's power iteration runs under PyTorch's own `@torch.no_grad()`: its vectors
    are constants by design, not a cut of the user's."""
    script = tmp_path / "spectral.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "from torch.nn.utils import parametrizations as P\n"
        "torch.manual_seed(0)\n"
        "net = nn.Sequential(P.spectral_norm(nn.Linear(4, 8)), nn.ReLU(),\n"
        "                    P.weight_norm(nn.Linear(8, 1)))\n"
        "opt = torch.optim.SGD(net.parameters(), lr=0.1)\n"
        "x, y = torch.randn(16, 4), torch.randn(16, 1)\n"
        "for step in range(3):\n"
        "    opt.zero_grad()\n"
        "    loss = ((net(x) - y) ** 2).mean()\n"
        "    loss.backward()\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    assert run(script).graph.findings == ()


def test_the_users_own_no_grad_decorator_still_cuts(tmp_path: Path) -> None:
    script = tmp_path / "decorated.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "@torch.no_grad()\n"
        "def scaled(t):\n"
        "    return t * 3.0\n"
        "loss = (scaled(w) * w).sum()\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    cut = next(f for f in run(script).graph.findings if f.code == "cut")
    assert cut.line == 5 and "torch.no_grad()" in cut.message


def test_a_stop_gradient_is_an_info_not_a_lost_gradient(tmp_path: Path) -> None:
    """VQ-VAE's straight-through estimator: its source still gets the gradient by another path,
    so nothing is cut off; an `info`. Its two losses with a detached target (`mse_loss(q,
    z.detach())`) are how a loss's target is written, and no finding at all."""
    script = tmp_path / "vq.py"
    script.write_text(
        "import torch\n"
        "import torch.nn.functional as F\n"
        "from torch import nn\n"
        "torch.manual_seed(0)\n"
        "enc, book, dec = nn.Linear(8, 4), nn.Embedding(16, 4), nn.Linear(4, 8)\n"
        "opt = torch.optim.Adam([*enc.parameters(), *book.parameters(), *dec.parameters()])\n"
        "x = torch.randn(32, 8)\n"
        "for step in range(2):\n"
        "    opt.zero_grad()\n"
        "    z = enc(x)\n"
        "    q = book(torch.cdist(z, book.weight).argmin(dim=1))\n"
        "    q_st = z + (q - z).detach()\n"
        "    rec = F.mse_loss(dec(q_st), x)\n"
        "    loss = rec + F.mse_loss(q, z.detach()) + F.mse_loss(z, q.detach())\n"
        "    loss.backward()\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    assert [(f.code, f.severity, f.line) for f in found] == [("cut", "info", 12)]
    assert "stops the gradient on one path" in found[0].message


def test_straight_through_rounding_is_a_stop_gradient(tmp_path: Path) -> None:
    """`w + (w.round() - w).detach()`: the detached value was made from `w.round()`, an op the
    gradient does not reach, and from `w`, which still gets its gradient through `w +`. Two levels
    up, everything it was made from is reached: an info, not "no gradient flows back"."""
    script = tmp_path / "ste.py"
    script.write_text(
        "import torch\n"
        "w = torch.randn(5, requires_grad=True)\n"
        "x = torch.randn(10, 5)\n"
        "wq = w + (w.round() - w).detach()\n"
        "loss = (x @ wq).pow(2).mean()\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    [cut] = [f for f in run(script).graph.findings if f.code == "cut"]
    assert (cut.severity, cut.line) == ("info", 4)
    assert "stops the gradient on one path" in cut.message


def test_a_detach_that_leaves_a_layer_without_gradient_is_still_a_warning(tmp_path: Path) -> None:
    script = tmp_path / "half.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "enc, head = nn.Linear(4, 4), nn.Linear(4, 1)\n"
        "x = torch.randn(8, 4)\n"
        "h = enc(x)\n"
        "loss = head(torch.tanh(h).detach()).sum() + enc.bias.sum()\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    cut = next(f for f in run(script).graph.findings if f.code == "cut")
    assert cut.severity == "warning" and cut.line == 6


def test_a_gradient_penalty_by_autograd_grad_adds_nothing_to_grad(tmp_path: Path) -> None:
    """WGAN-GP: the penalty's `torch.autograd.grad` runs while D's `.grad` still holds the last
    step's gradient, but it adds nothing to `.grad`: no `grad-accumulates`."""
    script = tmp_path / "wgan_gp.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "torch.manual_seed(0)\n"
        "G, D = nn.Linear(4, 2), nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))\n"
        "opt_g = torch.optim.Adam(G.parameters(), lr=1e-4)\n"
        "opt_d = torch.optim.Adam(D.parameters(), lr=1e-4)\n"
        "def penalty(real, fake):\n"
        "    a = torch.rand(real.size(0), 1)\n"
        "    mixed = (a * real + (1 - a) * fake).requires_grad_(True)\n"
        "    s = D(mixed)\n"
        "    g = torch.autograd.grad(s, mixed, torch.ones_like(s), create_graph=True)[0]\n"
        "    return ((g.norm(2, dim=1) - 1) ** 2).mean()\n"
        "for step in range(3):\n"
        "    real = torch.randn(16, 2) + 3\n"
        "    for _ in range(2):\n"
        "        fake = G(torch.randn(16, 4)).detach()\n"
        "        d_loss = D(fake).mean() - D(real).mean() + 10 * penalty(real, fake)\n"
        "        opt_d.zero_grad()\n"
        "        d_loss.backward()\n"
        "        opt_d.step()\n"
        "    g_loss = -D(G(torch.randn(16, 4))).mean()\n"
        "    opt_g.zero_grad()\n"
        "    g_loss.backward()\n"
        "    opt_g.step()\n",
        encoding="utf-8",
    )
    assert run(script).graph.findings == ()


def test_a_layer_used_in_other_steps_only_is_an_info(tmp_path: Path) -> None:
    """LayerDrop / expert routing: a block skipped in the call shown but trained in the others is
    not "a layer defined and never applied"."""
    script = tmp_path / "layerdrop.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))\n"
        "opt = torch.optim.SGD(blocks.parameters(), lr=0.1)\n"
        "for step in range(3):\n"
        "    h = torch.randn(2, 4)\n"
        "    for k, block in enumerate(blocks):\n"
        "        if k != step:\n"
        "            h = h + block(h)\n"
        "    opt.zero_grad()\n"
        "    h.pow(2).mean().backward()\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    (f,) = run(script).graph.findings
    assert (f.code, f.severity) == ("unused-param", "info")
    assert "`blocks.2.weight` and `blocks.2.bias`" in f.message and "did in another" in f.message


def test_two_models_with_losses_of_their_own_are_not_unused(tmp_path: Path) -> None:
    """PyTorch's visualizing-gradients tutorial: two models trained side by side, each with its
    own loss, backward line and optimizer. The call shown is the second model's: the first one's
    parameters are not "used in some calls only", they belong to the other line."""
    script = tmp_path / "side_by_side.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "a, b = nn.Linear(4, 2), nn.Linear(4, 2)\n"
        "opt_a = torch.optim.SGD(a.parameters(), lr=0.1)\n"
        "opt_b = torch.optim.SGD(b.parameters(), lr=0.1)\n"
        "x = torch.randn(8, 4)\n"
        "for step in range(3):\n"
        "    opt_a.zero_grad()\n"
        "    opt_b.zero_grad()\n"
        "    loss_a = a(x).pow(2).mean()\n"
        "    loss_b = b(x).pow(2).mean()\n"
        "    loss_a.backward()\n"
        "    loss_b.backward()\n"
        "    opt_a.step()\n"
        "    opt_b.step()\n",
        encoding="utf-8",
    )
    assert run(script).graph.findings == ()


def test_a_whole_model_skipped_at_the_same_line_is_still_an_info(tmp_path: Path) -> None:
    """An expert chosen per step at one backward line: the one not chosen in the call shown
    was trained there in other steps, which is worth saying."""
    script = tmp_path / "experts.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "left, right = nn.Linear(4, 4), nn.Linear(4, 4)\n"
        "opt = torch.optim.SGD([*left.parameters(), *right.parameters()], lr=0.1)\n"
        "for step in range(3):\n"
        "    expert = left if step % 2 else right\n"
        "    opt.zero_grad()\n"
        "    expert(torch.randn(2, 4)).pow(2).mean().backward()\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    (f,) = run(script).graph.findings
    assert (f.code, f.severity) == ("unused-param", "info")
    assert "`left.weight` and `left.bias`" in f.message and "did in another" in f.message


@pytest.mark.parametrize("kept", ["loss", "loss.item()"])
def test_a_list_of_losses_keeps_their_graphs(kept: str, tmp_path: Path) -> None:
    """`losses.append(loss)`: the lesson's `total += l` in a list; `loss.item()` is fine."""
    script = tmp_path / "losses.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([1.0, -1.0], requires_grad=True)\n"
        "losses = []\n"
        "for step in range(4):\n"
        "    loss = ((w * 2.0 - 1.0) ** 2).sum()\n"
        "    loss.backward()\n"
        "    with torch.no_grad():\n"
        "        w -= 0.1 * w.grad\n"
        "        w.grad.zero_()\n"
        f"    losses.append({kept})\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    if kept == "loss.item()":
        assert found == ()
        return
    (f,) = found
    assert (f.code, f.severity) == ("graph-retained", "warning")
    assert f.message.startswith("`losses` holds 4 tensors that were each the root of a backward")
    assert "`losses.append(loss.item())`" in (f.hint or "")
    assert f.line == 10  # the line that appends


@pytest.mark.parametrize("kept", ["loss", "loss.item()"])
def test_a_history_dict_and_a_trainers_attributes_keep_their_graphs(
    kept: str, tmp_path: Path
) -> None:
    """Where real scripts keep their history: `history["loss"].append(loss)` and a trainer's
    `self.losses` / `self.running += loss`; numbers (`loss.item()`) are fine."""
    script = tmp_path / "trainer.py"
    script.write_text(
        "import torch\n"
        "class Trainer:\n"
        "    def __init__(self):\n"
        "        self.w = torch.tensor([1.0, -1.0], requires_grad=True)\n"
        "        self.losses, self.running = [], 0.0\n"
        "        self.history = {'loss': []}\n"
        "    def step(self):\n"
        "        loss = ((self.w * 2.0 - 1.0) ** 2).sum()\n"
        "        loss.backward()\n"
        "        with torch.no_grad():\n"
        "            self.w -= 0.1 * self.w.grad\n"
        "            self.w.grad.zero_()\n"
        f"        self.losses.append({kept})\n"
        f"        self.history['loss'].append({kept})\n"
        f"        self.running += {kept}\n"
        "trainer = Trainer()\n"
        "for _ in range(4):\n"
        "    trainer.step()\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    if kept == "loss.item()":
        assert found == ()
        return
    by_start = {f.message.split(" ")[0]: f for f in found if f.code == "graph-retained"}
    assert sorted(by_start) == [
        '`trainer.history["loss"]`',
        "`trainer.losses`",
        "`trainer.running`",
    ]
    running = by_start["`trainer.running`"]
    assert running.line == 15
    assert by_start["`trainer.losses`"].line == 13  # `self.losses.append(loss)`
    assert by_start['`trainer.history["loss"]`'].line == 14
    assert "`self.running += loss.item()`" in (running.hint or "")
    assert "backward freed their saved tensors, the nodes stay" in running.message


def test_a_script_whose_training_is_in_functions_gets_the_same_checks(tmp_path: Path) -> None:
    """`def main(): ...`: the model, the list of losses and the running total are locals of
    functions that have returned when the checks run; the checks still see them."""
    script = tmp_path / "main_style.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc, self.spare = nn.Linear(4, 1), nn.Linear(4, 1)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x)\n"
        "def train(model, opt):\n"
        "    losses, total = [], 0.0\n"
        "    for _ in range(4):\n"
        "        loss = model(torch.randn(5, 4)).pow(2).mean()\n"
        "        opt.zero_grad()\n"
        "        loss.backward()\n"
        "        opt.step()\n"
        "        losses.append(loss)\n"
        "        total += loss\n"
        "    return total.item()\n"
        "def main():\n"
        "    model = Net()\n"
        "    train(model, torch.optim.SGD(model.parameters(), lr=0.1))\n"
        "if __name__ == '__main__':\n"
        "    main()\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    assert sorted(f.code for f in found) == ["graph-retained", "graph-retained", "unused-param"]
    unused = next(f for f in found if f.code == "unused-param")
    assert "`model.spare.weight` and `model.spare.bias`" in unused.message
    kept = sorted(f.message.split(" ")[0] for f in found if f.code == "graph-retained")
    assert kept == ["`losses`", "`total`"]


def test_a_function_that_never_calls_backward_still_gives_its_loss_graph(tmp_path: Path) -> None:
    """The lesson's forward pass inside `def main()`: its `loss` is gone at the end of the run
    unless gradviz keeps the function's variables; its names label the graph."""
    script = tmp_path / "nobackward.py"
    script.write_text(
        "import torch\n"
        "def main():\n"
        "    x = torch.tensor(2.0)\n"
        "    w = torch.tensor(1.0, requires_grad=True)\n"
        "    loss = (x * w - 4.0) ** 2\n"
        "    print(loss.item())\n"
        "if __name__ == '__main__':\n"
        "    main()\n",
        encoding="utf-8",
    )
    graph = run(script).graph
    assert graph.grad_source == "gradviz"
    root = graph.nodes[graph.root]
    assert root.names == ("loss",) and root.value is not None and root.value.data == 4.0
    [leaf] = graph.leaves
    assert leaf.names == ("w",) and leaf.grad is not None and leaf.grad.data == -8.0


@pytest.mark.parametrize("kind", ["prototype", "not used"])
def test_pytorchs_warning_about_its_own_nested_tensors_is_an_info(
    kind: str, tmp_path: Path
) -> None:
    """`nn.TransformerEncoder`'s fast path (eval, padding mask) warns that nested tensors are a
    prototype, and, made from layers without `batch_first`, that it will not use them:
    PyTorch's own business, which the script cannot act on."""
    first = "True" if kind == "prototype" else "False"
    evaluated = "enc.eval()\nwith torch.no_grad():\n    enc(x, src_key_padding_mask=pad)\n"
    warned = _torch_warning(
        tmp_path,
        "import torch\n"
        "from torch import nn\n"
        f"layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first={first})\n"
        "enc = nn.TransformerEncoder(layer, 1)\n"
        f"x = torch.randn({'2, 5' if kind == 'prototype' else '5, 2'}, 8)\n"
        "pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])\n"
        "enc(x, src_key_padding_mask=pad).pow(2).mean().backward()\n"
        + (evaluated if kind == "prototype" else ""),
    )
    assert warned.severity == "info" and warned.line == (10 if kind == "prototype" else 4)
    assert "enable_nested_tensor=False" in (warned.hint or "")


def test_a_reentrant_checkpoint_fed_the_data_names_use_reentrant_false(tmp_path: Path) -> None:
    """`checkpoint(block, x, use_reentrant=True)` on the data: the block's parameters get no
    gradient and PyTorch warns "Gradients will be None"; the hint says what to change. The full
    backward hook of the head, whose input now requires no grad, only warns that `grad_input`
    is None: an info."""
    script = tmp_path / "ck.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "from torch.utils.checkpoint import checkpoint\n"
        "block, head = nn.Sequential(nn.Linear(4, 4), nn.GELU()), nn.Linear(4, 1)\n"
        "head.register_full_backward_hook(lambda m, gi, go: None)\n"
        "h = checkpoint(block, torch.randn(8, 4), use_reentrant=True)\n"
        "head(h).pow(2).mean().backward()\n",
        encoding="utf-8",
    )
    found = [f for f in run(script).graph.findings if f.code == "torch-warning"]
    assert [(f.severity, f.line) for f in found] == [("warning", 6), ("info", 7)]
    assert "Pass `use_reentrant=False`" in (found[0].hint or "")
    assert "read `grad_output` in the hook" in (found[1].hint or "")


def test_pytorchs_autograd_tutorials_get_no_false_alarm(tmp_path: Path) -> None:
    """The blitz tutorial shows that `b = x + z` requires grad after its backward call; the
    autograd tutorial backwards one graph three times to show accumulation. Neither is a
    parameter left out nor a frozen one; the accumulation is an info."""
    script = tmp_path / "tutorial.py"
    script.write_text(
        "import torch\n"
        "a = torch.tensor([2., 3.], requires_grad=True)\n"
        "Q = 3 * a**3\n"
        "Q.backward(gradient=torch.tensor([1., 1.]))\n"
        "z = torch.rand((5, 5), requires_grad=True)\n"
        "b = torch.rand(5, 5) + z\n"
        "inp = torch.eye(4, 5, requires_grad=True)\n"
        "out = (inp + 1).pow(2).t()\n"
        "out.backward(torch.ones_like(out), retain_graph=True)\n"
        "out.backward(torch.ones_like(out), retain_graph=True)\n"
        "inp.grad.zero_()\n"
        "out.backward(torch.ones_like(out), retain_graph=True)\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    assert [(f.code, f.severity) for f in found] == [("grad-accumulates", "info")]


@pytest.mark.parametrize(
    "copied", ["[p.clone().detach().requires_grad_() for p in model.parameters()]",
               "copy.deepcopy(model).parameters()"]
)  # fmt: skip
def test_an_optimizer_given_copies_of_the_parameters_is_told_so(
    copied: str, tmp_path: Path
) -> None:
    """`SGD([p.clone() ...])` or a deep copy of the model: the optimizer steps tensors the loss
    never uses. It was blamed on a layer made again in `forward`."""
    found = _coded(
        tmp_path,
        "import copy\n"
        "import torch\n"
        "model = torch.nn.Linear(3, 1)\n"
        f"opt = torch.optim.SGD({copied}, lr=0.1)\n"
        "for _ in range(3):\n"
        "    loss = model(torch.randn(8, 3)).pow(2).mean()\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n",
        "unused-param",
    )
    [f] = found
    assert f.line == 9 and "They are copies of `model.weight` and `model.bias`" in f.message
    assert "not copies" in (f.hint or "") and "forward" not in f.message


@pytest.mark.parametrize("case", ["layer made in forward", "another model", "right"])
def test_an_optimizer_whose_parameters_no_backward_reaches_is_named(
    case: str, tmp_path: Path
) -> None:
    """`self.fc = nn.Linear(...)` in `forward` (the optimizer keeps the first layer), or an
    optimizer made from another model: it steps, and nothing it updates ever gets a gradient."""
    forward = "        self.fc = nn.Linear(4, 1)\n" if case == "layer made in forward" else ""
    given = "other" if case == "another model" else "model"
    script = tmp_path / "opt.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(4, 1)\n"
        "    def forward(self, x):\n"
        f"{forward}"
        "        return self.fc(x)\n"
        "model, other = Net(), Net()\n"
        f"opt = torch.optim.SGD({given}.parameters(), lr=0.1)\n"
        "for _ in range(4):\n"
        "    loss = model(torch.randn(8, 4)).pow(2).mean()\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    found = [f for f in run(script).graph.findings if f.code == "unused-param"]
    if case == "right":
        assert found == []
        return
    [f] = found
    assert f.severity == "warning" and f.line == 16 - (case != "layer made in forward")
    assert "but no backward call reached" in f.message and "the update does nothing" in f.message
    if case == "another model":
        assert "(`other.fc.weight` and `other.fc.bias`)" in f.message
    else:
        assert "a layer made again in `forward`" in f.message


@pytest.mark.parametrize(
    "held",
    ["list", "dict", "ModuleList", "ordering list", "teacher", "own optimizers", "by hand"],
)
def test_layers_kept_in_a_plain_list_or_dict_are_named_with_the_fix(
    held: str, tmp_path: Path
) -> None:
    """`self.hidden = [nn.Linear(...), ...]` registers nothing: the optimizer made from
    `model.parameters()` never updates those layers and `zero_grad()` never clears them. The
    finding names the container, the line that makes it and the fix; their parameters get
    names (`model.hidden[0].weight`), and no frozen or accumulating leaf is reported on top.
    A plain list of registered layers (an order), of a frozen teacher used under no_grad, or
    of layers that train anyway (each with its own optimizer, as in a forward-forward network,
    or updated by a loop over the layers) is fine."""
    make = {
        "dict": '{"a": nn.Linear(4, 8), "b": nn.Linear(8, 8)}',
        "ModuleList": "nn.ModuleList([nn.Linear(4, 8), nn.Linear(8, 8)])",
    }.get(held, "[nn.Linear(4, 8), nn.Linear(8, 8)]")
    also = "self.order = nn.ModuleList(self.hidden)" if held == "ordering list" else "pass"
    layers = "model.hidden.values()" if held == "dict" else "model.hidden"
    script = tmp_path / "plain.py"
    script.write_text(
        "import contextlib\n"
        "import torch\n"
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        f"        self.hidden = {make}\n"
        f"        {also}\n"
        "        self.out = nn.Linear(8, 1)\n"
        "    def forward(self, x):\n"
        f"        with {'torch.no_grad()' if held == 'teacher' else 'contextlib.nullcontext()'}:\n"
        f"            for layer in {layers.replace('model.', 'self.')}:\n"
        "                x = torch.relu(layer(x))\n"
        "        return self.out(x)\n"
        "torch.manual_seed(0)\n"
        "x, y = torch.randn(32, 4), torch.randn(32, 1)\n"
        "model = Net()\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.05)\n"
        f"own = [torch.optim.SGD(l.parameters(), lr=0.05) for l in {layers}]\n"
        "for step in range(8):\n"
        "    opt.zero_grad()\n"
        "    loss = nn.functional.mse_loss(model(x), y)\n"
        "    loss.backward()\n"
        "    opt.step()\n"
        f"    for o in own if {held == 'own optimizers'} else ():\n"
        "        o.step()\n"
        "        o.zero_grad()\n"
        f"    for p in [q for l in {layers} for q in l.parameters()] * {held == 'by hand'}:\n"
        "        p.data -= 0.05 * p.grad\n"
        "        p.grad = None\n",
        encoding="utf-8",
    )
    captured = run(script)
    found = [(f.code, f.severity) for f in captured.graph.findings]
    if held not in ("list", "dict"):
        assert found == []
        return
    assert found == [("params-frozen", "warning")]
    [f] = captured.graph.findings
    kind, fix = ("list", "nn.ModuleList([...])") if held == "list" else ("dict", "nn.ModuleDict")
    assert f.line == 7 and f.message.startswith(f"`model.hidden` is a plain {kind}, so `Net`")
    assert "Their 4 parameters get gradients but are not in `model.parameters()`" in f.message
    assert fix in (f.hint or "")
    label = "model.hidden[0].weight" if held == "list" else "model.hidden['a'].weight"
    assert any(leaf.names == (label,) for leaf in captured.graph.leaves)


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        ("F.cross_entropy(torch.softmax(h, 1), y)", "`cross_entropy` at line 6 is given the"),
        ("F.nll_loss(torch.softmax(h, 1), y)", "it is given the output of `softmax`"),
        ("F.nll_loss(h, y)", "it is given raw scores (#1 AddmmBackward0 `h` at line 5)"),
        (
            "F.binary_cross_entropy_with_logits(torch.sigmoid(h[:, 0]), (y == 0).float())",
            "it applies `sigmoid` itself",
        ),
        (  # normalised over the batch, not the classes
            "F.nll_loss(torch.log(torch.softmax(h, dim=0)), y)",
            "the `softmax` that made it (#2 SoftmaxBackward0 at line 6) normalises over dim 0, "
            "the batch",
        ),
        ("F.nll_loss(F.log_softmax(h, dim=-2), y)", "normalises over dim 0, the batch"),
        ("F.nll_loss(torch.log(torch.softmax(h, dim=1)), y)", None),  # over the classes: right
        ("F.nll_loss(F.log_softmax(h[0], dim=0), y[0])", None),  # one sample: dim 0 is classes
        ("F.cross_entropy(h, y)", None),  # the logits: right
        ("F.nll_loss(F.log_softmax(h, 1).view(4, 3), y)", None),  # log-probabilities, reshaped
        # a language model's (L, N, C) scores over their last dim, flattened: right
        ("F.nll_loss(F.log_softmax(h.view(2, 2, 3), dim=-1).view(-1, 3), y)", None),
        # (N, L, C) into the (N, C, L) that `nll_loss` reads: right
        ("F.nll_loss(F.log_softmax(h.view(2, 2, 3), -1).transpose(1, 2), y.view(2, 2))", None),
        ("F.nll_loss(F.log_softmax(h.view(2, 2, 3), -1).permute(0, 2, 1), y.view(2, 2))", None),
        (
            "F.nll_loss(F.log_softmax(h.view(2, 2, 3), dim=0).view(-1, 3), y)",
            "reads its classes from dim 2 of the 2×2×3 output of the `log_softmax` that made it "
            "(#2 LogSoftmaxBackward0 at line 6), but that `log_softmax` normalises over dim 0, "
            "not the classes",
        ),
        (
            "F.nll_loss(F.log_softmax(h.view(2, 2, 3), 1).transpose(1, 2), y.view(2, 2))",
            "normalises over dim 1, not the classes",
        ),
        ("F.binary_cross_entropy(torch.sigmoid(h[:, 0]), (y == 0).float())", None),
    ],
)
def test_a_loss_given_what_it_computes_itself_is_named(
    loss: str, expected: str | None, tmp_path: Path
) -> None:
    script = tmp_path / "losses.py"
    script.write_text(
        "import torch\n"
        "import torch.nn.functional as F\n"
        "torch.manual_seed(0)\n"
        "x, y = torch.randn(4, 2), torch.tensor([0, 2, 1, 0])\n"
        "h = torch.nn.Linear(2, 3)(x)\n"
        f"loss = {loss}\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    found = [f for f in run(script).graph.findings if f.code == "loss-input"]
    if expected is None:
        assert found == []
        return
    [f] = found
    assert f.line == 6 and expected in f.message


_MASKS = {  # the line that uses the mask -> the start of the finding's message (None: right)
    "mha(x, x, x, attn_mask=causal)[0]": "A 6×6 mask of 0s and 1s is given to an attention",
    "mha(x, x, x, attn_mask=causal, need_weights=False)[0]": "A 6×6 mask of 0s and 1s is given",
    "F.scaled_dot_product_attention(q, q, q, attn_mask=causal)": "A 6×6 mask of 0s and 1s is",
    # the decoder's math path adds the mask inside PyTorch: still an attention call's mask
    "nn.Transformer(8, 2, 1, 1, 16, batch_first=True)(x, x, tgt_mask=causal)": (
        "A 6×6 mask of 0s and 1s is given to an attention call"
    ),
    "torch.softmax((q @ k + causal) / 2.0, dim=-1)": "A 6×6 mask of 0s and 1s is added to the",
    "((q @ k) * causal.bool()).softmax(-1)": "A 6×6 mask of 0s and 1s multiplies the attention",
    "(q @ k).add_(causal).softmax(-1)": "A 6×6 mask of 0s and 1s is added to the attention",
    # right: a bool mask, 0/-inf, -inf fill, an additive mask of 0/-1e4, a mask after softmax
    "mha(x, x, x, attn_mask=causal == 0)[0]": None,
    "mha(x, x, x, attn_mask=nn.Transformer.generate_square_subsequent_mask(6))[0]": None,
    "F.scaled_dot_product_attention(q, q, q, attn_mask=causal.bool())": None,
    "F.scaled_dot_product_attention(q, q, q, is_causal=True)": None,
    "(q @ k).masked_fill(causal == 0, float('-inf')).softmax(-1)": None,
    "(q @ k + (1.0 - causal) * -10000.0).softmax(-1)": None,
    "(q @ k).softmax(-1) * causal": None,
    "(q @ k * causal).sum(-1)": None,  # no softmax: not attention scores
    "(q[0, 0] @ k[0, 0] + torch.eye(6).to_sparse()).softmax(-1)": None,  # sparse: not read
}


@pytest.mark.parametrize("use", list(_MASKS))
def test_an_attention_mask_of_zeros_and_ones_that_masks_nothing_is_named(
    use: str, tmp_path: Path
) -> None:
    """A float 0/1 mask is added to the scores by `nn.MultiheadAttention` (both of its paths)
    and `F.scaled_dot_product_attention`: it masks nothing. So does `scores + mask`, and
    `scores * mask` before a softmax. Bool masks, -inf masks and masks applied after the softmax
    are right."""
    found = _coded(
        tmp_path,
        "import torch\n"
        "import torch.nn.functional as F\n"
        "from torch import nn\n"
        "torch.manual_seed(0)\n"
        "x, q = torch.randn(2, 6, 8), torch.randn(2, 2, 6, 4, requires_grad=True)\n"
        "k, causal = q.transpose(-2, -1), torch.tril(torch.ones(6, 6))\n"
        "mha = nn.MultiheadAttention(8, 2, batch_first=True)\n"
        f"out = {use}\n"
        "out.pow(2).mean().backward()\n",
        "attention-mask",
    )
    expected = _MASKS[use]
    if expected is None:
        assert found == []
        return
    [f] = found
    assert f.line == 8 and f.severity == "warning" and f.message.startswith(expected)
    assert f.nodes and f.hint


def test_a_softmax_over_the_batch_is_named_not_a_frozen_bias(tmp_path: Path) -> None:
    """`F.softmax(logits, dim=0)` into `nll_loss` normalises each class over the samples; the
    last layer's bias then gets a gradient of float noise (1e-8) and never moves. The finding
    is the softmax's dimension, not a frozen bias: an update lost in float rounding is none."""
    script = tmp_path / "dim0.py"
    script.write_text(
        "import torch\n"
        "import torch.nn.functional as F\n"
        "torch.manual_seed(0)\n"
        "model = torch.nn.Linear(4, 3)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))\n"
        "for step in range(10):\n"
        "    probs = F.softmax(model(x), dim=0)\n"
        "    loss = F.nll_loss(torch.log(probs), y)\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    assert [(f.code, f.line) for f in found] == [("loss-input", 9)]
    assert "normalises over dim 0, the batch" in found[0].message


_CLIPS = {  # the body of a step -> whether the clipping is reported
    "zero(); clip(); loss = fwd(); loss.backward(); opt.step()": True,
    "zero(); loss = fwd(); clip(); loss.backward(); opt.step()": True,
    # the two halves of clip_grad_norm_, as big models call them
    "zero(); loss = fwd(); clip2(); loss.backward(); opt.step()": True,
    "zero(); loss = fwd(); loss.backward(); clip2(); opt.step()": False,
    "zero(); loss = fwd(); loss.backward(); clip(); opt.step()": False,
    # gradient accumulation: two backward calls, then clip, then step
    "zero(); fwd().backward(); fwd().backward(); clip(); opt.step()": False,
    # a GAN-like pair: only the other optimizer's parameters are clipped, after their backward
    "zero(); fwd().backward(); clip(); opt.step(); other.zero_grad(); "
    "aux().backward(); other.step()": False,
}


@pytest.mark.parametrize("body", list(_CLIPS))
def test_gradient_clipping_before_backward_is_named(body: str, tmp_path: Path) -> None:
    """`clip_grad_norm_` between `zero_grad()` and `backward()` clips nothing: the steps use
    unclipped gradients. Clipping after backward (also after accumulated backward calls) is
    right, and an optimizer whose parameters are never clipped is no one's business."""
    from torch.nn import utils

    before = (utils.clip_grad_norm_, utils.clip_grad.clip_grad_value_)
    found = _coded(
        tmp_path,
        "import torch\n"
        "from torch import nn\n"
        "torch.manual_seed(0)\n"
        "model, head = nn.Linear(4, 1), nn.Linear(4, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
        "other = torch.optim.SGD(head.parameters(), lr=0.01)\n"
        "x = torch.randn(8, 4)\n"
        "def fwd():\n"
        "    return model(x).pow(2).mean()\n"
        "def aux():\n"
        "    return head(x).pow(2).mean()\n"
        "def clip():\n"
        "    nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
        "def zero():\n"
        "    opt.zero_grad()\n"
        "def clip2():\n"
        "    grads = [p.grad for p in model.parameters() if p.grad is not None]\n"
        "    norm = nn.utils.get_total_norm(grads)\n"
        "    nn.utils.clip_grads_with_norm_(model.parameters(), 1.0, norm)\n"
        "for step in range(4):\n"
        f"    {body}\n",
        "grad-clip",
    )
    assert (utils.clip_grad_norm_, utils.clip_grad.clip_grad_value_) == before  # put back
    if not _CLIPS[body]:
        assert found == []
        return
    [f] = found
    assert f.line == (19 if "clip2" in body else 13)
    assert "the 4 optimizer steps after it used gradients no clipping" in f.message
    assert (f.hint or "").startswith("Clip between `loss.backward()` and `optimizer.step()`")


@pytest.mark.parametrize(
    "select",
    [
        "torch.where(x > 0, torch.sqrt(x), torch.zeros_like(x))",
        "torch.sqrt(x).masked_fill(x <= 0, 0.0)",
        "torch.where(x > 0, x**0.5, x)",
    ],
)
def test_a_nan_hidden_by_where_is_named_with_the_double_where(select: str, tmp_path: Path) -> None:
    """`torch.where(x > 0, sqrt(x), 0)`: the forward pass is finite, but backward runs through
    the dropped `sqrt(-1)` too, and 0 × NaN is NaN. The finding names the op and the `where`
    that hid its NaN, and the fix is the double `where`, not an epsilon."""
    [f] = _coded(
        tmp_path,
        "import torch\n"
        "x = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)\n"
        f"y = {select}\n"
        "y.sum().backward()\n",
        "grad-nan",
    )
    assert "made NaN/Inf at 1 element in the forward pass, which #1 " in f.message
    assert "`torch.sqrt(torch.where(x > 0, x, 1.0))`" in (f.hint or "")


_NO_GRAPH = {
    "x * w": "none of which requires grad: create the parameters with `requires_grad=True`",
    "x * w.detach()": "`.detach()` (or `.data`) at {name}:5 cut the graph on the way to it",
    "x * w.data": "`.detach()` (or `.data`) at {name}:5 cut the graph on the way to it",
    "torch.no_grad": "an op under `torch.no_grad()` at {name}:6 cut the graph on the way to it",
    # an accuracy given to backward: indices and comparisons carry no gradient
    "(x * w > 1.5).float()": "`gt`, whose result carries no gradient, at {name}:5 cut the graph",
}


@pytest.mark.parametrize("made", list(_NO_GRAPH))
def test_backward_without_a_graph_says_why(made: str, tmp_path: Path) -> None:
    """PyTorch's "element 0 of tensors does not require grad": the hint names the cut that made
    the loss a constant (or says that nothing requires grad), not just "fix your script"."""
    script = tmp_path / "nograd.py"
    grad = "" if made == "x * w" else ", requires_grad=True"
    forward = (
        "with torch.no_grad():\n    y_hat = x * w\n"
        if made == "torch.no_grad"
        else f"y_hat = {made}\n"
    )
    script.write_text(
        "import torch\n"
        "x = torch.tensor([1.0, 2.0])\n"
        f"w = torch.tensor(1.0{grad})\n"
        "y = torch.tensor([2.0, 4.0])\n"
        f"{forward}"
        "loss = ((y_hat - y) ** 2).mean()\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    with pytest.raises(ScriptError) as raised:
        run(script)
    assert "does not require grad and does not have a grad_fn" in raised.value.message
    assert _NO_GRAPH[made].format(name=script.name) in (raised.value.hint or "")
    if made.startswith("(x * w >"):
        assert "train on a differentiable loss such as" in (raised.value.hint or "")


@pytest.mark.parametrize("guarded", [False, True])
def test_an_update_that_makes_a_new_weight_is_named_with_the_in_place_fix(
    guarded: bool, tmp_path: Path
) -> None:
    """The lesson's update written as `w = w - 0.01 * w.grad`: with tracking on, the new `w` is
    no leaf (its `.grad` is None, the next update fails); under `no_grad`, the new `w` requires
    no grad (the next backward fails). Both say that the update line makes a new `w`, and give
    the in-place update."""
    update = "w = w - 0.01 * w.grad"
    body = (
        f"        with torch.no_grad():\n            {update}\n"
        if guarded
        else f"        {update}\n"
    )
    script = tmp_path / "update.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([1.0], requires_grad=True)\n"
        "for epoch in range(3):\n"
        "    for x, y in zip([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]):\n"
        "        l = (x * w - y) ** 2\n"
        "        l.backward()\n" + body,
        encoding="utf-8",
    )
    captured = run(script)
    assert captured.error is not None
    hint = captured.error.hint or ""
    if guarded:
        assert "does not have a grad_fn" in captured.error.message
        assert (
            "the update `w = ...` at update.py:8, under `torch.no_grad()`, made a new `w` that "
            "does not require grad" in hint
        )
        assert "`w -= 0.01 * w.grad` inside `torch.no_grad()`" in hint
        return
    [f] = [f for f in captured.graph.findings if f.code == "grad-none"]
    assert f.line == 7 and (f.hint or "").startswith("Line 7 is the update: it makes a new `w`")
    assert "`with torch.no_grad(): w -= 0.01 * w.grad`" in (f.hint or "")


def test_the_in_place_fix_keeps_the_scripts_own_step(tmp_path: Path) -> None:
    """`w = w - lr * w.grad  # a comment` with `lr = 0.1`: the fix quotes `lr * w.grad`, not the
    lesson's `0.01 * w.grad`."""
    script = tmp_path / "update.py"
    script.write_text(
        "import torch\n"
        "w = torch.zeros(3, requires_grad=True)\n"
        "lr = 0.1\n"
        "for i in range(3):\n"
        "    loss = ((w - 1.0) ** 2).sum()\n"
        "    loss.backward()\n"
        "    w = w - lr * w.grad  # the update\n",
        encoding="utf-8",
    )
    captured = run(script)
    [f] = [f for f in captured.graph.findings if f.code == "grad-none"]
    assert "`with torch.no_grad(): w -= lr * w.grad`, then `w.grad.zero_()`" in (f.hint or "")
    assert "0.01" not in (f.hint or "")


def test_a_mask_from_a_comparison_is_no_cut(tmp_path: Path) -> None:
    """`torch.where(h > 0, h, 0.1 * h)` and an accuracy that is only logged: no finding."""
    script = tmp_path / "mask.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([1.0, -2.0], requires_grad=True)\n"
        "h = w * torch.tensor([3.0, 1.0])\n"
        "h = torch.where(h > 0, h, 0.1 * h)\n"
        "acc = (h.argmax() == 0).float()\n"
        "loss = h.pow(2).sum()\n"
        "loss.backward()\n"
        "print(acc.item())\n",
        encoding="utf-8",
    )
    assert run(script).graph.findings == ()


def test_the_learners_autograd_errors_get_a_hint_that_fixes_them(tmp_path: Path) -> None:
    script = tmp_path / "update.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor(1.0, requires_grad=True)\n"
        "loss = (w * 3.0 - 2.0) ** 2\n"
        "loss.backward()\n"
        "w -= 0.01 * w.grad\n",
        encoding="utf-8",
    )
    error = run(script).error
    assert error is not None and "in-place operation" in error.message
    assert (error.hint or "").startswith("Update a parameter under `torch.no_grad()`")
    script.write_text("import torch\nw = torch.ones(2, requires_grad=True)\n(w * 2).backward()\n")
    error = run(script).error
    assert error is not None
    assert (error.hint or "").startswith("`backward()` without arguments needs a loss of one")
    twice = run(PITFALLS / "backward_twice.py").error
    assert twice is not None and "`retain_graph=True`" in (twice.hint or "")
    stale = run(PITFALLS / "inplace_saved.py").error
    assert stale is not None and "`gradviz doctor` names the in-place op" in (stale.hint or "")


def test_a_module_run_only_under_no_grad_is_not_an_unused_parameter(tmp_path: Path) -> None:
    """An inference model run under `torch.no_grad()` next to the one trained: its parameters
    are not meant to get a gradient; a layer that the trained model never applies still is."""
    script = tmp_path / "infer.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc, self.spare = nn.Linear(3, 1), nn.Linear(3, 1)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x)\n"
        "net, teacher = Net(), nn.Linear(3, 1)\n"
        "with torch.no_grad():\n"
        "    target = teacher(torch.randn(4, 3))\n"
        "loss = ((net(torch.randn(4, 3)) - target) ** 2).mean()\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    found = [f for f in run(script).graph.findings if f.code == "unused-param"]
    assert [(f.severity, f.message.split(":")[0]) for f in found] == [
        ("warning", "2 parameters of `net` (Net) get no gradient")
    ]


def test_a_grad_that_is_none_gets_a_hint_naming_it(tmp_path: Path) -> None:
    """The lesson's update on a parameter the loss does not use: `b.grad.data` on None."""
    script = tmp_path / "unused_b.py"
    script.write_text(
        "import torch\n"
        "x, y = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])\n"
        "w = torch.tensor(1.0, requires_grad=True)\n"
        "b = torch.tensor(0.0, requires_grad=True)\n"
        "loss = ((x * w - y) ** 2).mean()\n"
        "loss.backward()\n"
        "w.data = w.data - 0.01 * w.grad.data\n"
        "b.data = b.data - 0.01 * b.grad.data\n",
        encoding="utf-8",
    )
    error = run(script).error
    assert error is not None and "'NoneType' object has no attribute 'data'" in error.message
    assert (error.hint or "").startswith("`b.grad` is None here: it stays None until a backward")


def test_an_update_that_rebinds_the_parameter_gets_a_hint_at_its_none_grad(
    tmp_path: Path,
) -> None:
    """`w = w - 0.01 * w.grad` in the lesson's loop: the second pass fails on `0.01 * None`, at
    the very line that made `w` a non-leaf; the hint says so and gives the untracked update."""
    script = tmp_path / "rebind.py"
    script.write_text(
        "import torch\n"
        "x, y = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])\n"
        "w = torch.tensor(1.0, requires_grad=True)\n"
        "for epoch in range(3):\n"
        "    loss = ((x * w - y) ** 2).mean()\n"
        "    loss.backward()\n"
        "    w = w - 0.01 * w.grad\n",
        encoding="utf-8",
    )
    error = run(script).error
    assert error is not None and "TypeError" in error.message
    hint = error.hint or ""
    assert hint.startswith("`w.grad` is None: line 7 makes a new `w` from the old one")
    assert "`with torch.no_grad(): w -= lr * w.grad`" in hint


@pytest.mark.parametrize(
    "order", ["backward, zero_grad, step", "zero_grad, backward, step", "zero_grad, step, backward"]
)
def test_zero_grad_between_backward_and_step_is_named(order: str, tmp_path: Path) -> None:
    """The update does nothing when `zero_grad()` clears the gradients before `step()`."""
    lines = {"backward": "loss.backward()", "zero_grad": "opt.zero_grad()", "step": "opt.step()"}
    script = tmp_path / "order.py"
    script.write_text(
        "import torch\n"
        "torch.manual_seed(0)\n"
        "model = torch.nn.Linear(3, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "x, y = torch.randn(16, 3), torch.randn(16, 1)\n"
        "for step in range(6):\n"
        "    loss = ((model(x) - y) ** 2).mean()\n"
        + "".join(f"    {lines[part]}\n" for part in order.split(", ")),
        encoding="utf-8",
    )
    found = run(script).graph.findings
    if order == "zero_grad, backward, step":
        assert found == ()
        return
    (f,) = found
    assert f.code == "params-frozen"
    if order.endswith("backward"):  # the step runs first, on the gradients just cleared
        assert "`optimizer.step()` at line 9 ran 5 times with no gradient held: it runs before" in (
            f.message
        )
        assert (f.hint or "").startswith("Call `optimizer.step()` after `loss.backward()`")
        return
    assert "`optimizer.step()` at line 10 ran 6 times with no gradient held" in f.message
    assert (f.hint or "").startswith("Call `optimizer.zero_grad()` before `loss.backward()`")


@pytest.mark.parametrize("kept", ["model(xv)", "model(xv).detach()"])
def test_a_list_of_outputs_no_backward_ran_through_keeps_their_activations(
    kept: str, tmp_path: Path
) -> None:
    """Validation outputs appended outside `torch.no_grad()`: each keeps its graph and the
    activations it saved; `.detach()` (or `no_grad`) is fine."""
    script = tmp_path / "val.py"
    script.write_text(
        "import torch\n"
        "torch.manual_seed(0)\n"
        "nn = torch.nn\n"
        "model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
        "val_preds = []\n"
        "for epoch in range(4):\n"
        "    loss = model(torch.randn(8, 4)).pow(2).mean()\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n"
        "    xv = torch.randn(16, 4)\n"
        f"    val_preds.append({kept})\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    if kept.endswith(".detach()"):
        assert found == ()
        return
    (f,) = found
    assert (f.code, f.severity) == ("graph-retained", "warning")
    assert "`val_preds` holds 4 tensors that still require grad, from 4 separate" in f.message
    assert f.message.endswith("alive, more with every step.")
    assert f.line == 13  # `val_preds.append(model(xv))`


def test_the_entries_of_one_forward_pass_are_not_kept_forwards(tmp_path: Path) -> None:
    """PyTorch's BiLSTM-CRF tutorial: `_viterbi_decode` appends one entry per tag, each picked
    from the same step's scores, and its list is among the variables gradviz reads (the frame
    of the script's last op). One forward pass, not 5 kept "from 5 separate forward passes"."""
    script = tmp_path / "viterbi.py"
    script.write_text(
        "import torch\n"
        "trans = torch.randn(5, 5, requires_grad=True)\n"
        "(trans * 2).sum().backward()\n"
        "def decode(feat):\n"
        "    for step in range(3):\n"
        "        viterbivars_t = []\n"
        "        for tag in range(5):\n"
        "            scores = (feat + trans[tag]).exp()\n"
        "            viterbivars_t.append(scores[scores.argmax()].view(1))\n"
        "        feat = torch.cat(viterbivars_t)\n"
        "    return feat\n"
        "print(decode(torch.randn(5)).shape)\n",
        encoding="utf-8",
    )
    assert [f.code for f in run(script).graph.findings] == []


def test_a_model_made_after_the_call_shown_is_not_never_called(tmp_path: Path) -> None:
    """PyTorch's conv-bn fusion tutorial trains one net, then binds `model` to another and
    trains that. With `--call 1` gradviz stops watching after call 1, so it cannot say the
    second net "was never called"; nor are script tensors judged by the namespace at the end."""
    script = tmp_path / "two_nets.py"
    script.write_text(
        "import torch\n"
        "model = torch.nn.Linear(3, 1)\n"
        "model(torch.randn(4, 3)).sum().backward()\n"
        "model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))\n"
        "extra = torch.zeros(2, requires_grad=True)\n"
        "model(torch.randn(4, 3)).sum().backward()\n",
        encoding="utf-8",
    )
    captured = capture_script(script, [], CaptureOptions(call=1))
    assert [f.code for f in with_findings(captured).graph.findings] == []
    last = with_findings(capture_script(script, [], CaptureOptions())).graph.findings
    assert [f.code for f in last] == ["unused-param"]  # `extra`, seen to the end


@pytest.mark.parametrize("kept", ["a + b", "total + a + b"])
def test_a_sum_of_this_steps_losses_for_the_log_holds_nothing_old(
    kept: str, tmp_path: Path
) -> None:
    """DCGAN logs `errD = errD_real + errD_fake` after both backward calls: rebuilt every step,
    it holds this step's two graphs only (no `graph-retained`, which told the user to fix
    `errD += l.item()`). A running total across steps still is reported."""
    script = tmp_path / "two_losses.py"
    script.write_text(
        "import torch\n"
        "w = torch.randn(3, requires_grad=True)\n"
        "opt = torch.optim.SGD([w], lr=0.1)\n"
        "total = 0\n"
        "for i in range(5):\n"
        "    opt.zero_grad()\n"
        "    a = (w ** 2).sum()\n"
        "    a.backward()\n"
        "    b = (w - 1).abs().sum()\n"
        "    b.backward()\n"
        f"    total = {kept}\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    codes = [f.code for f in run(script).graph.findings if f.code == "graph-retained"]
    assert codes == ([] if kept == "a + b" else ["graph-retained"])


def test_predictions_kept_once_by_a_comprehension_do_not_grow(tmp_path: Path) -> None:
    """PyTorch's model-ensembling tutorial: `[model(x) for model in models]`, with no loop and
    no backward call, holds the graphs once; nothing grows "with every step", and there is no
    `.append` to fix."""
    script = tmp_path / "ensemble.py"
    script.write_text(
        "import torch\n"
        "models = [torch.nn.Linear(64, 64) for _ in range(4)]\n"
        "preds = [m(torch.randn(32, 64)).relu() for m in models]\n"
        "loss = models[0](torch.randn(2, 64)).sum()\n",
        encoding="utf-8",
    )
    [f] = [f for f in run(script).graph.findings if f.code == "graph-retained"]
    assert f.line is None and f.message.endswith("(activations) alive.")
    assert f.hint == (
        "Compute them under `torch.no_grad()` (evaluation), or `.detach()` each one you keep."
    )


@pytest.mark.parametrize(
    ("body", "start"),
    [
        (  # numpy's float64 into a float32 layer
            "import numpy as np\nx = torch.from_numpy(np.ones((4, 3)))\n"
            "nn.Linear(3, 1)(x).sum().backward()\n",
            "Two tensors of different dtypes meet here. Data from numpy is float64",
        ),
        (  # class indices as floats
            "y = torch.tensor([0.0, 2.0])\n"
            "nn.functional.cross_entropy(nn.Linear(4, 3)(torch.randn(2, 4)), y).backward()\n",
            "Class-index targets (`cross_entropy`, `nll_loss`) must be int64 (`Long`) integers",
        ),
        (  # class indices as int32: integers, but not int64
            "y = torch.tensor([0, 2], dtype=torch.int32)\n"
            "nn.functional.cross_entropy(nn.Linear(4, 3)(torch.randn(2, 4)), y).backward()\n",
            "Class-index targets (`cross_entropy`, `nll_loss`) must be int64 (`Long`) integers",
        ),
        (
            "nn.Conv2d(3, 4, 3)(torch.randn(1, 1, 8, 8)).sum().backward()\n",
            "The layer takes 3 input channels and the input has 1: channels are dimension 1",
        ),
        (
            "(torch.randn(2, 3, requires_grad=True) + torch.randn(2, 4)).sum().backward()\n",
            "Two tensors whose shapes do not broadcast meet in an elementwise op",
        ),
        (
            "torch.randn(4, 3, requires_grad=True).t().view(12).sum().backward()\n",
            "`view` needs memory laid out in order",
        ),
        (
            "torch.randn(3, requires_grad=True).softmax(1).sum().backward()\n",
            "The `dim` given is past the tensor's dimensions",
        ),
        ("(torch.ones(3, requires_grad=True) * 2).numpy()\n", "`.numpy()` leaves the graph"),
        (
            "nn.Embedding(10, 3)(torch.tensor([1.0, 2.0])).sum().backward()\n",
            "`nn.Embedding` looks its rows up by integer index",
        ),
        (
            "torch.stack([torch.randn(3, requires_grad=True), torch.randn(4)]).sum().backward()\n",
            "`torch.stack` (and a DataLoader's default collate",
        ),
        (  # a binary classifier's [N, 1] output against a target of [N]
            "y = torch.tensor([0.0, 1.0])\n"
            "nn.BCEWithLogitsLoss()(nn.Linear(4, 1)(torch.randn(2, 4)), y).backward()\n",
            "`binary_cross_entropy(_with_logits)` compares prediction and target element by",
        ),
        (  # an [N, 1] target
            "y = torch.tensor([[0], [2]])\n"
            "nn.functional.cross_entropy(nn.Linear(4, 3)(torch.randn(2, 4)), y).backward()\n",
            "`cross_entropy` takes class indices of shape [N]: `target.squeeze(1)`",
        ),
        (  # a convolution's output flattened into a Linear of the wrong size
            "net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 8 * 8, 5))\n"
            "net(torch.randn(1, 1, 8, 8)).sum().backward()\n",
            "The input has 72 features per row but the layer takes 128: for an "
            "`nn.Linear(128, 5)`, make it `nn.Linear(72, 5)`",
        ),
        (
            "torch.tensor([1, 2], requires_grad=True)\n",
            "Make the tensor floating point: `torch.tensor([1.0, 2.0], requires_grad=True)`",
        ),
        (
            "nn.Embedding(10, 4)(torch.tensor([[1, 2, 10]])).sum().backward()\n",
            "An index reached an `nn.Embedding` beyond its `num_embeddings`",
        ),
        (
            "nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))(torch.randn(1, 3))\n",
            "BatchNorm in training mode needs at least 2 samples per batch",
        ),
        (
            "out = nn.Linear(6, 10)(torch.randn(4, 2, 6)).view(-1, 10)\n"
            "nn.functional.cross_entropy(out, torch.randint(0, 10, (4,))).backward()\n",
            "The prediction and the target have different numbers of rows",
        ),
        (
            "x, y = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)\n"
            "torch.autograd.grad((x * 2).sum(), [x, y])\n",
            "The output does not depend on that input",
        ),
        (  # a custom Function whose backward forgets the gradient of its number input
            "class Scale(torch.autograd.Function):\n"
            "    @staticmethod\n"
            "    def forward(ctx, x, k):\n"
            "        ctx.k = k\n"
            "        return x * k\n"
            "    @staticmethod\n"
            "    def backward(ctx, g):\n"
            "        return g * ctx.k\n"
            "Scale.apply(torch.ones(3, requires_grad=True), 2.0).sum().backward()\n",
            "A custom `autograd.Function`'s `backward` returns one gradient per input",
        ),
        (
            "nn.functional.cross_entropy(nn.Linear(4, 10)(torch.randn(2, 4)), "
            "torch.tensor([1, 10])).backward()\n",
            "Class 10 in the target is beyond the classes the model outputs",
        ),
        (
            "logits = nn.Linear(4, 10)(torch.randn(2, 7, 4))\n"
            "nn.functional.cross_entropy(logits, torch.zeros(2, 7, dtype=torch.long)).backward()\n",
            "For a sequence, `cross_entropy` wants the classes in dimension 1",
        ),
        (
            "nn.functional.binary_cross_entropy(nn.Linear(4, 1)(torch.randn(3, 4)) * 5, "
            "torch.ones(3, 1)).backward()\n",
            "`binary_cross_entropy` (`nn.BCELoss`) takes probabilities",
        ),
        (
            "print(nn.Linear(4, 2)(torch.randn(1, 4)).item())\n",
            "`.item()` and `float()` need a tensor of one number",
        ),
        (  # the gradient "reset" to a number
            "w = torch.tensor(1.0, requires_grad=True)\n(w * 2).backward()\nw.grad = 0\n",
            "`.grad` holds a tensor or None, not a number: clear it with `w.grad = None`",
        ),
        (  # layers kept in a plain list register no parameter
            "class Net(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.layers = [nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)]\n"
            "torch.optim.Adam(Net().parameters())\n",
            "The optimizer was given no parameters: a model whose layers are kept in a plain",
        ),
        (
            "with torch.inference_mode():\n    x = torch.randn(2, 3) * 2\n"
            "nn.Linear(3, 1)(x).pow(2).sum().backward()\n",
            "A tensor made under `torch.inference_mode()` feeds a computation that needs",
        ),
    ],
)
def test_common_errors_get_a_hint_that_names_the_fix(tmp_path: Path, body: str, start: str) -> None:
    script = tmp_path / "learner.py"
    script.write_text("import torch\nfrom torch import nn\n" + body, encoding="utf-8")
    try:
        error = run(script).error  # the error came in a backward call: its graph is shown
    except ScriptError as raised:  # before any backward call: nothing to show
        error = raised
    assert error is not None
    assert (error.hint or "").startswith(start)


def test_a_loss_rebuilt_from_its_item_is_the_cut_not_a_frozen_parameter(tmp_path: Path) -> None:
    """`torch.tensor(loss.item(), requires_grad=True)`, the forum fix for "does not require
    grad": the cut is the `.item()` (not the later `print(loss.item())` of the same value), the
    model's parameters are not "a layer never applied", the root leaf is not a frozen parameter
    and no `zero_grad()` sits between backward and step."""
    script = tmp_path / "leaf_loss.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "model = nn.Linear(3, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "x, y = torch.randn(8, 3), torch.randn(8, 1)\n"
        "for step in range(5):\n"
        "    err = ((model(x) - y) ** 2).mean().item()\n"
        "    loss = torch.tensor(err, requires_grad=True)\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n"
        "    print(step, loss.item())\n",
        encoding="utf-8",
    )
    found = {f.code: f for f in run(script).graph.findings}
    assert sorted(found) == ["cut", "unused-param"]
    assert found["cut"].line == 7 and found["cut"].message.startswith("`.item()` of a Mean")
    assert "never applied" not in (found["unused-param"].hint or "")
    assert "`.item()`" in (found["unused-param"].hint or "")


def test_a_tensor_built_from_losses_gets_the_hint_that_keeps_the_graph(tmp_path: Path) -> None:
    warned = _torch_warning(
        tmp_path,
        "import torch\n"
        "w = torch.randn(3, requires_grad=True)\n"
        "l1, l2 = (w * 2).sum(), w.abs().sum()\n"
        "loss = torch.tensor([l1, l2]).sum()\n"
        "loss.requires_grad_()\n"
        "loss.backward()\n",
    )
    assert warned.line == 4
    assert "`torch.stack([t1, t2])`" in (warned.hint or "")


# -- forward-nonfinite and loss-empty: why the loss itself is NaN/Inf -------------------------
def _codes(tmp_path: Path, text: str) -> dict[str, Finding]:
    script = tmp_path / "script.py"
    script.write_text(text, encoding="utf-8")
    return {f.code: f for f in run(script).graph.findings}


def test_a_nan_loss_of_one_call_names_the_op_that_made_it(tmp_path: Path) -> None:
    found = _codes(
        tmp_path,
        "import torch\n"
        "w = torch.tensor(-2.0, requires_grad=True)\n"
        "loss = torch.log(w * 3.0)\n"
        "loss.backward()\n",
    )
    f = found["forward-nonfinite"]
    assert (f.severity, f.line, f.nodes) == ("error", 3, (0,))
    assert f.message == (
        "The loss (#0 LogBackward0 `loss` at line 3) is NaN: that op makes it from finite "
        "inputs (its input is -6): a `log` of a number <= 0 (log(0) is -Inf, a negative "
        "number's is NaN)."
    )


def test_an_overflow_below_the_loss_is_where_the_nan_starts(tmp_path: Path) -> None:
    found = _codes(
        tmp_path,
        "import torch\n"
        "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "h = torch.exp(w * 100)\n"
        "loss = h.sum() - h.sum()\n"
        "loss.backward()\n",
    )
    f = found["forward-nonfinite"]
    assert f.line == 3 and "#2 ExpBackward0 `h` at line 3" in f.message
    assert "(its input runs from 100 to 200): an `exp` past the float range" in f.message


def test_nan_in_the_data_is_blamed_on_the_data(tmp_path: Path) -> None:
    found = _codes(
        tmp_path,
        "import torch\n"
        "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "x = torch.tensor([1.0, float('nan')])\n"
        "loss = (w * x).sum()\n"
        "loss.backward()\n",
    )
    f = found["forward-nonfinite"]
    data = "whose input `x` (a tensor that needs no gradient: the data) already holds 1 NaN"
    assert data in f.message
    assert "isnan" in (f.hint or "")


def test_a_nan_parameter_is_blamed_once_and_a_loop_leaves_it_to_loop_nonfinite(
    tmp_path: Path,
) -> None:
    once = _codes(
        tmp_path,
        "import torch\n"
        "w = torch.tensor([1.0, float('nan')], requires_grad=True)\n"
        "loss = (w * 2).sum()\n"
        "loss.backward()\n",
    )
    assert "#2 leaf `w` already holds 1 NaN of 2 elements" in once["forward-nonfinite"].message
    loop = run(PITFALLS / "loop_nonfinite.py").graph.findings
    assert "forward-nonfinite" not in {f.code for f in loop}


def test_an_infinite_mask_that_a_softmax_absorbs_is_not_a_nonfinite_loss(tmp_path: Path) -> None:
    found = _codes(
        tmp_path,
        "import torch\n"
        "s = torch.randn(4, 4, requires_grad=True)\n"
        "mask = torch.triu(torch.ones(4, 4, dtype=torch.bool), diagonal=1)\n"
        "p = torch.softmax(s.masked_fill(mask, float('-inf')), dim=-1)\n"
        "loss = p.pow(2).sum()\n"
        "loss.backward()\n",
    )
    assert "forward-nonfinite" not in found and "loss-empty" not in found


@pytest.mark.parametrize(
    ("reduce", "severity", "says"),
    [("mean()", "error", "averages nothing and gives NaN"), ("sum()", "warning", "gives 0.0")],
)
def test_a_mask_that_selects_nothing_is_an_empty_loss(
    tmp_path: Path, reduce: str, severity: str, says: str
) -> None:
    found = _codes(
        tmp_path,
        "import torch\n"
        "w = torch.randn(5, requires_grad=True)\n"
        "keep = w > 100\n"
        f"loss = (w[keep] ** 2).{reduce}\n"
        "loss.backward()\n",
    )
    f = found["loss-empty"]
    assert (f.severity, f.line) == (severity, 4)
    assert "selects no element of #" in f.message and says in f.message
    assert "no gradient reaches `w` from it" in f.message
    assert "grad-zero" not in found and "forward-nonfinite" not in found


def test_an_empty_term_added_to_a_real_loss_is_fine(tmp_path: Path) -> None:
    found = _codes(
        tmp_path,
        "import torch\n"
        "w = torch.randn(5, requires_grad=True)\n"
        "box = w[w > 100]\n"
        "loss = w.pow(2).sum() + box.sum() + torch.cat([box, w]).sum()\n"
        "loss.backward()\n",
    )
    assert "loss-empty" not in found


def test_a_loop_over_an_empty_split_points_to_loss_empty(tmp_path: Path) -> None:
    found = _codes(
        tmp_path,
        "import torch\n"
        "from torch import nn\n"
        "data, labels = torch.randn(100, 4), torch.randint(0, 3, (100,))\n"
        "model = nn.Linear(4, 3)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for step in range(3):\n"
        "    opt.zero_grad()\n"
        "    loss = nn.functional.cross_entropy(model(data[120:]), labels[120:])\n"
        "    loss.backward()\n"
        "    opt.step()\n",
    )
    assert found["loss-empty"].line == 8
    loop = found["loop-nonfinite"]
    assert loop.message == (
        "The loss is non-finite from the first backward call at line 9 (1 NaN) and stays so: "
        "`loss-empty` says why, on the call shown."
    )
    assert "grad-zero" not in found


def test_nan_in_a_large_batch_is_blamed_on_the_data_in_a_loop(tmp_path: Path) -> None:
    # the update spreads the NaN to every parameter after the first call: the data is still
    # where it comes in, on the call shown, and loop-nonfinite and grad-nan point to it
    found = _codes(
        tmp_path,
        "import torch\n"
        "torch.manual_seed(0)\n"
        "from torch import nn\n"
        "model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))\n"
        "x = torch.randn(16, 3)\n"
        "x[5, 1] = float('nan')\n"
        "y = torch.randn(16, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for epoch in range(3):\n"
        "    loss = nn.functional.mse_loss(model(x), y)\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n",
    )
    f = found["forward-nonfinite"]
    assert "whose input `x` (a tensor that needs no gradient: the data)" in f.message
    assert "holds 1 NaN of 48 elements" in f.message and f.line == 10
    assert "`forward-nonfinite` says why" in found["loop-nonfinite"].message
    assert "`forward-nonfinite` says where" in (found["grad-nan"].hint or "")


def test_nan_in_an_earlier_batch_is_blamed_on_that_batch(tmp_path: Path) -> None:
    # shuffled batches: the NaN row is in call 6, not in the call shown, whose parameters the
    # updates have made NaN since; loop-nonfinite says the data of call 6 brought it in
    found = _codes(
        tmp_path,
        "import torch\n"
        "from torch import nn\n"
        "from torch.utils.data import DataLoader, TensorDataset\n"
        "torch.manual_seed(3)\n"
        "X = torch.randn(256, 3)\n"
        "X[77, 2] = float('nan')\n"
        "Y = X.sum(dim=1, keepdim=True)\n"
        "loader = DataLoader(TensorDataset(X, Y), batch_size=32, shuffle=True)\n"
        "model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))\n"
        "opt = torch.optim.Adam(model.parameters(), lr=1e-2)\n"
        "for epoch in range(2):\n"
        "    for xb, yb in loader:\n"
        "        loss = nn.functional.mse_loss(model(xb), yb)\n"
        "        opt.zero_grad()\n"
        "        loss.backward()\n"
        "        opt.step()\n",
    )
    f = found["loop-nonfinite"]
    assert "becomes non-finite at backward call 6 at line 15" in f.message
    assert "(the data) hold 2 NaNs: the data brought it in" in f.message
    assert "--call 6" in (f.hint or "") and "forward-nonfinite" not in found


def test_a_tensor_that_feeds_others_but_not_the_root_is_placed_where_it_is_first_read(
    tmp_path: Path,
) -> None:
    """`torch.tensor([a, b], requires_grad=True)` rebuilds the outputs as a new leaf: `w1` fed
    `a` at line 5 but the loss does not depend on it. The finding had no source line."""
    found = _coded(
        tmp_path,
        "import torch\n"
        "w1 = torch.randn(3, requires_grad=True)  # w1 is made here\n"
        "x = torch.randn(3)\n"
        "w1_copy = None\n"
        "a = (w1 * x).sum()\n"
        "outs = torch.tensor([a.item(), 1.0], requires_grad=True)\n"
        "(outs ** 2).sum().backward()\n",
        "unused-param",
    )
    [f] = found
    assert f.severity == "warning" and f.line == 5 and f.file is not None
    assert f.message.endswith("although it feeds other tensors (first at line 5).")


def test_a_warning_raised_inside_an_installed_library_is_placed_on_the_scripts_line(
    tmp_path: Path,
) -> None:
    """A library's warning whose `stacklevel` points into the library itself (typing_extensions'
    `deprecated` wrapper did so for `torch.cuda.amp.GradScaler` in nanoGPT) is placed on the
    script's line that called it, not on the library's."""
    lib = tmp_path / "site-packages"
    lib.mkdir()
    (lib / "helper_lib.py").write_text(
        "import warnings\n"
        "def scaled(t):\n"
        "    warnings.warn('helper_lib:  scaling is off', UserWarning, stacklevel=1)\n"
        "    return t * 2\n",
        encoding="utf-8",
    )
    warned = _torch_warning(
        tmp_path,
        "import sys, torch\n"
        f"sys.path.insert(0, {str(lib)!r})\n"
        "import helper_lib\n"
        "w = torch.ones(2, requires_grad=True)\n"
        "helper_lib.scaled(w).sum().backward()\n",
    )
    assert warned.file is not None and warned.file.endswith("warns.py")
    assert warned.line == 5
    assert "helper_lib: scaling is off" in warned.message  # runs of spaces read as one


@pytest.mark.skipif(torch.cuda.is_available(), reason="the notice is for machines without CUDA")
def test_a_gradscaler_without_cuda_is_an_info(tmp_path: Path) -> None:
    warned = _torch_warning(
        tmp_path,
        "import torch\n"
        "scaler = torch.amp.GradScaler('cuda', enabled=True)\n"
        "w = torch.ones(2, requires_grad=True)\n"
        "scaler.scale(w.sum()).backward()\n",
    )
    assert warned.severity == "info" and warned.line == 2
    assert "enabled=torch.cuda.is_available()" in (warned.hint or "")


def test_pytorchs_notice_about_sparse_invariant_checks_is_an_info(tmp_path: Path) -> None:
    """A graph network's adjacency (pytorch/examples' gcn and gat) built with
    `torch.sparse_coo_tensor` makes PyTorch say it does not check the indices: not a problem of
    the script's gradients."""
    # PyTorch gives this notice once per process, and another test may have had it first: the
    # script runs in a fresh interpreter
    script = tmp_path / "warns.py"
    script.write_text(
        "import torch\n"
        "adj = torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 0]]), torch.ones(2), (2, 2))\n"
        "h = torch.randn(2, 3, requires_grad=True)\n"
        "torch.sparse.mm(adj, h).sum().backward()\n",
        encoding="utf-8",
    )
    probe = (
        "import sys\n"
        "from graphviz_grad.capture import CaptureOptions, capture_script\n"
        "from graphviz_grad.diagnose import with_findings\n"
        "graph = with_findings(capture_script(sys.argv[1], [], CaptureOptions())).graph\n"
        "for f in graph.findings:\n"
        "    if f.code == 'torch-warning':\n"
        "        print(f.severity, f.line, 'check_invariants=True' in (f.hint or ''))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(script)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[-2:] == ["info 2 True", ""], done.stdout


@pytest.mark.parametrize("act", ["nn.ReLU()", "nn.LeakyReLU(0.2)", "nn.Hardtanh()"])
def test_a_gradient_penalty_through_a_piecewise_linear_net_is_fine(
    tmp_path: Path, act: str
) -> None:
    # WGAN-GP: the penalty's gradient reaches the interpolated input through the backward of
    # the activation's backward, which is zero by nature: no dying gradient to report
    found = _codes(
        tmp_path,
        "import torch\n"
        "from torch import nn, autograd\n"
        "torch.manual_seed(0)\n"
        f"D = nn.Sequential(nn.Linear(2, 16), {act}, nn.Linear(16, 1))\n"
        "real, fake = torch.randn(32, 2) + 2, torch.randn(32, 2)\n"
        "a = torch.rand(32, 1)\n"
        "inter = (a * real + (1 - a) * fake).requires_grad_(True)\n"
        "out = D(inter)\n"
        "g = autograd.grad(out, inter, torch.ones_like(out), create_graph=True)[0]\n"
        "gp = ((g.norm(2, dim=1) - 1) ** 2).mean()\n"
        "loss = D(fake).mean() - D(real).mean() + 10 * gp\n"
        "loss.backward()\n",
    )
    assert "grad-zero" not in found


def test_a_dead_relu_under_a_gradient_penalty_is_still_found(tmp_path: Path) -> None:
    found = _codes(
        tmp_path,
        "import torch\n"
        "from torch import nn, autograd\n"
        "torch.manual_seed(0)\n"
        "D = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))\n"
        "with torch.no_grad():\n"
        "    D[0].bias.fill_(-100.0)\n"
        "x = torch.randn(32, 2).requires_grad_(True)\n"
        "out = D(x)\n"
        "g = autograd.grad(out, x, torch.ones_like(out), create_graph=True)[0]\n"
        "loss = out.mean() + (g ** 2).mean()\n"
        "loss.backward()\n",
    )
    assert "grad-zero" in found


def test_grad_nan_in_a_diverged_loop_points_to_loop_nonfinite(tmp_path: Path) -> None:
    found = _codes(
        tmp_path,
        "import torch\n"
        "x = torch.linspace(0, 10, 50)\n"
        "y = 3 * x + 1\n"
        "w = torch.zeros(1, requires_grad=True)\n"
        "for epoch in range(60):\n"
        "    loss = ((x * w - y) ** 2).mean()\n"
        "    loss.backward()\n"
        "    with torch.no_grad():\n"
        "        w -= 0.5 * w.grad\n"
        "        w.grad.zero_()\n",
    )
    assert "loop-nonfinite" in found
    assert "`loop-nonfinite` says when it began" in (found["grad-nan"].hint or "")


@pytest.mark.parametrize("back", ["torch.from_numpy", "torch.as_tensor"])
def test_a_numpy_round_trip_is_named_as_the_cut(tmp_path: Path, back: str) -> None:
    found = _codes(
        tmp_path,
        "import torch\n"
        "from torch import nn\n"
        "enc, dec = nn.Linear(4, 8), nn.Linear(8, 4)\n"
        "x = torch.randn(16, 4)\n"
        "z = enc(x).tanh().detach().numpy()\n"
        f"rec = dec({back}(z))\n"
        "loss = ((rec - x) ** 2).mean()\n"
        "loss.backward()\n",
    )
    cut = found["cut"]
    assert cut.line == 5 and "NumPy round trip" in cut.message
    assert "torch.from_numpy" in (cut.hint or "")


def test_a_copy_through_numpy_is_followed_and_other_tensors_are_not(tmp_path: Path) -> None:
    # `torch.tensor(kept.numpy())` copies the detached value: a stop-gradient (w still gets its
    # gradient the other way); `ones`, alive at the same time, is nobody's cut
    found = _codes(
        tmp_path,
        "import torch\n"
        "w = torch.randn(3, requires_grad=True)\n"
        "kept = (w * 2).detach()\n"
        "other = torch.tensor(kept.numpy())\n"
        "ones = torch.ones(3)\n"
        "loss = (w * other).sum() + (w * ones).sum()\n"
        "loss.backward()\n",
    )
    cut = found["cut"]
    assert cut.severity == "info" and cut.line == 3 and len(cut.nodes) == 1


def test_steps_before_the_first_backward_call_are_no_finding(tmp_path: Path) -> None:
    # a step before training starts (nothing to update yet) is odd but harmless once backward
    # calls follow; an inference script with an optimizer it never steps is fine too
    found = _codes(
        tmp_path,
        "import torch\n"
        "m = torch.nn.Linear(3, 1)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "opt.step()\n"
        "for _ in range(3):\n"
        "    opt.zero_grad()\n"
        "    m(torch.randn(4, 3)).pow(2).mean().backward()\n"
        "    opt.step()\n",
    )
    assert "no-backward" not in found
    found = _codes(
        tmp_path,
        "import torch\n"
        "m = torch.nn.Linear(3, 1)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "loss = m(torch.randn(4, 3)).pow(2).mean()\n",
    )
    assert "no-backward" not in found


def test_grads_set_by_hand_are_no_missing_backward(tmp_path: Path) -> None:
    found = _codes(
        tmp_path,
        "import torch\n"
        "m = torch.nn.Linear(3, 1)\n"
        "opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "for _ in range(3):\n"
        "    loss = m(torch.randn(4, 3)).pow(2).mean()\n"
        "    grads = torch.autograd.grad(loss, list(m.parameters()))\n"
        "    for p, g in zip(m.parameters(), grads):\n"
        "        p.grad = g\n"
        "    opt.step()\n",
    )
    assert "no-backward" not in found


def test_an_unused_input_of_autograd_grad_is_not_said_to_keep_a_grad_field(tmp_path: Path) -> None:
    """`torch.autograd.grad` fills no `.grad`: the finding says the tensor gets no gradient."""
    [unused] = _coded(
        tmp_path,
        "import torch\na = torch.tensor(1.0, requires_grad=True)\n"
        "b = torch.tensor(2.0, requires_grad=True)\n"
        "ga, gb = torch.autograd.grad(a * 3, [a, b], allow_unused=True)\n",
        "unused-param",
    )
    assert ".grad` stays None" not in unused.message
    assert unused.message.endswith(
        "so it gets no gradient (`torch.autograd.grad` gives None for it)."
    )


def _losses(*values: float) -> list[CallInfo]:
    """Backward calls at one line (train.py:9) whose loss takes `values`."""
    return [
        CallInfo(i, "backward", "train.py", 9, TensorSummary((), "float32", 1, v), (), 3, 2)
        for i, v in enumerate(values, start=1)
    ]


def test_a_loss_that_jumps_up_and_stays_there_diverges() -> None:
    """pytorch/examples' word_language_model with `--use-optimizer` (Adam at its lr of 20): the
    loss jumps three orders of magnitude and wobbles there. No upward trend, still diverged."""
    [f] = loop_diverges(_losses(5.788, 9207.0, 20920.0, 13950.0, 12140.0))
    assert f.code == "loss-diverges" and (f.file, f.line) == ("train.py", 9)
    assert "from 5.79 to 2.09e+04 (call 3), 4 orders of magnitude up, 1.21e+04 at call 5" in (
        f.message
    )


@pytest.mark.parametrize(
    "values",
    [
        (5.8, 9207.0, 6.1, 5.5, 5.2),  # one bad batch, then back
        (5.8, 9207.0, 900.0, 120.0, 40.0),  # back down within three orders of magnitude
        (0.01, 0.5, 2.0, 1.0, 0.9),  # the loss of a GAN's generator: up, but not blown up
    ],
)
def test_a_loss_that_comes_back_down_does_not_diverge(values: tuple[float, ...]) -> None:
    assert loop_diverges(_losses(*values)) == []


ACCUMULATING = (
    "import torch\n"
    "from torch import nn\n"
    "torch.manual_seed(0)\n"
    "model = nn.Linear(8, 1)\n"
    "opt = torch.optim.SGD(model.parameters(), lr=0.05)\n"
    "data = torch.randn({rows}, 8)\n"
    "target = data.sum(dim=1, keepdim=True)\n"
    "for i, (xb, yb) in enumerate(zip(data.split(8), target.split(8))):\n"
    "    loss = nn.functional.mse_loss(model(xb), yb) / 4\n"
    "    loss.backward()\n"
    "    if (i + 1) % 4 == 0:\n"
    "{update}"
)


@pytest.mark.parametrize(
    ("rows", "update", "codes"),
    [
        # 8 calls: the last 4 wait for the step after them, as the first 4 did
        (64, "        opt.step()\n        opt.zero_grad()\n", ["grad-accumulates"]),
        # the step forgotten: 12 calls, unchanged through three windows of 4
        (96, "        opt.zero_grad()\n", ["params-frozen", "grad-accumulates"]),
    ],
    ids=["steps every 4th call", "never steps"],
)
def test_gradient_accumulation_is_not_a_frozen_parameter(
    rows: int, update: str, codes: list[str], tmp_path: Path
) -> None:
    script = tmp_path / "accum.py"
    script.write_text(ACCUMULATING.format(rows=rows, update=update), encoding="utf-8")
    assert [f.code for f in run(script).graph.findings] == codes


def test_gradients_never_zeroed_or_stepped_are_frozen_still(tmp_path: Path) -> None:
    script = tmp_path / "never.py"
    script.write_text(
        "import torch\n"
        "w = torch.ones(3, requires_grad=True)\n"
        "for step in range(8):\n"
        "    loss = (w * torch.arange(3.0)).sum() ** 2\n"
        "    loss.backward()\n",
        encoding="utf-8",
    )
    codes = {f.code for f in run(script).graph.findings}
    assert {"params-frozen", "grad-accumulates"} <= codes


@pytest.mark.parametrize(
    ("rates", "says", "never"),
    [
        ({}, "Lower the learning rate by 10x", "lr="),
        ({"SGD": 0.5}, "Lower the learning rate (`SGD` lr=0.5) by 10x", "Adam"),
        # clipping does not shorten an adaptive optimizer's steps: not offered for it
        ({"AdamW": 20.0}, "(`AdamW` lr=20) by 10x", "clip_grad_norm_"),
        ({"Adam": 0.001, "SGD": 0.1}, "(`Adam` lr=0.001 and `SGD` lr=0.1)", "clip_grad_norm_"),
    ],
)
def test_the_divergence_hint_names_the_optimizers_rates(
    rates: dict[str, float], says: str, never: str
) -> None:
    [f] = loop_diverges(_losses(5.788, 9207.0, 20920.0, 13950.0, 12140.0), rates)
    assert says in (f.hint or "") and never not in (f.hint or "")


def test_an_optimizers_rate_reaches_the_hint(tmp_path: Path) -> None:
    script = tmp_path / "adam.py"
    script.write_text(
        "import torch\n"
        "w = torch.zeros(1, requires_grad=True)\n"
        "opt = torch.optim.SGD([w], lr=0.5)\n"
        "x = torch.tensor([1.0, 2.0, 3.0, 4.0])\n"
        "for step in range(12):\n"
        "    loss = ((w * x - 2 * x) ** 2).mean()\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    [f] = [f for f in run(script).graph.findings if f.code == "loss-diverges"]
    assert "(`SGD` lr=0.5)" in (f.hint or "")


PINN = (
    "import torch\n"
    "from torch import nn\n"
    "torch.manual_seed(0)\n"
    "net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))\n"
    "opt = torch.optim.Adam(net.parameters(), lr=1e-3)\n"
    "t = torch.linspace(0, 1, 20).unsqueeze(1).requires_grad_(True)\n"
    "total = 0\n"
    "for it in range(5):\n"
    "    u = net(t)\n"
    "    du = torch.autograd.grad(u, t, torch.ones_like(u), create_graph=True)[0]\n"
    "    d2u = torch.autograd.grad(du, t, torch.ones_like(du), create_graph=True)[0]\n"
    "    loss = (d2u + u).pow(2).mean() + (du[0] ** 2).sum()\n"
    "    opt.zero_grad()\n"
    "    loss.backward()\n"
    "    opt.step()\n"
    "{extra}"
)


@pytest.mark.parametrize(
    ("extra", "retained"),
    [("", False), ("    total = total + loss\n", True)],
    ids=["one iteration's derivatives", "a running total over iterations"],
)
def test_a_graph_built_on_its_own_derivatives_is_not_retained(
    extra: str, retained: bool, tmp_path: Path
) -> None:
    """A PINN's loss holds the graphs of `u` and `du`, each the root of an `autograd.grad` call
    with `create_graph=True` of the same iteration: built on purpose, not earlier iterations
    kept alive. A running total of those losses is."""
    script = tmp_path / "pinn.py"
    script.write_text(PINN.format(extra=extra), encoding="utf-8")
    found = run(script).graph.findings
    assert ("graph-retained" in [f.code for f in found]) == retained
    # `t` needs a gradient for `autograd.grad` only: its `.grad` gathers, and that is said so
    [gathers] = [f for f in found if f.code == "grad-accumulates"]
    assert gathers.severity == "info" and gathers.line == 14
    assert "`t` requires grad but is in no optimizer and never changes" in gathers.message
    assert "gradient accumulation" not in gathers.message


def test_a_gradient_killed_by_an_all_zero_operand_names_it() -> None:
    """Below a dead ReLU the next layer's weight gets a zero gradient because its input, the
    ReLU's output, is all zeros: the finding names that operand, not "a product with 0"."""
    first = next(f for f in run(PITFALLS / "grad_zero.py").graph.findings if f.nodes[:2] == (1, 8))
    assert "its other operand #3 ReluBackward0 is all zeros" in first.message
    assert "Find why #3 ReluBackward0 is all zeros" in (first.hint or "")


def test_a_module_run_with_other_tensors_by_functional_call_is_not_unused(
    tmp_path: Path,
) -> None:
    """`torch.func.functional_call(model, params, x)` runs `model` with the tensors of `params`
    in its parameters' place (stateless training, MAML): its own parameters are not meant to
    get a gradient. Before, `unused-param` said the root did not depend on them."""
    script = tmp_path / "fcall.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "from torch.func import functional_call\n"
        "model = nn.Linear(3, 1)\n"
        "params = {k: v.detach().clone().requires_grad_(True) "
        "for k, v in model.named_parameters()}\n"
        "x, y = torch.randn(8, 3), torch.randn(8, 1)\n"
        "for step in range(3):\n"
        "    loss = nn.functional.mse_loss(functional_call(model, params, (x,)), y)\n"
        "    grads = torch.autograd.grad(loss, list(params.values()))\n"
        "    params = {k: (v - 0.1 * g).detach().requires_grad_(True) "
        "for (k, v), g in zip(params.items(), grads)}\n",
        encoding="utf-8",
    )
    assert [f.code for f in run(script).graph.findings] == []


_LESSON_UPDATE = (
    "import torch\n"
    "x_data, y_data = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0]\n"
    "w = torch.tensor([1.0], requires_grad=True)\n"
    "for epoch in range({epochs}):\n"
    "    for x_val, y_val in zip(x_data, y_data):\n"
    "        l = (x_val * w - y_val) ** 2\n"
    "        l.backward()\n"
    "        {update}\n"
    "        w.grad.data.zero_()\n"
)


@pytest.mark.parametrize(
    ("update", "epochs"),
    [
        ("w.data = w.data + 0.01 * w.grad.data", 10),  # 1 to 1,226: the lesson's sign flipped
        ("w.data = w.data + 0.01 * w.grad.data", 2),  # only 3x up: not yet orders of magnitude
        ("with torch.no_grad(): w += 0.01 * w.grad", 10),
    ],
    ids=["data", "early", "no_grad"],
)
def test_an_update_that_adds_the_gradient_is_named_not_the_learning_rate(
    tmp_path: Path, update: str, epochs: int
) -> None:
    """The lesson with `+` for `-` climbs the loss: the learning rate is not the cause, and
    the finding points at the update and says it adds the gradient."""
    found = _coded(tmp_path, _LESSON_UPDATE.format(update=update, epochs=epochs), "loss-diverges")
    [f] = found
    assert f.line == 8 and f.severity == "warning"
    assert "moves `w` along its gradient, uphill" in f.message
    assert "learning rate" not in f.message
    fixed = update.replace("+=", "-=").replace("w.data + ", "w.data - ")
    assert (
        f.hint == f"Subtract the gradient: `{fixed}` (a loss to maximise: minimise its negative)."
    )


@pytest.mark.parametrize("update", ["w.data = w.data - 0.01 * w.grad.data",
                                    "w.data = w.data - 0.3 * w.grad.data"])  # fmt: skip
def test_descent_is_not_called_ascent(tmp_path: Path, update: str) -> None:
    """The right sign: no finding at a small rate; at a rate that overshoots, the loss grows
    orders of magnitude and the learning rate is blamed, not the sign."""
    found = _coded(tmp_path, _LESSON_UPDATE.format(update=update, epochs=10), "loss-diverges")
    if "0.01" in update:
        assert found == []
        return
    [f] = found
    assert "uphill" not in f.message and "learning rate" in f.message


@pytest.mark.parametrize("updates", ["optimizers", "by hand"])
def test_a_gan_generator_loss_is_not_gradient_ascent(tmp_path: Path, updates: str) -> None:
    """The generator's loss reaches the discriminator, whose own loss then moves it the other
    way: its steps go "along" the generator loss's gradient by design, not by mistake."""
    if updates == "optimizers":
        step_d, step_g = "opt_d.step()", "opt_g.step()"
    else:
        step_d = "[p.data.sub_(1e-2 * p.grad) for p in D.parameters()]"
        step_g = "[p.data.sub_(1e-2 * p.grad) for p in G.parameters()]"
    found = _coded(
        tmp_path,
        "import torch\n"
        "from torch import nn\n"
        "torch.manual_seed(0)\n"
        "real_data = torch.randn(512, 2) * 0.5 + torch.tensor([2.0, -1.0])\n"
        "G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))\n"
        "D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))\n"
        "opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))\n"
        "opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))\n"
        "bce = nn.BCEWithLogitsLoss()\n"
        "for step in range(50):\n"
        "    real = real_data[torch.randint(0, 512, (64,))]\n"
        "    fake = G(torch.randn(64, 4))\n"
        "    D.zero_grad()\n"
        "    d_loss = bce(D(real), torch.ones(64, 1)) + bce(D(fake.detach()), torch.zeros(64, 1))\n"
        "    d_loss.backward()\n"
        f"    {step_d}\n"
        "    G.zero_grad()\n"
        "    D.zero_grad()\n"
        "    g_loss = bce(D(fake), torch.ones(64, 1))\n"
        "    g_loss.backward()\n"
        f"    {step_g}\n",
        "loss-diverges",
    )
    assert not any("uphill" in f.message for f in found), [f.message for f in found]


def test_the_climbing_update_is_not_taken_from_a_line_that_logs_a_gradient(
    tmp_path: Path,
) -> None:
    """`total += w.grad.sum()` adds a gradient too, to a log: the update is the next line."""
    text = _LESSON_UPDATE.format(
        update="total = w.grad.sum()\n        w.data = w.data + 0.01 * w.grad.data", epochs=10
    )
    [f] = _coded(
        tmp_path, "total = 0.0\n" + text.replace("total = w", "total += w"), "loss-diverges"
    )
    assert f.line == 10 and "`w.data = w.data + 0.01 * w.grad.data`" in f.message


def test_higher_derivatives_from_one_line_do_not_grow(tmp_path: Path) -> None:
    """`torch.autograd.functional.hvp` calls `autograd.grad` three times from the script's one
    line, each graph holding the last one's (create_graph=True, a derivative of a derivative):
    by design, not a graph that grows step after step. A state carried over without detach
    still grows."""
    script = tmp_path / "hvp.py"
    script.write_text(
        "import torch\n"
        "from torch.autograd.functional import hvp\n"
        "x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)\n"
        "_, hv = hvp(lambda t: (t ** 3).sum() + (t[0] * t[1]).sin(), x, torch.ones(3))\n"
        "w, h = torch.tensor(1.0, requires_grad=True), torch.tensor(1.0)\n"
        "for _ in range(4):\n"
        "    h = h * w + 1.0\n"
        "    h.backward(retain_graph=True)\n",
        encoding="utf-8",
    )
    grows = [f for f in run(script).graph.findings if f.code == "graph-grows"]
    assert [f.line for f in grows] == [8]


@pytest.mark.parametrize(
    ("use", "line", "through", "fix"),
    [
        (
            "z = torch.from_numpy(np.tanh(w.detach().numpy())).requires_grad_()\n",
            4,
            "only through `w.detach()` (or `.data`), first at line 4,",
            "Compute with torch ops on `w` itself",
        ),
        (
            "with torch.no_grad():\n    z = (w * 2).requires_grad_()\n",
            5,
            "only through ops under `torch.no_grad()`, first at line 5,",
            "Compute the loss from `w` outside `torch.no_grad()`.",
        ),
        ("z = torch.ones(3, requires_grad=True)\n", None, None, "Check that the loss"),
    ],
)
def test_a_leaf_used_only_through_a_cut_is_placed_on_the_cut(
    tmp_path: Path, use: str, line: int | None, through: str | None, fix: str
) -> None:
    """The classic: `.numpy()` refuses a tensor that requires grad, its error says to take
    `.detach().numpy()`, and `w.grad` is then None. The finding names the line that left the
    graph, as a warning; a tensor never used at all stays an info with no line."""
    script = tmp_path / "cut_leaf.py"
    script.write_text(
        "import numpy as np\nimport torch\nw = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)\n"
        + use
        + "(z ** 2).sum().backward()\n",
        encoding="utf-8",
    )
    [f] = [f for f in run(script).graph.findings if f.code == "unused-param"]
    assert (f.severity, f.line) == ("info" if line is None else "warning", line)
    assert through is None or through in f.message
    assert f.hint is not None and f.hint.startswith(fix)


def test_an_attack_on_the_input_is_not_a_training_loop(tmp_path: Path) -> None:
    """FGSM: gradients with respect to the input image, labels taken from the model under
    `no_grad`, no optimizer and no update. The model's parameters get a gradient at every call
    and never move, which is right: no `params-frozen` ("call `optimizer.step()`"), and no cut
    through the integer labels. The lesson with a learning rate of 0 is still frozen."""
    script = tmp_path / "fgsm.py"
    script.write_text(
        "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
        "torch.manual_seed(0)\n"
        "model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3))\n"
        "images = [torch.randn(1, 10) for _ in range(4)]\n"
        "for eps in (0.0, 0.1, 0.2):\n"
        "    for image in images:\n"
        "        data = image.clone().requires_grad_(True)\n"
        "        with torch.no_grad():\n"
        "            target = model(data).argmax(1)\n"
        "        loss = F.nll_loss(F.log_softmax(model(data), 1), target)\n"
        "        model.zero_grad()\n"
        "        loss.backward()\n"
        "        perturbed = (data + eps * data.grad.data.sign()).clamp(-3, 3)\n",
        encoding="utf-8",
    )
    assert [f.code for f in run(script).graph.findings] == []
    lesson = tmp_path / "lr0.py"
    lesson.write_text(
        "import torch\nw = torch.tensor([1.0], requires_grad=True)\n"
        "for epoch in range(10):\n"
        "    for x, y in zip([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]):\n"
        "        l = (x * w - y) ** 2\n"
        "        l.backward()\n"
        "        w.data = w.data - 0.0 * w.grad.data\n"
        "        w.grad.data.zero_()\n",
        encoding="utf-8",
    )
    assert [f.code for f in run(lesson).graph.findings] == ["params-frozen"]


@pytest.mark.parametrize(("detached", "cut"), [("target", False), ("prediction", True)])
def test_style_transfer_through_a_fixed_network(tmp_path: Path, detached: str, cut: bool) -> None:
    """Neural style transfer: an optimizer steps the image through a network nobody trains,
    with the style's features detached as the loss's target. The network's parameters are an
    info that offers `requires_grad_(False)` (not "call `optimizer.step()`"); the detached
    target is no cut. A detached prediction (the loss's input) still is."""
    script = tmp_path / "style.py"
    pred, target = "features(image)", "features(style).detach()"
    if detached == "prediction":
        pred, target = "features(image).detach() + image.mean()", "features(style)"
    script.write_text(
        "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
        "torch.manual_seed(0)\n"
        "features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n"
        "style = torch.rand(1, 3, 8, 8)\n"
        "image = torch.rand(1, 3, 8, 8).requires_grad_()\n"
        "opt = torch.optim.SGD([image], lr=1e-4)\n"
        "for _ in range(8):\n"
        "    opt.zero_grad()\n"
        f"    loss = F.mse_loss({pred}, {target})\n"
        "    loss.backward()\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    found = run(script).graph.findings
    assert ("cut" in {f.code for f in found}) == cut
    [frozen] = [f for f in found if f.code == "params-frozen"]
    assert frozen.severity == "info"
    assert frozen.hint is not None and "requires_grad_(False)" in frozen.hint


def test_inputs_reused_under_one_name_are_not_one_leaf_updated(tmp_path: Path) -> None:
    """FGSM over the same images for each epsilon: `data` is each image in turn, and their
    `.grad` adds up from one epsilon to the next. True, but no image was "updated in between"
    (each call's `data` is another tensor than the last call's): an info, not the warning."""
    script = tmp_path / "reuse.py"
    script.write_text(
        "import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
        "model = nn.Linear(4, 2)\n"
        "images = [torch.randn(1, 4).requires_grad_() for _ in range(70)]\n"
        "for eps in (0.1, 0.2):\n"
        "    for data in images:\n"
        "        loss = model(data).sum()\n"
        "        model.zero_grad()\n"
        "        loss.backward()\n"
        "        adv = data + eps * data.grad.sign()\n",
        encoding="utf-8",
    )
    [f] = [f for f in run(script).graph.findings if f.code == "grad-accumulates"]
    assert f.severity == "info" and "updated in between" not in f.message


def test_a_zero_weight_is_named_through_its_transpose(tmp_path: Path) -> None:
    """The spatial transformer tutorial zero-initialises `fc_loc[2].weight`: the gradient dies
    at the matrix product whose other operand, the `TBackward0` of `F.linear`, is all zeros.
    The finding names the weight, not only the anonymous transpose."""
    [f] = _coded(
        tmp_path,
        "import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
        "fc = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\n"
        "fc[2].weight.data.zero_()\n"
        "loss = fc(torch.randn(5, 4)).pow(2).sum()\n"
        "loss.backward()\n",
        "grad-zero",
    )
    assert "TBackward0 (made from #10 leaf `fc.2.weight`) is all zeros" in f.message


def test_a_tensor_kept_on_ctx_is_named_as_the_custom_functions(tmp_path: Path) -> None:
    """PyTorch's double-backward tutorial's `SinhBad` keeps `exp(x)` on `ctx`: a gradient
    penalty's second derivative then misses it. Autograd runs a Function's forward without grad
    tracking, which the cut read as the script's own `torch.no_grad()` ("compute it outside
    `torch.no_grad()`"): it now names the Function and the tutorial's fix."""
    [f] = _coded(
        tmp_path,
        "import torch\n"
        "class SinhBad(torch.autograd.Function):\n"
        "    @staticmethod\n"
        "    def forward(ctx, x):\n"
        "        expx = torch.exp(x)\n"
        "        expnegx = torch.exp(-x)\n"
        "        ctx.expx, ctx.expnegx = expx, expnegx\n"
        "        return (expx - expnegx) / 2\n"
        "    @staticmethod\n"
        "    def backward(ctx, g):\n"
        "        return g * (ctx.expx + ctx.expnegx) / 2\n"
        "x = torch.tensor([0.5, 1.0], requires_grad=True, dtype=torch.double)\n"
        "w = torch.tensor([2.0, 3.0], requires_grad=True, dtype=torch.double)\n"
        "out = (SinhBad.apply(x) * w).sum()\n"
        "(grad_x,) = torch.autograd.grad(out, x, create_graph=True)\n"
        "(grad_x ** 2).sum().backward()\n",
        "cut",
    )
    assert f.message.startswith("An op inside `SinhBad.forward` (a custom autograd.Function")
    assert "on a leaf at line 5" in f.message
    assert f.hint is not None and "ctx.save_for_backward" in f.hint


def test_a_model_frozen_with_its_new_head_is_named(tmp_path: Path) -> None:
    """The transfer learning tutorial, with the freezing loop moved after `model.fc = ...`:
    nothing requires grad. The hint said to create parameters with `requires_grad=True`
    (`w = torch.tensor(1.0, ...)`); it now names the frozen model and the order to fix."""
    script = tmp_path / "transfer.py"
    script.write_text(
        "import torch\nfrom torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.body, self.fc = nn.Linear(4, 4), nn.Linear(4, 2)\n"
        "    def forward(self, x):\n"
        "        return self.fc(self.body(x).relu())\n"
        "model = Net()\n"
        "model.fc = nn.Linear(4, 3)\n"
        "for p in model.parameters():\n"
        "    p.requires_grad = False\n"
        "loss = model(torch.randn(2, 4)).sum()\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    with pytest.raises(ScriptError) as raised:
        run(script)
    hint = raised.value.hint or ""
    assert "every parameter of the `Net` it ran through has `requires_grad=False`" in hint
    assert "replace the head after" in hint


def test_unfrozen_lora_base_is_frozen_by_its_own_modules(tmp_path: Path) -> None:
    """LoRA with the base left trainable: the optimizer holds only the adapters. Freezing the
    whole model (`model.requires_grad_(False)`) would freeze the adapters too; the fix names
    the modules that own the base's parameters."""
    [f] = _coded(
        tmp_path,
        "import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
        "class Lora(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.base = nn.Linear(4, 4)\n"
        "        self.A = nn.Parameter(torch.randn(2, 4) * 0.1)\n"
        "        self.B = nn.Parameter(torch.randn(4, 2) * 0.1)\n"
        "    def forward(self, x):\n"
        "        return self.base(x) + x @ self.A.t() @ self.B.t()\n"
        "model = nn.Sequential(Lora(), Lora())\n"
        "adapters = [p for n, p in model.named_parameters() if 'base' not in n]\n"
        "opt = torch.optim.SGD(adapters, lr=0.1)\n"
        "x = torch.randn(8, 4)\n"
        "for _ in range(6):\n"
        "    opt.zero_grad()\n"
        "    loss = model(x).pow(2).mean()\n"
        "    loss.backward()\n"
        "    opt.step()\n",
        "params-frozen",
    )
    assert f.severity == "info" and f.hint is not None
    assert "`model.0.base.requires_grad_(False)`, `model.1.base.requires_grad_(False)`" in f.hint
    assert "`model.requires_grad_(False)`" not in f.hint


@pytest.mark.parametrize("guarded", [False, True])
def test_an_ema_update_with_grad_tracking_is_a_growing_graph(tmp_path: Path, guarded: bool) -> None:
    """An EMA copy updated in place outside `torch.no_grad()`: each of its parameters becomes
    part of the trained model's graph, growing at every update, and doctor said nothing."""
    update = "ema_p.mul_(0.99).add_(p, alpha=0.01)"
    if guarded:
        update = f"with torch.no_grad():\n            {update}"
    script = tmp_path / "ema.py"
    script.write_text(
        "import copy\nimport torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
        "model = nn.Linear(3, 1)\n"
        "ema = copy.deepcopy(model).requires_grad_(False)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "x = torch.randn(8, 3)\n"
        "for step in range(5):\n"
        "    opt.zero_grad()\n"
        "    model(x).pow(2).mean().backward()\n"
        "    opt.step()\n"
        "    for ema_p, p in zip(ema.parameters(), model.parameters()):\n"
        f"        {update}\n",
        encoding="utf-8",
    )
    found = [f for f in run(script).graph.findings if f.code == "graph-retained"]
    if guarded:
        assert found == []
    else:
        [f] = found
        assert f.message.startswith("2 parameters of `ema` carry an autograd graph")
        assert f.line == 14 and f.hint is not None and "torch.no_grad()" in f.hint


@pytest.mark.parametrize("last", ["nn.ReLU()", "nn.Identity()"])
def test_relu_on_the_logits_before_cross_entropy(tmp_path: Path, last: str) -> None:
    """The quickstart tutorial once ended its classifier with `nn.ReLU()`: the classes whose
    scores go negative get no gradient (the bias gradient of two of ten classes was exactly 0).
    A classifier that ends in its last Linear is fine."""
    found = _coded(
        tmp_path,
        "import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
        f"model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), {last})\n"
        "loss = nn.CrossEntropyLoss()(model(torch.randn(6, 4)), torch.tensor([0, 1, 2, 0, 1, 2]))\n"
        "loss.backward()\n",
        "loss-input",
    )
    if last == "nn.ReLU()":
        [f] = found
        assert "is given logits that a ReLU clipped at 0" in f.message and f.line == 5
    else:
        assert found == []


@pytest.mark.parametrize("early", [False, True])
def test_requires_grad_set_after_the_forward_pass_is_named(tmp_path: Path, early: bool) -> None:
    """FGSM's classic slip: `images.requires_grad = True` after `output = model(images)`. The
    finding said to look for a `.detach()`, `.item()` or `no_grad` the script does not have, as
    an info with no line; it now names both lines and the order to fix."""
    forward = "output = model(images)\n"
    make = "images.requires_grad = True\n"
    script = tmp_path / "fgsm.py"
    script.write_text(
        "import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
        "model = nn.Linear(4, 2)\n"
        "images = torch.rand(3, 4)\n"
        + (make + forward if early else forward + make)
        + "loss = output.sum()\nloss.backward()\n",
        encoding="utf-8",
    )
    found = [f for f in run(script).graph.findings if f.code == "unused-param"]
    if early:
        assert found == []
    else:
        [f] = found
        assert (f.severity, f.line) == ("warning", 7)
        assert "after line 6 had used it (`output = model(images)`)" in f.message
        assert f.hint == (
            "Make `images` require grad before the forward pass: `images.requires_grad_()` "
            "before line 6."
        )


@pytest.mark.parametrize("guard", ["", "with torch.no_grad():\n    "])
def test_a_dqn_target_computed_with_grad_moves(tmp_path: Path, guard: str) -> None:
    """A DQN's bootstrap target outside `torch.no_grad()`: the gradient flows through the
    target too. Under `no_grad` (or from a target network) nothing is reported."""
    found = _coded(
        tmp_path,
        "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
        "torch.manual_seed(0)\n"
        "q_net = nn.Linear(4, 2)\n"
        "s, s2, r = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8)\n"
        f"{guard}target = r + 0.9 * q_net(s2).max(1).values\n"
        "loss = F.smooth_l1_loss(q_net(s).max(1).values, target)\n"
        "loss.backward()\n",
        "loss-input",
    )
    if guard:
        assert found == []
    else:
        [f] = found
        assert f.message.startswith("The target of `smooth_l1_loss` at line 8 is computed from")
        assert f.hint is not None and "torch.no_grad()" in f.hint


def test_experts_no_token_reaches_are_named_as_such(tmp_path: Path) -> None:
    """A mixture of experts whose router never picks two experts: they get no gradient, which
    is true, but "a layer defined but never applied?" and "freeze them" were the wrong advice
    for layers applied conditionally. The finding names the experts that never ran."""
    found = _coded(
        tmp_path,
        "import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
        "class MoE(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        expert = lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU())\n"
        "        self.experts = nn.ModuleList(expert() for _ in range(3))\n"
        "    def forward(self, x):\n"
        "        return self.experts[0](x)\n"  # the router always picks expert 0
        "model = MoE()\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for _ in range(3):\n"
        "    opt.zero_grad()\n"
        "    model(torch.randn(2, 4)).sum().backward()\n"
        "    opt.step()\n",
        "unused-param",
    )
    [f] = [f for f in found if f.severity == "warning"]
    assert "Their modules (`model.experts.1` and `model.experts.2`) never ran" in f.message
    assert f.hint is not None and "balance the routing" in f.hint


def test_anomaly_modes_error_is_reported_at_the_forward_line_with_the_scripts_own_trace(
    tmp_path: Path,
) -> None:
    """Under `set_detect_anomaly(True)` PyTorch warns "Error detected in SqrtBackward0" with the
    forward call's stack: the finding is at the `sqrt` line (not the backward call's), and the
    printed stack holds the script's frames only, as under `python script.py`."""
    script = tmp_path / "anomaly.py"
    script.write_text(ANOMALY_SQRT, encoding="utf-8")
    # a fresh process: Python prints a warning once per place, so in-process it may not show
    result = gradviz("doctor", str(script), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [f] = [f for f in run(script).graph.findings if f.code == "torch-warning"]
    assert f.line == 4
    assert "Error detected in SqrtBackward0, whose forward call is this line" in f.message
    assert "Anomaly mode stopped the backward call" in (f.hint or "")
    trace = result.stderr.split("Traceback of forward call that caused the error:")[1]
    assert "graphviz_grad" not in trace.split("(Triggered internally")[0]
    assert 'anomaly.py", line 4' in trace
