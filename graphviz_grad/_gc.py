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
