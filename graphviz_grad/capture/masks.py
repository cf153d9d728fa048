"""Attention masks of 0s and 1s where PyTorch adds the mask to the scores (see `gradviz doctor`,
code `attention-mask`).

A float mask given to `nn.MultiheadAttention` or `F.scaled_dot_product_attention` is *added* to
the attention scores: `torch.tril(torch.ones(T, T))` shifts some scores by 1 and masks nothing,
so every position attends to the future. The same holds for `scores + mask` written by hand,
and `scores * mask` before a softmax leaves a masked score at 0, whose weight is exp(0). The
watch sees the op that takes the mask; for an add or a multiply, only a softmax of its result
(directly, or after a division or multiplication by a number) makes it an attention mask.

Whether a mask holds only 0s and 1s is computed on its device and read when the run is
diagnosed: the forward pass never waits for an accelerator.
"""

from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch

from ._forward import _OWN_DIR, _TORCH_DIR

#: Attention ops that take an additive mask, and the name of that argument.
ATTENTION_OPS = {
    "aten::_scaled_dot_product_flash_attention_for_cpu": "attn_mask",
    "aten::_scaled_dot_product_attention_math": "attn_mask",
    "aten::_scaled_dot_product_efficient_attention": "attn_bias",
    "aten::_scaled_dot_product_cudnn_attention": "attn_bias",
    "aten::_scaled_dot_product_fused_attention_overrideable": "attn_bias",
}
#: Ops that may put a mask on the scores (the first two arguments; `baddbmm`: the first).
MASKING_OPS = frozenset({"aten::add", "aten::add_", "aten::mul", "aten::mul_", "aten::baddbmm"})
#: Ops that scale the scores on their way to the softmax (`(q @ k.T + mask) / sqrt(d)`).
SCALING_OPS = frozenset({"aten::div", "aten::div_"})
SOFTMAX_OPS = frozenset({"aten::_softmax", "aten::_safe_softmax"})
#: Every op the watch hands to `Masks.op`.
OPS = frozenset({*ATTENTION_OPS, *MASKING_OPS, *SCALING_OPS, *SOFTMAX_OPS})

#: Masked scores waiting for their softmax, at most (the oldest are dropped).
PENDING = 32
#: Distinct (line, op, shape) mask uses kept.
KEPT = 16


@dataclass
class MaskUse:
    """A mask put on attention scores: `kind` is ``"attention"`` (given to an attention op),
    ``"added"`` or ``"multiplied"`` (to scores a softmax then took)."""

    kind: str
    op: str  # the aten op (``"baddbmm"``, ``"add"``, ``"_scaled_dot_product_..."``)
    file: str | None
    line: int | None
    shape: tuple[int, ...]
    dtype: str
    #: A 0-dim bool tensor on the mask's device: whether it holds only 0s and 1s, and both.
    flag: torch.Tensor = field(repr=False)
    count: int = 1

    def zeros_and_ones(self) -> bool:
        try:
            return bool(self.flag)
        except RuntimeError:  # the device is gone
            return False


