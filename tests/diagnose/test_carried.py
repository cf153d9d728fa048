"""`doctor` names the tensor that links a backward call's graph to an earlier step's: a hidden
state carried from step to step, or a tensor made once before the loop, and gives the fix that
matches (detach the state, compute the tensor inside the loop), not `retain_graph=True`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from graphviz_grad.capture.recorder import record
from graphviz_grad.capture.watch import InplaceWrite
from graphviz_grad.diagnose import diagnose
from graphviz_grad.diagnose.saved import Stale, _writer, carried_name
from graphviz_grad.model import Finding


def _findings(run: Callable[[], None], error: str) -> list[Finding]:
    with record() as rec, pytest.raises(RuntimeError, match=error):
        run()
    return diagnose(rec.graph(-1), rec.calls, watch=rec.watch)


def _rnn(retain: bool, detach: bool = False) -> None:
    torch.manual_seed(0)
    rnn, head = nn.RNN(3, 4, batch_first=True), nn.Linear(4, 1)
    opt = torch.optim.SGD([*rnn.parameters(), *head.parameters()], lr=0.1)
    h = torch.zeros(1, 2, 4)
    for _ in range(3):
        if detach:
            h = h.detach()
        out, h = rnn(torch.randn(2, 5, 3), h)
        loss = head(out[:, -1]).pow(2).mean()
        opt.zero_grad()
        loss.backward(retain_graph=retain)
        opt.step()


def test_a_hidden_state_carried_across_steps_is_named_with_its_fix() -> None:
    found = _findings(lambda: _rnn(retain=False), "backward through the graph a second time")
    [twice] = [f for f in found if f.code == "backward-twice"]
    assert "`h`, carried from one step into the next at line" in twice.message
    assert "`h = h.detach()`" in (twice.hint or "")
    assert "inside the loop" not in (twice.hint or "")


def test_retain_graph_on_a_carried_state_names_the_optimizer_write_and_the_state() -> None:
    found = _findings(lambda: _rnn(retain=True), "modified by an inplace operation")
    [stale] = [f for f in found if f.code == "inplace-saved"]  # one finding for every node
    assert len(stale.nodes) > 1
    assert "modified it in place" in stale.message
    assert "an in-place operation" not in stale.message  # the optimizer's write is named
    assert "backward call 1 already went through (with `retain_graph=True`)" in stale.message
    assert "`h`, carried from one step into the next" in stale.message
    assert "`h = h.detach()`" in (stale.hint or "")


def test_the_detached_state_trains_without_a_finding() -> None:
    with record() as rec:
        _rnn(retain=False, detach=True)
    found = diagnose(rec.graph(-1), rec.calls, watch=rec.watch)
    assert not [f for f in found if f.severity == "error"]


def test_a_tensor_made_once_before_the_loop_is_named_with_its_line() -> None:
    def run() -> None:
        torch.manual_seed(0)
        emb, head = nn.Embedding(10, 4), nn.Linear(4, 1)
        opt = torch.optim.SGD([*emb.parameters(), *head.parameters()], lr=0.1)
        feats = torch.tanh(emb(torch.arange(10)))
        for _ in range(3):
            loss = head(feats).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    [twice] = [f for f in _findings(run, "a second time") if f.code == "backward-twice"]
    assert "`feats`, made at line" in twice.message
    assert "before that call, is used again at line" in twice.message
    assert (twice.hint or "").startswith("Compute `feats` again for each backward call")
    assert "`feats.detach()`" in (twice.hint or "")


def test_two_losses_on_one_forward_suggest_retain_graph_first() -> None:
    def run() -> None:
        w = torch.tensor([0.5, 0.5], requires_grad=True)
        h = torch.tanh(torch.tensor([1.0, 2.0]) * w)
        (h**2).sum().backward()
        (h - 1).abs().sum().backward()

    [twice] = [f for f in _findings(run, "a second time") if f.code == "backward-twice"]
    assert "`h`, made at line" in twice.message
    assert (twice.hint or "").startswith("Two backward calls on one forward: pass `retain_graph")


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("out, h = rnn(x, h)", "h"),
        ("self.state = self.cell(x[:, t], self.state)", "self.state"),
        ("h += step(h)", "h"),
        ("hidden: torch.Tensor = model(x, hidden)", "hidden"),
        ("out, h = rnn(x, h0)", None),  # nothing read back
        ("a, b = f(a, b)", None),  # two: not one name to give
        ("loss.backward()", None),
        ("for t in range(", None),  # not a statement on its own
    ],
)
def test_the_carried_name_is_the_one_a_line_both_assigns_and_reads(
    line: str, name: str | None
) -> None:
    assert carried_name(line) == name


def test_a_square_weight_written_by_the_optimizer_is_named_through_its_view() -> None:
    step = InplaceWrite("aten.addcdiv_.default", "s.py", 7, None, (16, 16), 2)
    assert _writer(Stale("AsStrided", (16, 16), 2, 1), [step]) is step


def test_a_running_total_of_losses_gets_the_item_fix() -> None:
    def run() -> None:
        w = torch.tensor([1.0], requires_grad=True)
        total = torch.zeros(())
        for x, y in [(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)]:
            loss = ((x * w - y) ** 2).sum()
            loss.backward()
            total += loss
        total.backward()

    [twice] = [f for f in _findings(run, "a second time") if f.code == "backward-twice"]
    assert "`total`, a running total of tensors at line" in twice.message
    assert (twice.hint or "").startswith("Add numbers, not tensors: `total += loss.item()`")
