"""Pictures that are never slivers: a long, narrow view is wrapped into side-by-side columns.

Graphviz stacks a chain of 300 ops into one column 300 nodes tall. `wrap` gives each drawn node
a band (a column for top-to-bottom layouts, a row for left-to-right ones) by its rank, the
length of the longest path from the sources to it; the renderer lets edges between bands not
constrain the ranking, so every band starts at the top, and keeps the bands in order.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

from ._model import View

#: Views with fewer ranks than this are drawn as they are.
WRAP_RANKS = 24
#: Ranks per band relative to nodes per rank: a node is about twice as wide as a rank is tall.
SHAPE = 2.0


def ranks(view: View) -> dict[int, int]:
    """Per drawn id, its longest distance from a source; a source sits just above its first
    consumer. Nodes on a cycle (groups can make one) keep rank 0. Iterative (Kahn)."""
    drawn = view.drawn
    pending = {d: 0 for d in drawn}
    outs: dict[int, list[int]] = {d: [] for d in drawn}
    for e in view.edges:
        if e.src in outs and e.dst in pending:
            outs[e.src].append(e.dst)
            pending[e.dst] += 1
    indegree = dict(pending)
    rank = dict.fromkeys(drawn, 0)
    queue = deque(d for d in drawn if pending[d] == 0)
    while queue:
        node = queue.popleft()
        for dst in outs[node]:
            rank[dst] = max(rank[dst], rank[node] + 1)
            pending[dst] -= 1
            if pending[dst] == 0:
                queue.append(dst)
    for d in drawn:
        if outs[d] and not indegree[d] and all(pending[x] == 0 for x in outs[d]):
            rank[d] = max(rank[d], min(rank[x] for x in outs[d]) - 1)
    return rank


def _columns(view: View, rank: dict[int, int]) -> int:
    """How many bands would make the view about as wide as tall (1: it already is)."""
    total = max(rank.values()) + 1
    if total < WRAP_RANKS:
        return 1
    return int(round(math.sqrt(total / (SHAPE * len(rank) / total))))


def is_sliver(view: View) -> bool:
    """True when the view is long and narrow and `wrap` cannot fold it into columns."""
    if not view.drawn or _columns(view, ranks(view)) < 2:
        return False
    return not wrap(view).bands


def wrap(view: View) -> View:
    """`view` with `bands` set when it is long and narrow; unchanged otherwise.

    Example:
        >>> wrap(whole(chain_of_300_ops)).bands   # {drawn id: column}
    """
    if not view.drawn:
        return view
    rank = ranks(view)
    columns = _columns(view, rank)
    if columns < 2:
        return view
    total = max(rank.values()) + 1
    height = math.ceil(total / columns)
    bands = _snapped(view, {d: r // height for d, r in rank.items()}, height // 2)
    if bands is None:
        return view
    heads: dict[int, int] = {}
    for d, band in bands.items():
        if band not in heads or rank[d] < rank[heads[band]]:
            heads[band] = d
    return replace(view, bands=bands, heads=tuple(heads[b] for b in sorted(heads)))


def _snapped(view: View, bands: dict[int, int], small: int) -> dict[int, int] | None:
    """Keep each small innermost module box in one band (the band of its first node): a box
    split between two columns would be stretched across both. None when a box below the top
    level is too big to keep in one band (nested blocks of a transformer): Graphviz cannot lay
    such boxes out side by side, so the view is not wrapped."""
    boxes: dict[tuple[str, int], list[int]] = {}
    for d in view.drawn:
        for path, _, call in _scopes(view, d):
            boxes.setdefault((path, call), []).append(d)
    innermost = {_innermost(view, d) for d in view.drawn} - {None}
    for key, members in boxes.items():
        if len(members) <= small and key in innermost:
            for d in members:
                bands[d] = bands[members[0]]
        elif len({bands[d] for d in members}) > 1 and _level(view, members[0], key) > 0:
            return None
    return bands


def _scopes(view: View, drawn_id: int) -> tuple[tuple[str, str, int], ...]:
    group = view.group(drawn_id)
    return group.enclosing if group is not None else view.scopes(drawn_id)


def _innermost(view: View, drawn_id: int) -> tuple[str, int] | None:
    scopes = _scopes(view, drawn_id)
    return (scopes[-1][0], scopes[-1][2]) if scopes else None


def _level(view: View, drawn_id: int, key: tuple[str, int]) -> int:
    for level, (path, _, call) in enumerate(_scopes(view, drawn_id)):
        if (path, call) == key:
            return level
    return 0
