"""From a script on disk to the `Graph` to show: run it recorded, then pick the root.

The root is, in this order: `--target NAME`; else the backward call chosen by `--call` (the last
by default); else a global named `loss`; else the global tensor whose graph contains the graphs
of all the others (`total` in `total += l`); a tie asks for `--target` with the candidates.

A script that raises after at least one completed backward call still gives that call's graph
(`Captured.error` carries the script's error, reported after the graph is shown).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CallError, Interrupted, RootError, ScriptExitError, TimeoutError_
from ..model import Graph, article
from .modules import ModuleRun


@dataclass(frozen=True)
class CaptureOptions:
    """How to pick the graph out of a script run."""

    target: str | None = None
    call: int = -1
    grad_output: str | None = None


@dataclass
class Captured:
    """The graph to show, the run it came from, and remarks for the user (stderr)."""

    graph: Graph
    run: Any
    #: The script's error when it died in a backward call: report it after showing the graph.
    error: Any = None


def capture_script(
    path: str | Path | ModuleRun, argv: Sequence[str], options: CaptureOptions
) -> Captured:
    """Run the script under a recorder and return the graph the options pick."""
    from .recorder import Recorder
    from .runner import run_script

    keep: int | str = options.call
    # `--call N`: nothing after call N can be shown, so the rest of the script runs unobserved
    stop = options.call if options.call > 0 and options.target is None else None
    run = run_script(
        path,
        argv,
        lambda ns: Recorder(keep=keep, namespaces=ns, stop_after=stop, pin=options.target),
    )
    if run.error is not None and not failed_in_backward(run, options):
        if not _completed_before_error(run, options):
            raise _none_completed(run.error, run, options)
        run.error = _after_calls(run.error, len(run.recorder.calls))
    if run.exit_code != 0:
        raise ScriptExitError(
            f"The script `{run.path.name}` exited with status {run.exit_code} (sys.exit), "
            "so gradviz drew nothing.",
            code=run.exit_code,
            hint="gradviz passes the script's exit status on; fix what made it exit.",
        )
    return Captured(pick_graph(run, options), run, error=run.error)


def pick_graph(run: Any, options: CaptureOptions) -> Graph:
    rec = run.recorder
    ns = run.variables
    if options.target is not None:
        return _trace_named(run, options.target, options)
    if rec.calls:
        return rec.graph(options.call)
    if options.call not in (-1, 1):
        raise CallError(
            f"There is no backward call {options.call}: the script made none.",
            hint="Leave out --call: gradviz then computes the gradients itself.",
        )
    if isinstance(ns.get("loss"), _tensor_type()):
        return _trace_named(run, "loss", options)
    candidates = [(n, t) for n, t in _tensors(ns) if t.grad_fn is not None]
    outer = containing_root(candidates)
    if outer is not None:
        return _trace_named(run, outer, options)
    elsewhere = rec.subprocesses.sentence()
    if elsewhere is not None and not candidates:
        raise RootError(
            f"The script made no backward call in its own process: {elsewhere}.",
            hint="To see a worker's graph, call its function in the main process (`train(...)` "
            "instead of `mp.Process(target=train, ...).start()`), for a step or two.",
        )
    batched = getattr(rec, "batched", 0)
    if batched and not candidates:
        calls = "one call" if batched == 1 else f"{batched:,} calls"
        raise RootError(
            f"The script's gradients came from {calls} of `torch.autograd.grad(..., "
            "is_grads_batched=True)`: a batch of gradients at once, under vmap, which gradviz "
            "does not draw.",
            hint="Make the same call once without `is_grads_batched`, with one row of "
            "`grad_outputs` (or keep the output in a variable and pass `--target NAME`): "
            "gradviz draws that graph and its gradients.",
        )
    hint = _candidates_hint(ns)
    functional = _uses_torch_func(run)
    if not candidates and rec.graph_ops == 0 and run.exited:
        raise RootError(
            f"The script exited (`sys.exit`, status {run.exit_code}) before it built any "
            "autograd graph: there is nothing to draw.",
            hint="A script with arguments exits after `--help` or when one is missing; give "
            f"them after `--`: `gradviz render {run.path.name} -- --epochs 1`.",
        )
    if not candidates and rec.graph_ops == 0 and not functional:
        raise RootError(
            "The script built no autograd graph: none of its ops had an input that requires a "
            "gradient, so there is nothing to draw.",
            hint="Give the tensors to train `requires_grad=True` (an `nn.Module`'s parameters "
            "have it) and compute a loss from them outside `torch.no_grad()`; "
            "`loss.backward()` then makes the graph gradviz draws.",
        )
    if functional and not candidates:  # else the graphs it left are worth a --target
        hint = (
            "The script takes its gradients with `torch.func` (grad, vjp, jacrev...), which "
            "makes no backward call and keeps no autograd graph: gradviz draws the graphs of "
            "`loss.backward()` and `torch.autograd.grad`: to see it, make the inputs require "
            "grad (`w.requires_grad_()`) and call one of those on the same loss."
        )
    raise RootError(
        "The script made no backward call and gradviz cannot tell which tensor is the loss.",
        hint=hint,
    )


def _uses_torch_func(run: Any) -> bool:
    """Whether the script calls `torch.func`'s (or functorch's) transforms: a function of theirs
    among its variables, or their name in its source."""
    for value in run.variables.values():
        module = getattr(value, "__module__", None)
        if isinstance(module, str) and module.startswith(("torch._functorch", "functorch")):
            return True
    try:
        source = Path(run.path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "torch.func" in source or "functorch" in source


def containing_root(candidates: Sequence[tuple[str, Any]]) -> str | None:
    """The name of the one tensor whose graph contains the graphs of all the others (None on a
    tie: two graphs apart, or two names for one tensor's graph)."""
    if not candidates:
        return None
    heads: dict[int, str] = {}
    for name, t in candidates:
        heads.setdefault(id(t.grad_fn), name)
    if len(heads) == 1:
        names = {n for n, _ in candidates}
        return candidates[0][0] if len(names) == 1 or _one_tensor(candidates) else None
    for name, t in candidates:
        if _reaches(t.grad_fn, set(heads) - {id(t.grad_fn)}):
            return name
    return None


def _one_tensor(candidates: Sequence[tuple[str, Any]]) -> bool:
    return len({id(t) for _, t in candidates}) == 1


def _reaches(start: Any, targets: set[int]) -> bool:
    """Whether every node in `targets` (by id) is reachable from `start` (iterative walk)."""
    missing = set(targets)
    seen = {id(start)}
    stack = [start]
    while stack and missing:
        node = stack.pop()
        missing.discard(id(node))
        for child, _ in node.next_functions:
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return not missing


def _trace_named(run: Any, name: str, options: CaptureOptions) -> Graph:
    ns = run.variables
    torch_tensor = _tensor_type()
    if name not in ns:
        close = difflib.get_close_matches(name, [k for k in ns if not k.startswith("__")], n=3)
        hint = f"Did you mean {', '.join('`' + c + '`' for c in close)}?" if close else None
        raise RootError(f"The script has no variable `{name}`.", hint=hint or _candidates_hint(ns))
    value: Any = ns[name]
    if not isinstance(value, torch_tensor):
        raise RootError(
            f"`{name}` is {article(type(value).__name__)} {type(value).__name__}, not a tensor.",
            hint=_candidates_hint(ns),
        )
    if value.grad_fn is None and not value.requires_grad:
        leaf = _a_leaf_name(ns)
        raise RootError(
            f"`{name}` does not require grad, so it has no autograd graph.",
            hint=f"Set `requires_grad=True` on a leaf such as `{leaf}`."
            if leaf
            else "Create a leaf with `requires_grad=True` and compute the tensor from it.",
        )
    calls = value.grad_fn.metadata.get("gradviz_calls") if value.grad_fn is not None else None
    if calls:
        for number in reversed(calls):
            if number in run.recorder.graphs:
                graph: Graph = run.recorder.graphs[number]
                return graph
    extra = [run.locals] if run.locals else []  # names of a `def main()` script's variables
    graph = run.recorder.trace(value, grad_output=options.grad_output, namespaces=extra)
    if graph.grad_source == "none" and graph.graph_was_freed:
        raise RootError(
            f"The graph of `{name}` was already freed by a backward call, so gradviz "
            "cannot compute its gradients again.",
            hint="Leave out --target to show the script's own backward call, "
            "or pass `retain_graph=True` to backward.",
        )
    return graph


def _tensor_type() -> Any:
    import torch

    return torch.Tensor


def _tensors(ns: dict[str, Any]) -> list[tuple[str, Any]]:
    t = _tensor_type()
    return [(k, v) for k, v in ns.items() if not k.startswith("__") and isinstance(v, t)]


def _a_leaf_name(ns: dict[str, Any]) -> str | None:
    for k, v in _tensors(ns):
        if v.grad_fn is None and v.is_floating_point():
            return k
    return None


def _candidates_hint(ns: dict[str, Any]) -> str:
    found = _tensors(ns)
    if not found:
        return (
            "The script keeps no tensor in a variable for --target to name: keep the loss in "
            "one (`loss = ...`), or call `loss.backward()` in the script."
        )
    rows = [
        f"{k} {list(v.shape)} {'has grad_fn' if v.grad_fn is not None else 'no grad_fn'}"
        for k, v in found[:12]
    ]
    return "Pick one with --target NAME. Tensors in the script: " + "; ".join(rows) + "."


def _completed_before_error(run: Any, options: CaptureOptions) -> bool:
    """Whether the script raised outside backward after a completed call whose graph is kept."""
    rec = run.recorder
    if options.target is not None or not rec.calls or rec.calls[-1].error is not None:
        return False
    total = len(rec.calls)
    number = options.call if options.call > 0 else total + options.call + 1
    return number in rec.graphs


def _after_calls(error: Any, total: int) -> Any:
    """The script's error, saying that the graph shown comes from before it."""
    calls = "call" if total == 1 else "calls"
    if isinstance(error, (Interrupted, TimeoutError_)):
        return type(error)(
            f"{error.message.rstrip('.')} after {total:,} backward {calls}: gradviz shows the "
            "graph of a call completed before it.",
            hint=error.hint
            if isinstance(error, TimeoutError_)
            else "Press Ctrl-C twice to quit at once, without output.",
        )
    return type(error)(
        f"{error.message} (after {total} backward {calls}: gradviz shows the graph of a call "
        "completed before the error).",
        hint=error.hint,
        details=error.details,
    )


def _none_completed(error: Any, run: Any, options: CaptureOptions) -> Any:
    """The error to raise when no call that could be shown completed before it: Ctrl-C says
    which call it came too early for."""
    if not isinstance(error, (Interrupted, TimeoutError_)):
        return error
    total = len(run.recorder.calls)
    if options.call > 0 and options.target is None and total < options.call:
        before = f"before backward call {options.call} completed ({total:,} did)"
    elif total == 0:
        before = "before any backward call completed"
    else:
        before = "before it finished"
    if isinstance(error, TimeoutError_):
        return TimeoutError_(f"{error.message.rstrip('.')} {before}.", hint=error.hint)
    return Interrupted(
        f"{error.message.rstrip('.')} {before}, so gradviz drew nothing.",
        hint="Let it run until a backward call completes (the progress line counts them).",
    )


def failed_in_backward(run: Any, options: CaptureOptions) -> bool:
    """Whether the script died in a backward call whose graph was kept (shown, then reported)."""
    rec = run.recorder
    last = rec.calls[-1] if rec.calls else None
    return (
        options.target is None
        and last is not None
        and last.error is not None
        and (last.number in rec.graphs)
    )
