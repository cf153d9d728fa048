"""Checks on the gradients a backward call computed: None, all zero, NaN/Inf, badly scaled."""

from __future__ import annotations

import re
import statistics
from collections.abc import Collection, Iterator, Sequence

from ..model import Finding, Graph, Node, Severity, TensorSummary, rebinding_update
from ._common import (
    MOVES,
    at_line,
    leaf_where,
    leaves_below,
    listing,
    node_ref,
    plural,
    source_line,
)

#: A parameter gradient this many times above or below the median is flagged.
SCALE_RATIO = 1e4
#: Ops whose backward zeroes the gradient where the input was not positive.
_RELU_OPS = frozenset({"ReluBackward0", "ThresholdBackward0", "HardtanhBackward0"})
#: The backward of the backward of a piecewise-linear op (ReLU, LeakyReLU, Hardtanh, ReLU6, max
#: pooling): its derivative in the op's input is zero by nature, so in a double backward (a
#: gradient penalty) the gradient that reaches the input that way is zero and no bug.
_LINEAR_PIECES = frozenset(
    {
        "ThresholdBackwardBackward0",
        "LeakyReluBackwardBackward0",
        "HardtanhBackwardBackward0",
        "MaxPool1DWithIndicesBackwardBackward0",
        "MaxPool2DWithIndicesBackwardBackward0",
        "MaxPool3DWithIndicesBackwardBackward0",
    }
)


def _grads(node: Node) -> Iterator[TensorSummary]:
    if node.grad is not None:
        yield node.grad
    for out in node.outputs[1:]:
        if out.grad is not None:
            yield out.grad


def _backward_order(graph: Graph, nodes: Sequence[Node]) -> list[Node]:
    """`nodes` (a few of the graph's) in the order the engine ran them (nodes that did not run
    last, by id). The checks pick their candidates first and sort only those: on a deep chain
    sorting every node, once per check, was most of the diagnostics' time."""
    big = len(graph.nodes) + 1
    return sorted(nodes, key=lambda n: (n.order if n.order is not None else big, n.id))


def _nonfinite_grad(node: Node) -> bool:
    """Whether a gradient of `node` (of any output) has a NaN or an Inf."""
    g = node.grad
    if g is not None and (g.nan or g.inf):
        return True
    return len(node.outputs) > 1 and any(g.nan or g.inf for g in _grads(node))


def _failed(graph: Graph) -> bool:
    return graph.backward_failed is not None


def nonfinite(graph: Graph, why: Sequence[Finding] = ()) -> list[Finding]:
    """[grad-nan] / [grad-inf]: the first node, in backward order, whose gradient has one.
    `why`: the findings that say where the forward pass made the loss non-finite."""
    found = []
    candidates = _backward_order(graph, [n for n in graph.nodes if _nonfinite_grad(n)])
    for code, field, word in (("grad-nan", "nan", "NaN"), ("grad-inf", "inf", "Inf")):
        for node in candidates:
            bad = [g for g in _grads(node) if getattr(g, field)]
            if bad:
                found.append(_nonfinite_finding(graph, node, bad[0], code, field, word, why))
                break
    return found


