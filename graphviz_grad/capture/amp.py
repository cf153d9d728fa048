"""Mixed precision: `GradScaler` scales the loss, so every gradient of that backward call is
multiplied by the scale.

While recording, `GradScaler.scale` is wrapped to remember, on the scaled loss's node, the scale
it multiplied by; the backward call from that root then says so (`Graph.grad_scale`), the picture
labels the gradients as scaled, and `doctor` knows that an inf/NaN there is the overflow that
`scaler.step` skips (it lowers the scale and tries again), not a bug. Autocast needs nothing of
its own: its casts are ordinary `ToCopyBackward0` nodes and every node carries its dtype.
"""

from __future__ import annotations

from typing import Any

from .compiled import skip_frames

SCALE_KEY = "gradviz_scale"


class ScalerCalls:
    """Wraps `torch.amp.GradScaler.scale` for the life of a recording (`install`/`remove`)."""

    def __init__(self) -> None:
        self._original: Any = None

    def install(self) -> None:
        try:
            from torch.amp.grad_scaler import GradScaler
        except ImportError:
            return
        original = GradScaler.__dict__["scale"]
        self._original = original

        def scale(scaler: Any, outputs: Any) -> Any:
            out = original(scaler, outputs)
            node = getattr(out, "grad_fn", None)
            factor = getattr(scaler, "_scale", None)
            if node is not None and factor is not None:
                node.metadata[SCALE_KEY] = factor
            return out

        skip_frames(scale)
        scale.__wrapped__ = original  # type: ignore[attr-defined]
        scale.__doc__ = original.__doc__
        GradScaler.scale = scale  # type: ignore[method-assign, assignment]

    def remove(self) -> None:
        if self._original is not None:
            from torch.amp.grad_scaler import GradScaler

            GradScaler.scale = self._original  # type: ignore[method-assign]
            self._original = None


def root_scale(roots: list[tuple[Any, int]]) -> float | None:
    """The GradScaler scale that the roots of a backward call were multiplied by, if any."""
    for node, _ in roots:
        try:
            factor = node.metadata.get(SCALE_KEY)
        except (AttributeError, RuntimeError):
            continue
        if factor is not None:
            return float(factor)  # one read per backward call
    return None


__all__ = ["SCALE_KEY", "ScalerCalls", "root_scale"]
