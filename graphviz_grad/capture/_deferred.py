"""Values kept as tensors now and summarised later, in one batch, only if they are shown.

Summarising every op output when it is made costs a few reductions per op; most of those values
belong to graphs that are never shown (every call of a training loop but the last). So a large
output is kept as the tensor itself (no copy: autograd usually keeps it alive anyway) and
summarised when its graph is built (`settle_all`), batched with the rest of that graph.

The tensor must still hold the value it had when it was made. Every in-place write the dispatch
mode sees (the optimizer's update, `x.add_()`, `w.data.zero_()`) first calls `written()` with
the tensors it is about to write: any value kept on the same storage is copied (`clone`) before
the write, so the later summary is of the value as it was made. Writes the dispatch mode cannot
see (through numpy, or while the recording is off during a backward call) would slip through,
so values are settled before each backward call runs (`settle_all` when the graph of the call is
built) and every held value is settled before the user's code regains control after one.

A holder is any object with `raw(tag)` (the tensor it keeps under `tag`, or None) and
`put(tag, value)` (replace it, by a private copy or by its summary).
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

import torch

from .summary import DATA_LIMIT, summarize_many

#: Sweep dead entries from the index after this many new holds (at least).
SWEEP_EVERY = 4096
#: Bytes of values held before the oldest are summarised at once (what recording adds to the
#: script's own memory stays bounded on a big graph).
BUDGET = 256 << 20


class Holder(Protocol):
    def raw(self, tag: Any) -> torch.Tensor | None: ...
    def put(self, tag: Any, value: Any) -> None: ...


def deferrable(t: torch.Tensor) -> bool:
    """A plain strided real tensor whose summary is worth putting off (not a few numbers that
    `summarize` keeps in full at once, not a tensor subclass whose storage we cannot index)."""
    if t.is_cpu and t.numel() <= DATA_LIMIT:
        return False
    return (
        type(t) in _PLAIN_TYPES
        and t.layout == torch.strided
        and not t.is_complex()
        and t.device.type != "meta"
    )


_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)


def storage_key(t: torch.Tensor) -> int | None:
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError, TypeError):
        return None


class Deferred:
    """The values held, in the order they were held (to settle the oldest first when they take
    too much memory), and indexed by storage (so that a write finds the values it would change).
    """

    def __init__(self, budget: int | None = None) -> None:
        self._by_storage: dict[int, list[tuple[weakref.ref[Any], Any]]] = {}
        self._order: deque[tuple[weakref.ref[Any], Any, int]] = deque()
        self.budget = BUDGET if budget is None else budget
        #: Bytes of the values held (an upper bound: those of dead holders count until evicted).
        self.bytes = 0
        self._indexed = 0
        self._sweep_at = SWEEP_EVERY

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_storage.values())

    def hold(self, holder: Any, tag: Any, t: torch.Tensor) -> bool:
        """Remember that `holder` keeps `t` under `tag`; False if `t` cannot be held safely."""
        key = storage_key(t)
        if key is None or key == 0:
            return False
        ref = weakref.ref(holder)
        self._by_storage.setdefault(key, []).append((ref, tag))
        size = t.numel() * t.element_size()
        self._order.append((ref, tag, size))
        self.bytes += size
        self._indexed += 1
        if self._indexed >= self._sweep_at:
            self._sweep()
        if self.bytes > self.budget:
            self._evict(self.budget // 2)
        return True

    def written(self, tensors: Iterable[Any]) -> None:
        """`tensors` are about to be written in place: copy the held values on their storage."""
        if not self._by_storage:
            return
        for t in tensors:
            if not isinstance(t, torch.Tensor):
                continue
            key = storage_key(t)
            entries = self._by_storage.pop(key, None) if key else None
            for ref, tag in entries or ():
                holder = ref()
                value = holder.raw(tag) if holder is not None else None
                if holder is not None and value is not None:
                    holder.put(tag, value.clone())

    def settle_all(self) -> None:
        """Summarise every value still held (one batch), and forget them."""
        self._by_storage.clear()
        self._evict(0)

    def _evict(self, down_to: int) -> None:
        """Summarise the oldest values now (in one batch) until at most `down_to` bytes are held:
        memory stays bounded on a graph too big to hold every value of."""
        entries = []
        while self._order and self.bytes > down_to:
            ref, tag, size = self._order.popleft()
            self.bytes -= size
            entries.append((ref, tag))
        settle(entries)

    def _sweep(self) -> None:
        """Forget the entries of dead holders and settled values (amortised: after as many new
        entries as were alive at the last sweep)."""
        for key in list(self._by_storage):
            live = [(r, tag) for r, tag in self._by_storage[key] if _held(r, tag)]
            if live:
                self._by_storage[key] = live
            else:
                del self._by_storage[key]
        self._indexed = sum(len(v) for v in self._by_storage.values())
        self._sweep_at = max(SWEEP_EVERY, 2 * self._indexed)
        while self._order and not _held(self._order[0][0], self._order[0][1]):
            self.bytes -= self._order.popleft()[2]


def _held(ref: weakref.ref[Any], tag: Any) -> bool:
    holder = ref()
    return holder is not None and holder.raw(tag) is not None


def settle(entries: Iterable[tuple[weakref.ref[Any], Any]]) -> None:
    """Replace the raw values of `entries` (holder reference, tag) by their summaries."""
    found: list[tuple[Any, Any, torch.Tensor]] = []
    for ref, tag in entries:
        holder = ref()
        value = holder.raw(tag) if holder is not None else None
        if value is not None:
            found.append((holder, tag, value))
    if not found:
        return
    summaries = summarize_many([t for _, _, t in found])
    for (holder, tag, _), s in zip(found, summaries):
        holder.put(tag, s)
