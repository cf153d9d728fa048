"""Diagnostics: find the gradient bugs of a script in what the capture recorded.

`diagnose(graph, calls, watch=..., namespace=...)` returns the findings for the graph shown:
checks on the graph itself (gradients, saved tensors, broadcasting losses), across the backward
calls (`CallInfo`: growth, accumulation, NaN/Inf, divergence, frozen parameters), on what the
recording watched (cuts, in-place writes, module calls, PyTorch's warnings) and on the script's
tensors and modules at the end of the run. Every finding has a stable `code` (see `CODES`).

Every check runs in every mode: the script's own backward calls, gradviz's own pass (`trace`,
a script without backward, `--expr`), `record()` in a library. The checks that need a backward
call (across calls, freed graphs) find nothing without one; a graph gradviz traced itself is
looked up in the recording (`Watch.events_for`) for its cuts and leaves.

Example:
    >>> run = run_script("train.py", [], lambda ns: Recorder(namespaces=ns))
    >>> for f in diagnose(run.recorder.graph(), run.recorder.calls,
    ...                   watch=run.recorder.watch, namespace=run.namespace):
    ...     print(f.severity, f.code, f.line, f.message)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._gc import on_big_graphs
from ..model import SEVERITY_RANK, CallInfo, Finding, Graph
from . import calls as _calls
from . import clips as _clips
from . import grads as _grads
from . import loop as _loop
from . import losses as _losses
from . import masks as _masks
from . import saved as _saved
from . import shapes as _shapes
from . import values as _values
from .cuts import cuts as _cuts
from .cuts import trained_elsewhere as _cuts_trained_elsewhere
from .training import account_for_scale

if TYPE_CHECKING:
    from ..capture import Captured, Watch

__all__ = ["ACROSS_CALLS", "CODES", "diagnose", "has_errors", "not_run", "with_findings"]

#: Every finding code, in the order the documentation lists them.
CODES: tuple[str, ...] = (
    "graph-retained",
    "graph-grows",
    "grad-accumulates",
    "inplace-saved",
    "backward-twice",
    "cut",
    "unused-param",
    "grad-none",
    "grad-zero",
    "forward-nonfinite",
    "grad-nan",
    "grad-inf",
    "grad-scale",
    "loss-broadcast",
    "loss-input",
    "loss-empty",
    "attention-mask",
    "grad-clip",
    "torch-warning",
    "loop-nonfinite",
    "loss-diverges",
    "params-frozen",
    "no-backward",
)


#: The checks that read several backward calls of the script (they need at least two).
ACROSS_CALLS: tuple[str, ...] = (
    "graph-grows",
    "grad-accumulates",
    "loop-nonfinite",
    "loss-diverges",
    "params-frozen",
)


def not_run(calls: Sequence[CallInfo]) -> str | None:
    """Why the checks across backward calls could not look at this run (None when they did)."""
    if len(calls) >= 2:
        return None
    made = "made no backward call" if not calls else "made one backward call"
    codes = ", ".join(ACROSS_CALLS)
    return f"the script {made}, so the checks across calls ({codes}) had nothing to compare."


def _sort_key(f: Finding) -> tuple[int, int, int, str, tuple[int, ...]]:
    return (SEVERITY_RANK[f.severity], f.line or 0, CODES.index(f.code), f.message, f.nodes)


def _graph_checks(
    graph: Graph,
    calls: Sequence[CallInfo],
    watch: Watch | None = None,
    explained: Collection[str] = (),
    inputs: Collection[str] = (),
    leaves: _loop.Leaves | None = None,
) -> list[Finding]:
    empty = _values.loss_empty(graph)
    why_loss = [*empty, *_values.forward_nonfinite(graph, calls)]
    # the loop's first bad call explains a non-finite forward value that earlier updates left
    loop_bad = _loop.nonfinite(calls, graph, why_loss)
    return [
        *_grads.nonfinite(graph, why_loss or loop_bad),
        *why_loss,
        *_grads.zero(graph, {n for f in empty for n in f.nodes}),
        *_grads.none(graph),
        *_grads.scale(graph),
        *_shapes.broadcast(graph),
        *_losses.loss_inputs(graph),
        *_calls.grows(graph, calls),
        *_calls.accumulates(graph, calls, explained, inputs),
        *_calls.summed(graph, calls),
        *loop_bad,
        *_loop.diverges(calls, watch.learning_rates if watch is not None else None),
        *_loop.frozen(calls, _gradless(watch), explained, leaves),
    ]


def _inputs(graph: Graph, namespace: Mapping[str, Any], watch: Watch | None) -> set[str]:
    """The graph's leaves that are script variables no optimizer steps, when optimizers step
    others (an input made to require grad for `autograd.grad`, not a parameter)."""
    if watch is None or not watch.optimized:
        return set()
    from ._common import outside_optimizers

    found = set()
    for leaf in graph.leaves:
        for name in leaf.names:
            value = namespace.get(name)
            if value is not None and outside_optimizers(value, watch.optimized):
                found.add(name)
    return found


def _leaves(watch: Watch | None, namespace: Mapping[str, Any] | None) -> _loop.Leaves | None:
    """What `params-frozen` needs to know of the script's leaves (see `loop.Leaves`)."""
    if watch is None or namespace is None:
        return None
    from .params import module_params  # imports torch

    params = module_params(namespace)
    optimized = watch.optimized
    return _loop.Leaves(
        updates=bool(_updates(watch, namespace)),
        module_params=frozenset(params),
        outside=frozenset(
            name for name, p in params.items() if optimized and optimized.get(id(p)) is not p
        ),
    )