def _nonfinite_finding(
    graph: Graph,
    node: Node,
    grad: TensorSummary,
    code: str,
    field: str,
    word: str,
    why_loss: Sequence[Finding] = (),
) -> Finding:
    value = node.value
    count = getattr(grad, field)
    users = [graph.nodes[e.dst] for e in graph.consumers[node.id]]
    via = f" (coming back through {node_ref(users[0])}{at_line(users[0].line)})" if users else ""
    #: where to look: the op above, whose backward formula made it from a finite value
    culprit = node
    if value is not None and (value.nan or value.inf):
        why = f"its forward value was already non-finite ({value.nan} NaN, {value.inf} Inf)"
        hint = "Fix the forward computation first: find where the value became non-finite."
        if why_loss:
            cause = why_loss[0].code
            says = "when it began" if cause == "loop-nonfinite" else "where"
            hint = f"Fix the forward computation first: `{cause}` says {says}."
        cleaned = next(((u, c) for u in users if (c := _cleaned(graph, u)) is not None), None)
        if cleaned is not None:  # the op above made NaN that `nan_to_num` then hid
            above, fixer = cleaned
            culprit = above
            softmax = above.op in ("SoftmaxBackward0", "LogSoftmaxBackward0")
            why += (
                f"; and {node_ref(above)}{at_line(above.line)} made NaN at "
                f"{plural(above.value.nan if above.value else 0, 'element')} in the forward pass"
                f"{' (a softmax over only -inf: a row masked in full)' if softmax else ''}, "
                f"which {node_ref(fixer)}{at_line(fixer.line)} replaced. Backward still runs "
                "through them, and its formula multiplies by that NaN"
            )
            hint = (
                "Keep the NaN from being made instead of replacing it: give a fully masked row "
                "a finite score (mask with a large negative number, or fill the padded rows "
                "before the softmax), or drop those rows from the loss."
                if softmax
                else "Keep the NaN from being made instead of replacing it: give the op safe "
                "inputs there (clamp, an epsilon), then `nan_to_num` is not needed."
            )
    else:
        why = "its forward value was finite, so the backward formula of the op above made it"
        culprit = users[0] if users and users[0].line is not None else node
        hint = (
            "Look for sqrt, log, division or pow at 0 (or overflow) in the op above; add an "
            "epsilon (`torch.sqrt(x + 1e-12)`) or use a safe formulation."
        )
        hidden = next(((u, m) for u in users if (m := _masked_out(graph, u)) is not None), None)
        if hidden is not None:
            above, select = hidden
            bad = above.value.nan + above.value.inf if above.value is not None else 0
            why += (
                f": {node_ref(above)} made NaN/Inf at {plural(bad, 'element')} in the forward "
                f"pass, which {node_ref(select)}{at_line(select.line)} then left out. Backward "
                "still runs through those elements, and a zero gradient times NaN/Inf is NaN"
            )
            hint = (
                "Keep the unsafe op away from the elements the selection drops: give it safe "
                "inputs there, then select (`torch.sqrt(torch.where(x > 0, x, 1.0))` inside the "
                "`where`, the double-`where` of torch.where's docs), or clamp its input "
                "(`x.clamp(min=1e-12)`)."
            )
    file, line = leaf_where(graph, node)
    message = (
        f"The first {word} gradient in backward order appears at {node_ref(node)}"
        f"{at_line(line)}{via}: {count} of {grad.numel} elements; {why}."
    )
    if culprit is not node:  # reported where the op above ran (its line is the one to fix)
        file, line = leaf_where(graph, culprit)
    severity: Severity = "error"
    leaves = [g for n in graph.leaves for g in _grads(n)]
    if leaves and not any(g.nan or g.inf for g in leaves):
        # a backward step below dropped it (`masked_fill`, `where`): the leaves are fine
        severity = "warning"
        message = (
            message[:-1] + "; no leaf's gradient is NaN or Inf (a backward step below drops it)."
        )
    return Finding(code, severity, message, file, line, (node.id,), hint)


#: Ops whose forward pass drops elements that their backward still sends a zero gradient to.
_SELECTS = frozenset({"WhereBackward0", "MaskedFillBackward0", "MaskedFillBackward1"})


def _cleaned(graph: Graph, above: Node) -> Node | None:
    """The `nan_to_num` that replaced NaN in the forward value of `above`, if one did."""
    value = above.value
    if value is None or not value.nan:
        return None
    for edge in graph.consumers[above.id]:
        fixer = graph.nodes[edge.dst]
        out = fixer.value
        if fixer.op == "NanToNumBackward0" and out is not None and not out.nan:
            return fixer
    return None


