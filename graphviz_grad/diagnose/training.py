"""Findings that training setups change: a GradScaler-scaled backward call.

With `GradScaler`, an inf or NaN gradient is usually the overflow the scaler exists for:
`scaler.step` sees it, skips the optimizer step and lowers the scale. So in a scaled graph the
grad-inf / grad-nan findings are `info`, and say so.
"""

from __future__ import annotations

from dataclasses import replace

from ..model import Finding, Graph

_OVERFLOW = ("grad-inf", "grad-nan")


def account_for_scale(graph: Graph, found: list[Finding]) -> list[Finding]:
    """`found`, with inf/NaN findings of a GradScaler-scaled graph turned into info."""
    if graph.grad_scale is None:
        return found
    return [_scaled(f, graph.grad_scale) if f.code in _OVERFLOW else f for f in found]


def _scaled(f: Finding, scale: float) -> Finding:
    message = (
        f"{f.message} The loss was scaled by GradScaler (x{scale:g}): an overflow here makes "
        "`scaler.step` skip this step and `scaler.update` lower the scale, as designed."
    )
    hint = (
        "Nothing to fix if it happens now and then; if every step overflows, the inf/NaN is "
        "not from scaling: run without the scaler to find it."
    )
    return replace(f, severity="info", message=message, hint=hint)


__all__ = ["account_for_scale"]
