"""torch.distributed: which rank the graph shows, and what DDP did to the leaves' gradients.

Every rank runs the script unchanged, under its own recorder: gradviz adds no collective, so
ranks stay in step exactly as without it. A backward call on a DDP model shows two gradients per
parameter: the local one that flowed on this rank (the pre-hook of `AccumulateGrad`) and the
`.grad` that DDP's reducer left after all-reducing over the ranks (read when backward returns),
which is what the optimizer uses.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable
from typing import Any

#: Environment that `torchrun` sets for every rank; `init_process_group()` reads it.
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_DDP = ("torch.nn.parallel.distributed", "DistributedDataParallel")


def rank_and_world() -> tuple[int, int] | None:
    """(rank, world size) of the default process group, if one is initialized."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is None or not dist.is_available() or not dist.is_initialized():
            return None
        return int(dist.get_rank()), int(dist.get_world_size())
    except (RuntimeError, ValueError):  # destroyed meanwhile
        return None


def ddp_parameters(modules: Iterable[Any]) -> dict[int, Any]:
    """The parameters of the DDP-wrapped modules among `modules`, by id (DDP reduces those)."""
    found: dict[int, Any] = {}
    for m in list(modules):
        kind = type(m)
        if (kind.__module__, kind.__name__) == _DDP:
            for p in m.parameters():
                if p.requires_grad:
                    found[id(p)] = p
    return found


def launch_hint(exc: BaseException, script: str) -> str | None:
    """A hint naming torchrun when `exc` is torch.distributed missing its launch environment."""
    text = str(exc)
    if not isinstance(exc, (ValueError, RuntimeError)):
        return None
    missing = "env://" in text or any(f"variable {v}" in text for v in LAUNCH_ENV)
    frames = traceback.extract_tb(exc.__traceback__)
    in_dist = any("torch/distributed" in f.filename.replace("\\", "/") for f in frames)
    if not (missing and in_dist):
        return None
    return (
        "The script starts torch.distributed, which needs the environment that torchrun sets. "
        f"Run it under torchrun: `torchrun --nproc-per-node 2 --no-python gradviz render {script}` "
        "(rank 0 is drawn; `--rank R` picks another, `-o graph-{rank}.svg` draws every rank)."
    )


__all__ = ["LAUNCH_ENV", "ddp_parameters", "launch_hint", "rank_and_world"]
