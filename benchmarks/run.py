"""gradviz against `python W` and torchviz on every workload in benchmarks/workloads/.

    python benchmarks/run.py                 # every workload (several minutes)
    python benchmarks/run.py --only chain_10k transformer
    python benchmarks/run.py --skip chain_1m --repeat 3   # best of 3 (busy machines)
    python benchmarks/run.py --cost          # recording cost of training loops (cost.py)

Per workload, in one run: whole-process time and peak RSS of `python W`, of
`gradviz render W --format json` (capture), of `gradviz render W` to SVG (with the layout budget)
and of `gradviz tree W`; then, in one fresh process (`_compare.py`), gradviz's `to_dot` against
torchviz's `make_dot(loss, params).source` on the same loss. The table gives ratios against the
issue's targets; nothing here asserts on time (machines differ), the table is the result.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benchmarks" / "workloads"
ORDER = [
    "lesson",
    "mlp",
    "transformer",
    "lstmcell",
    "chain_10k",
    "chain_100k",
    "chain_1m",
    "diamond",
]
#: Targets from issue 3 (capture overhead per workload; the others apply to every workload).
CAPTURE_TARGET = {"transformer": 1.5, "lstmcell": 2.5, "chain_100k": 2.0, "chain_1m": 3.0}
MEMORY_TARGET = {"transformer": 1.5, "chain_1m": 3.0}
#: Issue 11: gradviz's DOT of these is no slower than torchviz's `make_dot` (speed-up ≥ 1).
DOT_VS_TORCHVIZ = ("chain_10k", "chain_100k")
SVG_TARGET_S = 20.0
TREE_TARGET_S = {"chain_100k": 5.0}
HELP_TARGET_S = 0.3


@dataclass
class Run:
    """One process: wall and CPU (user + system) seconds, peak RSS in MiB, status, stderr."""

    seconds: float
    cpu: float
    rss_mib: float
    code: int
    stderr: str
    stdout_lines: int = 0

    @property
    def ok(self) -> bool:
        return self.code == 0


def measure(cmd: list[str], timeout: float) -> Run:
    """Run `cmd`; wall time and the peak RSS of that child alone (os.wait4)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "100"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        try:
            _, status, usage = _wait4(proc, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return Run(timeout, 0.0, 0.0, -9, "timeout")
        seconds = time.perf_counter() - start
        out.seek(0)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: out.read(1 << 20), b""))
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds, cpu, usage.ru_maxrss / 1024, code, text, lines)


def best(cmd: list[str], timeout: float, repeat: int) -> Run:
    """The fastest of `repeat` runs (a busy machine only ever adds time)."""
    runs = [measure(cmd, timeout) for _ in range(max(1, repeat))]
    return min(runs, key=lambda r: (not r.ok, r.seconds))


