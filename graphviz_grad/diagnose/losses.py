"""[loss-input]: a loss given the very step it takes itself, or the wrong kind of number.

`cross_entropy` applies `log_softmax` to its input, `binary_cross_entropy_with_logits` applies
`sigmoid`: given the output of a `softmax` / `sigmoid`, they squash it twice, and the gradients
shrink (the loss barely moves; no error). `nll_loss` takes log-probabilities: given a `softmax`
output or raw scores, the loss and its gradient are wrong. Found on the graph itself: the loss's
node, its input's producer (through ops that only reshape), and their lines.
"""

from __future__ import annotations

import math

from ..model import Finding, Graph, Node, signed_int64
from ._common import MOVES, at_line, leaves_below, listing, node_ref

#: Ops whose output is a raw score (a layer's output), not a log-probability.
_RAW = frozenset({"AddmmBackward0", "MmBackward0", "BmmBackward0", "ConvolutionBackward0"})


def loss_inputs(graph: Graph) -> list[Finding]:
    """[loss-input]: one finding per loss whose input is what the loss computes itself
    (a softmax into `cross_entropy`, a sigmoid into the with-logits BCE) or not the
    log-probabilities `nll_loss` takes."""
    found = []
    for node in graph.nodes:
        if node.kind != "op" or node.op is None:
            continue
        if node.op == "LogSoftmaxBackward0":
            before = _producer(graph, node)
            if before is not None and before.op == "SoftmaxBackward0":
                found.append(_twice(graph, node, before, "cross_entropy", "log_softmax"))
            elif before is not None and before.op in _CLIPPERS:
                found.append(_clipped(graph, node, before))
        elif node.op.startswith("NllLoss"):
            before = _producer(graph, node)
            if before is not None and before.op == "SoftmaxBackward0":
                found.append(_nll(node, before, "the output of `softmax`", "probabilities"))
            elif before is not None and before.op in _RAW:
                found.append(_nll(node, before, "raw scores", "scores"))
            elif before is not None:
                norm = _normaliser(graph, before)
                axis = None if norm is None else _class_axis(graph, node, norm)
                if norm is not None and axis is not None and _off_classes(norm, axis):
                    found.append(_over_batch(graph, node, norm, axis))
        elif node.op in _REGRESSION:
            found.extend(_moving_target(graph, node))
        elif node.op == "BinaryCrossEntropyWithLogitsBackward0":
            before = _producer(graph, node)
            if before is not None and before.op == "SigmoidBackward0":
                found.append(
                    _twice(graph, node, before, "binary_cross_entropy_with_logits", "sigmoid")
                )
    return found


def _first_input(graph: Graph, node: Node) -> Node | None:
    """The node that made `node`'s first input (None: a constant)."""
    return next((graph.nodes[e.src] for e in graph.inputs[node.id] if e.index == 0), None)


def _producer(graph: Graph, node: Node) -> Node | None:
    """The op that made `node`'s first input, past reshapes (None for a leaf or a constant)."""
    src = _first_input(graph, node)
    seen = 0
    while src is not None and seen < 16:
        if src.kind != "op" or src.op not in MOVES:
            return src if src.kind == "op" else None
        src = _first_input(graph, src)
        seen += 1
    return None


def _normaliser(graph: Graph, before: Node) -> Node | None:
    """The `log_softmax` (or the `softmax` under a `log`) that made an `nll_loss` input."""
    if before.op == "LogSoftmaxBackward0":
        return before
    if before.op == "LogBackward0":
        inner = _producer(graph, before)
        if inner is not None and inner.op == "SoftmaxBackward0":
            return inner
    return None


def _int(text: str) -> int | None:
    """One int of a saved tuple's text (`dims` of a permute)."""
    try:
        return signed_int64(int(text))
    except ValueError:
        return None


#: Ops between a normaliser and `nll_loss` that keep every axis where it is.
_SAME_AXES = frozenset({"LogBackward0", "CloneBackward0", "ContiguousBackward0", "SliceBackward0"})
#: Ops that reshape in row-major order: an axis is followed by its size and what lies inside it.
_ROW_MAJOR = frozenset(
    {
        "ViewBackward0",
        "UnsafeViewBackward0",
        "ReshapeAliasBackward0",
        "SqueezeBackward0",
        "SqueezeBackward1",
        "SqueezeBackward2",
        "UnsqueezeBackward0",
    }
)


