"""The C++ pre-hooks (`capture.native`) show exactly what the Python pre-hooks show.

The suite runs with the extension wherever it is built (`make test` builds it); these tests record
the same code both ways and require the same graphs, call by call: gradients, run order, edge
gradients, leaves. They skip where the extension is not built (no g++).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.recording import run_recorded

from graphviz_grad.capture import native
from graphviz_grad.capture._snapshot import GRAD_BATCH
from graphviz_grad.capture.recorder import record
from graphviz_grad.render.json import to_dict

ROOT = Path(__file__).resolve().parents[1]

built = pytest.mark.skipif(
    native.load() is None, reason="the C++ hooks are not built (make native, g++ needed)"
)


@pytest.fixture
def python_hooks(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A switch: `with python_hooks():` records with the Python pre-hooks (the C++ statistics
    stay on, so that both recordings add the same numbers in the same order)."""
    import contextlib

    @contextlib.contextmanager
    def off() -> Any:
        with monkeypatch.context() as m:
            m.setattr(native, "hooks", lambda: None)
            yield

    return off


def _graphs(rec: Any) -> list[dict[str, Any]]:
    return [to_dict(rec.graph(n)) for n in range(1, len(rec.calls) + 1)]


def _both(code: Any, python_hooks: Any) -> tuple[list[Any], list[Any]]:
    with record() as rec:
        code()
    with python_hooks(), record() as plain:
        code()
    return _graphs(rec), _graphs(plain)


def _chain(n: int) -> None:
    x = torch.tensor(0.5, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.001 + 0.01
    y.backward()


def _shared_and_retained() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    h = (torch.randn(4, 3) @ w + b).tanh()
    loss = (h * h).sum() + h.mean()  # h has two consumers: its edges need their own hooks
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)  # the same graph again: the first call's hooks are gone
    (gw,) = torch.autograd.grad(loss, [w], create_graph=True)
    gw.pow(2).sum().backward(inputs=[b, w])


