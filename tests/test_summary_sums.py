"""The float64 statistics of a large tensor are exactly those of PyTorch's own float64 reductions
(`sum(dtype=float64)`, `vector_norm(dtype=float64)`), although `summarize` computes them on a
float64 copy, which is several times faster."""

from __future__ import annotations

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
def test_mean_and_norm_are_torchs_own_float64_reductions(seed: int) -> None:
    tensors = _tensors(seed, 60)
    for t, many in zip(tensors, summarize_many(tensors)):
        one = summarize(t)
        assert one == many
        if t.numel() <= 16:  # kept in full, statistics by math.fsum
            continue
        assert one.mean == t.sum(dtype=F64).item() / t.numel()
        assert one.norm == torch.linalg.vector_norm(t, dtype=F64).item()
        assert (one.min, one.max) == (t.min().item(), t.max().item())