def _class_axis(graph: Graph, loss: Node, norm: Node) -> int | None:
    """The axis of `norm`'s output that `nll_loss` reads as the classes (dim 1 of its input, or
    dim 0 of a 1-D one), followed back through the reshapes, transposes and permutes between
    them; None where it cannot be told (then nothing is said)."""
    node = _first_input(graph, loss)
    if node is None or node.shape is None:
        return None
    axis: int | None = 1 if len(node.shape) >= 2 else 0
    for _ in range(17):
        if node.id == norm.id or axis is None:
            return axis
        src = _first_input(graph, node) if node.kind == "op" else None
        if src is None:
            return None
        axis = _axis_before(node, src.shape, axis)
        node = src
    return None


def _axis_before(node: Node, before: tuple[int, ...] | None, axis: int) -> int | None:
    """Which axis of `node`'s input becomes `axis` of its output (None: unknown)."""
    after, op = node.shape, node.op
    if after is None or before is None:
        return None
    if op in _SAME_AXES:
        return axis if len(before) == len(after) else None
    if op in ("TransposeBackward0", "TransposeBackward1"):  # `transpose`, `transpose_`
        a, b = node.saved_int("dim0"), node.saved_int("dim1")
        if a is None or b is None or not after:
            return None
        d0, d1 = a % len(after), b % len(after)
        return d1 if axis == d0 else d0 if axis == d1 else axis
    if op == "PermuteBackward0":
        text = node.saved_value("dims") or ""
        dims = [_int(x) for x in text.strip("()[] ").split(",") if x.strip()]
        if len(dims) != len(after) or any(d is None for d in dims):
            return None
        return dims[axis] % len(after)  # type: ignore[operator]
    if op in _ROW_MAJOR:
        size, inside = after[axis], math.prod(after[axis + 1 :])
        if size < 2:
            return None
        found = [
            k
            for k in range(len(before))
            if before[k] == size and math.prod(before[k + 1 :]) == inside
        ]
        return found[0] if len(found) == 1 else None
    return None


def _off_classes(norm: Node, axis: int) -> bool:
    """Whether a (log-)softmax normalised over another axis than the one `nll_loss` reads as the
    classes (`axis` of its output): the batch, or a spatial one."""
    dim, shape = norm.saved_int("dim"), norm.shape
    if dim is None or shape is None or len(shape) < 2 or shape[axis] < 2:
        return False
    return dim % len(shape) != axis


def _over_batch(graph: Graph, node: Node, norm: Node, axis: int) -> Finding:
    dim = (norm.saved_int("dim") or 0) % len(norm.shape or (0,))
    made = "log_softmax" if norm.op == "LogSoftmaxBackward0" else "softmax"
    what = (
        "the batch: each class's scores are normalised across the samples"
        if dim == 0 and axis == 1
        else "not the classes"
    )
    shape = "×".join(str(d) for d in norm.shape or ())
    ref = f"{node_ref(norm)}{at_line(norm.line)}"
    if axis == 1 and (src := _first_input(graph, node)) is not None and src.shape == norm.shape:
        start = (
            f"`nll_loss`{at_line(node.line)} reads the classes in dim 1 of its {shape} input, but "
            f"the `{made}` that made it ({ref}) normalises over dim {dim}, {what}."
        )
    else:  # reshaped or transposed on the way: say where the classes are in `norm`'s output
        start = (
            f"`nll_loss`{at_line(node.line)} reads its classes from dim {axis} of the {shape} "
            f"output of the `{made}` that made it ({ref}), but that `{made}` normalises over dim "
            f"{dim}, {what}."
        )
    message = (
        f"{start} The loss and its gradient are wrong (no error; a bias of the last layer gets "
        "next to no gradient)."
    )
    hint = (
        f"Normalise over the classes: `F.log_softmax(logits, dim={axis})` (or give the logits to "
        "`F.cross_entropy`, which does it)."
    )
    return Finding("loss-input", "warning", message, node.file, node.line, (node.id, norm.id), hint)


