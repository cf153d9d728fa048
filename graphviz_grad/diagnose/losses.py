"""[loss-input]: a loss given the very step it takes itself, or the wrong kind of number.

`cross_entropy` applies `log_softmax` to its input, `binary_cross_entropy_with_logits` applies
`sigmoid`: given the output of a `softmax` / `sigmoid`, they squash it twice, and the gradients
shrink (the loss barely moves; no error). `nll_loss` takes log-probabilities: given a `softmax`
output or raw scores, the loss and its gradient are wrong. Found on the graph itself: the loss's
node, its input's producer (through ops that only reshape), and their lines.
"""

from __future__ import annotations

from ..model import Finding, Graph, Node
from ._common import at_line, node_ref

#: Ops that only move or reshape values: the producer of a loss's input is looked for past them.
_RESHAPES = frozenset(
    {
        "ViewBackward0",
        "UnsafeViewBackward0",
        "ReshapeAliasBackward0",
        "TransposeBackward0",
        "TransposeBackward1",
        "PermuteBackward0",
        "SqueezeBackward0",
        "SqueezeBackward1",
        "SqueezeBackward2",
        "UnsqueezeBackward0",
        "CloneBackward0",
        "ContiguousBackward0",
        "SliceBackward0",
    }
)
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
        elif node.op.startswith("NllLoss"):
            before = _producer(graph, node)
            if before is not None and before.op == "SoftmaxBackward0":
                found.append(_nll(node, before, "the output of `softmax`", "probabilities"))
            elif before is not None and before.op in _RAW:
                found.append(_nll(node, before, "raw scores", "scores"))
            elif before is not None:
                norm = _normaliser(graph, before)
                if norm is not None and _off_classes(norm):
                    found.append(_over_batch(graph, node, norm))
        elif node.op == "BinaryCrossEntropyWithLogitsBackward0":
            before = _producer(graph, node)
            if before is not None and before.op == "SigmoidBackward0":
                found.append(
                    _twice(graph, node, before, "binary_cross_entropy_with_logits", "sigmoid")
                )
    return found


def _producer(graph: Graph, node: Node) -> Node | None:
    """The op that made `node`'s first input, past reshapes (None for a leaf or a constant)."""
    edges = [e for e in graph.inputs[node.id] if e.index == 0]
    seen = 0
    while edges and seen < 16:
        src = graph.nodes[edges[0].src]
        if src.kind != "op" or src.op not in _RESHAPES:
            return src if src.kind == "op" else None
        edges = [e for e in graph.inputs[src.id] if e.index == 0]
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


def _dim(node: Node) -> int | None:
    text = node.saved_value("dim")
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _off_classes(norm: Node) -> bool:
    """Whether a (log-)softmax over a batch of scores (`N × C × ...`, the classes in dim 1, as
    `nll_loss` reads them) normalised over another dimension: the batch, or a spatial one."""
    dim, shape = _dim(norm), norm.shape
    if dim is None or shape is None or len(shape) < 2 or shape[1] < 2:
        return False
    return dim % len(shape) != 1


def _over_batch(graph: Graph, node: Node, norm: Node) -> Finding:
    dim = (_dim(norm) or 0) % len(norm.shape or (0,))
    made = "log_softmax" if norm.op == "LogSoftmaxBackward0" else "softmax"
    what = (
        "the batch: each class's scores are normalised across the samples"
        if dim == 0
        else (f"dimension {dim}, not the classes")
    )
    shape = "×".join(str(d) for d in norm.shape or ())
    message = (
        f"`nll_loss`{at_line(node.line)} reads the classes in dim 1 of its {shape} input, but the "
        f"`{made}` that made it ({node_ref(norm)}{at_line(norm.line)}) normalises over dim "
        f"{dim}, {what}. The loss and its gradient are wrong (no error; a bias of the last layer "
        "gets next to no gradient)."
    )
    hint = (
        "Normalise over the classes: `F.log_softmax(logits, dim=1)` (or give the logits to "
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
