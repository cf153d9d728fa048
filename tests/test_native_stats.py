"""The C++ statistics (`native.stats`, `native.summaries`) against the Python ones.

A summary of a float32/float64 CPU tensor of more than 16 numbers is its float64 sum, its extremes
and its float64 norm. Where the extension is built, `summary._cpu_stats`, `_each_stats` and
`summarize_many` take them from C++. Where the CPU has AVX2 (`native.fused()`), C++ reads each
tensor in one pass and adds in its own order: the extremes are the same bits as ATen's, the sum and
the norm agree to rounding (these tests bound it, and check the C++ numbers are as close to the
exact sums as ATen's), and every route through C++ gives the same bits (one tensor or a batch, one
thread or two, a tensor or its transpose). Without AVX2, C++ makes ATen's own calls and everything
is the same bits. NaN and Inf stay with Python's masked statistics either way. The tests skip where
the extension is not built (no g++).
"""

from __future__ import annotations

import math
import os
import random
import struct
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from graphviz_grad.capture import native, summary
from graphviz_grad.capture.summary import summarize, summarize_many

built = pytest.mark.skipif(
    native.load() is None, reason="the C++ statistics are not built (make native, g++ needed)"
)


def _bits(values: Any) -> Any:
    """Numbers as their IEEE bytes, so NaN equals NaN and -0.0 differs from 0.0."""
    if isinstance(values, float):
        return struct.pack("<d", values)
    if isinstance(values, (list, tuple)):
        return [_bits(v) for v in values]
    return values


def _summary_bits(s: Any) -> Any:
    if s is None:
        return None
    return [_bits(getattr(s, f)) for f in type(s).__dataclass_fields__]


def _at(t: torch.Tensor, i: int) -> tuple[int, ...]:
    return tuple(int(k) for k in torch.unravel_index(torch.tensor(i), t.shape))


def _tensors(seed: int, count: int) -> Iterator[torch.Tensor]:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(count):
        n = rng.choice([17, 31, 100, 1000, 4097, 65_536, 100_003, (1 << 20) - 1])
        dtype = rng.choice([torch.float32, torch.float64])
        t = torch.randn(n, generator=gen, dtype=dtype) * 10 ** rng.uniform(-30, 30)
        kind = rng.random()
        if kind < 0.25:  # non-contiguous
            t = t[: n - n % 2].reshape(-1, 2).t()
        elif kind < 0.4:  # a strided slice
            t = t[::3]
        elif kind < 0.5:  # a matrix
            t = t[: n - n % 4].reshape(4, -1)
        special = rng.random()
        if special < 0.1:
            t = t.clone()  # with the same strides
            t[_at(t, rng.randrange(t.numel()))] = float("nan")
        elif special < 0.2:
            t = t.clone()
            t[_at(t, rng.randrange(t.numel()))] = rng.choice([float("inf"), float("-inf")])
        elif special < 0.25:
            t = torch.zeros_like(t).neg()  # -0.0 everywhere
        grad = rng.random()
        if grad < 0.2:
            t = t.clone().requires_grad_()
        elif grad < 0.3:
            t = torch.nn.Parameter(t.clone())
        elif grad < 0.4:
            t = t.clone().requires_grad_() * 1.0  # not a leaf: it has a grad_fn
        yield t


@pytest.fixture
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    saved = torch.get_num_threads()
    torch.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        torch.set_num_threads(saved)


def _close(t: torch.Tensor, cpp: Any, python: Any) -> bool:
    """Statistics that C++ and Python may add in different orders: the same extremes, the sum and
    the norm within rounding (of the sum of the magnitudes, which a sum's rounding scales with),
    and a non-finite sum on both sides alike (then the callers ignore the rest)."""
    if not native.fused():
        return _bits(cpp) == _bits(python)
    (a_sum, a_lo, a_hi, a_norm), (b_sum, b_lo, b_hi, b_norm) = cpp, python
    if not (math.isfinite(a_sum) and math.isfinite(b_sum)):
        return math.isfinite(a_sum) == math.isfinite(b_sum)
    scale = float(t.detach().double().abs().sum())
    return (
        _bits([a_lo, a_hi]) == _bits([b_lo, b_hi])
        and abs(a_sum - b_sum) <= 1e-13 * scale
        and abs(a_norm - b_norm) <= 1e-13 * b_norm
    )


