"""The float64 statistics of a large tensor are exactly those of PyTorch's own float64 reductions
(`sum(dtype=float64)`, `vector_norm(dtype=float64)`), although `summarize` computes them on a
float64 copy, which is several times faster. That is the Python path (and C++'s without AVX2);
the C++ one-pass statistics add in their own order (tests/test_native_stats.py)."""

from __future__ import annotations

import math
import random

import pytest
import torch

from graphviz_grad.capture.summary import summarize, summarize_many

F64 = torch.float64


def _tensors(seed: int, count: int) -> list[torch.Tensor]:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    found = []
    for _ in range(count):
        n = rng.choice([17, 31, 100, 1000, 4097, 65536, 100_003, 1 << 20])
        t = torch.randn(n, generator=gen) * 10 ** rng.uniform(-30, 30)
        if rng.random() < 0.3:  # non-contiguous
            t = t[: n - n % 2].reshape(-1, 2).t()
        if rng.random() < 0.2:
            t = t.to(F64)
        found.append(t)
    return found


@pytest.mark.parametrize("seed", range(4))
def test_mean_and_norm_are_torchs_own_float64_reductions(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphviz_grad.capture import native

    monkeypatch.setattr(native, "_loaded", [None])  # the Python path
    tensors = _tensors(seed, 60)
    for t, many in zip(tensors, summarize_many(tensors)):
        one = summarize(t)
        assert one == many
        if t.numel() <= 16:  # kept in full, statistics by math.fsum
            continue
        assert one.mean == t.sum(dtype=F64).item() / t.numel()
        assert one.norm == torch.linalg.vector_norm(t, dtype=F64).item()
        assert (one.min, one.max) == (t.min().item(), t.max().item())


@pytest.mark.parametrize("threads", [1, 2])
def test_same_shaped_tensors_reduced_as_rows_give_the_same_numbers(threads: int) -> None:
    rng = random.Random(threads)
    gen = torch.Generator().manual_seed(threads)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(40):
            m = rng.choice([17, 100, 1000, 5100, 16_384, 32_768, 40_000])
            dtype = rng.choice([torch.float32, F64])
            same = [
                torch.randn(m, generator=gen, dtype=dtype) * 10 ** rng.uniform(-8, 8)
                for _ in range(rng.choice([2, 5, 30]))
            ]
            if rng.random() < 0.2:
                same[0][3] = float("nan")  # the masked statistics, for that one
            assert summarize_many(same) == [summarize(t) for t in same]
    finally:
        torch.set_num_threads(saved)


def test_a_tensor_twice_or_a_contiguous_view_of_the_same_memory_is_summarised_once() -> None:
    gen = torch.Generator().manual_seed(7)
    t = torch.randn(96, 64, generator=gen)
    t[3, 5] = float("nan")
    views = [t, t.view(-1), t.view(4, 24, 64), t, t.t(), t[:48], torch.randn(96, 64, generator=gen)]
    assert summarize_many(views) == [summarize(v) for v in views]


def _sum_or_inf(values: list[float]) -> float:
    return math.fsum(values) if abs(sum(values)) < math.inf else sum(values)


def _reference_small(values: list[float]) -> tuple[object, ...]:
    """A small tensor's statistics as documented: over its finite numbers, with exact sums (a sum
    too large for a float is an infinity)."""
    finite = [v for v in values if math.isfinite(v)]
    nan = sum(1 for v in values if math.isnan(v))
    if not finite:
        return (None, None, None, None, nan, len(values) - nan)
    return (
        min(finite),
        max(finite),
        _sum_or_inf(finite) / len(finite),
        math.sqrt(_sum_or_inf([v * v for v in finite])),
        nan,
        len(values) - len(finite) - nan,
    )


@pytest.mark.parametrize("seed", range(3))
def test_a_small_tensors_statistics_are_exact_sums_over_its_finite_numbers(seed: int) -> None:
    rng = random.Random(seed)
    special = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, -1e308, 5e-324, 1.3e154, -1e200]
    for _ in range(300):
        shape = rng.choice([(1,), (5,), (16,), (1, 5), (2, 3), (4, 4), (2, 2, 2), (1, 1, 3)])
        n = math.prod(shape)
        values = [
            rng.choice(special) if rng.random() < 0.2 else rng.gauss(0, 1e3) for _ in range(n)
        ]
        dtype = rng.choice([torch.float32, torch.float64, torch.float16, torch.bfloat16])
        t = torch.tensor(values, dtype=F64).to(dtype).reshape(shape)
        s = summarize(t)
        stored = t.double().reshape(-1).tolist()
        assert str(s.data) == str(t.tolist())
        expected = _reference_small(stored)
        got = (s.min, s.max, s.mean, s.norm, s.nan, s.inf)
        assert str(got) == str(expected), (shape, dtype, values)  # str: -0.0 and nan compare
