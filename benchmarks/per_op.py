"""What recording adds to one op: a scalar chain's forward pass, in one process.

    python benchmarks/per_op.py                 # 40,000 ops, best of 5, one thread
    python benchmarks/per_op.py --ops 100000 --repeat 3

The chain `y = y * 1.0001 + 0.1` runs four ways, alternately: plain, under an empty Python
dispatch mode (the floor of any recorder built on one), under a minimal recorder (a record per
autograd node in its `metadata` with the op, the output kept as a tensor and the user's file and
line: the floor of any recorder written in Python that keeps what a picture needs), and under
gradviz's `record()`. The line gives the plain time of an op and what the others add to it, in
microseconds (best of `--repeat`). Only the forward pass is timed; the backward call and the
graph are not. To compare two versions, run this file with PYTHONPATH set to each checkout,
back to back.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402


class EmptyMode(TorchDispatchMode):
    """A dispatch mode that only runs each op."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        return func(*args, **(kwargs or {}))


class _Record:
    __slots__ = ("seq", "op", "value", "file", "line")

    def __init__(self, seq: int, op: Any, value: torch.Tensor, file: str, line: int) -> None:
        self.seq, self.op, self.value, self.file, self.line = seq, op, value, file, line


class MinimalRecorder(TorchDispatchMode):
    """What any recorder in Python must do per op: run it, then (at the next op, once autograd
    has set the output's node) attach a record to that node. No module path, constants, cuts or
    summaries: a floor, not a tool."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[Any, Any, Any]] = []
        self.seq = 0

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if self.pending:
            for op, out, frame in self.pending:
                node = out.grad_fn if isinstance(out, torch.Tensor) else None
                if node is not None:
                    self.seq += 1
                    file, line = frame.f_code.co_filename, frame.f_lineno
                    node.metadata["floor"] = _Record(self.seq, op, out.detach(), file, line)
            self.pending = []
        out = func(*args, **(kwargs or {}))
        self.pending.append((func, out, sys._getframe(1)))
        return out


def _forward(ops: int) -> tuple[float, torch.Tensor]:
    x = torch.tensor(1.0, requires_grad=True)
    y = x
    start = time.perf_counter()
    for _ in range(ops // 2):
        y = y * 1.0001 + 0.1
    return time.perf_counter() - start, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from graphviz_grad.capture.recorder import record

    gc.freeze()

    def plain() -> float:
        return _forward(opts.ops)[0]

    def empty() -> float:
        with EmptyMode():
            return _forward(opts.ops)[0]

    def minimal() -> float:
        with MinimalRecorder():
            return _forward(opts.ops)[0]

    def recorded() -> float:
        with record(keep=-1):
            seconds, y = _forward(opts.ops)
            y.backward()
        return seconds

    ways: dict[str, Callable[[], float]] = {
        "plain": plain,
        "empty": empty,
        "minimal": minimal,
        "gradviz": recorded,
    }
    best = {name: float("inf") for name in ways}
    recorded()  # warm up: first-op caches, imports
    for _ in range(opts.repeat):
        for name, way in ways.items():
            best[name] = min(best[name], way())
    per_op = {name: seconds / opts.ops * 1e6 for name, seconds in best.items()}
    print(
        f"{opts.ops:,} ops, one thread each way, best of {opts.repeat}: "
        f"plain {per_op['plain']:.2f} µs an op; "
        f"an empty dispatch mode adds {per_op['empty'] - per_op['plain']:.2f} µs; "
        f"a minimal recorder adds {per_op['minimal'] - per_op['plain']:.2f} µs; "
        f"gradviz's recording adds {per_op['gradviz'] - per_op['plain']:.2f} µs"
    )


if __name__ == "__main__":
    main()
