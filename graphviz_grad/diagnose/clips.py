"""[grad-clip]: gradient clipping that runs before the backward call of its step.

`clip_grad_norm_` and `clip_grad_value_` clip the `.grad` the parameters hold when they run:
between `zero_grad()` and `backward()` that is nothing (or the step before's gradients), and
every optimizer step uses gradients no clipping touched. The watch notes, at each optimizer
step, whether its parameters were last clipped before or after the last backward call
(`capture/clips.py`); a line whose clipping always came before is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..model import CallInfo, Finding, display_path
from ._common import at_line, plural

if TYPE_CHECKING:
    from ..capture.clips import ClipLine


def early(lines: Iterable[ClipLine], calls: Sequence[CallInfo]) -> list[Finding]:
    """[grad-clip]: one finding per clipping line that ran before backward at every step."""
    found = []
    backward = next((c.line for c in reversed(calls) if c.kind == "backward"), None)
    for clip in lines:
        if not clip.early or clip.after:
            continue
        steps = plural(clip.early, "optimizer step")
        message = (
            f"`{clip.function}`{at_line(clip.line)} runs before the backward call"
            f"{at_line(backward)} of each step, so it clips the gradients the parameters hold "
            "then (none after `zero_grad()`, or the step before's), and the "
            f"{steps} after it used gradients no clipping touched."
        )
        hint = (
            f"Clip between `loss.backward()` and `optimizer.step()`: `loss.backward()`, then "
            f"`{clip.function}(model.parameters(), ...)`, then `optimizer.step()` (with AMP, "
            "after `scaler.unscale_(optimizer)`)."
        )
        file = display_path(clip.file)
        found.append(Finding("grad-clip", "warning", message, file, clip.line, (), hint))
    return found
