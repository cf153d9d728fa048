"""What gradviz costs after capture: each stage alone on one captured graph.

    python benchmarks/stages.py benchmarks/workloads/chain_100k.py          # best of 3
    python benchmarks/stages.py benchmarks/workloads/chain_1m.py --repeat 1

The workload is captured once (in the big-stack thread, as the CLI does); then diagnostics, the
JSON writer, the colourless tree, the layout budget and the DOT of the budget's view each run
`--repeat` times on a fresh copy of the graph (no cached `inputs`/`consumers`), and the best CPU
time of each is printed. Outputs go to memory. To compare two versions, run this file with
PYTHONPATH set to each checkout, back to back.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _tree(graph: Any) -> None:
    from rich.console import Console

    from graphviz_grad.render import tree

    console = Console(file=io.StringIO(), width=100, color_system=None, highlight=False)
    shown = tree.GraphTree(graph)
    if hasattr(tree, "printed"):
        tree.printed(console, shown)
    else:  # a checkout from before `printed`
        console.print(shown)


def stages() -> dict[str, Callable[[Any], object]]:
    from graphviz_grad.diagnose import diagnose
    from graphviz_grad.render import DrawOptions, choose_view, to_dot
    from graphviz_grad.render.json import write_json

    def dot(graph: Any) -> str:
        return to_dot(graph, view=choose_view(graph, "svg", DrawOptions()))

    return {
        "diagnostics": diagnose,
        "json": lambda g: write_json(g, io.StringIO()),
        "tree (no colour)": _tree,
        "layout budget": lambda g: choose_view(g, "svg", DrawOptions()),
        "budget + dot": dot,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from graphviz_grad.capture import CaptureOptions, capture_script, in_big_stack

    def job() -> None:
        gc.freeze()
        start = time.process_time()
        captured = capture_script(args.workload, [], CaptureOptions())
        print(f"capture: {time.process_time() - start:.2f} s cpu", file=sys.stderr)
        graph = captured.graph
        captured.run.namespace.clear()
        for name, run in stages().items():
            best = float("inf")
            for _ in range(args.repeat):
                fresh = dataclasses.replace(graph)
                start = time.process_time()
                run(fresh)
                best = min(best, time.process_time() - start)
            print(f"{name}: {best:.2f} s cpu", file=sys.stderr)

    in_big_stack(job)


if __name__ == "__main__":
    main()