@dataclass
class Masks:
    """What the watch notes of masks over a run."""

    uses: dict[tuple[Any, ...], MaskUse] = field(default_factory=dict)
    #: id of masked scores -> (a weak reference to them, the use they would make).
    _pending: dict[int, tuple[Any, MaskUse]] = field(default_factory=dict)

    def op(self, name: str, func: Any, args: Any, kwargs: Any, out: Any, where: Any) -> None:
        """One op of `OPS` that just ran (`name`: its `op_name`, which the watch keeps on the
        op's `OpInfo`); `where()` gives the user's (file, line)."""
        if name in MASKING_OPS:  # the most common by far (every add and mul): fast when small
            if isinstance(out, torch.Tensor) and out.dim() >= 2 and len(args) >= 2:
                self._masking(name, args, out, where)
        elif name in SOFTMAX_OPS:
            if self._pending and args:
                self._confirm(args[0])
        elif name in SCALING_OPS:
            if self._pending and len(args) >= 2 and isinstance(out, torch.Tensor):
                self._carry(args[0], args[1], out)
        else:
            mask = (kwargs or {}).get(ATTENTION_OPS[name])
            if mask is None:
                mask = _argument(func, args, ATTENTION_OPS[name])
            if _float_mask(mask):
                self._note(_use("attention", name, where, mask))

    def _masking(self, name: str, args: Any, out: torch.Tensor, where: Any) -> None:
        """`add`, `mul` or `baddbmm`: a mask on scores that need a gradient waits for a softmax
        (inside the op the output does not say yet that it needs one)."""
        pairs: tuple[tuple[Any, bool], ...]
        if name == "aten::baddbmm":
            tracked = any(isinstance(a, torch.Tensor) and a.requires_grad for a in args[1:3])
            pairs = ((args[0], tracked),)
        else:
            a, b = args[0], args[1]
            pairs = ((b, _tracked(a)), (a, _tracked(b)))
        for mask, tracked in pairs:
            if tracked and _on_scores(mask, out):
                kind = "multiplied" if name.startswith("aten::mul") else "added"
                if kind == "added" and _made_by_torch():  # inside an attention call's math path
                    kind = "attention"
                self._wait(out, _use(kind, name, where, mask))
                return
        if name.startswith("aten::mul") and self._pending and len(args) > 1:
            self._carry(args[0], args[1], out)

    def _wait(self, out: torch.Tensor, use: MaskUse) -> None:
        if len(self._pending) >= PENDING:
            self._pending.pop(next(iter(self._pending)))
        self._pending[id(out)] = (weakref.ref(out), use)

    def _carry(self, scores: Any, by: Any, out: torch.Tensor) -> None:
        """Scores divided or multiplied by a number are still the same masked scores."""
        if isinstance(by, torch.Tensor) and by.numel() != 1:
            return
        hit = self._pending.get(id(scores))
        if hit is not None and hit[0]() is scores:
            del self._pending[id(scores)]
            self._wait(out, hit[1])

    def _confirm(self, scores: Any) -> None:
        hit = self._pending.pop(id(scores), None)
        if hit is not None and hit[0]() is scores:
            self._note(hit[1])

    def _note(self, use: MaskUse) -> None:
        key = (use.file, use.line, use.op, use.kind, use.shape)
        known = self.uses.get(key)
        if known is not None:
            known.count += 1
        elif len(self.uses) < KEPT:
            self.uses[key] = use


def _made_by_torch() -> bool:
    """Whether the op running now was called by PyTorch's own Python code (the math path of
    `nn.MultiheadAttention`), not by the user's: the first frame outside gradviz is torch's."""
    frame: Any = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_OWN_DIR):
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR)


def op_name(func: Any) -> str:
    """`func`'s schema name (`aten::add`), as `OPS` and the other sets here spell it."""
    return str(func._schema.name)


def _short(name: str) -> str:
    return name.removeprefix("aten::")


def _argument(func: Any, args: Any, name: str) -> Any:
    for i, a in enumerate(func._schema.arguments):
        if a.name == name:
            return args[i] if i < len(args) else None
    return None


def _tracked(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.requires_grad


def _float_mask(mask: Any) -> bool:
    """A float tensor that may be a mask (a bool mask given to an attention op is right)."""
    return (
        isinstance(mask, torch.Tensor)
        and not mask.requires_grad
        and mask.is_floating_point()
        and mask.dim() >= 2
        and mask.shape[-1] >= 2
    )


def _on_scores(mask: Any, scores: torch.Tensor) -> bool:
    """Whether `mask` may be a mask over `scores` (the op's result): a tensor that needs no
    gradient, float or bool, of at least two dimensions, with the scores' last dimension."""
    return (
        isinstance(mask, torch.Tensor)
        and not mask.requires_grad
        and (mask.is_floating_point() or mask.dtype == torch.bool)
        and mask.dim() >= 2
        and scores.dim() >= 2
        and mask.shape[-1] == scores.shape[-1] >= 2
    )


def _use(kind: str, name: str, where: Any, mask: torch.Tensor) -> MaskUse:
    """The use of `mask` by op `name` at the user's line; whether it holds only 0s and 1s (and
    both) is a tensor on its device, read when the run is diagnosed."""
    file, line = where()
    with torch.no_grad():
        m = mask.detach()
        zero, one = m == 0, m == 1
        flag = (zero | one).all() & zero.any() & one.any()
    shape = tuple(int(d) for d in mask.shape)
    return MaskUse(
        kind, _short(name), file, line, shape, str(mask.dtype).removeprefix("torch."), flag
    )
