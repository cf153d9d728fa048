"""Values kept as tensors now and summarised later, in one batch, only if they are shown.

Summarising every op output when it is made costs a few reductions per op; most of those values
belong to graphs that are never shown (every call of a training loop but the last). So a large
output is kept as the tensor itself (no copy: autograd usually keeps it alive anyway) and
summarised when its graph is built (`CallCapture._settle`), batched with the rest of that graph;
what is still held when the recording stops is summarised then (`settle_all`).

The tensor must still hold the value it had when it was made. Every in-place write the dispatch
mode sees (the optimizer's update, `x.add_()`, `w.data.zero_()`) first calls `written()` with
the tensors it is about to write: any value kept on the same storage is summarised then, before
the write. Writes the dispatch mode cannot see (through numpy, in another thread) would slip
through; views of leaves, which a hook during backward may write unseen, are copied when made
(`ForwardRecorder.keep_value`). At most `BUDGET` bytes of storage are held: beyond it the oldest
values are summarised at once, and so is every value of that pass and the next (`eager`): a
graph too big to hold costs what summarising at once costs.

A holder is any object with `raw(tag)` (the tensor it keeps under `tag`, or None) and
`put(tag, value)` (replace it by its summary).
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

import torch

from . import summary
from .summary import DATA_LIMIT, PLAIN_TYPES, reads_later, reduce_on_device, summarize_many

#: Sweep dead entries from the index after this many new holds (at least).
SWEEP_EVERY = 4096
#: Bytes of values held before the oldest are summarised at once (what recording adds to the
#: script's own memory stays bounded on a big graph).
BUDGET = 64 << 20


class Holder(Protocol):
    """What keeps held values: an op record (`OpRecord`), a call's capture (`CallCapture`)."""

    def raw(self, tag: Any) -> torch.Tensor | None: ...
    def put(self, tag: Any, value: Any) -> None: ...


def deferrable(t: torch.Tensor) -> bool:
    """A plain strided real tensor whose summary is worth putting off (not a few numbers that
    `summarize` keeps in full at once, not a tensor subclass whose storage we cannot index)."""
    if t.is_cpu and t.numel() <= DATA_LIMIT and not summary.CPU_AS_DEVICE:
        return False
    return (
        type(t) in PLAIN_TYPES
        and t.layout == torch.strided
        and not t.is_complex()
        and t.device.type != "meta"
    )


def _storage_bytes(t: torch.Tensor) -> int:
    try:
        return int(t.untyped_storage().nbytes())
    except (RuntimeError, NotImplementedError, TypeError):
        return t.numel() * t.element_size()


def storage_key(t: torch.Tensor) -> int | None:
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError, TypeError):
        return None


#: Tensors whose large constants a pass watches for writes, at most (`Deferred.late`).
LATE_LIMIT = 1 << 16


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
        #: Summarise at once instead of holding: this pass (forward and backward of one call),
        #: or the one before it, held more than the budget. Values summarised late are read
        #: from cold memory, so holding a graph that is summarised anyway only costs.
        self.eager = False
        self._pass_bytes = 0
        #: The large constants of this pass and of the one before (`_forward.LateConstant`), by
        #: the id of their tensor: a write to that tensor summarises them first.
        self._late: dict[int, list[Any]] = {}
        self._late_before: dict[int, list[Any]] = {}

    def new_pass(self) -> None:
        """A backward call begins: the next pass holds values unless this one overflowed."""
        self.eager = self._pass_bytes > self.budget
        self._pass_bytes = 0
        self._late_before, self._late = self._late, {}

    def late(self, constants: Iterable[Any]) -> None:
        """Watch these `LateConstant`s for an in-place write to their tensor (this pass and the
        next: a call's graph is built when the next call arrives)."""
        if len(self._late) > LATE_LIMIT:  # a long forward pass, or one never followed by a
            # backward call: the oldest are no longer watched (their version still guards them)
            self._late_before, self._late = self._late, {}
        for c in constants:
            found = self._late.get(id(c.ref()))
            if found is None:
                self._late[id(c.ref())] = [c]
            else:
                found.append(c)

    def keeps(self, t: torch.Tensor) -> bool:
        """Whether `t` should be held (else summarised now); counts it toward this pass."""
        if not deferrable(t):
            return False
        self._pass_bytes += t.numel() * t.element_size()
        return not self.eager

    def hold(self, holder: Holder, tag: Any, t: torch.Tensor) -> bool:
        """Remember that `holder` keeps `t` under `tag`; False if `t` cannot be held safely."""
        key = storage_key(t)
        if key is None or key == 0:
            return False
        ref = weakref.ref(holder)
        entries = self._by_storage.get(key)
        # a view keeps its whole storage alive: count the storage, once
        size = 0 if entries else _storage_bytes(t)
        if entries is None:
            entries = self._by_storage[key] = []
        entries.append((ref, tag))
        self._order.append((ref, tag, size))
        self.bytes += size
        self._indexed += 1
        if self._indexed >= self._sweep_at:
            self._sweep()
        if self.bytes > self.budget:
            self.eager = True
            self._evict(self.budget // 2)
        return True

    def written(self, tensors: Iterable[Any]) -> None:
        """`tensors` are about to be written in place: summarise the values held on their
        storage now (a copy would cost as much, and more memory, when they are shown)."""
        if self._late or self._late_before:
            self._settle_late(tensors)
        if not self._by_storage:
            return
        found: list[tuple[weakref.ref[Any], Any]] = []
        for t in tensors:
            if isinstance(t, torch.Tensor):
                key = storage_key(t)
                if key:
                    found += self._by_storage.pop(key, [])
        if found:
            settle(found)

    def _settle_late(self, tensors: Iterable[Any]) -> None:
        """Summarise the `LateConstant`s of the tensors about to be written, as they are now."""
        due = []
        for t in tensors:
            if isinstance(t, torch.Tensor):
                for index in (self._late, self._late_before):
                    found = index.pop(id(t), None)
                    if found:
                        due += [c for c in found if c.ref() is t and c.summary is None]
        self._summarize_late(due)

    def _summarize_late(self, due: list[Any]) -> None:
        if not due:
            return
        pending = [c.tensor() for c in due]
        now = [None if t is None or reads_later(t) else t for t in pending]
        for c, t, s in zip(due, pending, summarize_many(now)):
            if t is not None:
                c.summary = reduce_on_device(t) if s is None else s

    def settle_all(self) -> None:
        """Summarise every value still held (one batch), and forget them; and the large
        constants still watched, while they are as their op read them."""
        self._by_storage.clear()
        self._evict(0)
        late = [c for index in (self._late, self._late_before) for cs in index.values() for c in cs]
        self._late, self._late_before = {}, {}
        self._summarize_late([c for c in late if c.summary is None])

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
    """Replace the raw values of `entries` (holder reference, tag) by their summaries; on an
    accelerator, by their summaries worked out there and read when the graph is built
    (`summary.reduce_on_device`): settling runs before an in-place write or when the budget is
    spent, at any op, where reading the device would wait for it."""
    found: list[tuple[Any, Any, torch.Tensor]] = []
    for ref, tag in entries:
        holder = ref()
        value = holder.raw(tag) if holder is not None else None
        if holder is None or value is None:
            continue
        if reads_later(value):
            holder.put(tag, reduce_on_device(value))
        else:
            found.append((holder, tag, value))
    if not found:
        return
    summaries = summarize_many([t for _, _, t in found])
    for (holder, tag, _), s in zip(found, summaries):
        holder.put(tag, s)
