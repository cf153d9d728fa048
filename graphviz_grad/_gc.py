"""The cyclic garbage collector, paused while gradviz makes a big graph's objects (torch-free).

Making a million small objects triggers full collections, and each one walks every object that
is alive, the graph included: seconds per million nodes, for no garbage. Pausing it while a
graph is walked, hooked, built or drawn makes that work linear; it is restored afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

#: Graphs with more nodes than this are built and drawn with the collector paused.
BIG_GRAPH = 10_000


@contextlib.contextmanager
def paused(pause: bool = True) -> Iterator[None]:
    """No cyclic garbage collection inside the block (when `pause`); restored afterwards."""
    was = gc.isenabled()
    if pause and was:
        gc.disable()
    try:
        yield
    finally:
        if pause and was:
            gc.enable()


def on_big_graphs(fn: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """Run `fn(graph, ...)` with the collector paused when `graph` has over `BIG_GRAPH` nodes."""

    @functools.wraps(fn)
    def run(graph: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        with paused(len(graph.nodes) > BIG_GRAPH):
            return fn(graph, *args, **kwargs)

    return run


#: Whether `pause_startup` turned the collector off (and `end_startup` must turn it back on).
_startup_paused = False


def pause_startup() -> None:
    """The `gradviz` command's start-up: no collection while torch and the app are imported.

    Importing torch makes some hundred thousand objects and no garbage; each full collection on
    the way walks all of them again (about 0.1 s of a lesson's 1 s). `end_startup` resumes."""
    global _startup_paused
    if gc.isenabled():
        gc.disable()
        _startup_paused = True


def end_startup() -> None:
    """Freeze what is loaded by now (torch, gradviz: it lives until exit, so no collection needs
    to walk it again; on a big graph each would, seconds per million nodes) and resume the
    collector if `pause_startup` paused it, so the user's script runs as under plain Python."""
    global _startup_paused
    gc.freeze()
    if _startup_paused:
        _startup_paused = False
        gc.enable()


#: Op records a forward pass makes (since the last backward call) before full collections are
#: held off until the next backward call (`FullCollections`).
LONG_PASS = BIG_GRAPH
#: An oldest-generation threshold that is never reached.
_NEVER = 2**31 - 1


class _Threshold:
    """One generation's collection threshold set to `value` while held, and given back at
    `release` (unless the script set its own meanwhile). `only_from`: hold only while the
    threshold is that (a script that tuned the collector keeps its tuning)."""

    def __init__(self, generation: int, value: int, only_from: int | None = None) -> None:
        self._generation = generation
        self._value = value
        self._only_from = only_from
        self._saved: int | None = None

    def hold(self) -> None:
        if self._saved is not None:
            return
        now = list(gc.get_threshold())
        if self._only_from is not None and now[self._generation] != self._only_from:
            return
        self._saved, now[self._generation] = now[self._generation], self._value
        gc.set_threshold(*now)

    def release(self) -> None:
        """The user's threshold back (unless the script set its own meanwhile)."""
        saved, self._saved = self._saved, None
        if saved is None:
            return
        now = list(gc.get_threshold())
        if now[self._generation] == self._value:
            now[self._generation] = saved
            gc.set_threshold(*now)


class FullCollections(_Threshold):
    """Full collections held off while a long forward pass is recorded.

    Each op of the pass leaves a few small objects in its node's metadata; in a pass of a
    million ops every full collection walks millions of them again, for no garbage (12 s of a
    1M-op chain's 90 s). Held off, the young generations are still collected as the script
    makes them (what a loop drops at once, a cycle included, is freed as under plain Python);
    only the oldest waits, until `release` at the next backward call.
    """

    def __init__(self) -> None:
        super().__init__(2, _NEVER)


#: The youngest generation's threshold while recording, and CPython's default (3.10 to 3.12),
#: which a script that did not tune the collector has.
RECORDING_YOUNG = 5000
_DEFAULT_YOUNG = 700


class YoungCollections(_Threshold):
    """Young collections about seven times rarer while recording (`RECORDING_YOUNG`).

    A recording keeps a few small objects for every op and every backward call (op records,
    summaries, each call's light record); each collection of the middle generation counts
    toward a full one, and a full one walks every record kept since the script's first backward
    call. At 700 allocations a young collection, a loop of 30,000 small backward calls
    (`dynamic_net`) made 28 full collections: 4.4 s of its 40. At 5,000 it makes 5 (0.6 s):
    the same objects are collected, in fewer walks. A script that tunes the collector itself (a
    threshold of its own, 0 to turn it off) is left as it is, and so is one that changes it
    while recording.
    """

    def __init__(self) -> None:
        super().__init__(0, RECORDING_YOUNG, only_from=_DEFAULT_YOUNG)


class Settled:
    """What the script has made by its first backward call, frozen out of full collections.

    By then a script has its model, optimizer and data, and has imported what it uses (an
    optimizer alone imports `torch._dynamo`: some 100,000 objects). Under plain Python they sit in
    the oldest generation, walked by its rare full collections; a recording makes the oldest
    generation grow by each call's records, so full collections come about every ten calls,
    and each walked all of them again (the Bi-LSTM CRF tutorial: 102 full collections, 9 s of its
    46). Frozen (`gc.freeze`, after collecting the young generations), they are not walked; they
    are still freed when their last reference goes. `release` unfreezes them, unless something
    was frozen before (the `gradviz` command freezes its start-up: nothing then needs them back).
    """

    def __init__(self) -> None:
        self._froze = False
        self._alone = False

    def freeze(self) -> None:
        """Once: at the first backward call of a recording."""
        if self._froze or not gc.isenabled():
            return
        self._froze = True
        self._alone = gc.get_freeze_count() == 0
        gc.collect(1)
        gc.freeze()

    def release(self) -> None:
        if self._froze and self._alone:
            gc.unfreeze()
        self._froze = self._alone = False
