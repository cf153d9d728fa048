"""A long forward pass holds off full garbage collections until the next backward call (they
walk every op record again, for no garbage); young collections are rarer while recording; the
script's own thresholds come back."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import torch

import graphviz_grad as gg
from graphviz_grad._gc import _NEVER, LONG_PASS, RECORDING_YOUNG


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults: a script that did not tune them
    yield gc.get_threshold()
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
    # the young generations are still collected, less often
    assert during == (RECORDING_YOUNG, thresholds[1], _NEVER)
    assert after == short_pass == (RECORDING_YOUNG, *thresholds[1:])
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


def test_young_collections_are_rarer_while_recording_and_the_default_comes_back() -> None:
    with gg.record():
        during = gc.get_threshold()
        with gg.record():  # a recording inside another changes nothing more
            inner = gc.get_threshold()
        after_inner = gc.get_threshold()
    assert during == inner == after_inner == (RECORDING_YOUNG, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_script_that_tunes_the_collector_is_left_as_it_is() -> None:
    gc.set_threshold(100_000, 50, 100)
    with gg.record():
        assert gc.get_threshold() == (100_000, 50, 100)
    gc.set_threshold(0, 10, 10)  # collections off
    with gg.record():
        assert gc.get_threshold() == (0, 10, 10)
    assert gc.get_threshold() == (0, 10, 10)
