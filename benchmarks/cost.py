"""What recording costs on real training loops: gradviz against `python W`, side by side.

    python benchmarks/cost.py                    # every row (about 10 minutes on 2 busy cores)
    python benchmarks/cost.py --only mlp gpt     # rows whose workload name starts so
    python benchmarks/cost.py --repeat 3         # best of 3 of each (busy machines)
    python benchmarks/run.py --cost              # the same table, from the main harness

Each row runs `python W` and `gradviz render W --format json` (the whole command: start-up,
recording, the JSON) alternately in fresh processes under the same environment, and gives the
ratio of wall time, of CPU time (steadier on a busy machine) and of peak RSS, against the target
of issue 11. The lesson's target is absolute: at most 0.2 s over `python W`. Nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, Run, gradviz, measure  # noqa: E402

#: Long training loops live in workloads/loops/ (too slow for the test suite's transparency
#: check, which runs every top-level workload).
WORKLOADS = ROOT / "benchmarks" / "workloads"


@dataclass(frozen=True)
class Row:
    """One row: a workload, gradviz options, environment, and the target (× or seconds over)."""

    workload: str
    target: float
    options: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    seconds_over: bool = False

    @property
    def label(self) -> str:
        extra = [*self.options, *(f"{k}={v}" for k, v in self.env.items())]
        return " ".join([self.workload, *extra])


ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ROWS = [
    Row("loops/mlp_1000", 1.5),
    Row("loops/mlp_1000", 1.5, env=ONE_THREAD),
    Row("loops/mlp_1000", 1.15, ("--call", "1")),
    Row("transformer", 1.3),
    Row("gpt", 1.5),
    Row("loops/dynamic_net", 2.0),
    Row("loops/dynamic_net", 1.15, ("--call", "1")),
    Row("loops/sine_lstm", 2.0),
    Row("lesson", 0.2, seconds_over=True),
]


def _with_env(env: dict[str, str]) -> dict[str, str | None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return saved


def _restore(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def bench(row: Row, tmp: Path, timeout: float, repeat: int) -> tuple[Run, Run]:
    """The best plain run and the best gradviz run, measured alternately."""
    script = str((WORKLOADS / f"{row.workload}.py").relative_to(ROOT))
    plain_cmd = [sys.executable, script]
    json_out = str(tmp / "g.json")
    ours_cmd = gradviz("render", script, *row.options, "--format", "json", "-o", json_out)
    saved = _with_env(row.env)
    try:
        plain, ours = [], []
        for _ in range(max(1, repeat)):
            plain.append(measure(plain_cmd, timeout))
            ours.append(measure(ours_cmd, timeout))
    finally:
        _restore(saved)

    def fastest(runs: list[Run]) -> Run:
        return min(runs, key=lambda r: (not r.ok, r.seconds))

    return fastest(plain), fastest(ours)


def cells(row: Row, plain: Run, ours: Run) -> list[str]:
    if not (plain.ok and ours.ok):
        why = (ours.stderr or plain.stderr).strip().splitlines()[-1:] or ["failed"]
        return [row.label, "failed", why[0][:60], "", "", "", f"{row.target:g}", "—"]
    wall, cpu = ours.seconds / plain.seconds, ours.cpu / plain.cpu
    rss = ours.rss_mib / plain.rss_mib
    if row.seconds_over:
        got, target = ours.seconds - plain.seconds, f"≤ +{row.target:g} s"
        shown = f"{got:+.2f} s (cpu {ours.cpu - plain.cpu:+.2f} s)"
    else:
        got, target = wall, f"≤ {row.target:g}×"
        shown = f"{wall:.2f}× (cpu {cpu:.2f}×)"
    verdict = "met" if got <= row.target else "missed"
    return [
        row.label,
        f"{plain.seconds:.2f} s ({plain.cpu:.2f} cpu)",
        f"{ours.seconds:.2f} s ({ours.cpu:.2f} cpu)",
        shown,
        f"{rss:.2f}×",
        f"{plain.rss_mib:.0f} / {ours.rss_mib:.0f} MiB",
        target,
        verdict,
    ]


HEADER = ["row", "python W", "gradviz json", "overhead", "peak RSS ×", "RSS", "target", ""]


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines.extend("| " + " | ".join(r) + " |" for r in rows)
    return "\n".join(lines)


def run_rows(only: list[str] | None, timeout: float, repeat: int) -> str:
    def named(row: Row) -> str:
        return row.workload.rsplit("/", 1)[-1]

    chosen = [r for r in ROWS if not only or any(named(r).startswith(o) for o in only)]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in chosen:
            print(f"… {row.label}", file=sys.stderr, flush=True)
            out.append(cells(row, *bench(row, Path(tmp), timeout, repeat)))
            print(table([out[-1]]).splitlines()[-1], file=sys.stderr, flush=True)
    return table(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="workload name prefixes (default: every row)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best counts")
    opts = parser.parse_args()
    print(hooks_used())
    print(run_rows(opts.only, opts.timeout, opts.repeat))


def hooks_used() -> str:
    """Which pre-hooks the gradviz runs use: the C++ ones (`make native`) or Python's."""
    check = measure([sys.executable, "-m", "graphviz_grad.native", "--check"], 120)
    return "pre-hooks: " + ("C++ (built)" if check.ok else "Python (C++ not built or turned off)")


if __name__ == "__main__":
    main()
