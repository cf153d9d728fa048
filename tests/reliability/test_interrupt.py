"""Ctrl-C on a long run shows what completed: the last whole backward call, then exit 130.

The first Ctrl-C asks the recording to stop the script where no record is half made (the next op
the script runs, or the end of the backward call under way); a script that runs no op (it sleeps,
loads data) is stopped from outside after a moment. A second Ctrl-C quits at once, without output.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from helpers.gradviz_proc import ENV, GRADVIZ, ctrl_c, gradviz
from helpers.oracle import close
from typer.testing import CliRunner

from graphviz_grad.capture import CaptureOptions, capture_script, in_big_stack
from graphviz_grad.cli import app
from graphviz_grad.errors import Interrupted

#: The lesson's loop; `STOP` marks where the test asks to stop, as Ctrl-C does from the main thread.
LOOP = """\
import torch
from graphviz_grad.capture.runner import _LIVE
x = torch.tensor([1.0, 2.0, 3.0])
y = torch.tensor([2.0, 4.0, 6.0])
w = torch.tensor(0.5, requires_grad=True)
for step in range(1, 100):
    l = ((x * w - y) ** 2).mean()
    l.register_hook(lambda g: STOP_IN_BACKWARD)
    l.backward()
    with torch.no_grad():
        w -= 0.01 * w.grad
    w.grad = None
    STOP_AFTER
"""
ASK = "_LIVE[-1].recorder.request_stop()"


def _script(tmp_path: Path, in_backward: bool) -> Path:
    script = tmp_path / "loop.py"
    text = LOOP.replace(
        "STOP_IN_BACKWARD", f"{ASK} if step == 3 else None" if in_backward else "None"
    )
    text = text.replace("STOP_AFTER", "pass" if in_backward else f"if step == 3:\n        {ASK}")
    script.write_text(text, encoding="utf-8")
    return script


def _torch_step(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PyTorch's own (w, loss, dloss/dw) at backward call `step` of the loop."""
    x, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.0])
    w = torch.tensor(0.5, requires_grad=True)
    for _ in range(step):
        value = w.detach().clone()
        loss = ((x * w - y) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, [w])
        with torch.no_grad():
            w -= 0.01 * grad
    return value, loss.detach(), grad


@pytest.mark.parametrize("in_backward", [False, True], ids=["at-next-op", "in-backward"])
def test_a_stop_shows_the_last_completed_call_whole(tmp_path: Path, in_backward: bool) -> None:
    script = _script(tmp_path, in_backward)
    captured = in_big_stack(lambda: capture_script(script, [], CaptureOptions()))
    graph = captured.graph
    assert graph.call == 3
    value, loss, grad = _torch_step(3)
    root = graph.node(graph.root)
    assert close(root.value, loss)
    (leaf,) = graph.leaves
    assert close(leaf.value, value) and close(leaf.grad, grad)
    error = captured.error
    assert isinstance(error, Interrupted) and error.exit_code == 130
    line = 9 if in_backward else 7  # the backward call it completed, or the next op's line
    assert f"Ctrl-C stopped the script `loop.py` at loop.py:{line} after 3 backward calls" in (
        error.message
    )


def test_a_stop_before_any_backward_call_draws_nothing(tmp_path: Path) -> None:
    script = tmp_path / "early.py"
    script.write_text(
        "import torch\nfrom graphviz_grad.capture.runner import _LIVE\n"
        f"w = torch.ones(2, requires_grad=True)\n{ASK}\nloss = (w * 2).sum()\n",
        encoding="utf-8",
    )
    with pytest.raises(Interrupted, match="before any backward call completed, so gradviz drew"):
        in_big_stack(lambda: capture_script(script, [], CaptureOptions()))


def test_steps_shows_the_calls_before_the_stop(tmp_path: Path) -> None:
    script = _script(tmp_path, in_backward=False)
    result = CliRunner().invoke(app, ["steps", str(script), "--format", "csv"])
    assert result.exit_code == 130, result.output
    assert [line.split(",")[0] for line in result.stdout.splitlines()] == ["call", "1", "2", "3"]
    assert "interrupted: Ctrl-C stopped the script `loop.py`" in result.stderr


