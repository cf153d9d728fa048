"""`doctor` names the in-place write that made a saved tensor stale, however PyTorch names it.

PyTorch's error names the stale tensor by its op: the op that saved it (a saved output), the
write itself (a saved input written by `add_` is "output 0 of Add"), or a view of what was
written (an `nn.Linear` weight updated before backward is "output 0 of AsStrided").
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from graphviz_grad.capture.recorder import record
from graphviz_grad.capture.watch import InplaceWrite
from graphviz_grad.diagnose import diagnose
from graphviz_grad.diagnose.saved import Stale, _writer


def _inplace_message(run: Callable[[], None]) -> str:
    stale = pytest.raises(RuntimeError, match="modified by an inplace operation")
    with record() as rec, stale:
        run()
    graph = rec.graph(-1)
    found = [f for f in diagnose(graph, rec.calls, watch=rec.watch) if f.code == "inplace-saved"]
    assert len(found) == 1
    return found[0].message


def test_a_saved_input_written_in_place_is_named() -> None:
    def run() -> None:
        w = torch.randn(4, requires_grad=True)
        p = torch.randn(4) * w
        h = torch.sin(p)  # saves p
        p.add_(1)  # PyTorch then calls p "output 0 of Add"
        h.sum().backward()

    assert "then `add_` at line" in _inplace_message(run)


def test_a_weight_stepped_before_backward_is_named_through_its_view() -> None:
    def run() -> None:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.randn(16, 4)
        for _ in range(2):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        loss = model(x).pow(2).mean()
        opt.step()  # changes the weights `addmm` saved (as `w.t()`)
        loss.backward()

    message = _inplace_message(run)
    assert "saved `mat2` for backward, then `add_` at line" in message
    assert "version 4, backward needs version 3"  # init wrote it once in message


def _write(aten: str, owner: str | None, shape: tuple[int, ...], version: int) -> InplaceWrite:
    return InplaceWrite(aten, "s.py", 7, owner, shape, version)


def test_writer_prefers_the_very_tensor_then_the_op_then_a_view() -> None:
    same = _write("aten.mul_.Tensor", "Sigmoid", (4,), 1)
    by_op = _write("aten.add_.Tensor", "Mul", (4,), 1)
    moved = _write("aten.add_.Tensor", None, (1, 8), 5)
    assert _writer(Stale("Sigmoid", (4,), 1, 0), [same, by_op]) is same
    assert _writer(Stale("Add", (4,), 1, 0), [same, by_op]) is by_op
    assert _writer(Stale("AsStrided", (8, 1), 5, 4), [by_op, moved]) is moved


@pytest.mark.parametrize(
    "stale",
    [
        Stale("Add", (4,), 2, 1),  # no write reached version 2
        Stale("Div", (4,), 1, 0),  # no write by a div
        Stale("Exp", (1, 8), 5, 4),  # not a view: the shape must be the same
        Stale("AsStrided", (2, 4), 5, 4),  # a view, but not of an (8,) or (1, 8) tensor
    ],
)
def test_writer_names_nothing_it_cannot_tie(stale: Stale) -> None:
    writes = [
        _write("aten.add_.Tensor", "Mul", (4,), 1),
        _write("aten.add_.Tensor", None, (8, 1), 5),
    ]
    assert _writer(stale, writes) is None
