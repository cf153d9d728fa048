"""The statistics of one CPU tensor: ATen's three reductions against the C++ one-pass kernel.

    python benchmarks/native_stats.py            # one thread
    python benchmarks/native_stats.py --threads 2

For each dtype and size, the best of 5 runs of up to 200 reads, in microseconds a tensor: ATen's
reductions called from Python (`summary._cpu_stats` without the extension), the same ATen calls
from C++ (`GRADVIZ_FUSED=0`, or a CPU without AVX2), and the one-pass kernel; then the largest
relative difference of the four numbers between ATen's and the kernel's (sum and norm are float64
sums added in different orders; min and max must agree exactly).
"""

from __future__ import annotations

import argparse
import time

import torch


def aten(t: torch.Tensor) -> tuple[float, float, float, float]:
    d = t.double()
    lo, hi = torch.aminmax(t)
    return float(d.sum()), float(lo), float(hi), float(torch.linalg.vector_norm(d))


def best(fn, tensors: list[torch.Tensor]) -> float:  # type: ignore[no-untyped-def]
    found = 1e9
    for _ in range(5):
        start = time.perf_counter()
        fn(tensors)
        found = min(found, time.perf_counter() - start)
    return found / len(tensors) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from graphviz_grad.capture import native

    module = native.load()
    if module is None or not getattr(module, "fused", False):
        raise SystemExit("the C++ one-pass statistics are not built here (no AVX2 or no compiler)")
    print(f"threads {torch.get_num_threads()}")
    head = f"{'dtype':8} {'elements':>9} {'ATen/Py us':>10} {'ATen/C++ us':>11} {'1-pass us':>9}"
    print(f"{head} {'× Py':>6} {'× C++':>6} {'rel diff':>9}")
    for dtype in (torch.float32, torch.float64):
        for n in (20, 1_000, 4_947, 19_788, 100_000, 1_000_000, 10_000_000):
            t = torch.randn(n, dtype=dtype)
            a, c = aten(t), module.cpu_stats([t])[0]
            assert a[1:3] == c[1:3], (a, c)
            rel = max(abs(x - y) / abs(x) for x, y in zip(a, c))
            reps = max(2, min(200, 20_000_000 // n))
            ta = best(lambda ts: [aten(x) for x in ts], [t] * reps)
            native.set_fused(False)
            try:
                tb = best(module.cpu_stats, [t] * reps)
            finally:
                native.set_fused(True)
            tc = best(module.cpu_stats, [t] * reps)
            name = str(dtype).removeprefix("torch.")
            row = f"{name:8} {n:>9} {ta:>10.2f} {tb:>11.2f} {tc:>9.2f}"
            print(f"{row} {ta / tc:>5.1f}× {tb / tc:>5.1f}× {rel:>9.1e}")


if __name__ == "__main__":
    main()
