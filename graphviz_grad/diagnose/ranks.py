"""Across the ranks of a torch.distributed job: what one rank's graph cannot show alone.

Every rank records its own graph; `report` boils one down to a small, JSON-able dict per leaf
(did a local gradient arrive, how many NaN/inf it had). The drawing rank compares the reports of
all ranks (`compare`): a NaN in any rank's local gradient reaches every rank's `.grad` through
DDP's all-reduce, and ranks that disagree on which parameters get a gradient break DDP's
reducer (or need `find_unused_parameters=True`). Findings reuse the codes `grad-nan`,
`grad-inf` and `unused-param`, saying which rank.
"""

from __future__ import annotations

from typing import Any

from ..model import SEVERITY_RANK, Finding, Graph
from ._common import leaf_where, listing

Report = dict[str, Any]


def report(graph: Graph, rank: int) -> Report:
    """What the other ranks need to know of this rank's graph (leaves only)."""
    leaves = {}
    for n in graph.leaves:
        g = n.grad
        leaves[n.label] = {
            "grad": g is not None,
            "nan": g.nan if g is not None else 0,
            "inf": g.inf if g is not None else 0,
        }
    return {"rank": rank, "leaves": leaves}


def compare(graph: Graph, rank: int, reports: list[Report]) -> list[Finding]:
    """Findings for `graph` (this rank's) from the reports of the other ranks."""
    others = sorted((r for r in reports if r.get("rank") != rank), key=lambda r: r["rank"])
    found = [*_nonfinite(graph, others), *_disagree(graph, rank, others)]
    return sorted(found, key=lambda f: SEVERITY_RANK[f.severity])


def _nonfinite(graph: Graph, others: list[Report]) -> list[Finding]:
    found = []
    for node in graph.leaves:
        for r in others:
            leaf = r["leaves"].get(node.label)
            for kind, code in (("nan", "grad-nan"), ("inf", "grad-inf")):
                if leaf and leaf[kind]:
                    found.append(_bad_on_rank(graph, node.id, node.label, r["rank"], kind, code))
    return found


def _bad_on_rank(graph: Graph, nid: int, name: str, rank: int, kind: str, code: str) -> Finding:
    file, line = leaf_where(graph, graph.nodes[nid])
    word = "NaN" if kind == "nan" else "inf"
    return Finding(
        code=code,
        severity="error",
        message=f"On rank {rank}, the local gradient of `{name}` has {word} values; DDP's "
        f"all-reduce averages it into `.grad` on every rank, this one included.",
        file=file,
        line=line,
        nodes=(nid,),
        hint=f"Draw that rank: `torchrun ... -m graphviz_grad doctor SCRIPT --rank {rank}` "
        "shows where its gradient became non-finite (often that rank's data).",
    )


def _disagree(graph: Graph, rank: int, others: list[Report]) -> list[Finding]:
    mine = {n.label: n.grad is not None for n in graph.leaves}
    found = []
    for r in others:
        theirs = {k: v["grad"] for k, v in r["leaves"].items()}
        only_here = [k for k in mine if mine[k] and not theirs.get(k, False)]
        only_there = [k for k in theirs if theirs[k] and not mine.get(k, False)]
        if only_here or only_there:
            found.append(_disagreement(graph, rank, r["rank"], only_here, only_there))
    return found


def _disagreement(
    graph: Graph, rank: int, other: int, only_here: list[str], only_there: list[str]
) -> Finding:
    parts = []
    if only_here:
        parts.append(f"{listing(only_here)} get a gradient on rank {rank} but not on rank {other}")
    if only_there:
        parts.append(f"{listing(only_there)} get one on rank {other} but not on rank {rank}")
    ids = tuple(n.id for n in graph.leaves if n.label in only_here)
    return Finding(
        code="unused-param",
        severity="warning",
        message="Ranks disagree on the parameters used: " + "; ".join(parts) + ".",
        nodes=ids,
        hint="Make every rank use the same parameters each step, or pass "
        "`find_unused_parameters=True` to DistributedDataParallel.",
    )


__all__ = ["Report", "compare", "report"]
