"""What recording costs on a CUDA GPU: the workloads of cost.py moved to the GPU, side by side.

    python benchmarks/cuda.py                 # every row, best of 1 (a few minutes)
    python benchmarks/cuda.py --repeat 2 --only mlp gpt

Each workload runs unchanged but for one line put before it,
`torch.set_default_device("cuda")` (its tensors and modules are made on the GPU), once as
`python W` and once as `gradviz render W --format json`, alternately, in fresh processes. Per
row: the ratio of wall time and the ratio of peak GPU memory (`torch.cuda.max_memory_allocated`
at the end of the script: under gradviz, the values it holds until the graph is built count
too). Skipped, with a line saying so, where torch sees no CUDA device. Nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, Run, gradviz, measure  # noqa: E402

WORKLOADS = ROOT / "benchmarks" / "workloads"
ROWS: list[tuple[str, tuple[str, ...]]] = [
    ("loops/mlp_1000", ()),
    ("loops/mlp_1000", ("--call", "1")),
    ("transformer", ()),
    ("gpt", ()),
    ("loops/sine_lstm", ()),
]
ON_GPU = 'import torch\ntorch.set_default_device("cuda")\n'
PEAK = (
    "\nimport os as _os, torch as _torch\n"
    "_torch.cuda.synchronize()\n"
    'open(_os.environ["GRADVIZ_BENCH_PEAK"], "w").write(str(_torch.cuda.max_memory_allocated()))\n'
)


def on_gpu(workload: str, tmp: Path) -> Path:
    """A copy of the workload whose tensors are made on the GPU, reporting its peak memory."""
    source = (WORKLOADS / f"{workload}.py").read_text()
    path = tmp / (workload.replace("/", "_") + "_cuda.py")
    path.write_text(ON_GPU + source + PEAK)
    return path


def run_with_peak(cmd: list[str], peak_file: Path, timeout: float) -> tuple[Run, int | None]:
    peak_file.unlink(missing_ok=True)
    os.environ["GRADVIZ_BENCH_PEAK"] = str(peak_file)
    result = measure(cmd, timeout)
    peak = int(peak_file.read_text()) if peak_file.exists() else None
    return result, peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", nargs="*", help="rows whose workload name starts so")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing measured")
        return
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    head = ["workload", "python W", "gradviz json", "× wall", "GPU peak W", "GPU peak gradviz"]
    print("| " + " | ".join([*head, "× GPU memory"]) + " |")
    print("|---" * (len(head) + 1) + "|")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for workload, options in ROWS:
            if args.only and not any(workload.split("/")[-1].startswith(o) for o in args.only):
                continue
            script = on_gpu(workload, tmp)
            peak_file = tmp / "peak"
            plain_runs, ours_runs = [], []
            for _ in range(max(1, args.repeat)):
                plain_runs.append(
                    run_with_peak([sys.executable, str(script)], peak_file, args.timeout)
                )
                out = str(tmp / "g.json")
                cmd = gradviz("render", str(script), "--format", "json", "-o", out, "-q", *options)
                ours_runs.append(run_with_peak(cmd, peak_file, args.timeout))
            plain, plain_peak = min(plain_runs, key=lambda r: (not r[0].ok, r[0].seconds))
            ours, ours_peak = min(ours_runs, key=lambda r: (not r[0].ok, r[0].seconds))
            label = " ".join([workload, *options])
            if not (plain.ok and ours.ok):
                failed = plain if not plain.ok else ours
                print(f"| {label} | failed: {failed.stderr.strip().splitlines()[-1:]} |")
                continue
            mem = f"{ours_peak / plain_peak:.2f}×" if plain_peak and ours_peak else "?"
            print(
                f"| {label} | {plain.seconds:.1f} s | {ours.seconds:.1f} s | "
                f"{ours.seconds / plain.seconds:.2f}× | {(plain_peak or 0) / 2**20:.1f} MiB | "
                f"{(ours_peak or 0) / 2**20:.1f} MiB | {mem} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
