"""Turn a tensor into a `TensorSummary`: small tensors in full, large ones as statistics.

This runs on the per-op recording path, so it is written for speed: a small tensor costs one
`tolist()` and plain-Python arithmetic, a large one a handful of reductions in float64.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from ..model import TensorSummary
from .native import fused, small_one, stats, summaries, summary_one

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # a torch dependency; for the type checker only

#: Tensors with at most this many elements keep their data.
DATA_LIMIT = 16

_FLOAT_KINDS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: Dtypes whose `tolist()` gives plain Python numbers (the batched path of `summarize_many`).
_PLAIN_DTYPES = frozenset(
    (*_FLOAT_KINDS, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)
)


#: Tensor classes read directly (a subclass may override what reading it means).
PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)


_dtype_names: dict[torch.dtype, str] = {}


def dtype_name(dtype: torch.dtype) -> str:
    name = _dtype_names.get(dtype)
    if name is None:
        name = _dtype_names[dtype] = str(dtype).removeprefix("torch.")
    return name


def summarize_small(t: torch.Tensor) -> TensorSummary:
    """`summarize(t)`, on a short path for a few numbers on the CPU (a chain's scalars)."""
    one = small_one()
    if one is not None:  # finite float32/float64 numbers, in one C++ call
        found = one(t, DATA_LIMIT, TensorSummary)
        if found is not None:
            return found  # type: ignore[no-any-return]
    if type(t) in PLAIN_TYPES and t.is_cpu and t.layout == torch.strided:  # `_plain_small`
        numel = t.numel()
        if 0 < numel <= DATA_LIMIT and t.dtype in _PLAIN_DTYPES:
            try:
                data = t.tolist()
            except RuntimeError:  # its memory freed (`freed`): said by `summarize`
                return summarize(t)
            return _small(data, tuple(t.shape), dtype_name(t.dtype), numel)
    return summarize(t)


def summarize(t: torch.Tensor, limit: int = DATA_LIMIT) -> TensorSummary:
    """A summary of `t`'s current contents (never raises: odd tensors get a `note`)."""
    one = summary_one()
    if one is not None:  # the common case on the per-op path, in one C++ call
        found = one(t, limit, sys.maxsize if fused() else WORKSPACE_MIN, TensorSummary)
        if found is not None:
            return found  # type: ignore[no-any-return]
    elif type(t) in PLAIN_TYPES and t.dtype in _REDUCED and t.layout == torch.strided and t.is_cpu:
        # the common case on the per-op path, without the checks for odd tensors below
        numel = t.numel()
        if numel > limit and not freed(t):
            try:
                found = _large_cpu(t.detach(), tuple(t.shape), dtype_name(t.dtype), numel)
            except Exception:  # a storage freed under the tensor: said below
                found = None
            if found is not None:
                return found
    if t.is_nested:
        return _nested(t, limit)
    shape = tuple(int(d) for d in t.shape)
    dtype = dtype_name(t.dtype)
    local = _local_part(t)
    if local is not None:
        return _part_summary(t, local, shape, dtype, limit)
    kept = _unmasked(t)
    if kept is not None:
        return _unmasked_summary(kept, shape, dtype, t.numel(), limit)
    try:
        numel = t.numel()
        if t.is_sparse or t.layout != torch.strided:
            return _sparse(t, shape, dtype, numel, limit)
        if t.device.type == "meta":
            return TensorSummary(shape, dtype, numel, note="meta tensor: no data")
        if numel == 0:
            return TensorSummary(shape, dtype, 0)
        if freed(t):
            return TensorSummary(shape, dtype, numel, note=FREED_NOTE)
        with torch.no_grad():
            if t.is_complex():
                return _complex(t.detach(), shape, dtype, numel, limit)
            if numel <= limit:
                return _small(t.detach().cpu().tolist(), shape, dtype, numel)
            return _large(t.detach(), shape, dtype, numel)
    except Exception as exc:  # a tensor subclass or device we cannot read: say so, never fail
        return TensorSummary(shape, dtype, int(t.numel()), note=f"unreadable: {type(exc).__name__}")


def shape_of(t: torch.Tensor) -> tuple[int, ...]:
    """`t.shape` as ints (`size_ints`); a strided nested tensor, which has no sizes, by each
    dimension's (-1 where it is ragged)."""
    try:
        size = t.shape
    except RuntimeError:  # a strided nested tensor: "NestedTensorImpl doesn't support sizes"
        return tuple(_size_or_ragged(t, i) for i in range(t.dim()))
    return size_ints(size)


def _size_or_ragged(t: torch.Tensor, i: int) -> int:
    try:
        return int(t.size(i))
    except RuntimeError:
        return -1


def size_ints(size: Sequence[Any]) -> tuple[int, ...]:
    """A size as ints; a nested tensor's ragged size (a symbolic `j1`, whose `int()` raises) as
    -1."""
    try:
        return tuple(int(d) for d in size)
    except Exception:  # noqa: BLE001 (AttributeError from torch's NestedIntNode)
        return tuple(d if isinstance(d, int) else -1 for d in size)


def _nested(t: torch.Tensor, limit: int) -> TensorSummary:
    """A nested tensor: the statistics of all its components' numbers together (a jagged one's
    packed `values()`), under its shape with the ragged dimension as -1."""
    shape, dtype = shape_of(t), dtype_name(t.dtype)
    try:
        with torch.no_grad():
            t = t.detach()
            parts = [c.reshape(-1) for c in t.unbind()]
            flat = torch.cat(parts) if parts else torch.empty(0, dtype=t.dtype, device=t.device)
        found = summarize(flat, limit)
    except Exception as exc:  # noqa: BLE001 (said, never raised)
        return TensorSummary(shape, dtype, 0, note=f"unreadable: {type(exc).__name__}")
    note = f"nested tensor of {len(parts)} components: statistics of all their numbers"
    return _noted(found, note, shape)


def _noted(found: TensorSummary, note: str, shape: tuple[int, ...] | None = None) -> TensorSummary:
    """`found` (the summary of what was read in a tensor's place: its local part, its kept or
    packed numbers) with `note` before its own, under the tensor's `shape` when given."""
    joined = note if found.note is None else f"{note}; {found.note}"
    return (
        replace(found, note=joined) if shape is None else replace(found, shape=shape, note=joined)
    )


def _is_a(t: torch.Tensor, module: str, name: str) -> bool:
    """Whether `t` is a `module.name` tensor subclass (never true while the script has not
    imported that module, which is then not imported here either)."""
    if type(t) in PLAIN_TYPES:
        return False
    kind = getattr(sys.modules.get(module), name, None)
    return kind is not None and isinstance(t, kind)


def _local_part(t: torch.Tensor) -> torch.Tensor | None:
    """A `DTensor`'s local tensor (read without any communication), or None for another tensor.

    Reductions on a DTensor give this rank's numbers under the whole tensor's shape (the mean of
    a shard divided by the whole size) or wait for the other ranks (a collective that only this
    rank makes hangs): its statistics are its local part's, and say so."""
    if not _is_a(t, "torch.distributed.tensor", "DTensor"):
        return None
    try:
        with torch.no_grad():
            local: torch.Tensor = t.to_local()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 (said as unreadable by `summarize`)
        return None
    return local


def _unmasked(t: torch.Tensor) -> torch.Tensor | None:
    """A `MaskedTensor`'s numbers that its mask keeps, as a plain 1-D tensor, or None for
    another tensor (torch's reductions on a MaskedTensor give MaskedTensors, not numbers)."""
    if not _is_a(t, "torch.masked.maskedtensor.core", "MaskedTensor"):
        return None
    try:
        with torch.no_grad():
            data = t.get_data().detach()  # type: ignore[attr-defined]
            mask = t.get_mask().detach()  # type: ignore[attr-defined]
            if data.layout != torch.strided or mask.layout != torch.strided:
                return None
            return data[mask.expand_as(data)]
    except Exception:  # noqa: BLE001 (said as unreadable by `summarize`)
        return None


def _unmasked_summary(
    kept: torch.Tensor, shape: tuple[int, ...], dtype: str, numel: int, limit: int
) -> TensorSummary:
    note = f"masked tensor: statistics of the {kept.numel()} of {numel} numbers its mask keeps"
    if kept.numel() == 0:
        return TensorSummary(shape, dtype, numel, note="masked tensor: every number masked")
    # the kept numbers alone would read as the whole tensor's: statistics only, with the note
    found = summarize(kept, limit if kept.numel() == numel else 0)
    return _noted(found, note, shape)


def _part_summary(
    t: torch.Tensor, local: torch.Tensor, shape: tuple[int, ...], dtype: str, limit: int
) -> TensorSummary:
    found = summarize(local, limit)
    placements: Any = getattr(t, "placements", ())
    partial = any(getattr(p, "is_partial", lambda: False)() for p in placements)
    whole = f"{dtype}[{', '.join(map(str, shape))}]"
    where = ", ".join(repr(p) for p in placements)
    what = "this rank's partial sums" if partial else "this rank's part"
    note = f"{what} of DTensor {whole} {where}"
    return _noted(found, note)


#: The note of a tensor whose memory is gone (`freed`).
FREED_NOTE = "no data: its memory was freed (resized to 0, as FSDP frees a gathered parameter)"


def freed(t: torch.Tensor) -> bool:
    """Whether `t` has elements but no memory behind them (`untyped_storage().resize_(0)`, what
    FSDP does to a parameter's gathered copy between uses): reading it would crash the process
    (PyTorch's reductions do not check), so it is never read."""
    if type(t) not in PLAIN_TYPES or t.layout != torch.strided or t.numel() == 0:
        return False  # a subclass's storage is its own business (read under `try`)
    try:
        return t.untyped_storage().nbytes() == 0
    except (RuntimeError, NotImplementedError, TypeError):
        return False


_SPARSE_LAYOUTS = (
    torch.sparse_coo,
    torch.sparse_csr,
    torch.sparse_csc,
    torch.sparse_bsr,
    torch.sparse_bsc,
)


def _sparse(
    t: torch.Tensor, shape: tuple[int, ...], dtype: str, numel: int, limit: int
) -> TensorSummary:
    """A sparse tensor (an `nn.Embedding(sparse=True)` gradient): the statistics of the dense
    tensor it stands for, worked out from the stored values (unstored elements are zeros), and
    a note of how many are stored. Another layout (jagged, mkldnn) shows its shape only."""
    layout = str(t.layout).removeprefix("torch.")
    if t.layout not in _SPARSE_LAYOUTS or t.device.type == "meta":
        return TensorSummary(shape, dtype, numel, note=f"{layout} layout")
    with torch.no_grad():
        t = t.detach()
        if t.layout == torch.sparse_coo:
            t = t.coalesce()  # a value stored twice is their sum
        stored = int(t.values().numel())
        note = f"{layout}: {stored:,} of {numel:,} stored"
        if numel <= limit:
            dense = summarize(t.to_dense(), limit)
            return replace(dense, note=note) if dense.note is None else dense
        if stored == 0:
            return TensorSummary(shape, dtype, numel, None, 0.0, 0.0, 0.0, 0.0, note=note)
        s = summarize(t.values().reshape(-1), limit=0)
    zeros = numel - stored
    if s.note is not None:  # complex or unreadable values: the count is what there is to say
        return TensorSummary(shape, dtype, numel, note=f"{note}; {s.note}")
    if s.min is None:  # no stored value is finite: the statistics are those of the zeros
        if not zeros:
            return TensorSummary(shape, dtype, numel, nan=s.nan, inf=s.inf, note=note)
        return TensorSummary(shape, dtype, numel, None, 0.0, 0.0, 0.0, 0.0, s.nan, s.inf, note)
    assert s.max is not None and s.mean is not None
    finite = stored - s.nan - s.inf
    return TensorSummary(
        shape,
        dtype,
        numel,
        None,
        min(s.min, 0.0) if zeros else s.min,
        max(s.max, 0.0) if zeros else s.max,
        s.mean * finite / (finite + zeros),
        s.norm,
        s.nan,
        s.inf,
        note,
    )


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _small(data: Any, shape: tuple[int, ...], dtype: str, numel: int) -> TensorSummary:
    if not isinstance(data, list):  # one number (what a chain of scalars is made of), fast
        v = float(data)
        if math.isfinite(v):  # = the general case below on [v]: fsum([v]) == v exactly
            return TensorSummary(shape, dtype, numel, data, v, v, v, math.sqrt(v * v))
    elif dtype in _FLOAT_NAMES and len(shape) <= 2:  # a few floats (a row, a 1 x n matrix)
        stats = _finite_stats(data if len(shape) == 1 else [v for row in data for v in row])
        if stats is not None:
            return TensorSummary(shape, dtype, numel, data, *stats)
    flat = [float(v) for v in _flatten(data)]
    finite = [v for v in flat if math.isfinite(v)]
    nan = sum(1 for v in flat if math.isnan(v))
    inf = len(flat) - len(finite) - nan
    if not finite:
        return TensorSummary(shape, dtype, numel, data, nan=nan, inf=inf)
    return TensorSummary(
        shape,
        dtype,
        numel,
        data,
        min=min(finite),
        max=max(finite),
        mean=_fsum(finite) / len(finite),
        norm=math.sqrt(_fsum([v * v for v in finite])),
        nan=nan,
        inf=inf,
    )


#: `dtype_name` of the float dtypes: their `tolist()` holds Python floats.
_FLOAT_NAMES = frozenset(str(d).removeprefix("torch.") for d in _FLOAT_KINDS)


def _fsum(values: list[float]) -> float:
    """`math.fsum`, but a total beyond the float range is an infinity (as PyTorch's sum gives),
    where `fsum` raises."""
    try:
        return math.fsum(values)
    except OverflowError:
        return sum(values)


def _finite_stats(flat: list[float]) -> tuple[float, float, float, float] | None:
    """(min, max, mean, norm) of Python floats, exactly as the general case of `_small`
    computes them, or None if one is a NaN or an Inf (that case counts them).

    One `fsum` tells: it is finite only if every number is (an Inf or a NaN gives an Inf or a
    NaN, or raises, and so does a sum too large for a float)."""
    try:
        total = math.fsum(flat)
    except (OverflowError, ValueError):
        return None
    if not math.isfinite(total) or not flat:
        return None
    # squares past the float range (|v| near 1e154 and up) sum to an infinity, as PyTorch's
    # `vector_norm` gives, where `fsum` raises
    return min(flat), max(flat), total / len(flat), math.sqrt(_fsum([v * v for v in flat]))


#: Dtypes whose statistics `_large` computes in three reductions.
_REDUCED = (torch.float32, torch.float64)


def _large_cpu(
    t: torch.Tensor, shape: tuple[int, ...], dtype: str, numel: int
) -> TensorSummary | None:
    """`_large` of a finite float32/float64 CPU tensor (None if it holds a NaN or an Inf).

    Three reductions: a float64 sum (finite means no NaN or Inf), the extremes and the norm.
    Summing a float64 copy gives the very same numbers as `sum(dtype=float64)`
    (tests/test_summary_sums.py) in a fifth of the time. Each number is read on its own: on the
    CPU there is no host copy to save, and one `stack` costs more than the three reads."""
    total, lo, hi, norm = _cpu_stats(t)
    if not math.isfinite(total):
        return None
    return TensorSummary(shape, dtype, numel, None, lo, hi, total / numel, norm)


def _cpu_stats(t: torch.Tensor) -> tuple[float, float, float, float]:
    """(float64 sum, min, max, float64 norm) of a float32/float64 CPU tensor (see `_large_cpu`);
    in C++ where built (`native.stats`): in one pass over its memory where `native.fused` (at any
    size), else the same calls without a Python call for each."""
    if type(t) in PLAIN_TYPES and (t.numel() < WORKSPACE_MIN or fused()):
        found = stats()
        if found is not None:
            return found([t])[0]
    d = as_double(t)
    lo, hi = torch.aminmax(t)
    return float(d.sum()), float(lo), float(hi), float(torch.linalg.vector_norm(d))


def _large(t: torch.Tensor, shape: tuple[int, ...], dtype: str, numel: int) -> TensorSummary:
    if t.dtype in _REDUCED:
        if t.is_cpu:
            found = _large_cpu(t, shape, dtype, numel)
            return found if found is not None else _masked(t, shape, dtype, numel)
        # as `_large_cpu`, with the three numbers copied to the host together
        d = as_double(t)
        total = float(d.sum())
        if math.isfinite(total):
            lo, hi = torch.aminmax(t)
            norm = torch.linalg.vector_norm(d)
            v_lo, v_hi, v_norm = torch.stack((lo.double(), hi.double(), norm)).tolist()
            return TensorSummary(shape, dtype, numel, None, v_lo, v_hi, total / numel, v_norm)
    return _masked(t, shape, dtype, numel)


#: Float32 CPU tensors of this many elements and up to `WORKSPACE_LIMIT` are copied to float64
#: into one reused buffer: a new one that big is fresh memory from the system, and its page faults,
#: every time (4M elements: 3.7 ms with the buffer, 12 ms without). Below it, a new tensor is
#: cheaper than copying into a slice of the buffer (8k elements: 4 us against 8).
WORKSPACE_MIN = 1 << 20
WORKSPACE_LIMIT = 1 << 24
_workspace: list[torch.Tensor] = []


def as_double(t: torch.Tensor) -> torch.Tensor:
    """`t.double()`; a large contiguous CPU float32 tensor goes into a reused buffer, valid until
    the next call (the same values, laid out the same, so reductions give the same numbers)."""
    n = t.numel()
    if (
        t.dtype != torch.float32
        or not t.is_cpu
        or not WORKSPACE_MIN <= n <= WORKSPACE_LIMIT
        or not t.is_contiguous()
    ):
        return t.double()
    if not _workspace or _workspace[0].numel() < n:
        _workspace[:] = [torch.empty(max(n, 1 << 16), dtype=torch.float64)]
    return _workspace[0][:n].view(t.shape).copy_(t)


def _masked(t: torch.Tensor, shape: tuple[int, ...], dtype: str, numel: int) -> TensorSummary:
    f = t.to(torch.float64) if t.dtype != torch.float64 else t
    if t.dtype in _FLOAT_KINDS:
        finite_mask = torch.isfinite(f)
        n_finite = int(finite_mask.sum())
        if n_finite != numel:
            nan = int(torch.isnan(f).sum())
            inf = numel - n_finite - nan
            f = f[finite_mask]
            if n_finite == 0:
                return TensorSummary(shape, dtype, numel, nan=nan, inf=inf)
            return _stats(f, shape, dtype, numel, nan, inf)
    return _stats(f, shape, dtype, numel, 0, 0)


def _stats(
    f: torch.Tensor, shape: tuple[int, ...], dtype: str, numel: int, nan: int, inf: int
) -> TensorSummary:
    lo, hi = torch.aminmax(f)
    mean = f.mean()
    norm = torch.linalg.vector_norm(f)
    v_lo, v_hi, v_mean, v_norm = torch.stack((lo, hi, mean, norm)).tolist()
    return TensorSummary(shape, dtype, numel, None, v_lo, v_hi, v_mean, v_norm, nan, inf)


def _complex(
    t: torch.Tensor, shape: tuple[int, ...], dtype: str, numel: int, limit: int
) -> TensorSummary:
    data = None
    if numel <= limit:
        data = [str(complex(z)) for z in t.cpu().reshape(-1).tolist()]
    mag = _large(t.abs(), shape, dtype, numel)
    return TensorSummary(
        shape,
        dtype,
        numel,
        data,
        mag.min,
        mag.max,
        mag.mean,
        mag.norm,
        mag.nan,
        mag.inf,
        note="complex: statistics of |z|",
    )


class OnDevice:
    """A tensor's summary worked out on its device and not read yet (`reduce_on_device`): the
    numbers stay there, in `piece`, until `summarize_many` reads them with the others of that
    device, in one copy to the host. What a value held for later becomes when it cannot be held
    any longer (the memory budget, an in-place write to come), on an accelerator, where reading
    it at once would wait for the device at that op."""

    __slots__ = ("dtype", "numel", "piece", "shape")

    def __init__(self, piece: torch.Tensor, shape: tuple[int, ...], dtype: str, numel: int):
        self.piece = piece
        self.shape = shape
        self.dtype = dtype
        self.numel = numel


def unread(value: object) -> TypeIs[torch.Tensor | OnDevice]:
    """Whether a value kept for later is not summarised yet: the tensor itself, or its numbers
    still on its device."""
    return isinstance(value, (torch.Tensor, OnDevice))


#: Take the accelerator's path on the CPU too (`reads_later`): how the tests on a machine
#: without one check that path.
CPU_AS_DEVICE = False


def reads_later(t: torch.Tensor) -> bool:
    """Whether `t`'s summary is worked out on its device and read later (`reduce_on_device`)
    rather than read now: a plain float tensor off the CPU."""
    return (CPU_AS_DEVICE or not t.is_cpu) and _on_device_kind(t) is not None


def _on_device_kind(t: torch.Tensor) -> str | None:
    if _plain_small(t) and t.dtype in _FLOAT_KINDS:
        return None if freed(t) else "small"
    if _plain_large(t):
        return "large"
    return None


def reduce_on_device(t: torch.Tensor) -> OnDevice | TensorSummary:
    """`t`'s summary, computed where `t` lives and read later, with no wait for the device now:
    a few numbers are copied as float64 (exactly); a large float32/float64 tensor is reduced to
    its float64 sum, min, max and float64 norm (the numbers `summarize` reads, bit for bit), and
    to its finite count, NaN count and the same four over its finite numbers (for a tensor that
    holds a NaN or an Inf; the mean and norm of those may differ from `summarize`'s in the last
    bits: it gathers the finite numbers first, which would wait for the device). Another kind
    of tensor is summarised now."""
    kind = _on_device_kind(t)
    if kind is None:
        return summarize(t)
    try:
        return _reduce(t, kind)
    except Exception:  # an odd tensor (under another dispatch mode): read it now
        return summarize(t)


def _reduce(t: torch.Tensor, kind: str) -> OnDevice:
    shape, numel = tuple(int(d) for d in t.shape), t.numel()
    with torch.no_grad():
        t = t.detach()
        if kind == "small":  # a copy: the tensor may be written next (`Deferred.written`)
            piece = t.reshape(-1).to(torch.float64, copy=True)
            return OnDevice(piece, shape, dtype_name(t.dtype), numel)
        d = as_double(t)
        lo, hi = torch.aminmax(t)
        finite = torch.isfinite(d)
        odd = ~finite
        kept = d.masked_fill(odd, 0.0)  # a number, not a tensor made from it: no copy to the device
        piece = torch.stack(
            (
                d.sum(),
                lo.double(),
                hi.double(),
                torch.linalg.vector_norm(d),
                finite.sum().double(),
                torch.isnan(d).sum().double(),
                kept.sum(),
                d.masked_fill(odd, math.inf).amin(),
                d.masked_fill(odd, -math.inf).amax(),
                torch.linalg.vector_norm(kept),
            )
        )
    return OnDevice(piece, shape, dtype_name(t.dtype), numel)


def _from_piece(v: OnDevice, row: torch.Tensor) -> TensorSummary:
    """The summary that `reduce_on_device` worked out, from its numbers read back (`row`, on
    the host)."""
    if v.numel <= DATA_LIMIT:
        return _small(row.view(v.shape).tolist(), v.shape, v.dtype, v.numel)
    total, lo, hi, norm, n_finite, nan, m_sum, m_lo, m_hi, m_norm = row.tolist()
    if math.isfinite(total):
        return TensorSummary(v.shape, v.dtype, v.numel, None, lo, hi, total / v.numel, norm)
    finite, n_nan = int(n_finite), int(nan)
    inf = v.numel - finite - n_nan
    if finite == 0:
        return TensorSummary(v.shape, v.dtype, v.numel, nan=n_nan, inf=inf)
    return TensorSummary(
        v.shape, v.dtype, v.numel, None, m_lo, m_hi, m_sum / finite, m_norm, n_nan, inf
    )


def summarize_many(
    tensors: Sequence[torch.Tensor | OnDevice | None],
) -> list[TensorSummary | None]:
    """`[summarize(t) for t in tensors]` (None stays None), without a host sync per tensor.

    Off the CPU, the float tensors of a device are read with one copy to the host
    (`read_together`; small tensors of other dtypes are stacked per dtype and shape); small CPU
    tensors take the short path; large CPU ones are reduced as the rows of one tensor where
    they share a shape; everything else goes through `summarize`.
    """
    if len(tensors) == 1 and not isinstance(tensors[0], OnDevice):  # nothing to batch
        return [None if tensors[0] is None else summarize(tensors[0])]
    done = _native_many(tensors)
    return _python_many(tensors) if done is None else done


def _python_many(
    tensors: Sequence[torch.Tensor | OnDevice | None],
) -> list[TensorSummary | None]:
    """`summarize_many` in Python."""
    again = _repeats(tensors)
    if again:
        twice = {k for k, _ in again}
        done = _python_many([None if k in twice else t for k, t in enumerate(tensors)])
        for k, seen in again:
            first, t = done[seen], tensors[k]
            if first is not None and t is not None and first.shape != tuple(t.shape):
                first = replace(first, shape=tuple(int(d) for d in t.shape))
            done[k] = first
        return done
    out: list[TensorSummary | None] = [None] * len(tensors)
    groups: dict[tuple[Any, ...], list[int]] = {}
    large: dict[tuple[Any, ...], list[int]] = {}
    together: dict[Any, list[int]] = {}  # off the CPU: one copy to the host per device
    for k, t in enumerate(tensors):
        if t is None:
            continue
        if isinstance(t, OnDevice):
            together.setdefault(t.piece.device, []).append(k)
            continue
        if not _plain_small(t):
            if not _plain_large(t):
                out[k] = summarize(t)
            elif t.is_cpu:
                large.setdefault((t.device, t.dtype), []).append(k)
            else:
                together.setdefault(t.device, []).append(k)
        elif t.is_cpu:
            out[k] = summarize_small(t)
        elif freed(t):
            out[k] = summarize(t)
        elif t.dtype in _FLOAT_KINDS:
            together.setdefault(t.device, []).append(k)
        else:
            groups.setdefault((t.device, t.dtype, tuple(t.shape)), []).append(k)
    for ks in together.values():
        for k, found in zip(ks, read_together([t for k in ks if (t := tensors[k]) is not None])):
            out[k] = found
    for (_, dtype, shape), ks in groups.items():
        group = [t for k in ks if isinstance(t := tensors[k], torch.Tensor)]
        rows = _stacked(group)
        for j, (k, t) in enumerate(zip(ks, group)):
            name = dtype_name(dtype)
            out[k] = summarize(t) if rows is None else _small(rows[j], shape, name, t.numel())
    for ks in large.values():
        for k, found in zip(
            ks, _large_many([t for k in ks if isinstance(t := tensors[k], torch.Tensor)])
        ):
            out[k] = found
    return out


#: Batches at least this long take the C++ path (`_native_many`): below, its call costs more
#: than it saves.
NATIVE_MIN = 8


def _native_many(
    tensors: Sequence[torch.Tensor | OnDevice | None],
) -> list[TensorSummary | None] | None:
    """`summarize_many` with its large plain CPU float tensors summarised in one C++ call
    (`native.summaries`: the checks of `_plain_large`, the numbers of `_large_many` bit for bit,
    the repeats of `_repeats`), and the rest as before; None where the extension is not built.
    With `native.fused`, tensors of any size go to C++ (else those below `WORKSPACE_MIN`)."""
    found = summaries() if len(tensors) >= NATIVE_MIN else None
    if found is None:
        return None
    most = sys.maxsize if fused() else WORKSPACE_MIN
    done: list[TensorSummary | None] = found(list(tensors), DATA_LIMIT, most, TensorSummary)
    rest = [t if s is None else None for t, s in zip(tensors, done)]
    if any(t is not None for t in rest):
        for k, s in enumerate(_python_many(rest)):
            if s is not None:
                done[k] = s
    return done


def _repeats(tensors: Sequence[torch.Tensor | OnDevice | None]) -> list[tuple[int, int]]:
    """(k, j): tensor k holds what tensor j before it holds, so its summary is j's (with its own
    shape): the same tensor twice (a gradient an add passes on), or a contiguous view of the same
    memory (`view`, `reshape`, `flatten`: a full reduction of contiguous memory does not depend on
    the shape, so the numbers are the same bit for bit)."""
    first: dict[Any, int] = {}
    again: list[tuple[int, int]] = []
    for k, t in enumerate(tensors):
        if t is None:
            continue
        key: Any = id(t)
        if (
            isinstance(t, torch.Tensor)
            and type(t) in PLAIN_TYPES
            and t.layout == torch.strided
            and t.numel() > DATA_LIMIT
            and t.is_contiguous()
            and not t.is_neg()  # a lazily negated view holds other numbers in that memory
            and not t.is_conj()
        ):
            key = (t.device, t.dtype, t.data_ptr(), t.numel())
        seen = first.setdefault(key, k)
        if seen != k:
            again.append((k, seen))
    return again


def _plain_large(t: torch.Tensor) -> bool:
    return (
        type(t) in PLAIN_TYPES
        and t.layout == torch.strided
        and t.dtype in (torch.float32, torch.float64)
        and t.numel() > DATA_LIMIT
        and t.device.type != "meta"
        and not freed(t)
    )


#: Same-shaped contiguous CPU tensors up to this size are reduced as the rows of one stacked
#: tensor (a few ops for many small tensors; above it, stacking costs more than it saves).
#: PyTorch reduces a row of a contiguous 2-D tensor exactly as the tensor alone (one thread's
#: cascade, for up to 32,768 elements), so the numbers are the same (tests/test_summary_sums.py).
ROW_LIMIT = 4096
#: ... when at least this many share a shape (for fewer, stacking costs more than it saves).
ROW_MIN = 4


def _large_many(group: list[torch.Tensor]) -> list[TensorSummary]:
    """`_large` of same-dtype CPU tensors, with the same numbers bit for bit but a few ops for
    many same-shaped ones."""
    stats: list[tuple[float, float, float, float]] = [(0.0, 0.0, 0.0, 0.0)] * len(group)
    rows: dict[tuple[int, ...], list[int]] = {}
    alone: list[int] = []
    one_pass = fused()  # each alone in C++ is faster than rows, and gives its numbers everywhere
    for j, t in enumerate(group):
        if not one_pass and t.is_cpu and t.numel() <= ROW_LIMIT and t.is_contiguous():
            rows.setdefault(tuple(t.shape), []).append(j)
        else:
            alone.append(j)
    with torch.no_grad():
        for js in rows.values():
            if len(js) < ROW_MIN:
                alone.extend(js)
                continue
            for j, found in zip(js, _row_stats([group[j] for j in js])):
                stats[j] = found
        if alone:
            for j, found in zip(alone, _each_stats([group[j] for j in alone])):
                stats[j] = found
    return [_large_summary(t, *found) for t, found in zip(group, stats)]


def _row_stats(same: list[torch.Tensor]) -> list[tuple[float, float, float, float]]:
    """(sum, min, max, norm) of same-shaped contiguous tensors, as rows of one tensor."""
    flat = torch.stack([t.detach().reshape(-1) for t in same])
    d = flat.double()
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    columns = torch.stack(
        (d.sum(dim=1), lo.double(), hi.double(), torch.linalg.vector_norm(d, dim=1))
    )
    return [tuple(row) for row in columns.t().tolist()]  # type: ignore[misc]


def _each_stats(group: list[torch.Tensor]) -> list[tuple[float, float, float, float]]:
    """(sum, min, max, norm) of each CPU tensor, each number read on its own (on the CPU there
    is no copy to save, and stacking them costs more); in one C++ call where built (it reads
    them with autograd off, so they need no `detach`)."""
    found = stats()
    if found is None or not all(
        type(t) in PLAIN_TYPES and (t.numel() < WORKSPACE_MIN or fused()) for t in group
    ):
        return [_cpu_stats(t.detach()) for t in group]
    return found(group)


def _large_summary(
    t: torch.Tensor, total: float, lo: float, hi: float, norm: float
) -> TensorSummary:
    if not math.isfinite(total):  # nan or inf inside: the masked statistics
        return summarize(t)
    shape, numel = tuple(int(d) for d in t.shape), t.numel()
    return TensorSummary(shape, dtype_name(t.dtype), numel, None, lo, hi, total / numel, norm)


def read_together(group: list[torch.Tensor | OnDevice]) -> list[TensorSummary]:
    """The summaries of tensors on one device, with one copy to the host for all of them (one
    wait for the device, not one per tensor or per group): a few float numbers are read in full,
    a large float32/float64 tensor as its (float64 sum, min, max, float64 norm), all as float64
    (every float16/bfloat16/float32 number is a float64 exactly, so the numbers are those of
    `summarize`, bit for bit: tests/test_summary_sums.py); an `OnDevice` brings its own numbers.
    Any tensor is accepted; on the CPU the copy is none (which is how the tests check it)."""
    if not group:
        return []
    pieces: list[torch.Tensor] = []
    try:
        with torch.no_grad():
            for t in group:
                if isinstance(t, OnDevice):
                    pieces.append(t.piece)
                    continue
                t = t.detach()
                if t.numel() <= DATA_LIMIT:
                    pieces.append(t.reshape(-1).double())
                else:
                    d = as_double(t)  # as in `_large`
                    lo, hi = torch.aminmax(t)
                    norm = torch.linalg.vector_norm(d)
                    pieces.append(torch.stack((d.sum(), lo.double(), hi.double(), norm)))
            host = torch.cat(pieces).cpu()
    except Exception:  # an odd tensor: summarize them one at a time
        return [_one(t) for t in group]
    out: list[TensorSummary] = []
    at = 0
    for t, piece in zip(group, pieces):
        n = piece.numel()
        row, at = host[at : at + n], at + n
        if isinstance(t, OnDevice):
            out.append(_from_piece(t, row))
            continue
        shape, numel = tuple(int(d) for d in t.shape), t.numel()
        if numel <= DATA_LIMIT:
            out.append(_small(row.view(shape).tolist(), shape, dtype_name(t.dtype), numel))
        else:
            total, lo, hi, norm = row.tolist()
            out.append(_large_summary(t, total, lo, hi, norm))
    return out


def _one(t: torch.Tensor | OnDevice) -> TensorSummary:
    if isinstance(t, OnDevice):
        return _from_piece(t, t.piece.cpu())
    return summarize(t)


def summarize_unread(value: TensorSummary | torch.Tensor | OnDevice) -> TensorSummary:
    """A value kept for later (a tensor, an `OnDevice`) summarised now; a summary stays itself."""
    if isinstance(value, OnDevice):
        return _one(value)
    return summarize(value) if isinstance(value, torch.Tensor) else value


def _stacked(group: list[torch.Tensor]) -> list[Any] | None:
    """The data of same-shaped tensors, copied to the host in one go (None if it cannot be)."""
    try:
        with torch.no_grad():
            rows: list[Any] = torch.stack([t.detach() for t in group]).cpu().tolist()
    except Exception:  # an odd tensor: summarize them one at a time
        return None
    return rows


def _plain_small(t: torch.Tensor) -> bool:
    """A plain strided real tensor with data, small enough to keep in full."""
    return (
        type(t) in PLAIN_TYPES
        and t.layout == torch.strided
        and 0 < t.numel() <= DATA_LIMIT
        and t.dtype in _PLAIN_DTYPES
        and t.device.type != "meta"
    )


def add(a: TensorSummary | None, b: TensorSummary | None) -> TensorSummary | None:
    """Sum of two small summaries' data (for gradients arriving along several edges); else None."""
    if a is None:
        return b
    if b is None:
        return a
    return None
