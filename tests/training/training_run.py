"""Run gradviz (or torchrun, or python) in a fresh process, as a user's shell does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _launch() -> list[str]:
    """torchrun for 2 ranks on a free local port, running gradviz."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [*TORCHRUN, "--nproc-per-node", "2", "--master-port", str(port), "-m", "graphviz_grad"]


#: What PyTorch prints when a rank's gloo threads outlive its interpreter at exit: a race in torch
#: itself, without gradviz too (`python -m torch.distributed.run` on ddp_nan_rank.py, rank 0
#: ending 2 s after rank 1, aborted 2 times in 12 on a busy machine; an upstream fix was tried and
#: withdrawn: pytorch/pytorch#179291). Under gradviz rank 1 ends first, while rank 0 draws.
_EXIT_RACE = "terminate called without an active exception"


def torchrun_gradviz(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`run` gradviz under torchrun; launched again (twice at most) when a rank died in
    PyTorch's exit race rather than in anything the test checks."""
    for _ in range(2):
        done = run([*_launch(), *args], **kwargs)
        if _EXIT_RACE not in done.stderr or "SIGABRT" not in done.stderr:
            return done
    return run([*_launch(), *args], **kwargs)