def _hooks_and_functions() -> None:
    class Cube(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
            (x,) = ctx.saved_tensors
            return 3 * x**2 * g

    w = torch.tensor([1.0, 2.0], requires_grad=True)
    w.register_hook(lambda g: g * 2)  # the leaf's gradient changes on its way
    y = Cube.apply(w * 0.5)
    y.register_hook(lambda g: g + 1)
    y.sum().backward()


class _ScaleInPlace(torch.autograd.Function):
    """Scales its incoming gradient in place: what a pre-hook saw depends on when it is read."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        return g.mul_(2.0)


def _changed_in_place_across_a_batch() -> None:
    """A leaf runs early and op nodes change their gradients in place around the node where
    the gradients are summarised (`GRAD_BATCH` op nodes): both hooks read them at that node."""
    x = torch.ones(1, requires_grad=True)
    p = torch.ones(1, requires_grad=True)
    y = x
    for i in range(GRAD_BATCH + 2):
        y = _ScaleInPlace.apply(y) if i < 6 else y * 1.0
    ((y + p) * 1.0).sum().backward()


@built
@pytest.mark.parametrize(
    "code",
    [
        lambda: _chain(40),
        lambda: _chain(GRAD_BATCH + 300),
        _shared_and_retained,
        _hooks_and_functions,
        _changed_in_place_across_a_batch,
    ],
    ids=[
        "chain",
        "chain-over-a-batch",
        "shared-and-retained",
        "hooks-and-functions",
        "changed-in-place-across-a-batch",
    ],
)
def test_native_hooks_show_what_python_hooks_show(code: Any, python_hooks: Any) -> None:
    native_graphs, python_graphs = _both(code, python_hooks)
    assert native_graphs == python_graphs
    assert any(n["grad"] is not None for g in native_graphs for n in g["nodes"])


@built
@pytest.mark.parametrize("sample", ["linear.py", "mlp.py", "lstm.py", "transformer.py"])
def test_native_hooks_on_the_samples(sample: str, python_hooks: Any) -> None:
    script = ROOT / "samples" / sample
    rec = run_recorded(script)
    with python_hooks():
        plain = run_recorded(script)
    assert _graphs(rec)[-1] == _graphs(plain)[-1]
    assert rec.calls == plain.calls


@built
def test_a_failed_backward_call_leaves_no_hook_behind() -> None:
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    with record() as rec:
        y = w.exp()
        y.add_(1.0)  # exp saved its output: backward fails
        with pytest.raises(RuntimeError, match="inplace"):
            y.sum().backward()
        z = (w * 3.0).sum()
        z.backward()
    assert w.grad is not None and w.grad.tolist() == [3.0, 3.0]
    assert rec.graph().nodes[-1].grad is not None


@built
def test_the_hooks_are_on_the_nodes_only_during_the_call() -> None:
    module = native.load()
    assert module is not None
    seen: list[int] = []
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    with record():
        loss = (w.sin() * 2.0).sum()
        loss.grad_fn.register_prehook(lambda g: seen.append(module.hooks_on(loss.grad_fn)))
        loss.backward(retain_graph=True)
        loss.backward(retain_graph=True)
    assert seen == [1, 1]  # one each call: the first call's was taken off
    assert module.hooks_on(loss.grad_fn) == 0
    assert module.hooks_on(loss.grad_fn.next_functions[0][0]) == 0


@built
def test_a_node_the_cpp_side_does_not_know_gets_the_python_hooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = native.load()
    assert module is not None

    class Refusing:
        @staticmethod
        def Hooks(*args: Any) -> None:  # noqa: N802 (the extension's class)
            raise TypeError("Hooks() takes autograd nodes")

    monkeypatch.setattr(native, "_loaded", [Refusing])
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    with record() as rec:
        (w.sin() * 2.0).sum().backward()
    (expected,) = torch.autograd.grad((w.sin() * 2.0).sum(), w)
    assert rec.graph().leaves[0].grad.data == expected.tolist()  # type: ignore[union-attr]


@built
def test_compiled_autograd_keeps_the_python_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    fake = types.SimpleNamespace(compiled_autograd_enabled=True)
    monkeypatch.setitem(sys.modules, "torch._dynamo.compiled_autograd", fake)
    assert native.hooks() is None
    fake.compiled_autograd_enabled = False
    assert native.hooks() is not None


def test_check_says_whether_the_hooks_are_used(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(native, "_loaded", [None])
    monkeypatch.setenv("GRADVIZ_NATIVE", "0")
    assert native.main(["--check"]) == 1
    assert "turned off by GRADVIZ_NATIVE=0" in capsys.readouterr().out


def test_check_says_how_to_build_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(native, "_loaded", [])
    monkeypatch.setenv("GRADVIZ_CACHE", str(tmp_path))
    monkeypatch.delenv("GRADVIZ_NATIVE", raising=False)
    assert native.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "not built for this gradviz and torch" in out and str(tmp_path) in out
    assert "`python -m graphviz_grad.native` builds them" in out


def test_turned_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADVIZ_NATIVE", "0")
    assert native._load() is None


def test_the_build_is_named_by_source_torch_and_python(monkeypatch: pytest.MonkeyPatch) -> None:
    name = native.build_name()
    assert name.startswith("gradviz_native_") and name == native.build_name()
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")
    assert native.build_name() != name
    monkeypatch.setenv("GRADVIZ_CACHE", "/nowhere/cache")
    assert native.build_dir().parent == Path("/nowhere/cache/native")


@built
def test_batches_also_close_by_bytes_and_both_hooks_close_them_at_the_same_node(
    python_hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large gradients are summarised once they take `GRAD_BATCH_BYTES`, long before
    `GRAD_BATCH` nodes (held, they would keep the engine from reusing their memory); the C++
    and the Python hooks close each batch at the same node, so that even a gradient changed in
    place around that node reads the same both ways."""
    from graphviz_grad.capture import _snapshot

    monkeypatch.setattr(_snapshot, "GRAD_BATCH_BYTES", 3 * 64 * 4)  # three nodes' gradients
    batches: list[int] = []
    summarize = _snapshot.CallCapture._summarize

    def counted(self: Any) -> None:
        batches.append(len(self._pending))
        summarize(self)

    monkeypatch.setattr(_snapshot.CallCapture, "_summarize", counted)

    def code() -> None:
        x = torch.ones(64, requires_grad=True)
        y = x
        for i in range(20):
            y = _ScaleInPlace.apply(y) if i % 4 == 0 else y * 1.5
        y.sum().backward()

    native_graphs, python_graphs = _both(code, python_hooks)
    assert native_graphs == python_graphs
    assert batches.count(3) >= 10  # every third op node, both ways (20 ops + the sum)