def _updates(watch: Watch | None, namespace: Mapping[str, Any] | None) -> bool | None:
    """Whether the script means to update leaves that require grad: it made an optimizer, one
    stepped, a leaf was written in place after a backward call, or read through `.data` /
    `.detach()` (the lesson's `w.data = ...`); None when unknown (no recording)."""
    if watch is None or namespace is None:
        return None
    read = any(cut.kind == "detach" for _, cut in watch.leaf_cuts.values())
    if watch.learning_rates or watch.optimized or watch.leaf_writes or read:
        return True
    optim = sys.modules.get("torch.optim")
    return optim is not None and any(isinstance(v, optim.Optimizer) for v in namespace.values())


def _gradless(watch: Watch | None) -> tuple[int, str | None, int | None] | None:
    """(count, file, line) of the optimizer steps taken with no gradient held, if any."""
    if watch is None or not watch.gradless_steps or watch.gradless_where is None:
        return None
    return (watch.gradless_steps, *watch.gradless_where)


def _watch_checks(
    graph: Graph,
    calls: Sequence[CallInfo],
    watch: Watch,
    namespace: Mapping[str, Any] | None = None,
) -> list[Finding]:
    events = watch.events_for(graph)
    before, since = (events.made_before, events.made_since) if events else ((), ())
    ran_in = events.ran_in if events else None
    found = _saved.inplace(graph, list(watch.inplace), ran_in, before, since)
    found += _saved.twice(graph, calls, events.freed_by if events else None, before, since)
    found += _cuts(
        graph,
        events.cuts if events else (),
        watch.items,
        watch.optimized,
        events.reaches if events else None,
        _trainer(graph, events, watch, namespace) if events else None,
        graph.call if watch.cut_short else None,
    )
    found += _masks.attention_masks(graph, watch.masks.uses.values())
    found += _clips.early(watch.clips.lines.values(), calls)
    return found