# -- a real Ctrl-C, through the command line ------------------------------------------------------
SPIN = """\
import time, torch
x = torch.tensor([1.0, 2.0, 3.0])
y = torch.tensor([2.0, 4.0, 6.0])
w = torch.tensor(0.5, requires_grad=True)
step = 0
while True:
    l = ((x * w - y) ** 2).mean()
    l.backward()
    w.grad = None
    step += 1
    if step == 50:
        print("ready", flush=True)
    while SLEEP:  # loading data, say: no op runs, so the script is stopped from outside
        time.sleep(0.01)
"""


@pytest.mark.parametrize("sleeps", [False, True], ids=["running-ops", "sleeping"])
def test_ctrl_c_writes_the_last_completed_call(tmp_path: Path, sleeps: bool) -> None:
    script = tmp_path / "spin.py"
    script.write_text(SPIN.replace("SLEEP", "step >= 50" if sleeps else "False"), encoding="utf-8")
    out = tmp_path / "spin.json"
    result = ctrl_c("render", str(script), "-o", str(out), cwd=tmp_path)
    stderr = result.stderr
    assert result.returncode == 130, stderr
    assert "interrupted: Ctrl-C stopped the script `spin.py`" in stderr
    assert "gradviz shows the graph of a call completed before it" in stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["call"] >= 50
    _, loss, grad = _torch_step(1)  # w never changes: every call is the first one again
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes[data["root"]]["value"]["data"] == pytest.approx(loss.item())
    (leaf,) = [n for n in data["nodes"] if n["kind"] == "leaf"]
    assert leaf["grad"]["data"] == pytest.approx(grad.item())


def test_a_second_ctrl_c_quits_at_once_without_output(tmp_path: Path) -> None:
    """The script computes in plain Python (no op, so no safe point): the first Ctrl-C waits a
    moment for one, the second one stops it at once, and nothing is shown."""
    script = tmp_path / "busy.py"
    script.write_text(
        "import torch\n"
        "w = torch.ones(2, requires_grad=True)\n"
        "(w * 2).sum().backward()\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    pass\n",
        encoding="utf-8",
    )
    out = tmp_path / "busy.json"
    result = ctrl_c("render", str(script), "-o", str(out), cwd=tmp_path, times=2)
    assert result.returncode == 130, result.stderr
    assert "interrupted: no output was written." in result.stderr
    assert not out.exists()


def test_timeout_writes_the_last_completed_call_and_exits_11(tmp_path: Path) -> None:
    """`--timeout` stops the script the same way: a sample of a long run, drawn."""
    script = tmp_path / "spin.py"
    script.write_text(SPIN.replace("SLEEP", "False"), encoding="utf-8")
    out = tmp_path / "spin.json"
    result = subprocess.run(
        [*GRADVIZ, "render", str(script), "--timeout", "2", "-o", str(out)],
        cwd=tmp_path,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 11, result.stderr
    assert "ran longer than the 2 s that --timeout allows and was stopped at spin.py:" in (
        result.stderr
    )
    assert "gradviz shows the graph of a call completed before it" in result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    _, loss, grad = _torch_step(1)
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes[data["root"]]["value"]["data"] == pytest.approx(loss.item())
    (leaf,) = [n for n in data["nodes"] if n["kind"] == "leaf"]
    assert leaf["grad"]["data"] == pytest.approx(grad.item())


@pytest.mark.parametrize("how", ["timeout", "ctrl-c"])
def test_a_script_blocked_in_a_call_python_cannot_interrupt_is_left(
    tmp_path: Path, how: str
) -> None:
    """`time.sleep(1000)` after a backward call: the stop raised into the script's thread never
    arrives (a thread blocked in C runs no bytecode), so gradviz said nothing and waited for
    ever. It now quits a few seconds later with the exit code of the stop, says why, and writes
    no file."""
    script = tmp_path / "sleep.py"
    script.write_text(
        "import time, torch\n"
        "w = torch.ones(2, requires_grad=True)\n"
        "(w * 2).sum().backward()\n"
        "print('ready', flush=True)\n"
        "time.sleep(1000)\n",
        encoding="utf-8",
    )
    out = tmp_path / "sleep.json"
    if how == "timeout":
        result = gradviz("render", str(script), "--timeout", "1", "-o", str(out), cwd=tmp_path)
        assert result.returncode == 11, result.stderr
    else:
        result = ctrl_c("render", str(script), "-o", str(out), cwd=tmp_path, times=2)
        assert result.returncode == 130, result.stderr
    assert "The script did not stop: it is blocked in a call Python cannot interrupt" in (
        result.stderr
    )
    assert not out.exists()