def _summaries_close(items: list[Any], cpp: list[Any], python: list[Any]) -> bool:
    for t, a, b in zip(items, cpp, python, strict=True):
        masked = a is None or b is None or a.nan or a.inf or a.mean is None or a.data is not None
        real = t is not None and t.dtype in (torch.float32, torch.float64)
        if masked or not real:  # NaN/Inf counted, few numbers kept, other dtypes: Python's
            ok = _summary_bits(a) == _summary_bits(b)
        else:
            same = [f for f in type(a).__dataclass_fields__ if f not in ("mean", "norm")]
            n = a.numel
            ok = [_bits(getattr(a, f)) for f in same] == [_bits(getattr(b, f)) for f in same]
            ok = ok and _close(
                t, (a.mean * n, a.min, a.max, a.norm), (b.mean * n, b.min, b.max, b.norm)
            )
        if not ok:
            return False
    return True


@built
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("seed", range(3))
def test_cpu_stats_are_the_python_numbers(
    seed: int, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpp = native.stats()
    assert cpp is not None
    tensors = list(_tensors(seed, 40))
    both = cpp(tensors)
    with monkeypatch.context() as m:
        m.setattr(native, "_loaded", [None])
        assert native.stats() is None
        python = [summary._cpu_stats(t.detach()) for t in tensors]
    assert len(both) == len(tensors)
    for t, a, b in zip(tensors, both, python):
        assert _close(t, a, b), (t.dtype, tuple(t.shape), t.stride(), a, b)


@built
@pytest.mark.parametrize("seed", range(3))
def test_the_cpp_numbers_do_not_depend_on_threads_or_route(seed: int) -> None:
    """The same bits at one thread and two, alone or in a batch, through `summarize` or
    `summarize_many`, for a tensor and its transpose: what one run shows of a tensor does not
    depend on how it was read."""
    cpp = native.stats()
    assert cpp is not None
    tensors = list(_tensors(200 + seed, 30))
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread = cpp(tensors)
        torch.set_num_threads(2)
        two_threads = cpp(tensors)
    finally:
        torch.set_num_threads(saved)
    assert _bits(one_thread) == _bits(two_threads)
    assert _bits([cpp([t])[0] for t in tensors]) == _bits(one_thread)
    one = [summarize(t) for t in tensors]
    assert [_summary_bits(s) for s in summarize_many(tensors)] == [_summary_bits(s) for s in one]
    m = torch.randn(300, 70, dtype=torch.float64)
    assert _bits(cpp([m])) == _bits(cpp([m.t()]))
    assert _bits(cpp([m[::3]])) == _bits(cpp([m[::3].contiguous()]))


@built
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("seed", range(3))
def test_summaries_are_the_same_with_and_without_the_extension(
    seed: int, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    tensors: list[torch.Tensor | None] = list(_tensors(100 + seed, 40))
    # several of one shape: some go as rows of one stacked tensor, the rest one by one
    gen = torch.Generator().manual_seed(seed)
    tensors += [torch.randn(64, 64, generator=gen) for _ in range(5)] + [None]
    one = [None if t is None else summarize(t) for t in tensors]
    many = summarize_many(tensors)
    with monkeypatch.context() as m:
        m.setattr(native, "_loaded", [None])
        one_python = [None if t is None else summarize(t) for t in tensors]
        many_python = summarize_many(tensors)
    assert _summaries_close(tensors, one, one_python)
    assert _summaries_close(tensors, many, many_python)
    assert [_summary_bits(s) for s in many] == [_summary_bits(s) for s in one]


@built
def test_the_numbers_are_torchs_float64_reductions() -> None:
    """Without AVX2, C++ makes torch's own calls (the same bits); with it, its sum and norm are
    as close to the exact ones (`math.fsum`) as torch's own float64 reductions, or closer."""
    cpp = native.stats()
    assert cpp is not None
    for n in (3000, 100_003, 1 << 21):
        t = torch.randn(n, dtype=torch.float32) * 1e20
        ((total, lo, hi, norm),) = cpp([t])
        torch_total = t.sum(dtype=torch.float64).item()
        torch_norm = torch.linalg.vector_norm(t, dtype=torch.float64).item()
        assert (lo, hi) == (t.min().item(), t.max().item())
        if not native.fused():
            assert (total, norm) == (torch_total, torch_norm)
            continue
        values = t.double().tolist()
        exact = math.fsum(values)
        exact_norm = math.sqrt(math.fsum(v * v for v in values))
        scale = math.fsum(abs(v) for v in values)
        ulp = 2.0**-52
        assert abs(total - exact) <= max(abs(torch_total - exact), 4 * ulp * scale)
        assert abs(norm - exact_norm) <= max(abs(torch_norm - exact_norm), 4 * ulp * exact_norm)


@built
def test_what_the_extension_does_not_take_stays_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tensor subclass, and (without the one-pass statistics) a float32 tensor large enough for
    the reused float64 buffer, are summarised in Python (the subclass's own `__torch_function__`
    runs, as it always did); a plain tensor goes to C++, alone (`summary_one`) or in a batch."""
    cpp, one = native.stats(), native.summary_one()
    assert cpp is not None and one is not None
    calls: list[str] = []

    def spy_stats(tensors: list[torch.Tensor]) -> Any:
        calls.append(f"stats {len(tensors)}")
        return cpp(tensors)

    def spy_one(t: torch.Tensor, *rest: Any) -> Any:
        found = one(t, *rest)
        calls.append("one" if found is not None else "one refused")
        return found

    monkeypatch.setattr(summary, "stats", lambda: spy_stats)
    monkeypatch.setattr(summary, "summary_one", lambda: spy_one)

    class Marked(torch.Tensor):
        pass

    marked = torch.randn(100).as_subclass(Marked)
    big = torch.randn(summary.WORKSPACE_MIN)
    assert summarize(marked).mean == pytest.approx(marked.double().mean().item())
    assert "one" not in calls and not any(c.startswith("stats") for c in calls)
    calls.clear()
    big_norm = summarize(big).norm
    exact_norm = torch.linalg.vector_norm(big, dtype=torch.float64).item()
    if native.fused():  # one pass in C++ is the faster at every size
        assert calls == ["one"] and big_norm == pytest.approx(exact_norm, rel=1e-13)
    else:
        assert calls == ["one refused"] and big_norm == exact_norm
    calls.clear()
    assert summarize_many([marked, marked * 2]) == [summarize(marked), summarize(marked * 2)]
    assert "one" not in calls and not any(c.startswith("stats") for c in calls)
    calls.clear()
    summarize(torch.randn(100))
    assert calls == ["one"]
    calls.clear()
    summarize_many([torch.randn(100), torch.randn(200), torch.randn(300, 2).t()])
    assert calls == ["stats 3"]


def _every_kind() -> list[Any]:
    """One batch with every kind of item `summarize_many` gets, in the order they may come."""
    gen = torch.Generator().manual_seed(7)
    base = torch.randn(6, 40, generator=gen, dtype=torch.float64)
    freed = torch.randn(64)
    freed.untyped_storage().resize_(0)  # as FSDP frees a gathered parameter

    class Marked(torch.Tensor):
        pass

    nan = torch.randn(50, generator=gen)
    nan[3] = float("nan")
    inf = torch.randn(5, 10, generator=gen).t()
    inf[1, 1] = float("-inf")
    return [
        base,
        base.view(-1),  # the same memory, another shape
        base,  # the same tensor again
        base.t(),  # not contiguous
        base.t(),  # ... twice, a new view object each time
        base[1],  # a row: contiguous, at an offset
        torch._neg_view(base),  # the same memory read negated
        torch.nn.Parameter(torch.randn(30, generator=gen)),
        torch.randn(30, generator=gen, requires_grad=True) * 2.0,  # with a grad_fn
        torch.randn(30, generator=gen).as_subclass(Marked),
        freed,
        nan,
        inf,
        torch.full((40,), float("nan")),
        torch.randn(16, generator=gen),  # few numbers: kept in full
        torch.randn(100, generator=gen).half(),
        torch.arange(100),
        torch.randn(summary.WORKSPACE_MIN, generator=gen),
        torch.randn(40, generator=gen, dtype=torch.cfloat),
        torch.empty(0, 3),
        None,
    ]


@built
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_a_batch_of_every_kind_is_summarised_as_in_python(
    threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`summarize_many` through `native.summaries` gives what it gives in Python (`_close`) and
    what `summarize` gives one at a time (bit for bit), for every kind of item in one batch."""
    items = _every_kind()
    assert len(items) >= summary.NATIVE_MIN
    many = summarize_many(items)
    one = [None if t is None else summarize(t) for t in items]
    with monkeypatch.context() as m:
        m.setattr(native, "_loaded", [None])
        assert native.summaries() is None
        many_python = summarize_many(items)
    assert _summaries_close(items, many, many_python)
    assert [_summary_bits(s) for s in many] == [_summary_bits(s) for s in one]
    assert many[6] is not None and many[0] is not None and many[6].mean == -many[0].mean


@built
def test_the_extension_takes_exactly_the_plain_large_finite_tensors() -> None:
    """What `native.summaries` answers for, and what it leaves to Python (None): a subclass,
    freed memory, a NaN or an Inf, a lazily negated view, few numbers, other dtypes, a tensor for
    the reused buffer, an empty one."""
    found = native.summaries()
    assert found is not None
    items = _every_kind()
    got = found(items, summary.DATA_LIMIT, summary.WORKSPACE_MIN, summary.TensorSummary)
    taken = [k for k, s in enumerate(got) if s is not None]
    assert taken == [0, 1, 2, 3, 4, 5, 7, 8]
    one = native.summary_one()
    assert one is not None
    alone = [
        one(t, summary.DATA_LIMIT, summary.WORKSPACE_MIN, summary.TensorSummary) for t in items
    ]
    assert [k for k, s in enumerate(alone) if s is not None] == taken
    assert [_summary_bits(alone[k]) for k in taken] == [_summary_bits(got[k]) for k in taken]
    assert got[1].shape == (240,) and got[0].shape == (6, 40)
    assert got[1].mean == got[0].mean and got[3].norm == got[0].norm


@built
def test_short_batches_stay_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = native.summaries()
    assert real is not None

    def spy(items: list[Any], *rest: Any) -> Any:
        calls.append(len(items))
        return real(items, *rest)

    monkeypatch.setattr(summary, "summaries", lambda: spy)
    summarize_many([torch.randn(100)] * (summary.NATIVE_MIN - 1))
    assert calls == []
    summarize_many([torch.randn(100)] * summary.NATIVE_MIN)
    assert calls == [summary.NATIVE_MIN]


def _layouts() -> list[torch.Tensor]:
    """Tensors whose numbers are not their memory's in order: slices, chunks, permutations of
    slices, expanded ones."""
    gen = torch.Generator().manual_seed(11)
    gates = torch.randn(97, 204, generator=gen, dtype=torch.float64)
    m = torch.randn(300, 70, generator=gen)
    a = torch.randn(5, 6, 7, 8, generator=gen, dtype=torch.float64)
    return [
        *gates.chunk(4, 1),  # an LSTM's gates
        m[::3],
        m.t()[::2],
        m[:, ::5],
        m[5:200:7, 3:60:2],
        a.permute(2, 0, 3, 1)[:, 1:, ::2],
        a[..., 3],
        a.transpose(0, 2)[1:4],
        torch.randn(3, 1, generator=gen).expand(3, 10_000),
        torch.randn(1, generator=gen, dtype=torch.float64).expand(5_000),
        torch.randn(4, 5_000, generator=gen)[:, 7:],
    ]


@built
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_any_layout_gives_the_numbers_of_its_contiguous_copy(threads: int) -> None:
    cpp = native.stats()
    assert cpp is not None
    for t in _layouts():
        assert not t.is_contiguous()
        found = cpp([t])[0]
        assert _bits(found) == _bits(cpp([t.contiguous()])[0]), (tuple(t.shape), t.stride())
        assert _close(t, found, _aten(t))


def _aten(t: torch.Tensor) -> tuple[float, float, float, float]:
    d = t.double()
    return float(d.sum()), float(t.min()), float(t.max()), float(torch.linalg.vector_norm(d))


@built
def test_an_expanded_tensor_is_read_without_a_copy() -> None:
    """A number expanded to 2^27 elements (1 GiB as float64) is summarised in blocks: the
    process's peak memory grows by far less than a copy of it."""
    code = (
        "import resource, torch\n"
        "from graphviz_grad.capture.summary import summarize\n"
        "t = torch.full((1,), 0.5, dtype=torch.float64).expand(1 << 27)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "s = summarize(t)\n"
        "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "assert (s.min, s.max, s.mean) == (0.5, 0.5, 0.5), s\n"
        "print(grew // 1024)\n"
    )
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    grew_mib = int(done.stdout.strip().splitlines()[-1])
    limit = 200 if native.fused() else 2048  # without AVX2, ATen's reductions (no copy either)
    assert grew_mib < limit, done.stdout


@pytest.fixture
def aten_in_cpp() -> Iterator[None]:
    """The extension with its one-pass statistics off (`GRADVIZ_FUSED=0`): ATen's calls in C++."""
    before = native.fused()
    native.set_fused(False)
    try:
        assert not native.fused()
        yield
    finally:
        native.set_fused(True)
        assert native.fused() == before


@built
@pytest.mark.usefixtures("aten_in_cpp")
@pytest.mark.parametrize("seed", range(2))
def test_with_the_one_pass_off_cpp_gives_atens_numbers_bit_for_bit(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a CPU without AVX2 gets, and `GRADVIZ_FUSED=0` anywhere: the very numbers of the
    Python path, through `cpu_stats`, `summary_one` and `summaries`."""
    cpp = native.stats()
    assert cpp is not None
    tensors = list(_tensors(300 + seed, 30)) + _layouts()
    both = cpp(tensors)
    one = [summarize(t) for t in tensors]
    many = summarize_many(tensors)
    with monkeypatch.context() as m:
        m.setattr(native, "_loaded", [None])
        python = [summary._cpu_stats(t.detach()) for t in tensors]
        one_python = [summarize(t) for t in tensors]
    assert [_bits(a) for a in both] == [_bits(b) for b in python]
    assert [_summary_bits(s) for s in one] == [_summary_bits(s) for s in one_python]
    assert [_summary_bits(s) for s in many] == [_summary_bits(s) for s in one_python]


def test_gradviz_fused_0_turns_the_one_pass_off() -> None:
    import subprocess
    import sys

    code = "from graphviz_grad.capture import native; print(native.fused())"
    env = {**os.environ, "GRADVIZ_FUSED": "0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "False", done.stderr


@built
@pytest.mark.parametrize("one_pass", [True, False])
def test_memory_freed_or_shrunk_under_a_view_is_never_read(one_pass: bool) -> None:
    """A view into a storage that FSDP freed (or that shrank) would crash the process if read:
    C++ gives non-finite numbers for it, and `summarize` says the memory is gone."""
    cpp = native.stats()
    assert cpp is not None
    native.set_fused(one_pass)
    try:
        t = torch.randn(1000)
        view = t[500:]
        t.untyped_storage().resize_(0)
        assert not any(math.isfinite(v) for v in cpp([view])[0])
        assert summarize(view).note == summary.FREED_NOTE
        assert summarize_many([view] * summary.NATIVE_MIN)[0].note == summary.FREED_NOTE  # type: ignore[union-attr]
        shrunk = torch.randn(1000, dtype=torch.float64)
        tail = shrunk[600:]
        shrunk.untyped_storage().resize_(8 * 100)  # 100 numbers left: the view lies past them
        assert not math.isfinite(cpp([tail])[0][0])
    finally:
        native.set_fused(True)


@built
def test_check_says_how_the_statistics_are_read(capsys: pytest.CaptureFixture[str]) -> None:
    assert native.main(["--check"]) == 0
    one_pass = "tensor statistics: one pass over each tensor (AVX2)"
    no_avx2 = "tensor statistics: ATen's reductions (this CPU has no AVX2)"
    assert (one_pass if native.fused() else no_avx2) in capsys.readouterr().out
    native.set_fused(False)
    try:
        assert native.main(["--check"]) == 0
    finally:
        native.set_fused(True)
    out = capsys.readouterr().out
    assert "ATen's reductions (GRADVIZ_FUSED=0)" in out or no_avx2 in out


def _python_small(t: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(native, "_loaded", [None])
        return summary.summarize_small(t)


@built
@pytest.mark.parametrize("seed", range(3))
def test_a_few_numbers_summarised_in_cpp_are_pythons_summary(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`small_one`, the short path of `summarize_small` (a chain's scalars, a bias, a loss), gives
    the very summary Python's path gives: the data as `tolist()`, min and max as Python picks them
    (0.0 before -0.0), mean and norm from exact sums, and None where Python must say more (a NaN,
    an Inf, squares past the float range, float16), whatever the strides."""
    assert native.small_one() is not None
    rng = random.Random(seed)
    odd = [0.0, -0.0, 1e154, -1.3e154, 5e-324, math.nan, math.inf, 1e308, 3.4e38]
    taken = 0
    for _ in range(3000):
        shape = rng.choice([(), (1,), (5,), (16,), (1, 5), (2, 3), (4, 4), (3, 1), (2, 2, 2)])
        values = [
            rng.choice(odd) if rng.random() < 0.2 else rng.gauss(0, 10 ** rng.uniform(-30, 30))
            for _ in range(math.prod(shape))
        ]
        dtype = rng.choice([torch.float32, torch.float64, torch.float64, torch.float16])
        t = torch.tensor(values, dtype=torch.float64).to(dtype).reshape(shape)
        if t.dim() == 2 and rng.random() < 0.3:
            t = t.t()
        if t.dim() >= 1 and t.shape[-1] > 1 and rng.random() < 0.2:
            t = t[..., ::2]
        if rng.random() < 0.1:
            t = torch.nn.Parameter(t.clone())
        made = native.small_one()(t, summary.DATA_LIMIT, summary.TensorSummary)  # type: ignore[misc]
        taken += made is not None
        expected = _python_small(t, monkeypatch)
        got = summary.summarize_small(t)
        assert type(got) is type(expected)
        assert repr(got) == repr(expected), (shape, dtype, values)
        assert _bits([got.min, got.max, got.mean, got.norm]) == _bits(
            [expected.min, expected.max, expected.mean, expected.norm]
        )
    assert taken > 1000  # many went through C++


@built
def test_a_few_numbers_in_cpp_leave_freed_and_lazy_tensors_to_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small_one = native.small_one()
    assert small_one is not None
    freed = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    freed.data.untyped_storage().resize_(0)
    lazy = torch.tensor([1.0, -2.0])._neg_view()
    ints = torch.tensor([1, 2])
    for t in (freed, lazy, ints, torch.zeros(0)):
        assert small_one(t, summary.DATA_LIMIT, summary.TensorSummary) is None
        assert summary.summarize_small(t) == _python_small(t, monkeypatch)
    assert summary.summarize_small(lazy).data == [-1.0, 2.0]
