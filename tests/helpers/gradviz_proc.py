"""Run gradviz (and plain python) in a fresh process, the way a user's shell does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLES = ROOT / "samples"

#: The environment every subprocess gets: gradviz importable, one torch thread, no colour.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    "OMP_NUM_THREADS": "1",
    "NO_COLOR": "1",
    "COLUMNS": "200",
    "PYTHONDONTWRITEBYTECODE": "1",
}

#: The command that runs gradviz; a module run, so no console script needs installing.
GRADVIZ = [sys.executable, "-m", "graphviz_grad"]


def run(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` with stdin from /dev/null (never a terminal), capturing text output."""
    return subprocess.run(
        cmd,
        cwd=cwd or ROOT,
        env=env or ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def gradviz(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """`python -m graphviz_grad ARGS` in a fresh process."""
    return run([*GRADVIZ, *args], **kwargs)  # type: ignore[arg-type]


def ctrl_c(*args: str, cwd: Path, times: int = 1) -> subprocess.CompletedProcess[str]:
    """`python -m graphviz_grad ARGS` in `cwd`, given Ctrl-C (SIGINT) `times` times, 0.1 s
    apart, once the script prints `ready` on its own line; what it printed after that, and its
    exit code."""
    proc = subprocess.Popen(
        [*GRADVIZ, *args],
        cwd=cwd,
        env=ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for i in range(times):
            if i:
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
