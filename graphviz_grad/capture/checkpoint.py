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

The script's own saved-tensors hooks (`torch.autograd.graph.saved_tensors_hooks`, `save_on_cpu`)
are marked too (`OpRecord.hooked`): reading those saved tensors before backward would call the
script's unpack hook an extra time (a counter it keeps, a copy back to the GPU), so they are
listed unread.
"""

from __future__ import annotations

import torch

_PACK = "_checkpoint_hook.__init__.<locals>.pack_hook"


#: What `saved_hooks` says of an op in a checkpointed region, and under other hooks.
CHECKPOINT, HOOKS = "checkpoint", "hooks"


def saved_hooks() -> str | None:
    """Which saved-tensors hooks the op running now saves through: `CHECKPOINT` (a
    non-reentrant checkpointed region), `HOOKS` (the script's own
    `torch.autograd.graph.saved_tensors_hooks`, `save_on_cpu`), or None."""
    try:
        hooks = torch._C._autograd._top_saved_tensors_default_hooks(False)
    except (AttributeError, TypeError, RuntimeError):
        return None
    if hooks is None:
        return None
    return CHECKPOINT if getattr(hooks[0], "__qualname__", "") == _PACK else HOOKS


__all__ = ["CHECKPOINT", "HOOKS", "saved_hooks"]