def _trainer(
    graph: Graph, events: Any, watch: Watch, namespace: Mapping[str, Any] | None
) -> Callable[[Any], tuple[str, list[int]] | None]:
    """For `cuts`: the name of the model a cut's source was computed in and the lines of the
    backward calls of its own that train it, if any (`cuts.trained_elsewhere`)."""
    in_graph = {id(t) for r in events.leaves if (t := r()) is not None}
    here = (graph.call_file, graph.call_line)

    def trainer(cut: Any) -> tuple[str, list[int]] | None:
        lines = _cuts_trained_elsewhere(cut, in_graph, watch.reached_at, here)
        if lines is None:
            return None
        module = cut.module()
        names = [k for k, v in (namespace or {}).items() if v is module and k.isidentifier()]
        return (f"`{names[0]}`" if names else f"the {type(module).__name__}"), lines

    return trainer


def _run_checks(
    graph: Graph,
    calls: Sequence[CallInfo],
    watch: Watch,
    namespace: Mapping[str, Any],
    untrained: Sequence[Any],
) -> list[Finding]:
    from . import params

    found = params.retained(graph, namespace)
    found += params.parameters_with_graph(namespace)
    found += params.stepped_unreached(watch, namespace)
    found += params.no_backward(watch, calls)
    found += params.unregistered_layers(watch, untrained)
    events = watch.events_for(graph)
    if events is not None:
        last = graph.call is None or not calls or graph.call == calls[-1].number
        last = last and not watch.cut_short  # the namespace at the end is not the call's
        found += params.unused(
            graph,
            namespace,
            events.leaves,
            watch.called,
            watch.used,
            free=last,
            optimized=watch.optimized,
            reached=watch.reached,
            reached_at=watch.reached_at,
            grad_called=watch.grad_called,
            last_use=watch.last_use,
            first_use=watch.first_use,
            leaf_cuts=watch.leaf_cuts,
            stepped=watch.unreached_params,
            call_params=watch.call_params,
            seen_to_end=not watch.cut_short,
        )
    return found


@on_big_graphs
def diagnose(
    graph: Graph,
    calls: Sequence[CallInfo] = (),
    *,
    watch: Watch | None = None,
    namespace: Mapping[str, Any] | None = None,
) -> tuple[Finding, ...]:
    """The findings for `graph`, most serious first (deterministic order)."""
    untrained: list[Any] = []
    if namespace is not None:
        from . import params  # imports torch

        untrained = params.untrained(watch, namespace, calls)
    # the parameters of layers in plain containers: their own finding says why they stay put
    explained = {label for _, _, named in untrained for label, _ in named}
    inputs = _inputs(graph, namespace, watch) if namespace is not None else set()
    found = _graph_checks(graph, calls, watch, explained, inputs, _leaves(watch, namespace))
    if watch is not None:
        found += _watch_checks(graph, calls, watch, namespace)
        if namespace is not None:
            found += _run_checks(graph, calls, watch, namespace, untrained)
        found += _shapes.warned(watch.warnings, found)
    else:
        found += _saved.inplace(graph, ())
        found += _saved.twice(graph, calls, None)
    found = account_for_scale(graph, found)
    return tuple(sorted(dict.fromkeys(found), key=_sort_key))


def has_errors(findings: Sequence[Finding], level: str = "error") -> bool:
    """Whether any finding is at `level` or more serious (`gradviz doctor --fail-on LEVEL` then
    exits with code 10)."""
    if level not in SEVERITY_RANK:
        raise ValueError(f"level must be one of {', '.join(SEVERITY_RANK)}, not {level!r}")
    return any(SEVERITY_RANK[f.severity] <= SEVERITY_RANK[level] for f in findings)


def with_findings(captured: Captured) -> Captured:
    """`captured` with its graph's findings filled in from everything the run recorded."""
    from dataclasses import replace

    rec = captured.run.recorder
    findings = diagnose(
        captured.graph,
        rec.calls,
        watch=getattr(rec, "watch", None),
        namespace=captured.run.variables,
    )
    return replace(captured, graph=replace(captured.graph, findings=findings))
