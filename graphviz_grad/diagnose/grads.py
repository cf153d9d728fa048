"""Checks on the gradients a backward call computed: None, all zero, NaN/Inf, badly scaled."""

from __future__ import annotations

import statistics
from collections.abc import Iterator

from ..model import Finding, Graph, Node, TensorSummary
from ._common import at_line, leaf_where, listing, node_ref, plural

#: A parameter gradient this many times above or below the median is flagged.
SCALE_RATIO = 1e4
#: Ops whose backward zeroes the gradient where the input was not positive.
_RELU_OPS = frozenset({"ReluBackward0", "ThresholdBackward0", "HardtanhBackward0"})


def _grads(node: Node) -> Iterator[TensorSummary]:
    if node.grad is not None:
        yield node.grad
    for out in node.outputs[1:]:
        if out.grad is not None:
            yield out.grad


def _backward_order(graph: Graph) -> list[Node]:
    """Nodes in the order the engine ran them (nodes that did not run last, by id)."""
    big = len(graph.nodes) + 1
    return sorted(graph.nodes, key=lambda n: (n.order if n.order is not None else big, n.id))


def _failed(graph: Graph) -> bool:
    return graph.backward_failed is not None


def nonfinite(graph: Graph) -> list[Finding]:
    """[grad-nan] / [grad-inf]: the first node, in backward order, whose gradient has one."""
    found = []
    for code, field, word in (("grad-nan", "nan", "NaN"), ("grad-inf", "inf", "Inf")):
        for node in _backward_order(graph):
            bad = [g for g in _grads(node) if getattr(g, field)]
            if bad:
                found.append(_nonfinite_finding(graph, node, bad[0], code, field, word))
                break
    return found


def _nonfinite_finding(
    graph: Graph, node: Node, grad: TensorSummary, code: str, field: str, word: str
) -> Finding:
    value = node.value
    count = getattr(grad, field)
    users = [graph.nodes[e.dst] for e in graph.consumers[node.id]]
    via = f" (coming back through {node_ref(users[0])})" if users else ""
    if value is not None and (value.nan or value.inf):
        why = f"its forward value was already non-finite ({value.nan} NaN, {value.inf} Inf)"
        hint = "Fix the forward computation first: find where the value became non-finite."
    else:
        why = "its forward value was finite, so the backward formula of the op above made it"
        hint = (
            "Look for sqrt, log, division or pow at 0 (or overflow) in the op above; add an "
            "epsilon (`torch.sqrt(x + 1e-12)`) or use a safe formulation."
        )
    file, line = leaf_where(graph, node)
    message = (
        f"The first {word} gradient in backward order appears at {node_ref(node)}"
        f"{at_line(line)}{via}: {count} of {grad.numel} elements; {why}."
    )
    return Finding(code, "error", message, file, line, (node.id,), hint)


def zero(graph: Graph) -> list[Finding]:
    """[grad-zero]: where the gradient dies (an all-zero gradient below a non-zero one) so
    that leaves get an all-zero gradient (a zero share of a leaf used twice is fine)."""
    found = []
    for node in _backward_order(graph):
        if not _dead(node):
            continue
        killers = [graph.nodes[e.dst] for e in graph.consumers[node.id]]
        killers = [k for k in killers if k.grad is not None and not k.grad.all_zero]
        leaves = _below(graph, node.id)
        if killers and leaves:
            found.append(_zero_finding(graph, node, killers[0], leaves))
    return found


def _dead(node: Node) -> bool:
    g = node.grad
    return g is not None and g.numel > 1 and g.all_zero


def _below(graph: Graph, start: int) -> list[Node]:
    """Leaves with an all-zero gradient reachable from `start` towards the leaves."""
    seen = {start}
    stack = [start]
    leaves = []
    while stack:
        n = stack.pop()
        node = graph.nodes[n]
        if node.kind == "leaf" and _dead(node):
            leaves.append(node)
        for e in graph.inputs[n]:
            if e.src not in seen:
                seen.add(e.src)
                stack.append(e.src)
    return sorted(leaves, key=lambda x: x.id)


