"""Cut marks are the user's cuts only: autograd saving an op's output for backward (sigmoid,
relu, softmax, layer_norm) dispatches a `detach` too, which must not count as one."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from graphviz_grad.capture.recorder import record


def test_outputs_saved_for_backward_are_not_cuts() -> None:
    with record() as rec:
        x = torch.randn(3, 4, requires_grad=True)
        y = torch.sigmoid(x) + torch.relu(x) + torch.log_softmax(x, 1)
        y = torch.nn.functional.layer_norm(y, (4,)).tanh()
        y.sum().backward()
    assert rec.watch.seq == 0
    assert rec.watch.marks == 0


def test_the_users_detach_and_data_are_cuts_even_right_after_an_op() -> None:
    with record() as rec:
        x = torch.randn(3, requires_grad=True)
        a = torch.sigmoid(x).data  # in the same line as an op that saved its output
        b = x * 2
        c = b.data  # noqa: E702 - right after an op that saves nothing
        d = torch.exp(x).detach()
        e = torch.relu(x)
        f = e.detach()
        loss = (x * a + x * c + x * d + x * f).sum()
        loss.backward()
    cuts = [rec.watch.cut_of(t) for t in (a, c, d, f)]
    assert all(cut is not None for cut in cuts)
    assert [cut.kind for cut in cuts] == ["detach"] * 4  # type: ignore[union-attr]
    assert rec.watch.seq == 4


def _recurrent(steps: int, detach_before_backward: bool) -> list[str]:
    """A recurrent state carried over calls with `h = h.detach()` (truncated BPTT); the codes
    `diagnose` finds on the last call's graph."""
    from graphviz_grad.diagnose import diagnose

    torch.manual_seed(0)
    cell = torch.nn.RNNCell(2, 3)
    h = torch.zeros(1, 3)
    with record() as rec:
        for _ in range(steps):
            h = h.detach()
            for _ in range(4):
                h = cell(torch.randn(1, 2), h)
            if detach_before_backward:  # the same cut, from a graph no backward has run through
                h = h.detach() + 0.0 * h
            h.pow(2).sum().backward()
    graph = rec.graph(-1)
    return [f.code for f in diagnose(graph, rec.calls, watch=rec.watch)]


def test_a_cut_from_a_graph_backward_already_freed_is_not_reported() -> None:
    """Without that `.detach()` the next backward would fail: it is not where a gradient stops."""
    assert "cut" not in _recurrent(3, detach_before_backward=False)


def test_a_cut_from_a_live_graph_is_still_reported() -> None:
    assert "cut" in _recurrent(3, detach_before_backward=True)


def test_a_cut_tensor_pickles_as_without_gradviz(tmp_path: Path) -> None:
    """A `state_dict()` detaches every parameter (a cut): `torch.save` of it must not carry
    anything of gradviz's (a checkpoint would then need gradviz, or fail to pickle)."""
    model = torch.nn.Linear(2, 1)
    plain = pickle.dumps(model.state_dict())
    with record() as rec:
        state = model.state_dict()
        torch.save(state, tmp_path / "m.pt")
        kept = pickle.dumps(state)
    assert rec.watch.cut_of(state["weight"]) is not None  # the cut is seen
    assert kept == plain and "gradviz" not in (tmp_path / "m.pt").read_bytes().decode("latin-1")
    assert not vars(state["weight"])
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    assert torch.equal(loaded["weight"], model.weight.detach())
