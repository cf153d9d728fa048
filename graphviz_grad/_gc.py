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