def _masked_out(graph: Graph, above: Node) -> Node | None:
    """The `where` / `masked_fill` that hid a non-finite forward value of `above` (`sqrt` of a
    negative in the branch `torch.where` did not pick), if one did."""
    value = above.value
    if value is None or not (value.nan or value.inf):
        return None
    for edge in graph.consumers[above.id]:
        select = graph.nodes[edge.dst]
        out = select.value
        if select.op in _SELECTS and out is not None and not (out.nan or out.inf):
            return select
    return None


def zero(graph: Graph, explained: Collection[int] = ()) -> list[Finding]:
    """[grad-zero]: where the gradient dies (an all-zero gradient below a non-zero one) so
    that leaves get an all-zero gradient (a zero share of a leaf used twice is fine).
    `explained`: nodes another finding already explains (`loss-empty`: an empty tensor's
    gradient is empty, and all zero below it)."""
    found = []
    for node in _backward_order(graph, [n for n in graph.nodes if _dead(n)]):
        killers = [graph.nodes[e.dst] for e in graph.consumers[node.id]]
        killers = [k for k in killers if k.grad is not None and not k.grad.all_zero]
        if any(k.id in explained for k in killers) or any(k.op in _LINEAR_PIECES for k in killers):
            continue
        if killers and killers[0].op not in _RELU_OPS and _at_zero_loss(graph):
            continue  # the loss is exactly 0, its minimum: a zero gradient is the optimum
        leaves = _below(graph, node.id)
        if killers and leaves:
            found.append(_zero_finding(graph, node, killers[0], leaves))
    return found


def _at_zero_loss(graph: Graph) -> bool:
    value = graph.nodes[graph.root].value if graph.nodes else None
    return value is not None and value.numel == 1 and value.data in (0, 0.0, [0.0], [0])


def _dead(node: Node) -> bool:
    g = node.grad
    return g is not None and g.numel > 1 and g.all_zero


def _below(graph: Graph, start: int) -> list[Node]:
    """Leaves with an all-zero gradient reachable from `start` towards the leaves."""
    return [n for n in leaves_below(graph, start) if _dead(n)]


