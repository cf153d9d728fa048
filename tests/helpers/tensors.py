"""Tensors the summary tests share."""

from __future__ import annotations

import torch


def mixed_floats() -> list[torch.Tensor]:
    """Float tensors of every kind `read_together` reads: a few numbers (0-d, rows, a matrix,
    float16, bfloat16, NaN, Inf, -0.0) and large float32/float64 ones, finite or not."""
    torch.manual_seed(1)
    return [
        torch.tensor(0.25),
        torch.tensor(-0.0),
        torch.randn(4),
        torch.randn(2, 3, dtype=torch.float64),
        torch.randn(2, 2, 2),
        torch.randn(5).half(),
        torch.randn(6).bfloat16(),
        torch.tensor([1.0, float("nan"), float("inf")]),
        torch.randn(100, 37) * 3,
        torch.randn(3, 300)[:, ::2],
        torch.randn(50, dtype=torch.float64),
        torch.tensor([1.0] * 20 + [float("nan")]),
    ]
