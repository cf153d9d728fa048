"""Checks on the forward values of the graph shown: where a NaN/Inf loss came from, and a loss
computed from an empty tensor.

[forward-nonfinite]: the loss is NaN/Inf; the op of the forward pass that first made NaN/Inf
from finite inputs (a `log` of a negative number, `exp` past the float range), or the data or
the parameter that already held it. Found by following the non-finite values from the loss
towards the inputs: the origin is the node whose own inputs are all finite.
[loss-empty]: the loss is a reduction of a tensor with no elements (an index or mask that selects
nothing, a slice past the end of the data): `mean` of nothing is NaN, `sum` of nothing is 0, and
either way no gradient reaches the parameters below it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..model import CallInfo, Finding, Graph, Node, Severity, TensorSummary, has_nonfinite
from ._common import at_line, leaf_where, leaves_below, listing, node_ref, plural

#: Why an op makes NaN/Inf from finite inputs, by the op's backward name.
_DOMAINS: dict[str, str] = {
    "LogBackward0": "a `log` of a number <= 0 (log(0) is -Inf, a negative number's is NaN)",
    "Log2Backward0": "a `log2` of a number <= 0",
    "Log10Backward0": "a `log10` of a number <= 0",
    "Log1PBackward0": "a `log1p` of a number <= -1",
    "SqrtBackward0": "a `sqrt` of a negative number",
    "RsqrtBackward0": "an `rsqrt` of a number <= 0",
    "DivBackward0": "a division by 0 (x / 0 is Inf, 0 / 0 is NaN)",
    "DivBackward1": "a division by 0 (x / 0 is Inf, 0 / 0 is NaN)",
    "ReciprocalBackward0": "a reciprocal of 0",
    "PowBackward0": "a power outside its domain (a negative number to a fractional power, 0 to "
    "a negative one) or past the float range",
    "PowBackward1": "a power outside its domain or past the float range",
    "PowBackward2": "a power outside its domain or past the float range",
    "ExpBackward0": "an `exp` past the float range (exp(89) overflows float32)",
    "Exp2Backward0": "an `exp2` past the float range",
    "AcosBackward0": "an `acos` outside [-1, 1]",
    "AsinBackward0": "an `asin` outside [-1, 1]",
    "AtanhBackward0": "an `atanh` outside (-1, 1)",
    "LgammaBackward0": "an `lgamma` at 0 or a negative integer",
    "DigammaBackward0": "a `digamma` at 0 or a negative integer",
}


def _what(s: TensorSummary) -> str:
    """``NaN`` (one number), ``3 NaN and 1 Inf of 8 elements``."""
    if s.numel == 1:
        return "NaN" if s.nan else "Inf"
    parts = [f"{s.nan} NaN" if s.nan else "", f"{s.inf} Inf" if s.inf else ""]
    return f"{' and '.join(p for p in parts if p)} of {plural(s.numel, 'element')}"


def _forward_first(node: Node) -> tuple[int, int]:
    """Sort key: the largest is the first node of the forward pass, the one the engine ran last
    (a leaf runs after its users)."""
    return (node.order if node.order is not None else -1, -node.id)


def _data_nan(node: Node) -> bool:
    return any(s is not None and s.nan > 0 for _, s in node.constants)


def _output_value(graph: Graph, src: int, nr: int) -> TensorSummary | None:
    node = graph.nodes[src]
    if nr and nr < len(node.outputs):
        return node.outputs[nr].value
    return node.value


def _bad_sources(graph: Graph, node: Node) -> list[int]:
    return [
        e.src
        for e in graph.inputs[node.id]
        if has_nonfinite(_output_value(graph, e.src, e.output_nr))
    ]


def _empty(s: TensorSummary | None) -> bool:
    return s is not None and s.numel == 0


def _reduces_nothing(graph: Graph, node: Node) -> bool:
    """Whether op `node` has a value made only of empty tensors: every input that needs a
    gradient is empty (a `cat` with one non-empty input is not), its own value is not."""
    edges = graph.inputs[node.id]
    if node.kind != "op" or not edges or node.value is None or node.value.numel == 0:
        return False
    return all(_empty(_output_value(graph, e.src, e.output_nr)) for e in edges)


def forward_nonfinite(graph: Graph, calls: Sequence[CallInfo] = ()) -> list[Finding]:
    """[forward-nonfinite]: where the NaN/Inf of a non-finite loss first appears in the forward
    pass. Not for a loss reduced from an empty tensor (`loss-empty` says that), nor for a
    parameter an earlier update of a loop made NaN (`loop-nonfinite` says at which call), nor
    for a finite loss that GradScaler's scaling made Inf (the scaler skips that step)."""
    if not graph.nodes:
        return []
    root = graph.nodes[graph.root]
    if not has_nonfinite(root.value) or root.value is None:
        return []
    origins: list[Node] = []
    seen = {root.id}
    stack = [root.id]
    while stack:
        node = graph.nodes[stack.pop()]
        bad = _bad_sources(graph, node)
        if not bad:
            origins.append(node)
        for src in bad:
            if src not in seen:
                seen.add(src)
                stack.append(src)
    # data holding NaN is the cause wherever it enters, even where a parameter is NaN too: a
    # loop's update spreads it to the parameters after the first call (an Inf in the data may
    # be a mask, so only the op whose inputs are otherwise finite is blamed for that)
    fed = [graph.nodes[i] for i in seen if _data_nan(graph.nodes[i])]
    if fed:
        return [_nonfinite_finding(graph, root, max(fed, key=_forward_first))]
    origin = max(origins, key=_forward_first)
    if origin.kind == "op" and _reduces_nothing(graph, origin):
        return []  # `loss-empty`
    if origin.kind == "leaf" and len(calls) >= 2:
        return []  # an update wrote it: `loop-nonfinite` names the call
    if origin.id == root.id and graph.grad_scale is not None:
        return []  # GradScaler's `loss * scale` overflowed: it skips the step, as designed
    return [_nonfinite_finding(graph, root, origin)]


