"""FSDP2 (`fully_shard`): which tensor the graph holds for each parameter a module shows.

Under `fully_shard`, a module's parameters are shards (`DTensor`s). For the forward pass FSDP
gathers each into a full tensor of its own, and that tensor is the autograd graph's leaf; after
the forward pass it frees that tensor's memory (the leaf is shown with a note, never read:
`summary.freed`) and gathers it again during backward. Names and the unused-parameter check go
from a module's parameter to that leaf through `gathered`.
"""

from __future__ import annotations

import sys
from typing import Any

import torch


def gathered(module: torch.nn.Module) -> dict[int, torch.Tensor]:
    """The gathered tensor of each FSDP2-sharded parameter of `module` and its layers, by the id
    of the parameter the module holds; empty without FSDP2 (or before its first forward pass)."""
    if "torch.distributed.fsdp" not in sys.modules:  # the script never imported it: no FSDP2
        return {}
    try:
        from torch.distributed.fsdp import FSDPModule, fully_shard
    except ImportError:
        return {}
    found: dict[int, torch.Tensor] = {}
    for layer in module.modules():
        if not isinstance(layer, FSDPModule):
            continue
        try:
            state: Any = getattr(fully_shard, "state")(layer)  # noqa: B009 (not typed)
            group = state._fsdp_param_group
            params = () if group is None else group.fsdp_params
        except Exception:  # another FSDP's layout: nothing to map
            continue
        for param in params:
            shard = getattr(param, "sharded_param", None)
            full = getattr(param, "_unsharded_param", None)  # made at the first forward pass
            if isinstance(shard, torch.Tensor) and isinstance(full, torch.Tensor):
                found[id(shard)] = full
    return found


def sharded(layers: Any) -> bool:
    """Whether one of `layers` (modules) is FSDP2's (`fully_shard` makes its class an
    `FSDPModule`): only then can `gathered` find anything in a model made of them."""
    if "torch.distributed.fsdp" not in sys.modules:
        return False
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return False
    return any(isinstance(layer, FSDPModule) for layer in layers)
