"""Shape bugs, read from the graph, and the warnings PyTorch raised while the code ran.

[loss-broadcast]: a loss whose two inputs broadcast to a larger shape than either (the
prediction [N, 1] against a target [N] gives an [N, N] difference: every prediction is compared
with every target), at the line that builds it: `F.mse_loss`, `F.l1_loss`, `F.smooth_l1_loss`,
`F.huber_loss`, and a hand-written `(pred - y) ** 2` or `(pred - y).abs()` reduced to a number.
[torch-warning]: a `UserWarning` PyTorch raised while the script ran, at its file:line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol

from ..model import Finding, Graph, Node, display_path
from ._common import at_line, node_ref

#: Loss ops that broadcast their two inputs (through `torch.broadcast_tensors`, an Expand node).
_LOSS_OPS = frozenset(
    {"MseLossBackward0", "L1LossBackward0", "SmoothL1LossBackward0", "HuberLossBackward0"}
)
#: Binary ops that compare a prediction with a target in a hand-written loss.
_DIFF_OPS = frozenset({"SubBackward0", "RsubBackward0", "SubBackward1", "RsubBackward1"})
#: Elementwise ops between the difference and the reduction (`** 2`, `.abs()`, `* 0.5`).
_TAIL_OPS = frozenset(
    {
        "PowBackward0",
        "AbsBackward0",
        "MulBackward0",
        "DivBackward0",
        "NegBackward0",
        "SqrtBackward0",
        "SmoothL1LossBackward0",
    }
)
_REDUCE_OPS = frozenset({"MeanBackward0", "MeanBackward1", "SumBackward0", "SumBackward1"})
_EXPAND_OPS = frozenset({"ExpandBackward0"})
#: Ops followed from the difference towards the root before giving up.
_TAIL_LIMIT = 4


def _numel(shape: Sequence[int] | None) -> int:
    return math.prod(shape) if shape is not None else 0


def _shape(shape: Sequence[int] | None) -> str:
    return "[" + ", ".join(str(d) for d in shape or ()) + "]"


def _source(graph: Graph, node: Node) -> Node:
    """The node an Expand broadcast (the node itself otherwise)."""
    if node.op in _EXPAND_OPS and graph.inputs[node.id]:
        return graph.nodes[graph.inputs[node.id][0].src]
    return node


def _operands(graph: Graph, node: Node) -> list[tuple[Node | None, tuple[int, ...], bool]]:
    """(node or None for a constant, shape before broadcasting, broadcast by an Expand)."""
    found: list[tuple[Node | None, tuple[int, ...], bool]] = []
    for edge in graph.inputs[node.id]:
        src = graph.nodes[edge.src]
        origin = _source(graph, src)
        if origin.shape is not None:
            found.append((origin, tuple(origin.shape), origin is not src))
    for _, summary in node.constants:
        found.append((None, tuple(summary.shape), False))
    return found


def broadcast(graph: Graph) -> list[Finding]:
    """[loss-broadcast]: one finding per loss whose inputs broadcast to a larger shape."""
    found = []
    for node in graph.nodes:
        if node.kind != "op" or node.shape is None:
            continue
        if node.op in _LOSS_OPS:
            hit = _loss_hit(graph, node)
        elif node.op in _DIFF_OPS and _reduced(graph, node) is not None:
            hit = _diff_hit(graph, node)
        else:
            hit = None
        if hit is not None:
            found.append(_broadcast_finding(graph, node, *hit))
    return found


def _loss_hit(graph: Graph, node: Node) -> tuple[Node, tuple[int, ...], Node] | None:
    """A loss op one of whose inputs is an Expand of a smaller tensor (not a scalar)."""
    for edge in graph.inputs[node.id]:
        src = graph.nodes[edge.src]
        origin = _source(graph, src)
        if origin is not src and 1 < _numel(origin.shape) < _numel(src.shape):
            return origin, tuple(src.shape or ()), node
    return None


def _diff_hit(graph: Graph, node: Node) -> tuple[Node, tuple[int, ...], Node] | None:
    """`pred - y` whose result is larger than both and whose operands differ in rank, or whose
    tracked operand was broadcast by an Expand while no tracked operand has the full shape
    (`F.l1_loss` broadcasting against a constant target)."""
    ops = _operands(graph, node)
    out = tuple(node.shape or ())
    tracked = [(n, s, e) for n, s, e in ops if n is not None and _numel(s) > 1]
    if not tracked:
        return None
    larger = len(ops) >= 2 and all(_numel(s) < _numel(out) for _, s, _ in ops)
    ranks = {len(s) for _, s, _ in ops if _numel(s) > 1}
    if larger and len(ranks) > 1:
        return tracked[0][0], out, node  # type: ignore[return-value]
    expanded = [n for n, s, e in tracked if e and _numel(s) < _numel(out)]
    full = [n for n, s, e in tracked if not e and _numel(s) == _numel(out)]
    if expanded and not full:
        return expanded[0], out, node  # type: ignore[return-value]
    return None


def _reduced(graph: Graph, node: Node) -> Node | None:
    """The reduction to one number that `node` feeds through elementwise ops, if any."""
    current = node
    for _ in range(_TAIL_LIMIT):
        users = graph.consumers[current.id]
        if len(users) != 1:
            return None
        nxt = graph.nodes[users[0].dst]
        if nxt.op in _REDUCE_OPS:
            return nxt if _numel(nxt.shape) == 1 else None
        if nxt.op not in _TAIL_OPS or tuple(nxt.shape or ()) != tuple(current.shape or ()):
            return None
        current = nxt
    return None


def _broadcast_finding(
    graph: Graph, node: Node, pred: Node, out: tuple[int, ...], at: Node
) -> Finding:
    name = f"`{pred.names[0]}`" if pred.names else node_ref(pred)
    what = "the loss" if node.op in _LOSS_OPS else f"{node_ref(node)}"
    n = _numel(pred.shape)
    message = (
        f"{what.capitalize() if what == 'the loss' else what}{at_line(node.line)} broadcasts "
        f"{name} of shape {_shape(pred.shape)} against a target of another shape to "
        f"{_shape(out)}: {_numel(out)} differences instead of {n}, every prediction compared "
        "with every target. The loss and its gradient are wrong, with no error."
    )
    hint = (
        "Give prediction and target the same shape: `pred.squeeze(-1)` or "
        "`target.unsqueeze(-1)` (`target.view_as(pred)`)."
    )
    nodes = tuple(dict.fromkeys((node.id, pred.id)))
    return Finding("loss-broadcast", "warning", message, node.file, node.line, nodes, hint)


class WarningLike(Protocol):
    """What the check reads of a recorded warning (`capture.ScriptWarning`)."""

    @property
    def category(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def file(self) -> str | None: ...
    @property
    def line(self) -> int | None: ...


_READ_IT = "Read the warning: PyTorch raises it when the result is likely not what you meant."
#: Hints for the warnings learners meet most, by a piece of PyTorch's text.
_WARNING_HINTS = (
    (
        "whose forward call is this line (anomaly mode)",
        "Anomaly mode stopped the backward call at the first op whose backward formula failed or "
        "returned NaN: the op of this line. A NaN there comes from its formula at the edge of "
        "its domain (sqrt, log, division or pow at 0): add an epsilon or clamp its input "
        "(`torch.sqrt(x + 1e-12)`). Without anomaly mode, `gradviz doctor` follows the NaN "
        "through the whole graph (`grad-nan`).",
    ),
    (
        "Converting a tensor with requires_grad=True to a scalar",
        "The value left the graph as a Python number (`float(t)`, `torch.tensor([t1, t2])`, "
        "numpy): no gradient flows back through it. If a number is what you want (logging), "
        "take `t.item()`; if the gradient should flow, keep tensors (`torch.stack([t1, t2])`, "
        "`t1 + t2`).",
    ),
    (
        "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed",
        "Read `.grad` on the leaf (the parameter) instead, or call `t.retain_grad()` before "
        "backward to keep an intermediate's gradient; `gradviz render` and `gradviz tree` show "
        "every node's gradient without either.",
    ),
    (
        "To copy construct from a tensor, it is recommended to use",
        "`torch.tensor(t)` copies `t` out of the graph: no gradient flows back through the "
        "copy. Use `t` itself (or `t.clone()`, which keeps the graph), or `t.detach().clone()` "
        "when a constant copy is what you mean.",
    ),
    (
        "None of the inputs have requires_grad=True. Gradients will be None",
        "The reentrant `checkpoint` (`use_reentrant=True`) gives the parameters inside the "
        "checkpointed function no gradient when none of its tensor inputs requires grad (the "
        "first block, fed the data). Pass `use_reentrant=False`, PyTorch's recommended "
        "variant, which has no such limit.",
    ),
)


#: Warnings PyTorch raises about its own internals, which the script cannot act on: `info`.
_PYTORCHS_OWN = (
    (
        "The PyTorch API of nested tensors is in prototype stage",
        "Nothing to fix in your code: `nn.TransformerEncoder`'s fast path (evaluation with a "
        "padding mask) uses nested tensors and warns about it; "
        "`nn.TransformerEncoder(..., enable_nested_tensor=False)` turns it off.",
    ),
    (
        "enable_nested_tensor is True, but self.use_nested_tensor is False",
        "Nothing to fix for training or gradients: `nn.TransformerEncoder` says that its "
        "inference fast path (nested tensors) will not be used with these layers; "
        "`nn.TransformerEncoder(..., enable_nested_tensor=False)` silences it.",
    ),
    (
        "GradScaler is enabled, but CUDA is not available",
        "Nothing to fix for gradients here: the scaler only matters for float16 autocast on a "
        "GPU, and on this machine it does nothing; `GradScaler(enabled=torch.cuda.is_available())`"
        " silences it.",
    ),
    (
        "Sparse invariant checks are implicitly disabled",
        "Nothing to fix for gradients: PyTorch says it does not check a sparse tensor's indices "
        "by default; `torch.sparse_coo_tensor(..., check_invariants=True)` checks them, "
        "`check_invariants=False` says you know (either silences it).",
    ),
    (
        "Full backward hook is firing when gradients are computed with respect to module "
        "outputs since no inputs require gradients",
        "Nothing wrong with the gradients: the module's input requires no grad (the data, or "
        "a value cut from the graph before it), so its full backward hook gets `None` for "
        "`grad_input`; read `grad_output` in the hook.",
    ),
)


def warned(caught: Iterable[WarningLike], found: Sequence[Finding]) -> list[Finding]:
    """[torch-warning]: each warning raised while the code ran, unless a finding of its own
    already explains that line (a broadcasting loss)."""
    explained = {(f.file, f.line) for f in found if f.code == "loss-broadcast"}
    out = []
    for w in caught:
        file = display_path(w.file)
        if (file, w.line) in explained:
            continue
        text = w.message if w.message.endswith((".", "!", "?")) else w.message + "."
        message = f"Warned{at_line(w.line)} ({w.category}): {text}"
        hint = next((h for piece, h in _WARNING_HINTS if piece in w.message), _READ_IT)
        benign = next((h for piece, h in _PYTORCHS_OWN if piece in w.message), None)
        if benign is None:
            out.append(Finding("torch-warning", "warning", message, file, w.line, (), hint))
        else:
            out.append(Finding("torch-warning", "info", message, file, w.line, (), benign))
    return out
