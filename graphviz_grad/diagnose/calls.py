"""Checks across backward calls: a graph that grows, gradients that pile up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence

from ..model import CallInfo, Finding, Graph, LeafStep, Severity
from ._common import at_line, listing, plural

#: Calls from one line needed before growth counts as a trend.
GROW_CALLS = 3


def grows(graph: Graph, calls: Sequence[CallInfo]) -> list[Finding]:
    """[graph-grows]: successive calls from one line see ever larger graphs; not when the
    earlier ones kept their graph to be differentiated again (`create_graph=True`): a
    Hessian-vector product's second call holds the first one's graph by design."""
    by_site: dict[tuple[str | None, int | None], list[CallInfo]] = {}
    for call in calls:
        by_site.setdefault((call.file, call.line), []).append(call)
    found = []
    for (file, line), group in by_site.items():
        sizes = [c.nodes for c in group]
        tail = sizes[-GROW_CALLS:]
        if any(c.differentiable for c in group[-GROW_CALLS:-1]):
            continue
        if len(sizes) >= GROW_CALLS and all(b > a for a, b in zip(tail, tail[1:])):
            found.append(_grows_finding(graph, group, file, line))
    return found


def _update_nodes(graph: Graph, repeats: int) -> tuple[int, ...]:
    """The op nodes of the line repeated most often (at least `repeats` times) in the graph,
    leaving out the line that computes the root: that is this step's forward pass, the update
    that makes the graph grow is elsewhere (`w = w - lr * w.grad`)."""
    root = graph.nodes[graph.root] if graph.nodes else None
    here = (root.file, root.line) if root is not None else None
    count = Counter(
        (n.file, n.line)
        for n in graph.nodes
        if n.kind == "op" and n.line and (n.file, n.line) != here
    )
    if not count:
        return ()
    (where, times), *_ = sorted(count.items(), key=lambda kv: (-kv[1], kv[0][1] or 0))
    if times < max(2, repeats):
        return ()
    return tuple(n.id for n in graph.nodes if n.kind == "op" and (n.file, n.line) == where)


def _grows_finding(
    graph: Graph, group: list[CallInfo], file: str | None, line: int | None
) -> Finding:
    first, last = group[0], group[-1]
    per_call = (last.nodes - first.nodes) / (len(group) - 1)
    nodes = _update_nodes(graph, len(group) - 1) if graph.call == last.number else ()
    named = [graph.nodes[i] for i in nodes if graph.nodes[i].names]
    update = (named or [graph.nodes[i] for i in nodes])[0] if nodes else None
    if update is not None:
        name = f"`{update.names[0]}`" if update.names else "a parameter"
        why = (
            f"{name} is updated with grad tracking on{at_line(update.line)}, so it stops "
            "being a leaf and every graph keeps all the earlier updates."
        )
        file, line = update.file, update.line
    else:
        why = "each step's graph keeps the earlier steps' graphs (a tensor carried over)."
    message = (
        f"The graph grows by {_nodes(per_call)} per backward call (from {first.nodes} to "
        f"{last.nodes} over {len(group)} calls{at_line(first.line)}): {why}"
    )
    hint = (
        "Update parameters without tracking: `with torch.no_grad(): w -= lr * w.grad` (or "
        "`w.data = w.data - lr * w.grad.data`, or an optimizer); `.detach()` a state you carry "
        "from one step to the next."
    )
    return Finding("graph-grows", "warning", message, file, line, nodes, hint)


def _key(steps: Sequence[LeafStep]) -> list[tuple[str, int, int]]:
    """Each leaf by name, by which one of that name in the call, and by tensor object (a `data`
    that is a new tensor each batch is not one leaf updated from call to call)."""
    seen: Counter[str] = Counter()
    keys = []
    for s in steps:
        keys.append((s.name, seen[s.name], s.tensor))
        seen[s.name] += 1
    return keys


def _nonzero(step: LeafStep) -> bool:
    g = step.grad_before
    return g is not None and not g.all_zero


def accumulates(
    graph: Graph,
    calls: Sequence[CallInfo],
    explained: Collection[str] = (),
    inputs: Collection[str] = (),
) -> list[Finding]:
    """[grad-accumulates]: a leaf's `.grad` is non-zero when backward starts again.

    A leaf updated since its last call whose gradient then adds up is the classic bug, unless no
    update uses the sum: a GAN's generator step backpropagates through the discriminator, whose
    `.grad` is zeroed before its own next step (`_unused`). A `torch.autograd.grad` call adds
    nothing to `.grad` (WGAN-GP's gradient penalty), so it is not looked at. `explained`: leaves
    another finding accounts for (layers kept in a plain list, which `zero_grad()` misses).
    `inputs`: leaves no optimizer steps while others do (a PINN's coordinates, which need a
    gradient for `autograd.grad`): one that never changes gathers gradients nothing uses."""
    hits, cleared, longest = added_up(calls)
    hits = [h for h in hits if h[1] not in explained]
    idle = {h[1] for h in hits if h[1] in inputs} - {h[1] for h in hits if h[2]}
    if idle and all(h[1] in idle for h in hits):
        return [_gathers_finding(graph, hits, idle)]
    hits = [h for h in hits if h[1] not in idle]
    if not hits:
        return []
    return [_accumulates_finding(graph, hits, cleared, longest)]


def _gathers_finding(
    graph: Graph, hits: list[tuple[CallInfo, str, bool]], idle: set[str]
) -> Finding:
    """Inputs that need a gradient, no optimizer steps and nothing changes: `loss.backward()`
    adds into their `.grad` at every call, which only matters if the script reads it."""
    call = hits[0][0]
    names = sorted(idle)
    nodes = tuple(n.id for n in graph.leaves if n.label in idle)
    one = len(names) == 1
    grads = listing([f"{n}.grad" for n in names])
    message = (
        f"{listing(names)} {'requires' if one else 'require'} grad but {'is' if one else 'are'} "
        f"in no optimizer and never {'changes' if one else 'change'}: each backward call"
        f"{at_line(call.line)} adds its gradient into {grads}, and nothing zeroes "
        f"{'it' if one else 'them'}. Harmless unless the script reads {grads}."
    )
    hint = (
        "To leave it alone, backward into the parameters only: "
        "`loss.backward(inputs=list(model.parameters()))`; else zero it before reading it."
    )
    return Finding("grad-accumulates", "info", message, call.file, call.line, nodes, hint)


def added_up(calls: Sequence[CallInfo]) -> tuple[list[tuple[CallInfo, str, bool]], set[str], int]:
    """Where gradients added up in a leaf's `.grad`: (call, leaf name, whether the leaf was
    updated since its last call) for each call that began with the leaf's `.grad` not zero,
    leaving out the sums that no update used (`_unused`) and `torch.autograd.grad` calls; the
    leaves zeroed later; the most calls in a row whose gradients added up (`doctor` and
    `steps` both read it)."""
    steps: dict[tuple[str, int, int], list[LeafStep]] = {}
    hits: list[tuple[CallInfo, str, bool]] = []
    cleared: set[str] = set()
    #: Per leaf, how many calls in a row have added to its `.grad` so far.
    run: dict[tuple[str, int, int], int] = {}
    longest = 0
    for call in calls:
        if call.kind == "autograd.grad":
            continue
        for key, step in zip(_key(call.leaves), call.leaves):
            earlier = steps.setdefault(key, [])
            prev = earlier[-1] if earlier else None
            if _nonzero(step) and prev is not None:
                hits.append((call, step.name, prev.value != step.value))
                run[key] = run.get(key, 1) + 1
                longest = max(longest, run[key])
            else:
                run[key] = 1
                if prev is not None and hits and any(h[1] == step.name for h in hits):
                    cleared.add(step.name)
            earlier.append(step)
    unused = _unused(steps)
    return [h for h in hits if not (h[2] and h[1] in unused)], cleared, longest


def _unused(by_leaf: dict[tuple[str, int, int], list[LeafStep]]) -> set[str]:
    """Leaves whose summed gradients no update used: each time one was updated since its last
    call and still held a gradient, its `.grad` was zeroed at a later call before any update
    (and that happened at least once). A sum still held at the last call tells nothing.
    `by_leaf`: each leaf's steps, call after call."""
    used: set[str] = set()
    unused: set[str] = set()
    for (name, _, _), steps in by_leaf.items():
        for i in range(1, len(steps)):
            step = steps[i]
            if not (_nonzero(step) and steps[i - 1].value != step.value):
                continue
            for later in steps[i + 1 :]:
                if later.value != step.value:  # updated while the sum was held
                    used.add(name)
                    break
                if not _nonzero(later):  # zeroed first
                    unused.add(name)
                    break
    return unused - used


