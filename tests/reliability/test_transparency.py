"""gradviz is transparent: a script computes, prints and leaves exactly what plain python does.

For every script in samples/ (and benchmarks/workloads/ when it exists) the stdout, the exit
status and the final tensors are compared between `python FILE` and `gradviz render FILE` (in a
fresh process), and between `runner.run_script` with and without a recorder (in process, where
the user's `.grad`, `requires_grad`, hooks and module state can be inspected too). Afterwards the
interpreter is as it was: gradviz restores what it patched, also when the script raises, calls
`sys.exit`, or is interrupted.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.gradviz_proc import GRADVIZ, ROOT, SAMPLES, ctrl_c, run
from torch.nn.modules import module as nn_module
from torch.overrides import _get_current_function_mode_stack
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

from graphviz_grad.capture import Recorder, in_big_stack, run_script

WORKLOADS = ROOT / "benchmarks" / "workloads"
#: Scripts larger than this are taken as heavy workloads and skipped here.
MAX_BYTES = 16_000
#: Workloads named for a graph size (`chain_100k.py`) above this many ops are skipped here.
MAX_OPS = 10_000
_SIZE = re.compile(r"_(\d+)([km]?)$")
#: A plain run slower than this (seconds) marks the script as too heavy for this test.
MAX_SECONDS = 60


def _scripts() -> list[Any]:
    found = sorted(SAMPLES.glob("*.py")) + sorted(WORKLOADS.glob("*.py"))
    params = []
    for path in found:
        rel = path.relative_to(ROOT).as_posix()
        reason = _heavy(path)
        marks = [pytest.mark.skip(reason=f"{rel} is heavy: {reason}")] if reason else []
        params.append(pytest.param(path, id=rel, marks=[pytest.mark.slow, *marks]))
    return params


def _heavy(path: Path) -> str | None:
    """Why `path` is too heavy to run four times here (None when it is not)."""
    if path.stat().st_size > MAX_BYTES:
        return f"over {MAX_BYTES} bytes"
    found = _SIZE.search(path.stem)
    if found and int(found[1]) * {"": 1, "k": 1_000, "m": 1_000_000}[found[2]] > MAX_OPS:
        return f"a graph over {MAX_OPS} ops"
    return None


SCRIPTS = _scripts()


# -- the state gradviz must leave as it found it --------------------------------------------------
def interpreter_state() -> dict[str, Any]:
    """Everything in the interpreter that gradviz patches or could leave behind."""
    return {
        "autograd.backward": torch.autograd.backward,
        "autograd.grad": torch.autograd.grad,
        "Tensor.backward": torch.Tensor.backward,
        "argv": list(sys.argv),
        "path": list(sys.path),
        "__main__": sys.modules.get("__main__"),
        "dispatch modes": len(_get_current_dispatch_mode_stack()),
        "function modes": len(_get_current_function_mode_stack()),
        "forward pre hooks": dict(nn_module._global_forward_pre_hooks),
        "forward hooks": dict(nn_module._global_forward_hooks),
        "always-call hooks": set(nn_module._global_forward_hooks_always_called),
        "backward hooks": dict(nn_module._global_backward_hooks),
        "grad enabled": torch.is_grad_enabled(),
        "default dtype": torch.get_default_dtype(),
        "stdout": sys.stdout,
        "stderr": sys.stderr,
        "stack size": threading.stack_size(),
        "sigint": signal.getsignal(signal.SIGINT),
        "trace": sys.gettrace(),
        "profile": sys.getprofile(),
        "cwd": os.getcwd(),
        "threads": sorted(t.name for t in threading.enumerate()),
    }


def _same_tensor(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    if a.dtype != b.dtype or a.shape != b.shape or a.requires_grad != b.requires_grad:
        return False
    a, b = a.detach(), b.detach()
    if a.is_floating_point() and bool(a.isnan().any()):
        return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
    return torch.equal(a, b)


def _hooks(obj: Any) -> tuple[int, ...]:
    names = (
        "_backward_hooks",
        "_forward_hooks",
        "_forward_pre_hooks",
        "_post_accumulate_grad_hooks",
    )
    return tuple(len(getattr(obj, n, None) or {}) for n in names)


def user_state(ns: dict[str, Any]) -> dict[str, Any]:
    """The script's tensors, modules and optimizers as comparable entries, by global name."""
    state: dict[str, Any] = {}
    for name, value in ns.items():
        if name.startswith("__"):
            continue
        if isinstance(value, torch.Tensor):
            state[name] = ("tensor", value, value.grad if value.is_leaf else None, _hooks(value))
        elif isinstance(value, torch.nn.Module):
            state[name] = ("module", value.training, _hooks(value))
            for key, t in value.state_dict(keep_vars=True).items():
                state[f"{name}.{key}"] = ("tensor", t, t.grad, _hooks(t))
            for key, m in value.named_modules():
                state[f"{name}.{key}#module"] = ("module", m.training, _hooks(m))
        elif isinstance(value, torch.optim.Optimizer):
            for key, t in _flat(value.state_dict()):
                state[f"{name}.{key}"] = ("tensor", t, None, ())
    return state


