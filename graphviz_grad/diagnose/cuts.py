"""[cut]: where the graph was cut on the way to the root (a constant made from a tracked tensor).

The recording marks the result of `.detach()` / `.data`, of ops under `no_grad` /
`inference_mode` on tensors that require grad, and remembers `.item()` values; a graph op that
consumes such a result as a constant (`CallEvents.cuts`) or a leaf created from an `.item()` value
shows where the gradient stops. Reading `.item()` for a print, or a parameter update under
`no_grad`, never reaches the root, so it is never reported.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from ..model import Finding, Graph, article, display_path
from ._common import at_line, listing, node_ref, outside_optimizers, source_line


class CutLike(Protocol):
    """What the check reads of a cut (`_watch.Cut`)."""

    @property
    def kind(self) -> str: ...
    @property
    def file(self) -> str | None: ...
    @property
    def line(self) -> int | None: ...
    @property
    def source(self) -> str | None: ...
    @property
    def seq(self) -> int: ...
    @property
    def spent_by(self) -> int | None: ...
    @property
    def leaf(self) -> Any: ...
    @property
    def module(self) -> Any: ...
    @property
    def function(self) -> str | None: ...


_WHAT = {
    "detach": "`.detach()`",
    "data": "`.data`",
    "no_grad": "an op under `torch.no_grad()`",
    "inference_mode": "an op under `torch.inference_mode()`",
    "item": "`.item()`",
    "numpy": "The NumPy round trip (`.detach().numpy()`)",
    "function": "an op inside a custom autograd.Function's forward (which autograd runs without "
    "grad tracking)",
}
_HINT = {
    "detach": "Drop the `.detach()` if the gradient should flow back through it.",
    "numpy": "A NumPy array carries no graph: keep the computation in torch (no `.numpy()`, "
    "`torch.from_numpy`) if the gradient should flow back through it.",
    "data": "Use the tensor itself instead of `.data` if the gradient should flow back.",
    "no_grad": "Compute it outside `torch.no_grad()` if the gradient should flow back.",
    "inference_mode": "Compute it outside `torch.inference_mode()` if the gradient should flow.",
    "item": "Keep the tensor (no `.item()`, no `torch.tensor(x.item())`) for the computation "
    "that needs a gradient; use `.item()` only for printing and logging.",
    "function": "A tensor kept as an attribute of `ctx` is a constant to a double backward "
    "(`create_graph=True`): return it from forward as an output (or save it with "
    "`ctx.save_for_backward`) and use what `ctx.saved_tensors` gives back in backward, as "
    "PyTorch's tutorial 'Double Backward with Custom Functions' does.",
}


def _kind(cut: CutLike) -> str:
    if cut.kind == "detach":
        text = source_line(cut.file, cut.line)
        if ".data" in text and ".detach(" not in text:
            return "data"
        if ".numpy(" in text:
            return "numpy"
    return cut.kind


def cuts(
    graph: Graph,
    consumed: Iterable[tuple[int, int, CutLike]],
    items: Mapping[float, CutLike] | None = None,
    optimized: Mapping[int, Any] | None = None,
    reaches: Callable[[Any], bool] | None = None,
    elsewhere: Callable[[Any], tuple[str, list[int]] | None] | None = None,
    unseen_after: int | None = None,
) -> list[Finding]:
    """One finding per cut whose result reaches the root, naming the nodes that consume it; not
    for a cut from a graph that an earlier backward call already freed (the gradient could not
    flow back there: without the cut, this backward would fail), nor for a parameter that no
    optimizer steps while others do (a DQN's target network under `no_grad`). A cut whose
    source still gets the gradient by another path (`reaches`: a stop-gradient, as in
    `z + (q - z).detach()`) is an `info`: nothing is left without a gradient. So is a cut whose
    source was computed in a model that backward calls at other lines train (`elsewhere`: its
    name and those lines), as a GAN's `fake = G(z).detach()` in the discriminator's step.
    `unseen_after`: the call after which gradviz stopped watching (`--call N`), when it did: a
    later call that trains the source's model went unseen, and a warning says so."""
    by_cut: dict[int, tuple[CutLike, list[int]]] = {}
    targets: set[int] = set()  # the cuts used as a loss's target somewhere
    others: set[int] = set()  # the cuts used otherwise somewhere
    for node_id, index, cut in consumed:
        by_cut.setdefault(cut.seq, (cut, []))[1].append(node_id)
        (targets if _a_target(graph.nodes[node_id].aten, index) else others).add(cut.seq)
    for node_id, cut in _item_leaves(graph, items or {}):
        by_cut.setdefault(cut.seq, (cut, []))[1].append(node_id)
    by_cut = {
        seq: found
        for seq, found in by_cut.items()
        if found[0].spent_by is None
        and not _not_trained(found[0], optimized)
        and found[0].kind != "nondiff"  # a comparison used as a mask: no gradient was lost
        # a loss's target held constant (neural style's `model(style_img).detach()`, a DQN's
        # `target.detach()`, a teacher's output): the usual way to write one, nothing is lost
        and not (seq in targets and seq not in others)
    }
    found = []
    for _, (cut, ids) in sorted(by_cut.items()):
        stop = reaches is not None and reaches(cut)
        trained = None if stop or elsewhere is None else elsewhere(cut)
        finding = _finding(graph, cut, sorted(set(ids)), stop, trained)
        if finding.severity == "warning" and unseen_after is not None and cut.module is not None:
            finding = replace(
                finding,
                message=f"{finding.message} gradviz stopped watching after call "
                f"{unseen_after:,} (--call), so it cannot tell whether a later backward call "
                "trains what it was computed from (a GAN's generator step).",
            )
        found.append(finding)
    return found


#: The loss ops whose operand at position 1 is the target (`aten.mse_loss(self, target)`).
_TARGET_LOSSES = frozenset(
    {
        "aten.mse_loss",
        "aten.l1_loss",
        "aten.smooth_l1_loss",
        "aten.huber_loss",
        "aten.binary_cross_entropy",
        "aten.binary_cross_entropy_with_logits",
        "aten.soft_margin_loss",
        "aten.kl_div",
    }
)


def _a_target(aten: str | None, index: int) -> bool:
    """Whether operand `index` of the op `aten` is a loss's target."""
    if index != 1 or aten is None:
        return False
    return ".".join(aten.replace("::", ".").split(".")[:2]) in _TARGET_LOSSES


def trained_elsewhere(
    cut: CutLike,
    in_graph: Collection[int],
    reached_at: Mapping[int, tuple[tuple[str | None, int | None], ...] | None],
    here: tuple[str | None, int | None],
) -> list[int] | None:
    """The lines of the backward calls that train the model `cut`'s source was computed in,
    when every parameter of it outside the call shown (`in_graph`, by id) got its gradients
    from calls made at other lines of this call's file (`here`: its file and line); else
    None."""
    ref = cut.module
    module = ref() if ref is not None else None
    if module is None or here[1] is None:
        return None
    lines: set[int] = set()
    for p in module.parameters():
        if not p.requires_grad or id(p) in in_graph:
            continue
        sites = reached_at.get(id(p))
        if sites is None:
            return None
        for file, line in sites:
            if line is None or line == here[1] or display_path(file) != here[0]:
                return None
            lines.add(line)
    return sorted(lines) if lines else None


def _not_trained(cut: CutLike, optimized: Mapping[int, Any] | None) -> bool:
    """Whether the cut's source is a parameter outside every optimizer, when optimizers ran."""
    leaf = cut.leaf() if cut.leaf is not None else None
    return leaf is not None and outside_optimizers(leaf, optimized)


def _item_leaves(graph: Graph, items: Mapping[float, Any]) -> list[tuple[int, Any]]:
    """Leaves made from `.item()` values: every number of a leaf (a few, kept in full) is one
    (`torch.tensor(loss.item(), requires_grad=True)`, `torch.tensor([l1, l2])`)."""
    found: list[tuple[int, Any]] = []
    if not items:
        return found
    for leaf in graph.leaves:
        value = leaf.value
        numbers = _numbers(value.data) if value is not None else []
        cuts = [items.get(x) for x in numbers]
        if numbers and all(c is not None for c in cuts):
            found.append((leaf.id, cuts[0]))
    return found


def _numbers(data: Any) -> list[float]:
    """The numbers of a summary's data (nested lists of a small tensor), [] if not all are."""
    if isinstance(data, bool):
        return []
    if isinstance(data, (int, float)):
        return [float(data)]
    if isinstance(data, list):
        out: list[float] = []
        for x in data:
            inner = _numbers(x)
            if not inner:
                return []
            out += inner
        return out
    return []


def _finding(
    graph: Graph,
    cut: CutLike,
    ids: list[int],
    stop: bool,
    trained: tuple[str, list[int]] | None = None,
) -> Finding:
    kind = _kind(cut)
    what = _WHAT[kind]
    if kind == "function" and cut.function:
        what = (
            f"an op inside `{cut.function}` (a custom autograd.Function's forward, "
            "which autograd runs without grad tracking)"
        )
    what = what[:1].upper() + what[1:]  # the finding's first word
    source = ""
    of = "on" if kind in ("no_grad", "inference_mode", "function") else "of"  # an op on, `.x` of
    if cut.source not in (None, "leaf"):
        source = f" {of} {article(cut.source)} {cut.source} output"
    if cut.source == "leaf":
        source = f" {of} a leaf"
    into = listing([node_ref(graph.nodes[i]) for i in ids], 3, quote=False)
    if stop:
        message = (
            f"{what}{source}{at_line(cut.line)} stops the gradient on one path: its "
            f"result reaches the root as a constant through {into}, while what it was computed "
            "from still gets a gradient through the rest of the graph (a stop-gradient, as in "
            "straight-through estimators, VQ-VAE and SimSiam)."
        )
        hint = f"Nothing, if the stop-gradient is intended. {_HINT[kind]}"
        return Finding("cut", "info", message, display_path(cut.file), cut.line, tuple(ids), hint)
    if trained is not None:
        name, lines = trained
        calls = "the backward call at line" if len(lines) == 1 else "the backward calls at lines"
        at = listing([str(n) for n in lines], 8, quote=False)
        message = (
            f"{what}{source}{at_line(cut.line)} cuts the graph: its result reaches the "
            f"root as a constant through {into}. {name}, which computed it, gets its gradients "
            f"from {calls} {at} instead (alternating training, as in a GAN's discriminator "
            "step)."
        )
        those = "that call" if len(lines) == 1 else "those calls"
        hint = f"Nothing, if {name} is meant to learn from {those} only. {_HINT[kind]}"
        return Finding("cut", "info", message, display_path(cut.file), cut.line, tuple(ids), hint)
    message = (
        f"{what}{source}{at_line(cut.line)} cuts the graph: its result reaches the root "
        f"as a constant through {into}, so no gradient flows back past it."
    )
    return Finding(
        "cut", "warning", message, display_path(cut.file), cut.line, tuple(ids), _HINT[kind]
    )