def _loss_node(graph: Graph, node: Node) -> Node:
    """The node of the loss itself: `log_softmax`'s consumer `nll_loss` for `cross_entropy`."""
    for edge in graph.consumers[node.id]:
        dst = graph.nodes[edge.dst]
        if (dst.op or "").startswith("NllLoss"):
            return dst
    return node


def _twice(graph: Graph, node: Node, before: Node, loss: str, inner: str) -> Finding:
    """`loss` (its `inner` step at `node`) given the output of `before`, the same squashing."""
    at = _loss_node(graph, node) if loss == "cross_entropy" else node
    made = "softmax" if inner == "log_softmax" else inner
    message = (
        f"`{loss}`{at_line(at.line)} is given the output of `{made}` ({node_ref(before)}"
        f"{at_line(before.line)}), but it applies `{inner}` itself: the values are squashed "
        "twice and the gradients shrink, so the loss barely moves (no error)."
    )
    hint = (
        f"Give `{loss}` the logits, what went into the `{made}`: drop it from the model's "
        "output, and apply it only to read probabilities."
    )
    return Finding("loss-input", "warning", message, at.file, at.line, (at.id, before.id), hint)


#: Activations that clip logits below at 0: a ReLU as a classifier's last layer.
_CLIPPERS = frozenset({"ReluBackward0", "ReluBackward1", "ThresholdBackward0"})


def _clipped(graph: Graph, node: Node, before: Node) -> Finding:
    """`cross_entropy` (its `log_softmax` at `node`) given logits a ReLU clipped at 0."""
    at = _loss_node(graph, node)
    message = (
        f"`cross_entropy`{at_line(at.line)} is given logits that a ReLU clipped at 0 "
        f"({node_ref(before)}{at_line(before.line)}): a score below 0 becomes 0 and passes "
        "no gradient back, so the examples of that class cannot raise it again, and classes "
        "can stop learning (no error)."
    )
    hint = (
        "End the classifier with the last `nn.Linear`, not an activation: give "
        "`cross_entropy` the raw scores."
    )
    return Finding("loss-input", "warning", message, at.file, at.line, (at.id, before.id), hint)


#: Regression losses, `(input, target)`: a target computed from the trained parameters moves.
_REGRESSION = {
    "MseLossBackward0": "mse_loss",
    "SmoothL1LossBackward0": "smooth_l1_loss",
    "HuberLossBackward0": "huber_loss",
    "L1LossBackward0": "l1_loss",
}


def _moving_target(graph: Graph, node: Node) -> list[Finding]:
    """[loss-input]: a regression loss whose target is computed from the very parameters the
    prediction is (a DQN's bootstrap target `r + gamma * q_net(s2).max(1).values` outside
    `torch.no_grad()`): the gradient pulls the target toward the prediction too."""
    edges = {e.index: e.src for e in graph.inputs[node.id]}
    if 0 not in edges or 1 not in edges:
        return []
    shared = {n.id for n in leaves_below(graph, edges[0])}
    names = [n.names[0] for n in leaves_below(graph, edges[1]) if n.id in shared and n.names]
    if not names:
        return []
    loss = _REGRESSION[node.op or ""]
    message = (
        f"The target of `{loss}`{at_line(node.line)} is computed from the same parameters "
        f"as the prediction ({listing(names, 3)}): the gradient flows "
        "through the target too and pulls it toward the prediction, so the target moves with "
        "every step (no error)."
    )
    hint = (
        "Compute the target under `torch.no_grad()` or `.detach()` it (a DQN's `r + gamma * "
        "target_net(s2).max(1).values`); nothing to do if both sides are meant to learn (a "
        "consistency loss)."
    )
    return [
        Finding("loss-input", "warning", message, node.file, node.line, (node.id, edges[1]), hint)
    ]


def _nll(node: Node, before: Node, what: str, kind: str) -> Finding:
    message = (
        f"`nll_loss`{at_line(node.line)} takes log-probabilities, but it is given {what} "
        f"({node_ref(before)}{at_line(before.line)}): with {kind} the loss and its gradient "
        "are wrong (no error)."
    )
    hint = (
        "Apply `log_softmax` (not `softmax`) before `nll_loss`, or give the raw scores to "
        "`cross_entropy`, which does both."
    )
    return Finding(
        "loss-input", "warning", message, node.file, node.line, (node.id, before.id), hint
    )
