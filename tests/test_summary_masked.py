"""`torch.masked.MaskedTensor` values and gradients: the statistics of the numbers the mask
keeps, with a note that says how many (torch's reductions on a MaskedTensor give MaskedTensors,
and every value and gradient of such a graph read `unreadable: RuntimeError`)."""

from __future__ import annotations

import warnings

import pytest
import torch

import graphviz_grad as gg
from graphviz_grad.capture.summary import summarize


def _masked() -> tuple[torch.Tensor, torch.Tensor]:
    from torch.masked import masked_tensor

    torch.manual_seed(0)
    data = torch.randn(6)
    mask = torch.tensor([True, False, True, True, False, True])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "prototype stage"
        return masked_tensor(data, mask, requires_grad=True), data[mask]


def test_a_masked_tensor_is_summarised_by_the_numbers_it_keeps() -> None:
    mt, kept = _masked()
    found = summarize(mt)
    assert found.shape == (6,) and found.data is None
    assert found.note == "masked tensor: statistics of the 4 of 6 numbers its mask keeps"
    assert found.mean == pytest.approx(kept.double().mean().item())
    assert (found.min, found.max) == (kept.min().item(), kept.max().item())
    assert found.norm == pytest.approx(kept.double().norm().item())


def test_a_masked_graph_has_its_gradients_checked_against_torch() -> None:
    mt, kept = _masked()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with gg.record() as rec:
            loss = (mt * 3.0).sum()
            loss.backward()
        expected = mt.grad.get_data()[mt.get_mask()]  # type: ignore[union-attr]
    graph = rec.graph()
    assert not any(
        s is not None and s.note is not None and s.note.startswith("unreadable")
        for n in graph.nodes
        for s in (n.value, n.grad)
    )
    (leaf,) = graph.leaves
    assert leaf.grad is not None and leaf.value is not None
    assert (leaf.grad.min, leaf.grad.max, leaf.grad.mean) == (3.0, 3.0, 3.0)
    assert expected.tolist() == [3.0] * 4
    assert leaf.value.mean == pytest.approx(kept.double().mean().item())
