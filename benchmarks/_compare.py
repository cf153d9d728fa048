"""One workload in one process: gradviz's DOT against torchviz's `make_dot` on the same loss.

Run by `benchmarks/run.py` (a fresh process per workload); prints one JSON line:
nodes, edges, the seconds of `to_dot(graph)`, of a fresh walk (`trace(loss, grads=False)`) plus
`to_dot`, of the terminal tree, and of `make_dot(loss, params).source` (or the error it raised).
"""

from __future__ import annotations

import gc
import io
import json
import sys
import time
from typing import Any


def _seconds(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    """The best of `repeat` timings (fewer when one run takes over a second)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
        if best > 1.0:
            break
    return best, result


#: torchviz recurses once per node (several Python frames each): its recursion limit is raised
#: to this many frames per node of the graph, inside the 1 GiB stack of `in_big_stack`.
FRAMES_PER_NODE = 4


def _torchviz(loss: Any, params: dict[str, Any], nodes: int) -> dict[str, Any]:
    try:
        from torchviz import make_dot
    except ImportError:
        return {"torchviz": "not installed (pip install gradviz[bench])"}
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, FRAMES_PER_NODE * nodes + 1000))
    try:
        seconds, _ = _seconds(lambda: make_dot(loss, params=params).source)
        if seconds == float("inf"):
            return {"torchviz": "failed"}
    except RecursionError:
        return {"torchviz": "RecursionError"}
    finally:
        sys.setrecursionlimit(old)
    return {"torchviz_s": seconds}


def _loss(namespace: dict[str, Any]) -> Any:
    """The workload's loss tensor: `loss`, else `l` (the lesson names its loss function `loss`)."""
    import torch

    for name in ("loss", "l"):
        if isinstance(namespace.get(name), torch.Tensor):
            return namespace[name]
    raise LookupError("the workload defines no loss tensor named `loss` or `l`")


def measure(path: str) -> dict[str, Any]:
    from graphviz_grad.capture import Recorder, run_script, trace
    from graphviz_grad.render.dot import to_dot
    from graphviz_grad.render.tree import tree_text

    run = run_script(path, (), lambda ns: Recorder(keep=-1, namespaces=ns))
    graph = run.recorder.graph(-1)
    loss, params = _loss(run.namespace), run.namespace.get("params", {})
    out: dict[str, Any] = {"nodes": len(graph.nodes), "edges": len(graph.edges)}
    out["gradviz_dot_s"], _ = _seconds(lambda: to_dot(graph))
    out["gradviz_walk_dot_s"], _ = _seconds(lambda: to_dot(trace(loss, grads=False)))
    # wide enough that no line wraps: one line per node or reference (+ the findings block)
    out["tree_s"], text = _seconds(lambda: tree_text(graph, width=100_000))
    out["tree_lines"] = text.count("\n")
    out.update(_torchviz(loss, params, len(graph.nodes)))
    return out


def main() -> None:
    from graphviz_grad.capture import in_big_stack

    gc.freeze()  # as the CLI does: what is imported by now is never walked by a collection
    saved, sys.stdout = sys.stdout, io.StringIO()  # the workload's own prints
    try:
        result = in_big_stack(lambda: measure(sys.argv[1]))
    finally:
        sys.stdout = saved
    print(json.dumps(result))


if __name__ == "__main__":
    main()