def _zero_finding(graph: Graph, node: Node, killer: Node, leaves: list[Node]) -> Finding:
    named = [n.label for n in leaves]
    what = f" ({listing(named)})" if named else ""
    if killer.op in _RELU_OPS:
        why = "every input of the ReLU was <= 0 (a dead ReLU)"
        hint = (
            "Check the initialisation and the scale of the inputs (a large negative bias kills "
            "a ReLU), lower the learning rate, or use LeakyReLU/GELU."
        )
    elif (zero := _zero_operand(graph, killer, node)) is not None:
        why = (
            f"its other operand {zero} is all zeros, and the gradient it passes down is a "
            "product with it"
        )
        hint = (
            f"Find why {zero} is all zeros: a dead ReLU above it, a mask or a weight that is "
            "all zeros, or zero initialisation."
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


def _zero_operand(graph: Graph, killer: Node, node: Node) -> str | None:
    """An input of `killer` other than `node` whose value is all zeros (the output of a dead
    ReLU going into a matrix product), named as the findings name nodes; None if none is."""
    for e in graph.inputs[killer.id]:
        other = graph.nodes[e.src]
        if e.src == node.id:
            continue
        outputs = other.outputs
        value = outputs[e.output_nr].value if e.output_nr < len(outputs) else other.value
        if value is not None and value.all_zero:
            made = _view_of_leaf(graph, other)
            return node_ref(other) + (f" (made from {node_ref(made)})" if made else "")
    return None


def _view_of_leaf(graph: Graph, node: Node) -> Node | None:
    """The named leaf `node` only moves the elements of (`fc.weight` under the `TBackward0` of
    `F.linear`), through ops of `MOVES`; None if it is not one."""
    seen = 0
    while node.kind != "leaf" and node.op in MOVES and seen < 8:
        inputs = graph.inputs[node.id]
        if len(inputs) != 1:
            return None
        node, seen = graph.nodes[inputs[0].src], seen + 1
    return node if node.kind == "leaf" and node.names and seen else None


def none(graph: Graph) -> list[Finding]:
    """[grad-none]: leaves the backward call did not reach, and non-leaf "parameters"."""
    found = _non_leaf_params(graph)
    if graph.grad_source in ("backward", "gradviz") and not _failed(graph):
        missed = [n for n in graph.leaves if n.grad is None]
        if missed:
            file, line = leaf_where(graph, missed[0])
            source = (
                "gradviz's own gradient pass (the script made no backward call)"
                if graph.grad_source == "gradviz"
                else "this backward call"
            )
            message = (
                f"{listing([n.label for n in missed])} got no gradient from {source}, "
                "although the root depends on them."
            )
            hint = "An op on the way has no derivative, or `inputs=` left them out."
            nodes = tuple(n.id for n in missed)
            found.append(Finding("grad-none", "warning", message, file, line, nodes, hint))
    return found


def _non_leaf_params(graph: Graph) -> list[Finding]:
    """A named op output made from an unnamed leaf: the user treats it as the parameter. Not a
    root: that is the loss (`bar = w.sum()` drawn with `--target bar`), not a parameter."""
    found = []
    for leaf in graph.leaves:
        users = graph.consumers[leaf.id]
        if leaf.names or len(users) != 1:
            continue
        node = graph.nodes[users[0].dst]
        if not node.names or len(graph.inputs[node.id]) != 1 or node.id in graph.roots:
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
        text = source_line(node.file, node.line)
        if rebinding_update(text) == name:
            # the script's own step (`lr * w.grad`), else the lesson's
            own = re.escape(name)
            code = text.split("#", 1)[0]
            update = re.match(rf"\s*{own}\s*=\s*{own}\s*-\s*(.+?)\s*$", code)
            step = update.group(1) if update else f"0.01 * {name}.grad"
            hint = (
                f"Line {node.line} is the update: it makes a new `{name}` from the old one with "
                f"grad tracking on, so the new `{name}` is no leaf and its graph reaches back "
                f"through every update. Update the leaf in place, untracked: `with "
                f"torch.no_grad(): {name} -= {step}`, then `{name}.grad.zero_()` "
                f"(or `{name}.data = {name}.data - {step}`)."
            )
        nodes = (node.id, leaf.id)
        found.append(Finding("grad-none", "warning", message, node.file, node.line, nodes, hint))
    return found


def scale(graph: Graph) -> list[Finding]:
    """[grad-scale]: along the depth of a deep net, gradient norms that shrink (vanishing) or
    grow (exploding) by 1e4 from the layers next to the root to the layers far from it; in any
    net, a parameter whose gradient is 1e4 times the median of the parameters at its depth or
    closer to the root (inputs on very different scales). A small gradient alone is never
    called vanishing: a parameter at its optimum has one."""
    norms = [(n, n.grad.norm) for n in graph.leaves if n.grad is not None and n.grad.norm]
    norms = [(n, g) for n, g in norms if g is not None and 0 < g < float("inf")]
    if len(norms) < 3:
        return []
    depth = _depths(graph)
    trend = _trend(graph, norms, depth)
    if trend is not None:
        return [trend]
    high = []
    for n, g in norms:
        above = [h for m, h in norms if depth.get(m.id, 0) <= depth.get(n.id, 0)]
        if len(above) >= 3 and g > statistics.median(above) * SCALE_RATIO:
            high.append((n, g, statistics.median(above)))
    if not high:
        return []
    return [_outlier_finding(graph, high, len(norms))]


def _depths(graph: Graph) -> dict[int, int]:
    """Shortest number of edges from the root to each node (breadth first, no recursion)."""
    depth = {r: 0 for r in graph.roots}
    frontier = list(graph.roots)
    while frontier:
        nxt = []
        for n in frontier:
            for e in graph.inputs[n]:
                if e.src not in depth:
                    depth[e.src] = depth[n] + 1
                    nxt.append(e.src)
        frontier = nxt
    return depth


#: Depth levels with parameters needed before a trend along the depth is judged (a deep net).
TREND_LEVELS = 6


def _trend(graph: Graph, norms: list[tuple[Node, float]], depth: dict[int, int]) -> Finding | None:
    by_level: dict[int, list[float]] = {}
    for n, g in norms:
        by_level.setdefault(depth.get(n.id, 0), []).append(g)
    levels = [statistics.median(by_level[d]) for d in sorted(by_level)]
    if len(levels) < TREND_LEVELS:
        return None
    parts = [levels[i * len(levels) // 4 : (i + 1) * len(levels) // 4] for i in range(4)]
    q = [statistics.median(p) for p in parts]
    near, far = q[0], q[-1]
    if far < near / SCALE_RATIO and all(b < a for a, b in zip(q, q[1:])):
        word, bad = "vanishing", [(n, g) for n, g in norms if g < near / SCALE_RATIO]
    elif far > near * SCALE_RATIO and all(b > a for a, b in zip(q, q[1:])):
        word, bad = "exploding", [(n, g) for n, g in norms if g > near * SCALE_RATIO]
    else:
        return None
    bad.sort(key=lambda ng: (-depth.get(ng[0].id, 0), ng[0].id))
    return _trend_finding(graph, bad, near, far, len(levels), word)


def _figures(group: Sequence[tuple[Node, float]], limit: int = 4) -> str:
    """`a` 1.2e-09, `c` 3.4e-09 (and N more): each tensor with its own norm."""
    shown = [f"`{n.label}` {g:.3g}" if n.label else f"#{n.id} {g:.3g}" for n, g in group[:limit]]
    more = f" and {len(group) - limit} more" if len(group) > limit else ""
    return ", ".join(shown) + more


def _trend_finding(
    graph: Graph,
    bad: list[tuple[Node, float]],
    near: float,
    far: float,
    levels: int,
    word: str,
) -> Finding:
    first = bad[0][0]
    file, line = leaf_where(graph, first)
    way = "shrink" if word == "vanishing" else "grow"
    side = "below" if word == "vanishing" else "above"
    message = (
        f"{word.capitalize()} gradients: over parameters at {levels} depths from the root, "
        f"gradient norms {way} from {near:.3g} next to the root to {far:.3g} at the input end "
        f"({far / near:.3g} times); {plural(len(bad), 'parameter')} 1e4 times {side} the "
        f"layers next to the root: {_figures(bad)}."
    )
    hint = (
        "Use an initialisation suited to the activation (`nn.init.xavier_uniform_` for tanh, "
        "`kaiming` for ReLU), residual connections or normalisation layers (LayerNorm), "
        "a non-saturating activation, or clip gradients if they explode."
    )
    nodes = tuple(n.id for n, _ in bad)
    return Finding("grad-scale", "warning", message, file, line, nodes, hint)


def _outlier_finding(graph: Graph, high: list[tuple[Node, float, float]], total: int) -> Finding:
    first = high[0][0]
    file, line = leaf_where(graph, first)
    each = "; ".join(
        f"{f'`{n.label}`' if n.label else f'#{n.id}'} norm {g:.3g}, {g / m:.3g} times the "
        f"median ({m:.3g})"
        for n, g, m in high[:4]
    )
    more = f"; and {len(high) - 4} more" if len(high) > 4 else ""
    message = (
        f"Exploding gradients: {each}{more}, the median over the parameters at the same depth "
        f"or closer to the root ({plural(total, 'parameter')} in all): their inputs are on a much "
        "larger scale than the others'."
    )
    hint = (
        "Normalise the inputs (feature scaling), check the initialisation and the learning rate, "
        "or clip gradients with `torch.nn.utils.clip_grad_norm_`."
    )
    nodes = tuple(n.id for n, _, _ in high)
    return Finding("grad-scale", "warning", message, file, line, nodes, hint)