def _accumulates_finding(
    graph: Graph, hits: list[tuple[CallInfo, str, bool]], cleared: set[str], longest: int
) -> Finding:
    """`longest`: the most calls whose gradients added up in one `.grad` before it was zeroed."""
    stepped = [h for h in hits if h[2]]
    call, _, _ = (stepped or hits)[0]
    names = list(dict.fromkeys(h[1] for h in (stepped or hits)))
    shown = [n for n in names if n != "leaf"] or ["a leaf"]
    nodes = tuple(n.id for n in graph.leaves if n.label in names)
    who = listing(shown) if shown != ["a leaf"] else "a leaf with no name"
    start = f"{who} still {'hold' if len(shown) > 1 else 'holds'} a gradient"
    if stepped:
        message = (
            f"{start} when backward call {call.number}{at_line(call.line)} starts, and "
            f"{'were' if len(shown) > 1 else 'was'} updated in between: gradients add up over "
            "the steps, so each update uses the sum of all earlier gradients."
        )
        hint = (
            "Zero the gradients before each backward: `optimizer.zero_grad()` or `w.grad = None`."
        )
        severity: Severity = "warning"
    else:
        kept = "before they are zeroed" if cleared else "over the calls"
        message = (
            f"{start} when backward call {call.number}{at_line(call.line)} starts: the "
            f"gradients of up to {plural(longest, 'call')} add up {kept} (gradient accumulation)."
        )
        hint = "Fine for accumulating over micro-batches; otherwise zero them before backward."
        severity = "info"
    return Finding("grad-accumulates", severity, message, call.file, call.line, nodes, hint)