def _wait4(proc: subprocess.Popen[bytes], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return pid, status, usage
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        time.sleep(0.02)


def gradviz(*args: str) -> list[str]:
    return [sys.executable, "-m", "graphviz_grad", *args]


def compare(path: Path, timeout: float) -> dict[str, Any]:
    """gradviz DOT vs torchviz in one fresh process (see `_compare.py`)."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "_compare.py"), str(path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _drawn(stderr: str) -> str:
    found = re.search(r"\((\d+) nodes(?:, (\d+) drawn)?\)", stderr)
    if not found:
        return "?"
    return found.group(2) or found.group(1)


def _ratio(a: Run, b: Run) -> str:
    """Wall-time ratio, and CPU-time ratio (steadier on a busy machine)."""
    if not (a.ok and b.ok):
        return "failed" if a.code != -9 else "timeout"
    return f"{a.seconds / b.seconds:.2f}× / {a.cpu / b.cpu:.2f}×"


def bench(name: str, timeout: float, tmp: Path, repeat: int = 1) -> dict[str, Any]:
    """Every measurement of one workload (process times: the best of `repeat`)."""
    path = WORKLOADS / f"{name}.py"
    rel = str(path.relative_to(ROOT))
    print(f"… {name}", file=sys.stderr, flush=True)
    base = best([sys.executable, rel], timeout, repeat)
    json_out = str(tmp / "g.json")
    cap = best(gradviz("render", rel, "--format", "json", "-o", json_out), timeout, repeat)
    svg = best(gradviz("render", rel, "-o", str(tmp / "g.svg")), timeout, repeat)
    tree = best(gradviz("tree", rel), timeout, repeat)
    cmp_ = compare(path, timeout)
    return {"name": name, "base": base, "cap": cap, "svg": svg, "tree": tree, "cmp": cmp_}


def _dot_cells(cmp_: dict[str, Any]) -> tuple[str, str, str]:
    if "error" in cmp_:
        return cmp_["error"], "", ""
    ours = f"{cmp_['gradviz_dot_s']:.3f} s / {cmp_['gradviz_walk_dot_s']:.3f} s"
    if "torchviz_s" not in cmp_:
        return ours, cmp_.get("torchviz", "?"), "∞ (torchviz fails)"
    theirs = cmp_["torchviz_s"]
    return ours, f"{theirs:.3f} s", f"{theirs / max(cmp_['gradviz_dot_s'], 1e-9):.1f}×"


def row(r: dict[str, Any]) -> list[str]:
    base, cap, svg, tree, cmp_ = r["base"], r["cap"], r["svg"], r["tree"], r["cmp"]
    nodes, edges = cmp_.get("nodes", "?"), cmp_.get("edges", "?")
    ours, theirs, speedup = _dot_cells(cmp_)
    mem = f"{cap.rss_mib / base.rss_mib:.2f}×" if cap.ok and base.ok else "—"
    svg_cell = f"{svg.seconds:.1f} s" if svg.ok else ("timeout" if svg.code == -9 else "failed")
    tree_lines = cmp_.get("tree_lines", tree.stdout_lines)
    bound = nodes + edges if isinstance(nodes, int) and isinstance(edges, int) else "?"
    return [
        r["name"],
        f"{nodes:,}" if isinstance(nodes, int) else str(nodes),
        f"{edges:,}" if isinstance(edges, int) else str(edges),
        f"{base.seconds:.1f} s ({base.cpu:.1f} cpu)",
        f"{cap.seconds:.1f} s ({cap.cpu:.1f} cpu)",
        _ratio(cap, base),
        ours,
        theirs,
        speedup,
        svg_cell,
        _drawn(svg.stderr),
        f"{tree_lines:,} ≤ {bound:,}" if isinstance(bound, int) else str(tree_lines),
        f"{tree.seconds:.1f} s" if tree.ok else "failed",
        f"{cmp_.get('tree_s', float('nan')):.2f} s",
        mem,
    ]


HEADER = [
    "workload",
    "nodes",
    "edges",
    "python W",
    "render json",
    "capture × wall / cpu",
    "gradviz dot / walk+dot",
    "torchviz make_dot",
    "dot speed-up",
    "render svg",
    "drawn",
    "tree lines ≤ n+e",
    "gradviz tree",
    "tree_text",
    "peak RSS ×",
]


def table(rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines.extend("| " + " | ".join(r) + " |" for r in rows)
    return "\n".join(lines)


def targets(results: list[dict[str, Any]], help_run: Run) -> list[str]:
    """One line per target of issue 3: met or missed, and by how much."""
    out = []
    by = {r["name"]: r for r in results}
    for name, limit in CAPTURE_TARGET.items():
        if name in by and by[name]["cap"].ok and by[name]["base"].ok:
            cap, base = by[name]["cap"], by[name]["base"]
            out.append(
                _verdict(f"capture overhead {name} (wall)", cap.seconds / base.seconds, limit, "×")
            )
            out.append(_verdict(f"capture overhead {name} (cpu)", cap.cpu / base.cpu, limit, "×"))
    for name, limit in MEMORY_TARGET.items():
        if name in by and by[name]["cap"].ok:
            got = by[name]["cap"].rss_mib / by[name]["base"].rss_mib
            out.append(_verdict(f"peak RSS {name}", got, limit, "×"))
    for r in results:
        got = r["svg"].seconds if r["svg"].ok else float("inf")
        out.append(_verdict(f"render svg {r['name']}", got, SVG_TARGET_S, " s"))
        if r["name"] in TREE_TARGET_S:
            got = r["cmp"].get("tree_s", float("inf"))
            out.append(_verdict(f"tree_text {r['name']}", got, TREE_TARGET_S[r["name"]], " s"))
    for name in DOT_VS_TORCHVIZ:
        cmp_ = by[name]["cmp"] if name in by else {}
        if "torchviz_s" in cmp_:
            got = cmp_["gradviz_dot_s"] / cmp_["torchviz_s"]
            out.append(_verdict(f"DOT time vs torchviz {name}", got, 1.0, "×"))
    out.append(_verdict("gradviz --help", help_run.seconds, HELP_TARGET_S, " s"))
    return out


def _verdict(what: str, got: float, limit: float, unit: str) -> str:
    mark = "met" if got <= limit else f"MISSED by {got - limit:.2f}{unit}"
    return f"- {what}: {got:.2f}{unit} (target ≤ {limit:g}{unit}) {mark}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="workloads to run (default: all)")
    parser.add_argument("--skip", nargs="*", default=[], help="workloads to leave out")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command")
    parser.add_argument("--repeat", type=int, default=1, help="runs per command; the best counts")
    parser.add_argument(
        "--cost", action="store_true", help="the recording-cost rows instead (benchmarks/cost.py)"
    )
    opts = parser.parse_args()
    from cost import hooks_used, run_rows

    print(hooks_used())
    if opts.cost:
        print(run_rows(opts.only, opts.timeout, opts.repeat))
        return
    names = [n for n in (opts.only or ORDER) if n not in opts.skip]
    help_run = min((measure(gradviz("--help"), 60) for _ in range(3)), key=lambda r: r.seconds)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results.append(bench(name, opts.timeout, Path(tmp), opts.repeat))
            print(table([row(results[-1])]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table([row(r) for r in results]))
    print()
    print("\n".join(targets(results, help_run)))


if __name__ == "__main__":
    main()