def _zero_finding(graph: Graph, node: Node, killer: Node, leaves: list[Node]) -> Finding:
    named = [n.label for n in leaves]
    what = f" ({listing(named)})" if named else ""
    if killer.op in _RELU_OPS:
        why = "every input of the ReLU was <= 0 (a dead ReLU)"
        hint = (
            "Check the initialisation and the scale of the inputs (a large negative bias kills "
            "a ReLU), lower the learning rate, or use LeakyReLU/GELU."
        )
    else:
        why = "the backward of this op gives zero (an all-zero input, or a product with 0)"
        hint = "Check what the op above does with its input; its gradient is exactly zero."
    message = (
        f"The gradient dies at {node_ref(killer)}{at_line(killer.line)}: {node_ref(node)} and "
        f"everything below it get an all-zero gradient{what}: {why}."
    )
    nodes = (killer.id, node.id, *(n.id for n in leaves if n.id != node.id))
    return Finding("grad-zero", "warning", message, killer.file, killer.line, nodes, hint)


def none(graph: Graph) -> list[Finding]:
    """[grad-none]: leaves the backward call did not reach, and non-leaf "parameters"."""
    found = _non_leaf_params(graph)
    if graph.grad_source in ("backward", "gradviz") and not _failed(graph):
        missed = [n for n in graph.leaves if n.grad is None]
        if missed:
            file, line = leaf_where(graph, missed[0])
            message = (
                f"{listing([n.label for n in missed])} got no gradient from this backward call, "
                "although the root depends on them."
            )
            hint = "An op on the way has no derivative, or `inputs=` left them out."
            nodes = tuple(n.id for n in missed)
            found.append(Finding("grad-none", "warning", message, file, line, nodes, hint))
    return found


def _non_leaf_params(graph: Graph) -> list[Finding]:
    """A named op output made from an unnamed leaf: the user treats it as the parameter."""
    found = []
    for leaf in graph.leaves:
        users = graph.consumers[leaf.id]
        if leaf.names or len(users) != 1:
            continue
        node = graph.nodes[users[0].dst]
        if not node.names or len(graph.inputs[node.id]) != 1:
            continue
        name = node.names[0]
        message = (
            f"`{name}` is not a leaf: it is the output of {node.op}{at_line(node.line)}, made from "
            f"a tensor that requires grad, so `{name}.grad` stays None and the gradient goes to "
            "that unnamed tensor instead."
        )
        hint = (
            f"Make `{name}` the leaf: create it first, then call `.requires_grad_()` on the "
            f"result (`{name} = (torch.randn(3) * 0.01).requires_grad_()`), or call "
            f"`{name}.retain_grad()` to only read its gradient."
        )
        nodes = (node.id, leaf.id)
        found.append(Finding("grad-none", "warning", message, node.file, node.line, nodes, hint))
    return found


def scale(graph: Graph) -> list[Finding]:
    """[grad-scale]: parameter gradient norms 1e4 times above or below their median."""
    norms = [(n, n.grad.norm) for n in graph.leaves if n.grad is not None and n.grad.norm]
    norms = [(n, g) for n, g in norms if g is not None and g > 0 and g != float("inf")]
    if len(norms) < 3:
        return []
    median = statistics.median(g for _, g in norms)
    high = [(n, g) for n, g in norms if g > median * SCALE_RATIO]
    low = [(n, g) for n, g in norms if g < median / SCALE_RATIO]
    found = []
    for group, word in ((high, "exploding"), (low, "vanishing")):
        if group:
            found.append(_scale_finding(graph, group, median, len(norms), word))
    return found


def _scale_finding(
    graph: Graph, group: list[tuple[Node, float]], median: float, total: int, word: str
) -> Finding:
    first, norm = group[0]
    names = [n.label for n, _ in group]
    file, line = leaf_where(graph, first)
    message = (
        f"{listing(names)}: gradient norm {norm:.3g}, {norm / median:.3g} times the median "
        f"over the {plural(total, 'parameter')} ({median:.3g}): {word} gradients."
    )
    hint = (
        "Normalise the inputs (feature scaling), check the initialisation and the learning rate, "
        "or clip gradients with `torch.nn.utils.clip_grad_norm_`."
    )
    return Finding(
        "grad-scale", "warning", message, file, line, tuple(n.id for n, _ in group), hint
    )
