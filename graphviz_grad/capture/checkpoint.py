"""Activation checkpointing (`torch.utils.checkpoint`): which nodes backward will recompute.

Non-reentrant checkpointing (`use_reentrant=False`) runs the region's forward with a
saved-tensors hook that keeps nothing: each op still gets its autograd node, but its saved
tensors are recomputed from the region's inputs when backward first needs them. gradviz marks
those nodes (`Node.checkpointed`) and does not read their saved tensors before backward, which
would run the recomputation an extra time. The recomputation itself runs during the backward
call, while gradviz does not record, so the recomputed ops never appear as new nodes.

Reentrant checkpointing (`use_reentrant=True`) is a custom `autograd.Function`: the region is one
`CheckpointFunctionBackward` node (its inner ops ran without grad), whose backward recomputes
the region and calls `torch.autograd.backward` on it inside the user's call.
"""

from __future__ import annotations

import torch

_PACK = "_checkpoint_hook.__init__.<locals>.pack_hook"


def in_checkpoint() -> bool:
    """Whether the op running now is inside a non-reentrant checkpointed region."""
    try:
        hooks = torch._C._autograd._top_saved_tensors_default_hooks(False)
    except (AttributeError, TypeError, RuntimeError):
        return False
    return hooks is not None and getattr(hooks[0], "__qualname__", "") == _PACK


__all__ = ["in_checkpoint"]
