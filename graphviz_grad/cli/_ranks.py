"""`torchrun … -m graphviz_grad CMD`: every rank runs the script, one rank draws.

torchrun starts one gradviz per rank and tells each its `RANK` and `WORLD_SIZE`. Each runs the
script unchanged (so every collective happens on every rank, as without gradviz); then the rank
picked by `--rank` (0 by default) writes and prints, and the others end quietly. An output path
holding `{rank}` makes every rank write its own file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import UsageError
from ._options import ROOT_PANEL

if TYPE_CHECKING:
    from ..model import Graph

RANK_TOKEN = "{rank}"

RankOpt = Annotated[
    int,
    typer.Option(
        "--rank",
        min=0,
        help="Under torchrun: the rank whose graph is drawn (an output path with `{rank}` "
        "draws every rank).",
        rich_help_panel=ROOT_PANEL,
    ),
]


@dataclass
class Ranks:
    """This process's place in a torchrun job (`rank` None when it runs alone)."""

    rank: int | None = None
    world: int | None = None
    draw: int = 0
    every: bool = False

    @property
    def draws(self) -> bool:
        return self.rank is None or self.every or self.rank == self.draw


ROLE = Ranks()


class NotDrawing(Exception):
    """Raised after the script ran on a rank that does not draw: end quietly, exit 0."""


def _env_int(name: str) -> int | None:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return None


def setup(rank: int, output: str | None) -> str | None:
    """Note which rank draws; returns `output` with `{rank}` filled in."""
    here, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    if world is not None and rank >= world:
        raise UsageError(
            f"--rank {rank}: there are only {world} ranks (0 to {world - 1}).",
            hint=f"Pick a rank from 0 to {world - 1}.",
        )
    if world is None and rank != 0:
        raise UsageError(
            "--rank only means something under torchrun.",
            hint="e.g. `torchrun --nproc-per-node 2 --no-python gradviz render train.py --rank 1`.",
        )
    every = output is not None and RANK_TOKEN in output
    ROLE.rank, ROLE.world, ROLE.draw, ROLE.every = here, world, rank, every
    if output is None:
        return None
    return output.replace(RANK_TOKEN, str(here if here is not None else 0))


def stop_unless_drawing() -> None:
    """After the script ran: end here on a rank that neither writes nor prints."""
    if not ROLE.draws:
        raise NotDrawing


#: How long the drawing rank waits for the other ranks' reports (they ran the same script).
REPORT_WAIT = 60.0
#: Reports older than this process (less a margin) are left over from an earlier job.
_STARTED = time.time() - 30.0


#: What tells one torchrun job from another on this machine.
_JOB_ENV = ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")


def _folder() -> Path:
    key = "-".join(
        os.environ.get(k, "") for k in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
    )
    return Path(tempfile.gettempdir()) / ("gradviz-ranks-" + re.sub(r"[^A-Za-z0-9.]+", "_", key))


def share_report(graph: Graph) -> None:
    """Under torchrun with 2+ ranks: leave this rank's report where the drawing rank reads it.

    Files, not a collective: a rank that died or took another path can never block the others.
    """
    if ROLE.rank is None or ROLE.world is None or ROLE.world < 2:
        return
    from ..diagnose.ranks import report

    folder = _folder()
    folder.mkdir(exist_ok=True)
    tmp = folder / f".rank-{ROLE.rank}.{os.getpid()}.json"
    tmp.write_text(json.dumps(report(graph, ROLE.rank)), encoding="utf-8")
    os.replace(tmp, folder / f"rank-{ROLE.rank}.json")


def with_rank_findings(graph: Graph) -> Graph:
    """The drawing rank's graph plus what the other ranks' reports reveal (`diagnose.ranks`)."""
    if ROLE.rank is None or ROLE.world is None or ROLE.world < 2:
        return graph
    from ..diagnose.ranks import compare

    reports, missing = _collect(ROLE.rank, ROLE.world)
    notes = graph.notes
    if missing:
        ranks = ", ".join(str(r) for r in missing)
        notes = (*notes, f"no report from rank(s) {ranks} within {REPORT_WAIT:g} s: not compared")
    found = compare(graph, ROLE.rank, reports)
    return replace(graph, findings=(*found, *graph.findings), notes=notes)


def _collect(rank: int, world: int) -> tuple[list[dict[str, Any]], list[int]]:
    folder = _folder()
    wanted = {r: folder / f"rank-{r}.json" for r in range(world) if r != rank}
    found: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + REPORT_WAIT
    while True:
        for r, path in wanted.items():
            if r not in found and _fresh(path):
                try:
                    found[r] = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
        if len(found) == len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return list(found.values()), sorted(set(wanted) - set(found))


def _fresh(path: Path) -> bool:
    try:
        return path.stat().st_mtime >= _STARTED
    except OSError:
        return False