def _nodes(n: float) -> str:
    return "1 node" if n == 1 else f"{n:.3g} nodes"


#: Ops that add a number to a running total (`total += l`, `total = total + l`).
_SUM_OPS = frozenset({"AddBackward0", "AddBackward1", "SubBackward0"})


def summed(graph: Graph, calls: Sequence[CallInfo]) -> list[Finding]:
    """[graph-retained] without a backward call: one line adds a one-element tensor to a running
    total again and again (a chain of additions), so the total keeps every iteration's graph.
    With backward calls, `params.retained` counts the earlier calls' roots instead."""
    if calls or graph.call is not None:
        return []
    by_line: dict[tuple[str | None, int | None], list[int]] = {}
    for n in graph.nodes:
        if n.op in _SUM_OPS and n.line and n.shape is not None and _one(n.shape):
            by_line.setdefault((n.file, n.line), []).append(n.id)
    found = []
    for (file, line), ids in by_line.items():
        members = set(ids)
        linked = sum(any(e.src in members for e in graph.inputs[i]) for i in ids)
        if len(ids) >= GROW_CALLS and linked >= len(ids) - 1:
            found.append(_summed_finding(graph, sorted(ids), file, line))
    return found


def _one(shape: Sequence[int]) -> bool:
    return all(d == 1 for d in shape)


def _summed_finding(graph: Graph, ids: list[int], file: str | None, line: int | None) -> Finding:
    named = [graph.nodes[i].names[0] for i in ids if graph.nodes[i].names]
    name = f"`{named[0]}`" if named else "A running total"
    message = (
        f"{name} adds up the tensors of {len(ids)} iterations{at_line(line)} (a running total "
        f"of losses): it keeps every iteration's graph alive, {plural(len(graph.nodes), 'node')} "
        "in all. Found without a backward call: if you never call backward on it, the memory is "
        "held for nothing."
    )
    hint = "Accumulate a number, not the tensor: `total += l.item()` (or `l.detach()`)."
    return Finding("graph-retained", "warning", message, file, line, tuple(ids), hint)
