"""Run gradviz (or torchrun, or python) in a fresh process, as a user's shell does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"

#: gradviz importable from this checkout, one torch thread, no colour, wide lines.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    "OMP_NUM_THREADS": "1",
    "NO_COLOR": "1",
    "COLUMNS": "200",
    "PYTHONDONTWRITEBYTECODE": "1",
}
GRADVIZ = [sys.executable, "-m", "graphviz_grad"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def run(
    cmd: list[str], cwd: Path | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` with stdin from /dev/null, capturing text output."""
    return subprocess.run(
        cmd,
        cwd=cwd or ROOT,
        env={**ENV, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