def _flat(tree: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    stack = [(prefix, tree)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, torch.Tensor):
            yield key, item
        elif isinstance(item, dict):
            stack.extend((f"{key}.{k}", v) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{key}.{i}", v) for i, v in enumerate(item))


def differences(plain: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    """What differs between two `user_state`s (empty when the script ended the same)."""
    problems = [f"{k}: only in one run" for k in sorted(set(plain) ^ set(recorded))]
    for key in sorted(set(plain) & set(recorded)):
        a, b = plain[key], recorded[key]
        if a[0] == "module":
            if a != b:
                problems.append(f"{key}: module state {a} != {b}")
            continue
        if not _same_tensor(a[1], b[1]):
            problems.append(f"{key}: value differs")
        if not _same_tensor(a[2], b[2]):
            problems.append(f"{key}: .grad differs")
        if a[3] != b[3]:
            problems.append(f"{key}: hooks {a[3]} != {b[3]}")
    return problems


def _reseed() -> None:
    torch.manual_seed(0)
    random.seed(0)


def run_in_process(path: Path, recorded: bool) -> tuple[str, int, dict[str, Any]]:
    """stdout, exit status and final state of `path` run by gradviz's runner."""
    _reseed()
    factory = (lambda ns: Recorder(keep=-1, namespaces=ns)) if recorded else None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = in_big_stack(lambda: run_script(path, (), factory))
    return out.getvalue(), result.exit_code, user_state(result.namespace)


# -- the scripts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", SCRIPTS)
def test_gradviz_render_changes_nothing_the_script_prints(path: Path, tmp_path: Path) -> None:
    try:
        plain = run([sys.executable, str(path)], cwd=tmp_path, timeout=MAX_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.skip(f"{path.name} runs longer than {MAX_SECONDS} s under plain python")
    out = tmp_path / "graph.json"
    gradviz = run([*GRADVIZ, "render", str(path), "--format", "json", "-o", str(out)], cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert gradviz.returncode == plain.returncode, gradviz.stderr
    assert gradviz.stdout == plain.stdout
    assert "Traceback" not in gradviz.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.json"]


@pytest.mark.parametrize("path", SCRIPTS)
def test_runner_leaves_the_same_tensors_grads_hooks_and_modules(path: Path) -> None:
    before = interpreter_state()
    plain_out, plain_code, plain = run_in_process(path, recorded=False)
    rec_out, rec_code, recorded = run_in_process(path, recorded=True)
    assert (rec_out, rec_code) == (plain_out, plain_code)
    assert differences(plain, recorded) == []
    assert interpreter_state() == before


def test_the_state_comparison_can_fail() -> None:
    w = torch.ones(2, requires_grad=True)
    a = user_state({"w": w})
    (w * 2).sum().backward()
    w.register_hook(lambda g: g)
    assert differences(a, user_state({"w": w})) == [
        "w: .grad differs",
        "w: hooks (0, 0, 0, 0) != (1, 0, 0, 0)",
    ]


# -- restoring what gradviz patched ---------------------------------------------------------------
ENDINGS: dict[str, tuple[str, type[BaseException] | None, int]] = {
    "returns": ("", None, 0),
    "raises": ("raise ValueError('boom')\n", None, 0),
    "sys.exit(3)": ("import sys\nsys.exit(3)\n", None, 3),
    "KeyboardInterrupt": ("raise KeyboardInterrupt\n", KeyboardInterrupt, 0),
}

BODY = """\
import torch
from torch import nn

model = nn.Linear(2, 1)
h = model.register_forward_hook(lambda m, i, o: None)
w = torch.ones(2, requires_grad=True)
w.register_hook(lambda g: g * 1)
loss = (model(w) ** 2).sum()
loss.backward()
"""


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("thread", [False, True], ids=["main-thread", "big-stack"])
def test_everything_patched_is_restored(ending: str, thread: bool, tmp_path: Path) -> None:
    tail, raised, code = ENDINGS[ending]
    script = tmp_path / "script.py"
    script.write_text(BODY + tail, encoding="utf-8")
    before = interpreter_state()

    def job() -> Any:
        return run_script(script, ("--x",), lambda ns: Recorder(namespaces=ns))

    if raised is not None:
        with pytest.raises(raised):
            in_big_stack(job) if thread else job()
    else:
        result = in_big_stack(job) if thread else job()
        assert result.exit_code == code
        assert (result.error is not None) == (ending == "raises")
        assert result.namespace["w"].grad is not None
    assert interpreter_state() == before


def test_user_hooks_and_grads_survive_recording(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(BODY, encoding="utf-8")
    _, _, plain = run_in_process(script, recorded=False)
    _, _, recorded = run_in_process(script, recorded=True)
    assert differences(plain, recorded) == []
    assert recorded["w"][3] == (1, 0, 0, 0)  # the script's tensor hook, and nothing of ours
    assert recorded["model"][2] == (0, 1, 0, 0)  # the script's forward hook, and nothing of ours


def test_ctrl_c_stops_gradviz_cleanly(tmp_path: Path) -> None:
    script = tmp_path / "spin.py"
    script.write_text(
        "import time, torch\n"
        "w = torch.ones(1, requires_grad=True)\n"
        "loss = (w * 2).sum()\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    time.sleep(0.01)\n",
        encoding="utf-8",
    )
    out = tmp_path / "spin.json"
    result = ctrl_c("render", str(script), "-o", str(out), cwd=tmp_path)
    assert result.returncode == 130, result.stderr
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spin.py"]


def _plain_and_render(
    script: Path, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str], Path]:
    """`script` under plain python, then under `gradviz render -f json` (and that JSON's path)."""
    out = tmp_path / "g.json"
    plain = run([sys.executable, str(script)], cwd=tmp_path)
    shown = run([*GRADVIZ, "render", str(script), "-f", "json", "-o", str(out)], cwd=tmp_path)
    return plain, shown, out


def test_a_warning_raised_inside_backward_points_at_the_scripts_line(tmp_path: Path) -> None:
    """A warning PyTorch raises during the user's backward (a module's full backward hook) is
    shown at the script's `backward()` line, as plain python shows it, not at gradviz's wrapper."""
    script = tmp_path / "hooked.py"
    script.write_text(
        "import torch\n"
        "net = torch.nn.Linear(3, 1)\n"
        "net.register_full_backward_hook(lambda m, gi, go: None)\n"
        "loss = net(torch.randn(2, 3)).sum()\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    plain, shown, _ = _plain_and_render(script, tmp_path)
    assert f"{script}:5: UserWarning: Full backward hook is firing" in plain.stderr
    assert f"{script}:5: UserWarning: Full backward hook is firing" in shown.stderr
    assert "graphviz_grad" not in shown.stderr


def test_the_scripts_saved_tensors_hooks_run_as_often_as_without_gradviz(tmp_path: Path) -> None:
    """gradviz lists the saved tensors of ops under the script's `saved_tensors_hooks` unread:
    reading them would call the script's unpack hook once more per tensor."""
    script = tmp_path / "offload.py"
    script.write_text(
        "import torch\n"
        "calls = []\n"
        "w = torch.randn(4, 4, requires_grad=True)\n"
        "hooks = (lambda t: t.clone(), lambda t: calls.append(1) or t)\n"
        "with torch.autograd.graph.saved_tensors_hooks(*hooks):\n"
        "    y = torch.tanh(torch.randn(3, 4) @ w).sin().sum()\n"
        "y.backward()\n"
        "print('unpacked', len(calls))\n",
        encoding="utf-8",
    )
    plain, shown, out = _plain_and_render(script, tmp_path)
    assert plain.stdout == shown.stdout == "unpacked 3\n", shown.stderr
    texts = {s["text"] for n in json.loads(out.read_text())["nodes"] for s in n.get("saved", [])}
    assert "saved through the script's saved_tensors_hooks: not read" in texts


def test_torch_func_transforms_run_as_without_gradviz(tmp_path: Path) -> None:
    """`torch.func.grad` calls `torch.autograd.grad` on its own wrapped tensors (no storage):
    gradviz lets those calls through; the script's own backward call is still recorded."""
    script = tmp_path / "per_sample.py"
    script.write_text(
        "import torch\n"
        "from torch.func import functional_call, grad, vmap\n"
        "model = torch.nn.Linear(3, 1)\n"
        "params = {k: v.detach() for k, v in model.named_parameters()}\n"
        "x, y = torch.randn(8, 3), torch.randn(8, 1)\n"
        "def loss_fn(p, xi, yi):\n"
        "    return ((functional_call(model, p, (xi[None],)) - yi) ** 2).mean()\n"
        "g = vmap(grad(loss_fn), in_dims=(None, 0, 0))(params, x, y)\n"
        "print({k: tuple(v.shape) for k, v in g.items()})\n"
        "((model(x) - y) ** 2).mean().backward()\n",
        encoding="utf-8",
    )
    plain, shown, out = _plain_and_render(script, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == plain.stdout == "{'weight': (8, 1, 3), 'bias': (8, 1)}\n"
    assert json.loads(out.read_text())["call"] == 1


def test_the_function_torch_func_vjp_returns_runs_as_without_gradviz(tmp_path: Path) -> None:
    """The function `vjp` returns calls `torch.autograd.grad` on wrapped tensors (no storage)
    after the transform ended: PyTorch's Hessian-vector product by reverse-over-reverse, on a
    tensor large enough to be summarised (it raised "Cannot access data pointer of Tensor that
    doesn't have storage" under gradviz)."""
    script = tmp_path / "hvp.py"
    script.write_text(
        "import torch\n"
        "from torch.func import grad, vjp\n"
        "x, v = torch.randn(2048), torch.randn(2048)\n"
        "_, vjp_fn = vjp(grad(lambda t: t.sin().sum()), x)\n"
        "(hvp,) = vjp_fn(v)\n"
        "print(torch.allclose(hvp, -x.sin() * v))\n"
        "w = torch.tensor(2.0, requires_grad=True)\n"
        "(w * hvp.sum()).backward()\n",
        encoding="utf-8",
    )
    plain, shown, out = _plain_and_render(script, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == plain.stdout == "True\n"
    assert json.loads(out.read_text())["call"] == 1


def test_control_flow_operators_run_under_gradviz(tmp_path: Path) -> None:
    """`torch.cond` and `scan` (higher-order operators) raised "There was no rule registered for
    HigherOrderOperator cond and mode ForwardRecorder" under gradviz. They now run as without it;
    their node (`CondAutogradOpBackward`) is drawn with its value and gradient, equal to torch's."""
    script = tmp_path / "flow.py"
    script.write_text(
        "import torch\n"
        "from torch._higher_order_ops.scan import scan\n"
        "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "out = torch.cond(w.sum() > 0, lambda t: t.cos(), lambda t: t.sin(), (w,))\n"
        "carry, ys = scan(lambda c, x: (c * x, c * x + 0.0), torch.tensor(1.0), out * w)\n"
        "loss = carry + out.sum()\n"
        "loss.backward()\n"
        "print(out.tolist(), w.grad.tolist())\n",
        encoding="utf-8",
    )
    plain, shown, path = _plain_and_render(script, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == plain.stdout
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    out = w.cos()
    loss = (out * w).prod() + out.sum()
    (grad,) = torch.autograd.grad(loss, w)
    nodes = {n["op"]: n for n in json.loads(path.read_text())["nodes"] if n["kind"] == "op"}
    cond = nodes["CondAutogradOpBackward"]
    assert cond["value"]["data"] == pytest.approx(out.tolist())
    [leaf] = [n for n in json.loads(path.read_text())["nodes"] if n["kind"] == "leaf"]
    assert leaf["grad"]["data"] == pytest.approx(grad.tolist())


def test_the_scripts_hook_ids_are_its_own(tmp_path: Path) -> None:
    """PyTorch numbers every hook handle from one counter, and a module's hook dict shows the
    numbers (PyTorch's pruning tutorial prints `module._forward_pre_hooks`). gradviz's own
    global hooks took the first five, so the script printed `[5, 6]` instead of `[0, 1]`."""
    script = tmp_path / "hooks.py"
    script.write_text(
        "import torch\n"
        "m = torch.nn.Linear(2, 2)\n"
        "m.register_forward_pre_hook(lambda mod, a: None)\n"
        "m.register_forward_pre_hook(lambda mod, a: None)\n"
        "m(torch.randn(1, 2)).sum().backward()\n"
        "t = torch.randn(2, requires_grad=True)\n"
        "print(list(m._forward_pre_hooks), t.register_hook(lambda g: None).id)\n",
        encoding="utf-8",
    )
    plain, shown, _ = _plain_and_render(script, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == plain.stdout == "[0, 1] 2\n"
