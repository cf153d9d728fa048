"""Optimizer steps run without the dispatch mode once learnt (`capture.optim.OptimizerSteps`).

The fast path must change nothing that is shown: the parameters and the recorded calls are the
same as when every step is observed, the in-place writes noted for the parameters are the ones the
dispatch mode saw, schedulers keep working and warn of nothing, and an error inside a step leaves
the recording running.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.optim import sgd as torch_sgd
from torch.utils._python_dispatch import _get_current_dispatch_mode

from graphviz_grad.capture import optim as optim_steps
from graphviz_grad.capture.recorder import record
from graphviz_grad.diagnose import diagnose

OPTIMIZERS: dict[str, Callable[[Any], torch.optim.Optimizer]] = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd-nesterov": lambda p: torch.optim.SGD(
        p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3
    ),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2),
    "adamw-amsgrad": lambda p: torch.optim.AdamW(p, lr=1e-2, amsgrad=True),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-2, momentum=0.5, centered=True),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=1e-1),
}


def _loop(make: Callable[[Any], torch.optim.Optimizer], steps: int = 5) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    opt = make(model.parameters())
    x, y = torch.randn(6, 3), torch.randn(6, 2)
    for step in range(steps):
        opt.zero_grad(set_to_none=step % 2 == 0)
        if step == 3:
            model[2].bias.grad = None  # one parameter sits a step out
            model[2].bias.requires_grad_(False)
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        model[2].bias.requires_grad_(True)
    return model


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Turn the fast path off: every step is observed, as before it existed."""
    return lambda: monkeypatch.setattr(optim_steps.OptimizerSteps, "_install", lambda *a: None)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_fast_steps_show_what_observed_steps_show(name: str, observed: Callable[[], None]) -> None:
    plain = _loop(OPTIMIZERS[name])
    with record(keep="all") as fast:
        fast_model = _loop(OPTIMIZERS[name])
    observed()
    with record(keep="all") as slow:
        slow_model = _loop(OPTIMIZERS[name])
    for a, b, c in zip(plain.parameters(), fast_model.parameters(), slow_model.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)
        assert a._version == b._version == c._version
    assert fast.calls == slow.calls
    for number in fast.graphs:
        assert fast.graphs[number] == slow.graphs[number]
    # every write the fast path notes is one the dispatch mode saw (which also saw the writes
    # to the optimizer's own buffers), and every version of every parameter has its write
    fast_writes, slow_writes = Counter(fast.watch.inplace), Counter(slow.watch.inplace)
    assert fast_writes - slow_writes == Counter()
    for p in fast_model.parameters():
        versions = {w.version for w in fast.watch.inplace if w.shape == tuple(p.shape)}
        assert set(range(1, p._version + 1)) <= versions


def _spy_on_sgd(monkeypatch: pytest.MonkeyPatch, seen: list[object], fail: Any = None) -> None:
    """Note the dispatch mode inside SGD's update (and raise there when `fail()` says so)."""
    update = torch_sgd._single_tensor_sgd

    def spy(*args: Any, **kwargs: Any) -> None:
        seen.append(_get_current_dispatch_mode())
        if fail is not None and fail():
            raise RuntimeError("the update failed")
        update(*args, **kwargs)

    monkeypatch.setattr(torch_sgd, "_single_tensor_sgd", spy)


def test_steps_after_the_first_run_without_the_dispatch_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[object] = []
    _spy_on_sgd(monkeypatch, seen)
    w = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    with record() as rec:
        for _ in range(3):
            opt.zero_grad()
            (w - 1.0).pow(2).sum().backward()
            opt.step()
        assert "step" in opt.__dict__  # the fast path, on the instance
    assert seen[0] is rec._mode and seen[1:] == [None, None]
    assert "step" not in opt.__dict__  # taken off when the recording stops
    assert rec.steps == 3


