"""Handle ids for gradviz's own global hooks, outside the range the script's hooks take.

PyTorch numbers every `RemovableHandle` from one class-wide counter, and a module's hook dicts
show those numbers (`print(module._forward_pre_hooks)`): the global hooks gradviz registers at
the start of a run would shift the script's by five. Registered inside `private_hook_ids()`,
they take ids from a range of their own, and the script counts from where it would have.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch.utils.hooks import RemovableHandle

#: The next id of gradviz's own range, far above any count a script reaches.
_next = [1 << 62]


@contextlib.contextmanager
def private_hook_ids() -> Iterator[None]:
    """Hooks registered inside take their handle ids from gradviz's range (no script code may
    run inside: a hook of its registered meanwhile would take one too)."""
    saved = RemovableHandle.next_id
    RemovableHandle.next_id = _next[0]
    try:
        yield
    finally:
        _next[0] = RemovableHandle.next_id
        RemovableHandle.next_id = saved
