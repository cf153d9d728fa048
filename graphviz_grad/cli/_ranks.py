"""`torchrun … -m graphviz_grad CMD`: every rank runs the script, one rank draws.

torchrun starts one gradviz per rank and tells each its `RANK` and `WORLD_SIZE`. Each runs the
script unchanged (so every collective happens on every rank, as without gradviz); then the rank
picked by `--rank` (0 by default) writes and prints, and the others end quietly. An output path
holding `{rank}` makes every rank write its own file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated

import typer

from ..errors import UsageError
from ._options import ROOT_PANEL

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
            hint="e.g. `torchrun --nproc-per-node 2 -m graphviz_grad render train.py --rank 1`.",
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
