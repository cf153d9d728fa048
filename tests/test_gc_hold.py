"""A long forward pass holds off full garbage collections until the next backward call (they
walk every op record again, for no garbage), and gives the script's own thresholds back."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import torch

import graphviz_grad as gg
from graphviz_grad._gc import _NEVER, LONG_PASS


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def _long_pass(rec: gg.Recorder, ops: int = LONG_PASS + 10) -> torch.Tensor:
    x = torch.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(ops):
        y = y * 1.0
    rec.flush()
    return y


def test_full_collections_wait_for_the_backward_call(thresholds: tuple[int, int, int]) -> None:
    with gg.record() as rec:
        y = _long_pass(rec)
        during = gc.get_threshold()
        y.backward()
        after = gc.get_threshold()
        short = _long_pass(rec, 100)
        short_pass = gc.get_threshold()
        short.backward()
    assert during == (*thresholds[:2], _NEVER)  # the young generations are still collected
    assert after == short_pass == thresholds
    assert gc.get_threshold() == thresholds


def test_a_pass_never_followed_by_backward_gives_them_back(
    thresholds: tuple[int, int, int],
) -> None:
    with gg.record() as rec:
        _long_pass(rec)
        assert gc.get_threshold()[2] == _NEVER
    assert gc.get_threshold() == thresholds


def test_a_threshold_the_script_sets_meanwhile_is_kept() -> None:
    with gg.record() as rec:
        y = _long_pass(rec)
        gc.set_threshold(500, 5, 5)
        y.backward()
    assert gc.get_threshold() == (500, 5, 5)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_what_the_script_made_before_backward_is_frozen_then_given_back() -> None:
    import weakref

    gc.unfreeze()  # as a notebook: nothing frozen before the recording
    with gg.record():
        kept = _Cycle()
        gone = weakref.ref(kept)
        w = torch.tensor(1.0, requires_grad=True)
        (w * 2).backward()
        during = gc.get_freeze_count()
        del kept  # a cycle made before the first backward call, dropped after it
        gc.collect()
        alive_while_frozen = gone() is not None
    assert during > 0 and alive_while_frozen
    assert gc.get_freeze_count() == 0  # given back: the cycle is garbage like any other
    gc.collect()
    assert gone() is None


def test_a_freeze_from_before_the_recording_is_left_alone() -> None:
    gc.freeze()  # the `gradviz` command freezes its start-up
    try:
        with gg.record():
            w = torch.tensor(1.0, requires_grad=True)
            (w * 2).backward()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
