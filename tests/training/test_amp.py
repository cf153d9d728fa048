"""Mixed precision: autocast's dtypes and casts, GradScaler's scaled gradients, against torch."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from helpers.cli import cli_output
from helpers.oracle import Oracle, close, mismatches
from torch import nn
from training_run import SCRIPTS
from typer.testing import CliRunner

from graphviz_grad.capture import Recorder
from graphviz_grad.cli import app
from graphviz_grad.render.json import from_dict, to_dict


def test_autocast_bfloat16_shows_dtypes_and_casts() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    x = torch.randn(3, 4)
    with Recorder() as rec, Oracle() as oracle:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(x).float().pow(2).mean()
        loss.backward()
    graph = rec.graph(-1)
    assert mismatches(graph, oracle.expected[-1]) == []
    addmm = graph.find("AddmmBackward0")
    assert addmm is not None and addmm.dtype == "bfloat16"
    casts = [n for n in graph.nodes if n.op == "ToCopyBackward0"]
    assert {n.dtype for n in casts} == {"float32", "bfloat16"}  # up for the loss, down for w, b
    assert {n.dtype for n in graph.leaves} == {"float32"}


def test_grad_scaler_gradients_are_labelled_scaled_and_equal_torchs() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    x = torch.randn(3, 4)
    with Recorder(namespaces=[{"model": model}]) as rec:
        loss = model(x).pow(2).mean()
        scaler.scale(loss).backward()
    graph = rec.graph(-1)
    assert graph.grad_scale == 1024.0
    assert any("scaled by GradScaler (x1024)" in n for n in graph.notes)
    for leaf in graph.leaves:
        param = dict(model.named_parameters())[leaf.names[0].removeprefix("model.")]
        assert close(leaf.grad, param.grad)  # torch's own, still scaled
    (w,) = [n for n in graph.leaves if n.names[0] == "model.weight"]
    (g,) = torch.autograd.grad(model(x).pow(2).mean(), [model.weight])
    assert close(w.grad, g * 1024)
    assert from_dict(json.loads(json.dumps(to_dict(graph)))).grad_scale == 1024.0


def test_recording_without_a_scaler_says_nothing_about_scale() -> None:
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    with Recorder() as rec:
        (w * 3).sum().backward()
    assert rec.graph(-1).grad_scale is None
    assert "grad_scale" not in to_dict(rec.graph(-1))


def test_doctor_calls_a_scaled_overflow_info() -> None:
    result = CliRunner().invoke(app, ["doctor", str(SCRIPTS / "scaler_overflow.py")])
    assert result.exit_code == 0, result.output
    assert "grad-inf" in result.output and "info" in result.output
    assert "│ error" not in result.output


def test_doctor_still_calls_an_inf_loss_under_a_scaler_an_error(tmp_path: Path) -> None:
    # the unscaled loss itself overflows (3e38 squared): the scaler skipping the step hides a
    # real bug, so forward-nonfinite says where, at the pow
    source = (SCRIPTS / "scaler_overflow.py").read_text().replace("1e18", "3e38")
    script = tmp_path / "overflow.py"
    script.write_text(source)
    result = CliRunner().invoke(app, ["doctor", str(script)])
    assert result.exit_code == 10, result.output
    assert "forward-nonfinite" in result.output and "PowBackward0" in result.output


def test_steps_says_which_calls_are_scaled(tmp_path: Path) -> None:
    """The AMP recipe trains 8 steps plain, then with GradScaler: the steps table's loss went
    from 1.0 to 6.7e+04 with nothing said, and read as an explosion. It now says which calls
    are scaled and by how much."""
    out = cli_output(
        tmp_path,
        "amp.py",
        "import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
        "model = nn.Linear(4, 1)\nopt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
        "scaler = torch.amp.GradScaler('cpu', init_scale=1024.0)\n"
        "x, y = torch.randn(8, 4), torch.randn(8, 1)\n"
        "for step in range(4):\n"
        "    opt.zero_grad()\n"
        "    loss = (model(x) - y).pow(2).mean()\n"
        "    if step < 2:\n"
        "        loss.backward()\n"
        "        opt.step()\n"
        "    else:\n"
        "        scaler.scale(loss).backward()\n"
        "        scaler.step(opt)\n"
        "        scaler.update()\n",
        "steps",
    )
    assert "note: in calls 3 to 4 the loss was scaled by GradScaler (x1024)" in out
