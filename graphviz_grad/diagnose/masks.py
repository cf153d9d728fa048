"""[attention-mask]: a mask of 0s and 1s put on attention scores where it masks nothing.

`nn.MultiheadAttention`, the `nn.Transformer` layers and `F.scaled_dot_product_attention` add a
float mask to the scores: `torch.tril(torch.ones(T, T))` shifts the allowed scores by 1 and
leaves the rest as they were, so every position also attends to the ones it should not see
(the future, padding), and the gradient of each position reaches them. `scores + mask` by hand
does the same; `scores * mask` before the softmax sets a masked score to 0, and exp(0) is not 0.
The watch notes each such mask (`capture/masks.py`); the graph's nodes of that op and line
are named.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..model import Finding, Graph, display_path
from ._common import at_line, plural

if TYPE_CHECKING:
    from ..capture.masks import MaskUse


def attention_masks(graph: Graph, uses: Iterable[MaskUse]) -> list[Finding]:
    """[attention-mask]: one finding per line and op whose mask holds only 0s and 1s."""
    return [_finding(graph, use) for use in uses if use.zeros_and_ones()]


def _finding(graph: Graph, use: MaskUse) -> Finding:
    kind, op, line, shape, count = use.kind, use.op, use.line, use.shape, use.count
    file = display_path(use.file)
    aten = f"aten.{op}."
    nodes = tuple(
        n.id
        for n in graph.nodes
        if n.line == line and n.file == file and (n.aten or "").startswith(aten)
    )
    dims = "×".join(str(d) for d in shape[-2:])  # query × key: a batch or head dim added inside
    times = f" ({plural(count, 'time')})" if count > 1 else ""
    what = f"A {dims} mask of 0s and 1s"
    if kind == "multiplied":
        message = (
            f"{what} multiplies the attention scores before their softmax{at_line(line)}{times}: "
            "a masked score becomes 0, and a softmax gives 0 the weight exp(0) = 1, so the "
            "masked positions still take part (the future, padding), and the gradient reaches "
            "them."
        )
        hint = (
            "Fill the masked scores with -inf before the softmax: "
            "`scores.masked_fill(mask == 0, float('-inf'))`."
        )
        return Finding("attention-mask", "warning", message, file, line, nodes, hint)
    hides = (
        "raises some scores by 1 and hides nothing: every position still attends to the ones it "
        "was meant not to see (the future, padding), and the gradient of each position reaches "
        "them."
    )
    if kind == "attention" or op == "baddbmm":
        message = (
            f"{what} is given to an attention call{at_line(line)}{times}. Attention adds a float "
            f"mask to the scores (it does not multiply them), so this one {hides}"
        )
    else:
        message = (
            f"{what} is added to the attention scores before their softmax{at_line(line)}"
            f"{times}: it {hides}"
        )
    if kind == "added" and op != "baddbmm":
        hint = (
            "Fill the masked scores with -inf instead: "
            "`scores.masked_fill(mask == 0, float('-inf'))`."
        )
    else:
        hint = (
            "Give a bool mask, or a float one of 0 and -inf. `nn.MultiheadAttention` and the "
            "`nn.Transformer` layers mask where it is True (`mask == 0`, "
            "`nn.Transformer.generate_square_subsequent_mask(T)`); "
            "`F.scaled_dot_product_attention` keeps where it is True (`mask.bool()`); or pass "
            "`is_causal=True` for a causal mask."
        )
    return Finding("attention-mask", "warning", message, file, line, nodes, hint)