def _nonfinite_finding(graph: Graph, root: Node, origin: Node) -> Finding:
    assert root.value is not None
    loss = f"The loss ({node_ref(root)}{at_line(root.line)}) is {_what(root.value)}"
    data = [(i, s) for i, s in origin.constants if has_nonfinite(s)]
    if origin.kind == "leaf":
        value = origin.value
        held = _what(value) if value is not None and has_nonfinite(value) else "NaN/Inf"
        why = f"{node_ref(origin)} already holds {held} when the forward pass reads it"
        hint = (
            "Look at how it was made or last updated (`torch.isnan(p).any()` after each step); "
            "lower the learning rate, or clip the gradients."
        )
    elif data:
        index, s = data[0]
        name = dict(origin.operands).get(index)
        what = f"`{name}`" if name else f"its argument {index}"
        why = (
            f"it comes in at {node_ref(origin)}{at_line(origin.line)}, whose input {what} "
            f"(a tensor that needs no gradient: the data) already holds {_what(s)}"
        )
        hint = "Check the data for NaN/Inf where it is loaded (`torch.isnan(x).any()`)."
    else:
        reason = _DOMAINS.get(origin.op or "", "an op outside its domain, or past the float range")
        low = _input_range(graph, origin)
        where = (
            "that op makes it"
            if origin.id == root.id
            else f"it first appears at {node_ref(origin)}{at_line(origin.line)}"
        )
        why = f"{where} from finite inputs{low}: {reason}"
        hint = (
            "Keep the op's input inside its domain: `torch.log(x.clamp_min(1e-12))`, "
            "`torch.sqrt(x + 1e-12)`, `torch.logsumexp` or `F.log_softmax` instead of `log` of "
            "an `exp` or a `softmax`; for an overflow, scale the input down or compute in float32."
        )
    file, line = leaf_where(graph, origin)
    message = f"{loss}: {why}."
    nodes = (origin.id,) if origin.id == root.id else (origin.id, root.id)
    return Finding("forward-nonfinite", "error", message, file, line, nodes, hint)