def test_closure_and_differentiable_and_foreign_steps_stay_observed() -> None:
    seen: list[object] = []

    class Mine(torch.optim.SGD):  # the user's own optimizer may build graph
        pass

    Mine.__module__ = "my_optimizers"
    w = torch.ones(2, requires_grad=True)
    opts = [torch.optim.LBFGS([w], lr=0.1, max_iter=2), Mine([w], lr=0.1)]
    for opt in opts:
        opt.register_step_pre_hook(lambda o, a, k: seen.append(_get_current_dispatch_mode()))

    def closure() -> torch.Tensor:
        opts[0].zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with record() as rec:
        for _ in range(2):
            opts[0].step(closure)
            with torch.no_grad():
                for opt in opts[1:]:
                    opt.zero_grad()
            (w * 3.0).sum().backward()
            for opt in opts[1:]:
                with torch.no_grad():
                    opt.step()
    assert seen == [rec._mode] * 4
    assert len(rec.calls) > 2  # the closure's backward calls are recorded
    differentiable = torch.optim.SGD([w], lr=0.1, differentiable=True)
    assert not optim_steps._eligible(differentiable, (), {})
    assert optim_steps._eligible(torch.optim.SGD([w], lr=0.1), (), {})


def test_schedulers_keep_working_without_warnings() -> None:
    def run() -> tuple[list[float], torch.Tensor, bool]:
        torch.manual_seed(0)
        w = torch.randn(4, requires_grad=True)
        opt = torch.optim.Adam([w], lr=0.1)
        before = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        after = None
        lrs = []
        for step in range(6):
            opt.zero_grad()
            (w.sin() ** 2).sum().backward()
            opt.step()
            before.step()
            if step == 1:  # made once the fast path is on the optimizer
                after = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
            elif after is not None:
                after.step()
            lrs.append(opt.param_groups[0]["lr"])
        return lrs, w.detach(), hasattr(opt.step, "_wrapped_by_lr_sched")

    plain = run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with record():
            recorded = run()
        again = run()  # an optimizer from a finished recording keeps stepping
    assert recorded[0] == plain[0] == again[0]
    assert torch.equal(recorded[1], plain[1]) and torch.equal(again[1], plain[1])
    assert recorded[2] and again[2]


def test_steps_with_the_users_hooks_stay_observed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    _spy_on_sgd(monkeypatch, seen)
    w = torch.zeros(3, requires_grad=True)
    ema = torch.zeros(3)
    opt = torch.optim.SGD([w], lr=0.1)
    opt.register_step_post_hook(lambda o, a, k: ema.mul_(0.9).add_(w.detach(), alpha=0.1))
    with record() as rec:
        for _ in range(3):
            opt.zero_grad()
            (w - 1.0).pow(2).sum().backward()
            opt.step()
    assert seen == [rec._mode] * 3


def test_an_error_inside_a_fast_step_leaves_the_recording_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[object] = []
    failing = {"on": False}
    _spy_on_sgd(monkeypatch, seen, fail=lambda: failing["on"])
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    with record() as rec:
        for step in range(4):
            opt.zero_grad()
            loss = (w.exp() * 2.0).sum()
            loss.backward()
            failing["on"] = step == 2
            with contextlib.suppress(RuntimeError):
                opt.step()
        assert _get_current_dispatch_mode() is rec._mode
    assert seen[0] is rec._mode and seen[2] is None  # the failing step ran fast
    graph = rec.graph(-1)
    assert all(node.value is not None for node in graph.nodes)
    assert len(rec.calls) == 4


def test_a_stale_parameter_is_named_by_the_learnt_write() -> None:
    with record() as rec:
        w = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1)
        for _ in range(3):  # the first step is observed, the rest run fast
            opt.zero_grad()
            torch.sin(w).sum().backward()
            opt.step()
        loss = torch.sin(w).sum()
        opt.step()  # changes w, which `sin` saved for backward
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()
    graph = rec.graph(-1)
    findings = [f for f in diagnose(graph, rec.calls, watch=rec.watch) if f.code == "inplace-saved"]
    assert len(findings) == 1
    assert "`add_` at line" in findings[0].message
    assert findings[0].line is not None


def test_a_write_after_a_step_that_raised_is_at_its_own_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step that raises never runs its post hook; the writes after it are not the step's."""
    seen: list[object] = []
    _spy_on_sgd(monkeypatch, seen, fail=lambda: True)
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    with record() as rec:
        (w * 3.0).sum().backward()
        step_line = _line() + 2
        with contextlib.suppress(RuntimeError):
            opt.step()  # observed (the first step), and raises inside the update
        write_line = _line() + 1
        w.data.mul_(0.5)
    lines = [(write.aten, write.line) for write in rec.watch.inplace]
    assert ("aten.mul_.Tensor", write_line) in lines
    assert all(line != step_line for _, line in lines)


def _line() -> int:
    """The caller's line number."""
    import sys

    return sys._getframe(1).f_lineno
