"""How far below Python's floor a C++ recorder could go: the per-op and per-node figures.

    python benchmarks/native_floor.py                # 100,000 ops, best of 3, one thread
    python benchmarks/native_floor.py --ops 40000

Compiles benchmarks/native/floor.cpp against the installed torch (g++ and ninja needed; about
15 s the first time, cached under benchmarks/native/build), then, on the scalar chain of
`per_op.py`, in one process and a big-stack thread:

* per op: plain; a C++ RecordFunction callback that keeps `per_op.py`'s minimal record (weak
  node, output, op name, Python code and line), without and with the frame; an empty dispatch
  mode; the minimal Python recorder; gradviz's `record()`;
* per node of the chain's backward call: registering and running a C++ pre-hook that keeps the
  gradients against a Python `register_prehook` that does the same, and no hook at all;
* coverage: the op nodes of a transformer, LSTMCell loop, MLP and CNN that the callback saw.

gradviz does not use this code; it measures the design of issue 11's remaining rows.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from per_op import EmptyMode, MinimalRecorder, _forward  # noqa: E402

HERE = Path(__file__).resolve().parent / "native"


def _build() -> Any:
    from torch.utils.cpp_extension import load

    build = HERE / "build"
    build.mkdir(exist_ok=True)
    return load(
        "gradviz_native_floor",
        [str(HERE / "floor.cpp")],
        extra_cflags=["-O2"],
        build_directory=str(build),
    )


def _chain(ops: int) -> torch.Tensor:
    return _forward(ops)[1]


def _nodes(root: Any) -> list[Any]:
    seen: set[Any] = set()
    stack, out = [root], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        out.append(node)
        stack.extend(child for child, _ in node.next_functions)
    return out


def per_op(native: Any, ops: int, repeat: int) -> None:
    from graphviz_grad.capture.recorder import record

    def in_native(frames: bool) -> Callable[[], float]:
        def way() -> float:
            native.frames(frames)
            native.start()
            try:
                seconds, _ = _forward(ops)
            finally:
                seen = native.stop()
            if seen < ops:
                raise SystemExit(f"the callback saw {seen} of {ops} ops")
            return seconds

        return way

    def under(mode: Callable[[], Any]) -> Callable[[], float]:
        def way() -> float:
            with mode():
                return _forward(ops)[0]

        return way

    def recorded() -> float:
        with record(keep=-1):
            seconds, y = _forward(ops)
            y.backward()
        return seconds

    ways: dict[str, Callable[[], float]] = {
        "plain": lambda: _forward(ops)[0],
        "C++ callback, no frame": in_native(False),
        "C++ callback with frame": in_native(True),
        "empty dispatch mode": under(EmptyMode),
        "minimal Python recorder": under(MinimalRecorder),
        "gradviz record()": recorded,
    }
    recorded()  # warm up
    best = {name: float("inf") for name in ways}
    for _ in range(repeat):
        for name, way in ways.items():
            gc.collect()
            best[name] = min(best[name], way())
    plain = best["plain"] / ops * 1e6
    print(f"per op ({ops:,} ops, one thread, best of {repeat}):")
    for name, seconds in best.items():
        us = seconds / ops * 1e6
        print(f"  {name:26s} {us:6.2f} µs   +{us - plain:5.2f}")


def per_node(native: Any, ops: int) -> None:
    def python_hooks(nodes: list[Any]) -> None:
        store: list[Any] = [None] * len(nodes)
        for i, node in enumerate(nodes):
            node.register_prehook(lambda g, i=i: store.__setitem__(i, g))

    ways: dict[str, Callable[[list[Any]], object]] = {
        "no hook": lambda nodes: None,
        "C++ pre-hook": native.hook_all,
        "Python pre-hook": python_hooks,
    }
    print(f"per node of the backward call ({ops + 1:,} nodes):")
    for name, hook in ways.items():
        y = _chain(ops)
        nodes = _nodes(y.grad_fn)
        start = time.perf_counter()
        hook(nodes)
        registered = time.perf_counter() - start
        start = time.perf_counter()
        y.backward()
        ran = time.perf_counter() - start
        if name == "C++ pre-hook" and native.grads_seen() != len(nodes):
            raise SystemExit("the C++ pre-hooks missed nodes")
        del nodes, y
        print(
            f"  {name:16s} register {registered / ops * 1e6:5.2f} µs   "
            f"backward {ran / ops * 1e6:5.2f} µs"
        )


def coverage(native: Any) -> None:
    from torch import nn

    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128, batch_first=True), 2)
    cell = nn.LSTMCell(4, 8)
    mlp = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    )

    def lstm() -> torch.Tensor:
        h = c = torch.zeros(3, 8)
        for _ in range(5):
            h, c = cell(torch.randn(3, 4), (h, c))
        return h.sum()

    losses: dict[str, Callable[[], torch.Tensor]] = {
        "transformer": lambda: enc(torch.randn(2, 10, 64)).pow(2).mean(),
        "LSTMCell loop": lstm,
        "MLP + MSE": lambda: nn.functional.mse_loss(mlp(torch.randn(8, 4)), torch.randn(8, 1)),
        "CNN + cross-entropy": lambda: nn.functional.cross_entropy(
            cnn(torch.randn(2, 1, 8, 8)), torch.tensor([0, 2])
        ),
    }
    print("op nodes the callback saw:")
    for name, make in losses.items():
        native.start()
        try:
            loss = make()
            seen = set(native.alive())
        finally:
            native.stop()
        ops = [n for n in _nodes(loss.grad_fn) if type(n).__name__ != "AccumulateGrad"]
        missed = sorted({type(n).__name__ for n in ops if n not in seen})
        print(
            f"  {name:20s} {len(ops) - len(missed)} of {len(ops)}"
            + (f" (missed {', '.join(missed)})" if missed else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    if shutil.which("g++") is None or shutil.which("ninja") is None:
        raise SystemExit("native_floor.py needs g++ and ninja (apt-get install g++ ninja-build)")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    start = time.perf_counter()
    native = _build()
    print(f"built in {time.perf_counter() - start:.1f} s")
    gc.freeze()

    def job() -> None:  # a deep chain's node graph is freed recursively: a big stack
        per_op(native, opts.ops, opts.repeat)
        per_node(native, opts.ops)
        coverage(native)

    threading.stack_size(1 << 30)
    thread = threading.Thread(target=job)
    thread.start()
    thread.join()


if __name__ == "__main__":
    main()