def _input_range(graph: Graph, node: Node) -> str:
    """`` (its input runs from -6.0 to 2.0)`` for an op with one input that needs a gradient."""
    edges = graph.inputs[node.id]
    if len(edges) != 1:
        return ""
    s = _output_value(graph, edges[0].src, edges[0].output_nr)
    if s is None or s.min is None or s.max is None:
        return ""
    if s.numel == 1:
        return f" (its input is {s.min:.4g})"
    return f" (its input runs from {s.min:.4g} to {s.max:.4g})"


def loss_empty(graph: Graph) -> list[Finding]:
    """[loss-empty]: an op of the graph reduces a tensor with no elements, and its result makes
    the loss NaN/Inf or is the loss itself (`sum` of an empty term of a larger loss is 0, which
    is fine: a batch with no positive boxes has no box loss)."""
    if not graph.nodes:
        return []
    root = graph.nodes[graph.root]
    for node in graph.nodes:
        if not _reduces_nothing(graph, node):
            continue
        if has_nonfinite(node.value) and has_nonfinite(root.value):
            return [_empty_finding(graph, root, node, "error")]
        if node.id == root.id:
            return [_empty_finding(graph, root, node, "warning")]
    return []


def _empty_finding(graph: Graph, root: Node, reducer: Node, severity: Severity) -> Finding:
    made, how = _made_empty(graph, reducer)
    value = reducer.value
    assert value is not None
    if has_nonfinite(value):
        result = f"so {node_ref(reducer)} averages nothing and gives {_what(value)}"
    else:
        result = f"so {node_ref(reducer)} adds up nothing and gives {_format(value)}"
    leaves = leaves_below(graph, reducer.id)
    starved = (
        f"; no gradient reaches {listing([n.label for n in leaves])} from it" if leaves else ""
    )
    message = (
        f"The loss{at_line(root.line)} is computed from an empty tensor: {node_ref(made)}"
        f"{at_line(made.line)} {how}, {result}{starved}."
    )
    hint = (
        "Check what selects the rows: an index or a mask that selects nothing, a slice past the "
        "end of the data (`x[1600:]` of 400 rows is empty), a filter that leaves an empty batch. "
        "Skip the step when the batch is empty (`if x.numel() == 0: continue`)."
    )
    file, line = (made.file, made.line) if made.line else (reducer.file, reducer.line)
    nodes = (reducer.id, made.id, *(n.id for n in leaves if n.id not in (reducer.id, made.id)))
    return Finding("loss-empty", severity, message, file, line, nodes, hint)


def _format(s: TensorSummary) -> str:
    return f"{s.data}" if s.numel == 1 and s.data is not None else "its value"


def _made_empty(graph: Graph, reducer: Node) -> tuple[Node, str]:
    """The op where the tensor first has no elements (following empty inputs towards the
    leaves), and how it came to: it selects nothing of a non-empty input, or it is given an
    empty one that needs no gradient (the batch)."""
    node = graph.nodes[graph.inputs[reducer.id][0].src]
    for _ in range(len(graph.nodes)):
        empty_srcs = [
            e.src for e in graph.inputs[node.id] if _empty(_output_value(graph, e.src, e.output_nr))
        ]
        if not empty_srcs or node.kind != "op":
            break
        node = graph.nodes[empty_srcs[0]]
    data = [(i, s) for i, s in node.constants if _empty(s)]
    if data:
        index, s = data[0]
        name = dict(node.operands).get(index)
        what = f"`{name}`" if name else "an input that needs no gradient (the data)"
        return node, f"is given {what}, which is empty (shape {_shape(s)})"
    sources = [graph.nodes[e.src] for e in graph.inputs[node.id]]
    shape = _shape(node.value) if node.value is not None else "?"
    if sources:
        return node, f"selects no element of {node_ref(sources[0])} (its result: shape {shape})"
    return node, f"is empty (shape {shape})"


def _shape(s: TensorSummary) -> str:
    return "[" + ", ".join(map(str, s.shape)) + "]"
