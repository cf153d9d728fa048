"""A tensor whose memory was freed under it is never read: it gets a note, and the run goes on.

FSDP frees a parameter's gathered copy after the forward pass (`untyped_storage().resize_(0)`)
and gathers it again during backward; that copy is the graph's leaf. PyTorch's reductions do not
check for missing memory (reading such a tensor crashes the process), and `tolist` raises, so
gradviz killed the user's FSDP run at the first backward call. These tests free the memory of
small and large tensors on every path a summary takes; each crash would take pytest down with it.
"""

from __future__ import annotations

import pytest
import torch

import graphviz_grad as gg
from graphviz_grad.capture import summary
from graphviz_grad.capture.summary import (
    FREED_NOTE,
    freed,
    reduce_on_device,
    summarize,
    summarize_many,
    summarize_small,
    summarize_unread,
)


def _freed(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    t = torch.arange(n).to(dtype)
    t.untyped_storage().resize_(0)
    return t


@pytest.mark.parametrize("n", [1, 4, 16, 17, 1000, 1 << 20])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
def test_a_freed_tensor_gets_a_note_on_every_path(n: int, dtype: torch.dtype) -> None:
    t = _freed(n, dtype)
    assert freed(t)
    expected = summary.TensorSummary((n,), str(dtype).removeprefix("torch."), n, note=FREED_NOTE)
    assert summarize(t) == expected
    assert summarize_small(t) == expected
    alive = torch.arange(float(n))
    assert summarize_many([t, alive, None, t.view(1, n)]) == [
        expected,
        summarize(alive),
        None,
        summary.TensorSummary((1, n), expected.dtype, n, note=FREED_NOTE),
    ]


@pytest.mark.parametrize("n", [4, 1000])
def test_the_accelerators_path_does_not_read_it_either(
    n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summary, "CPU_AS_DEVICE", True)
    t = _freed(n)
    assert summarize_unread(reduce_on_device(t)).note == FREED_NOTE
    assert summarize_many([t, torch.ones(n)])[0].note == FREED_NOTE  # type: ignore[union-attr]


def test_what_is_not_freed_is_not_taken_for_freed() -> None:
    assert not freed(torch.empty(0))  # no elements: nothing to read, nothing missing
    assert not freed(torch.randn(3)[1:])
    assert not freed(torch.randn(4, 4).to_sparse())
    assert not freed(torch.empty(3, device="meta"))


def test_a_leaf_freed_before_backward_is_shown_with_its_gradient() -> None:
    """As FSDP leaves its gathered parameters: freed after forward, not needed by backward."""
    w = torch.randn(50, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    kept_w, kept_b = w.detach().clone(), b.detach().clone()
    with gg.record() as rec:
        loss = (w * 2.0).sum() + (b * 3.0).sum()  # neither w nor b is saved for backward
        w.untyped_storage().resize_(0)
        b.untyped_storage().resize_(0)
        loss.backward()
    graph = rec.graph()
    leaves = {n.grad.numel: n for n in graph.leaves if n.grad is not None}
    assert leaves[50].value is not None and leaves[50].value.note == FREED_NOTE
    assert leaves[3].value is not None and leaves[3].value.note == FREED_NOTE
    assert leaves[50].grad.mean == 2.0 and leaves[50].grad.norm == pytest.approx(2.0 * 50**0.5)
    assert leaves[3].grad.data == [3.0, 3.0, 3.0]
    w.untyped_storage().resize_(50 * 4)
    b.untyped_storage().resize_(3 * 4)
    with torch.no_grad():
        w.copy_(kept_w)
        b.copy_(kept_b)
    assert w.grad is not None and torch.equal(w.grad, torch.full((50,), 2.0))
