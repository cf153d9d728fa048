"""Capture: record a block of PyTorch code, or trace a tensor in hand.

`record()` is the one capture that every view reads. While it is active it
  * attaches each new autograd node's forward value, module and line (`_forward`),
  * intercepts every `Tensor.backward`, `torch.autograd.backward` and `torch.autograd.grad`,
    walks the graph just before the call runs, and records the gradients that the user's own
    call computes (`_snapshot`),
and restores everything it patched on exit, also when the block raises.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import torch
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from .._gc import Settled, YoungCollections
from ..errors import CallError, RootError
from ..model import CallInfo, Graph
from ._forward import _TORCH_DIR, USER_FRAMES, ForwardRecorder, ModuleStack
from ._snapshot import CallCapture, Serials, gradient_edge
from .amp import ScalerCalls, root_scale
from .compiled import (
    QuietHooksWarning,
    functorch_wrapped,
    in_functorch,
    skip_frames,
    tracing_tensors,
)
from .distributed import ddp_parameters, rank_and_world
from .functions import FunctionCalls
from .hook_ids import private_hook_ids
from .naming import Names
from .optim import OptimizerSteps
from .subprocesses import Subprocesses
from .tensor_hooks import TensorHooks
from .watch import Watch, scripts_own

#: Seconds a backward call of another thread waits for the one being recorded to finish.
TURN_WAIT = 5.0


def _current_autograd_node() -> Any:
    """The autograd node the engine runs in this thread now, if any (None outside backward)."""
    found = getattr(torch._C, "_current_autograd_node", None)
    return found() if found is not None else None


class Recorder:
    """Records forward values and every backward call made inside a `with` block.

    Example:
        >>> import torch, graphviz_grad as gg
        >>> with gg.record() as rec:
        ...     w = torch.tensor(1.0, requires_grad=True)
        ...     loss = (2.0 * w - 4.0) ** 2
        ...     loss.backward()
        >>> rec.graph().nodes[-1].grad.data
        -8.0
    """

    def __init__(
        self,
        keep: str | int | Callable[[int], bool] = "all",
        namespaces: Sequence[Mapping[str, Any]] = (),
        values: bool = True,
        stop_after: int | None = None,
        pin: str | None = None,
    ) -> None:
        self.calls: list[CallInfo] = []
        #: A variable name (`--target`): the last backward call whose root the code holds under
        #: this name is built and kept as well, whatever `keep` drops.
        self._pin = pin
        self._pinned: int | None = None
        #: Backward calls made after recording stopped (`stop_after`): counted, not recorded.
        self.unobserved = 0
        #: `autograd.grad` calls with `is_grads_batched=True` (counted in `unobserved`, not drawn).
        self.batched = 0
        self.graphs: dict[int, Graph] = {}
        #: Calls that may still be shown (`keep=-N`), built only once no later call replaced
        #: them: a loop's every call would otherwise be built and dropped (`_build_later`).
        self._later: list[CallCapture] = []
        self.namespaces = list(namespaces)
        self._keep = keep
        self._modules = ModuleStack()
        self._mode = ForwardRecorder(self._modules, values=values)
        #: What `gradviz doctor` reads: cuts, in-place writes, module calls (`diagnose`).
        self.watch = Watch()
        self._mode.watch = self.watch
        self._functions = FunctionCalls(self._mode)
        self._quiet = QuietHooksWarning()
        self._scalers = ScalerCalls()
        #: The script's objects by its first backward call, out of full collections (`_gc`).
        self._settled = Settled()
        #: Young collections rarer while recording (`_gc.YoungCollections`).
        self._young = YoungCollections()
        #: Hooks the script puts on tensors ops made (`capture.tensor_hooks`).
        self._tensor_hooks = TensorHooks()
        self._serials = Serials()
        #: The processes the script starts: their backward calls are not seen.
        self.subprocesses = Subprocesses()
        self._saved: dict[str, Any] = {}
        self._active: CallCapture | None = None
        #: The thread whose backward call is being recorded, which holds `_turn`: one call is
        #: recorded at a time, and another thread's waits its turn (`_take_turn`).
        self._busy: int | None = None
        self._turn = threading.Lock()
        #: Backward calls of other threads that waited `TURN_WAIT` seconds in vain: run, not
        #: recorded.
        self.overlapped = 0
        self._entered = False
        self._patched = False
        self._stop_after = stop_after
        #: Why the last backward call given no graph had none (`Watch.why_no_graph`): the hint
        #: for PyTorch's "element 0 of tensors does not require grad" (`runner`).
        self.no_graph: str | None = None
        #: Optimizer steps taken so far (for the progress line on long runs).
        self.steps = 0
        #: What asked the script to stop (`request_stop`): KeyboardInterrupt (Ctrl-C), the
        #: runner's timeout, or None.
        self.stopping: type[BaseException] | None = None
        self._step_hook: Any = None
        self._step_pre_hook: Any = None
        #: Steps of `torch.optim` optimizers run without the dispatch mode, once learnt.
        self._steps = OptimizerSteps(self._mode, self.watch, lambda: self._entered)

    @property
    def total_calls(self) -> int:
        """Every backward call the code made, recorded or not."""
        return len(self.calls) + self.unobserved

    @property
    def graph_ops(self) -> int:
        """Ops that built autograd graph while recording (0: the code never needed a gradient)."""
        return self._mode.seq

    @property
    def stopped_early(self) -> bool:
        """Whether recording stopped after call `stop_after` while the code ran on."""
        return self.unobserved > 0

    # -- context manager ---------------------------------------------------------------------
    def __enter__(self) -> Recorder:
        self._saved = {"backward": torch.autograd.backward, "grad": torch.autograd.grad}
        torch.autograd.backward = self._wrap(self._saved["backward"], "backward")  # type: ignore[assignment]
        torch.autograd.grad = self._wrap(self._saved["grad"], "autograd.grad")  # type: ignore[assignment]
        self._patched = True
        keep_out_of_dynamo(self._modules, self.watch)
        self._quiet.install()
        self._modules.install()
        self._functions.install()
        self._scalers.install()
        self._tensor_hooks.install()
        self.watch.install()
        self.subprocesses.install()
        with private_hook_ids():
            self._step_hook = register_optimizer_step_post_hook(self._stepped)
            self._step_pre_hook = register_optimizer_step_pre_hook(self._step_starts)
        self._mode.__enter__()
        self._young.hold()
        self._entered = True
        self._thread = threading.get_ident()  # the dispatch mode sees this thread's ops only
        _RECORDING.add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop recording and restore everything (safe to call twice)."""
        try:
            self._stop_recording()
        finally:
            self._unpatch()
            self.take_locals()  # a finished recording holds none of the script's tensors

    def _unpatch(self) -> None:
        """Take the optimizer step hooks off and give `torch.autograd` its functions back."""
        if self._step_hook is not None:
            self._step_hook.remove()
            self._step_pre_hook.remove()
            self._step_hook = None
        if self._patched:
            self._patched = False
            torch.autograd.backward = self._saved["backward"]
            torch.autograd.grad = self._saved["grad"]

    def _parts(self) -> tuple[Any, ...]:
        """What recording installed besides the dispatch mode, each with a `remove()`."""
        return (
            self._modules,
            self._steps,
            self._functions,
            self._scalers,
            self._tensor_hooks,
            self._quiet,
            self.watch,
            self.subprocesses,
        )

    def take_locals(self) -> dict[str, Any]:
        """The variables of the script's functions that are gone by the end of a run (`def
        main(): ...`), for the checks: what the functions around the last backward call held
        (`Watch.note_frames`), then the locals of the functions around the last graph op, innermost
        first. The recorder forgets them: it holds no tensor of the script's afterwards."""
        found: dict[str, Any] = dict(self.watch.held)
        frame = self._mode.last_frame
        self.watch.held = {}
        self._mode.last_frame = None
        while frame is not None and frame.f_locals is not frame.f_globals:
            if scripts_own(frame.f_code.co_filename):
                for name, value in frame.f_locals.items():
                    if not name.startswith("_"):
                        found.setdefault(name, value)
            frame = frame.f_back
        return found

    def _stop_recording(self) -> None:
        """Take the dispatch mode and the module hooks off; backward calls are only counted."""
        if not self._entered:
            return
        self._entered = False
        try:
            self._mode.flush()
            self._mode.__exit__(None, None, None)
            self._build_later()
            self._mode.deferred.settle_all()  # nothing watches the writes any more
        finally:
            self._mode.full_collections.release()
            self._settled.release()
            self._young.release()
            for part in self._parts():
                part.remove()

    def _forget_in_child(self) -> None:
        """In a process forked while recording (a DataLoader worker, a hogwild trainer): take
        everything off without looking at what was recorded. The child inherits the forking
        thread's dispatch mode and every hook, and nothing it records is ever shown."""
        if not self._entered:
            return
        self._entered = False
        with contextlib.suppress(Exception):
            _drop_mode(self._mode)
        for part in self._parts():
            with contextlib.suppress(Exception):
                part.remove()
        self._unpatch()
        self._mode.pending = []
        self._mode.full_collections.release()
        self._settled.release()
        self._young.release()

    def _step_starts(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.watch.note_optimizer(optimizer)
        # `args` holds the optimizer itself, then the closure if one computes them in the step
        if kwargs.get("closure", args[1] if len(args) > 1 else None) is None:
            self.watch.note_step_grads(optimizer)
            self.watch.clips.step(optimizer, self.watch.backward_calls)
        self._steps.before(optimizer, args, kwargs)

    def _stepped(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.steps += 1
        self._steps.after(optimizer, args, kwargs)

    def status(self) -> str:
        """What the recording has seen so far, in a few words (the CLI's live progress line)."""
        calls = self.total_calls
        text = f"{calls:,} backward call{'s' if calls != 1 else ''}"
        if self.steps:
            text += f", optimizer step {self.steps:,}"
        if self.stopped_early:
            text += " (recording done, running on)"
        if self.stopping is KeyboardInterrupt:
            text += " (stopping: Ctrl-C again quits at once)"
        elif self.stopping is not None:
            text += " (stopping: --timeout reached)"
        return text

    def request_stop(self, exc_type: type[BaseException] = KeyboardInterrupt) -> None:
        """Ctrl-C or `--timeout`, from another thread: raise `exc_type` in the script where no
        record is half made, at the next op it runs or at the end of the backward call under
        way, so that the calls already completed can still be shown (`busy` says when stopping
        it anywhere is safe)."""
        self.stopping = exc_type
        self._mode.stop_requested = exc_type

    def busy(self) -> bool:
        """Whether gradviz is inside its own work (a backward call it records, reading
        tensors): an exception raised into the script's thread now could cut a record short."""
        return self._entered and (self._active is not None or self._mode.paused > 0)

    def abandon_stop(self) -> None:
        """A second Ctrl-C: the script is stopped from outside at once, and nothing is shown."""
        self.take_stop()
        self.stopping = None

    def take_stop(self) -> bool:
        """Take back a stop no safe point has raised yet (the script's thread is about to be
        interrupted from outside); False if it has been raised already."""
        asked, self._mode.stop_requested = self._mode.stop_requested, None
        return asked is not None

    def _stop_if_done(self, number: int) -> None:
        """After the last call anyone asked for, let the code run on unobserved (full speed)."""
        from torch.utils._python_dispatch import _get_current_dispatch_mode

        if self._stop_after is None or number < self._stop_after:
            return
        if _get_current_dispatch_mode() is self._mode:  # else a mode of the user's sits above
            self.watch.cut_short = True
            self._stop_recording()

    def flush(self) -> None:
        """Attach pending forward records now (before looking at a graph by hand)."""
        if self._entered:
            self._mode.flush()

    # -- interception ------------------------------------------------------------------------
    def _wrap(self, original: Callable[..., Any], kind: str) -> Callable[..., Any]:
        def intercepted(*args: Any, **kwargs: Any) -> Any:
            if not self._entered:
                if self._patched:
                    self._count(args, kwargs)
                return original(*args, **kwargs)
            if not self._take_turn(args, kwargs):
                return original(*args, **kwargs)
            try:
                return self._intercept(original, kind, args, kwargs)
            finally:
                self._busy = None
                self._turn.release()

        intercepted.__wrapped__ = original  # type: ignore[attr-defined]
        intercepted.__doc__ = original.__doc__
        return intercepted

    def _take_turn(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Whether to record this backward call; True holds `_turn` (released by the caller).

        A call made inside the one being recorded (a reentrant checkpoint, a hook's
        `autograd.grad`, also on an engine thread) is part of it, as is one inside gradviz's own
        work. A call of another thread waits until the one being recorded is done, then is
        recorded in turn (threads training one model, Hogwild style, lose no call); one that
        waits `TURN_WAIT` seconds in vain runs unrecorded and is counted (`overlapped`)."""
        me = threading.get_ident()
        busy = self._busy
        if busy == me or _current_autograd_node() is not None:
            return False
        if busy is None and (self._active is not None or self._mode.paused):
            return False  # gradviz's own work, in the recording thread
        if not self._turn.acquire(timeout=TURN_WAIT):
            before = self.unobserved
            self._count(args, kwargs)
            self.overlapped += self.unobserved - before
            self.unobserved = before
            return False
        if not self._entered:  # recording stopped while this call waited
            self._turn.release()
            if self._patched:
                self._count(args, kwargs)
            return False
        self._busy = me
        return True

    def _count(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        tensors = args[0] if args else kwargs.get("tensors", kwargs.get("outputs"))
        if any(isinstance(t, torch.Tensor) and t.requires_grad for t in _as_list(tensors)):
            self.unobserved += 1

    def _intercept(
        self, original: Callable[..., Any], kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        tensors = args[0] if args else kwargs.get("tensors", kwargs.get("outputs"))
        if tracing_tensors(_as_list(tensors)):  # torch.compile tracing a backward it compiles
            return original(*args, **kwargs)
        # `torch.func.grad` computing its gradient, or the function `torch.func.vjp` returned:
        # not a backward call of the script's, and on wrapped tensors without storage
        if in_functorch() or functorch_wrapped(_as_list(tensors)):
            return original(*args, **kwargs)
        if kind == "autograd.grad" and _grads_batched(args, kwargs):
            # a batch of gradients under vmap (a Jacobian's rows): the hooks would see batched
            # tensors, which cannot be read one by one; counted, not drawn
            self.batched += 1
            self._count(args, kwargs)
            return original(*args, **kwargs)
        self._mode.flush()
        self._mode.new_pass()
        if self._mode.values:
            self._mode.adopt(_as_list(tensors))  # a root no op output reached
        roots = [e for e in (gradient_edge(t) for t in _as_list(tensors)) if e is not None]
        if not roots:  # PyTorch raises, unless nothing needs a gradient: say why, if known
            self.no_graph = self.watch.why_no_graph(_as_list(tensors))
            return original(*args, **kwargs)
        frame = USER_FRAMES.find(sys._getframe(2))
        via = _made_by_torch(sys._getframe(2))
        number = len(self.calls) + 1
        self._settled.freeze()
        self.watch.note_call(kind, args, kwargs)
        self.watch.note_frames(frame)
        create_graph = _create_graph(kind, args, kwargs)
        capture = self._begin(roots, number, kind, frame, args, kwargs, create_graph)
        capture.via = via
        self._mode.paused += 0 if create_graph else 1
        try:
            with contextlib.nullcontext() if create_graph else self._mode.off():
                return original(*args, **kwargs)
        except BaseException as exc:
            capture.error = str(exc).split("\n")[0]
            raise
        finally:
            self._mode.paused -= 0 if create_graph else 1
            self._finish(capture)
            self._stop_if_done(number)
            if self._mode.stop_requested:  # asked during the call: stop now it is complete
                self._mode.safe_point()

    def _begin(
        self,
        roots: list[tuple[Any, int]],
        number: int,
        kind: str,
        frame: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        differentiable: bool = False,
    ) -> CallCapture:
        same: int | None = None
        for node, _ in roots:
            calls = node.metadata.setdefault("gradviz_calls", [])
            same = calls[0] if calls and same is None else same
            calls.append(number)
            if differentiable:  # its graph is meant to be differentiated again (`diagnose`)
                node.metadata[CREATE_GRAPH_KEY] = True
        names = Names()
        frames = [frame.f_locals, frame.f_globals] if frame is not None else []
        names.scan_all([*frames, *self.namespaces])
        where = (frame.f_code.co_filename, frame.f_lineno) if frame is not None else (None, None)
        capture = CallCapture(
            roots,
            names,
            number=number,
            kind=kind,  # type: ignore[arg-type]
            where=where,
            deferred=self._mode.deferred if self._mode.values else None,
        )
        capture.leaves_run = kind == "backward" and not _has_inputs(args, kwargs)
        capture.same_graph_as = same
        capture.pinned = self._pin is not None and any(
            self._pin in names.for_output(node, nr) for node, nr in roots
        )
        capture.differentiable = differentiable
        if differentiable:  # the dispatch mode stays on: gradviz's own sums must not pass it
            capture.quiet = self._mode.off
        capture.serials = self._serials
        capture.other_thread = threading.get_ident() != getattr(self, "_thread", None)
        capture.grad_scale = root_scale(roots)
        capture.tensor_hooks = self._tensor_hooks.count > 0
        capture.dist = rank_and_world()
        if capture.dist is not None:
            capture.reduced = ddp_parameters(self.watch.called.keys())
        self._mode.paused += 1
        try:
            with self._mode.off():
                capture.walk()
                capture.attach()
        finally:
            self._mode.paused -= 1
        self._active = capture
        return capture

    def _finish(self, capture: CallCapture) -> None:
        self._mode.paused += 1
        later = False
        try:
            number = capture.number or 0
            decision = self._decide(capture)
            with self._mode.off():  # gradviz's own reads skip the dispatch mode
                capture.detach()
                if decision == "now":
                    graph = capture.build()
                    self.calls.append(capture.info(graph))
                    self.graphs[number] = graph
                else:
                    self.calls.append(capture.light_info())
            if decision == "later":
                self._later.append(capture)
                later = True
            self._prune()
            kept = {*self.graphs, *(c.number or 0 for c in self._later)}
            self.watch.after_call(capture, kept, self._mode.seq)
        finally:
            if not later:
                capture.release()
            self._active = None
            self._mode.paused -= 1

    def _decide(self, capture: CallCapture) -> str:
        """Whether a call's graph is built now, later (it stays the last one), or never."""
        keep, number = self._keep, capture.number or 0
        if capture.pinned:  # kept (the one before it no more, unless `keep` keeps it) ...
            self._pinned = number
            if not (isinstance(keep, int) and keep < 0):
                return "now"
        if isinstance(keep, int) and keep < 0:  # ... and built only once it stays kept
            # DDP's all-reduced gradients are read right after the call
            return "now" if capture.dist is not None else "later"
        if keep == "all":
            return "now"
        if isinstance(keep, int):
            return "now" if number == keep else "no"
        if callable(keep):
            return "now" if keep(number) else "no"
        return "now"

    def _prune(self) -> None:
        """With `keep=-N`, only the last N calls stay (built or waiting to be)."""
        if not (isinstance(self._keep, int) and self._keep < 0):
            return
        numbers = sorted([*self.graphs, *(c.number or 0 for c in self._later)])
        dropped = set(numbers[: max(0, len(numbers) + self._keep)]) - {self._pinned}
        for n in dropped & self.graphs.keys():
            del self.graphs[n]
        for capture in [c for c in self._later if (c.number or 0) in dropped]:
            self._later.remove(capture)
            capture.release()

    def _build_later(self) -> None:
        """Build the graphs of the calls that stayed the last ones."""
        later, self._later = self._later, []
        self._mode.paused += 1
        try:
            with self._mode.off():
                for capture in later:
                    self.graphs[capture.number or 0] = capture.build()
                    capture.release()
        finally:
            self._mode.paused -= 1

    # -- results -----------------------------------------------------------------------------
    def graph(self, call: int = -1) -> Graph:
        """The graph of backward call `call` (1-based; negative counts from the end)."""
        total = len(self.calls)
        if total == 0:
            raise CallError(
                "The code made no backward call, so there is no recorded graph.",
                hint="Call `loss.backward()`, or let gradviz compute the gradients: `trace(loss)`.",
            )
        number = call if call > 0 else total + call + 1
        if not 1 <= number <= total:
            raise CallError(
                f"There is no backward call {call}: the code made {total:,}.",
                hint=(
                    "The only call is 1 (or -1, the last one)."
                    if total == 1
                    else f"Pick a call from 1 to {total:,}, or -1 for the last one."
                ),
            )
        self._build_later()
        if number not in self.graphs:
            raise CallError(
                f"Backward call {number} was not kept while recording.",
                hint="Record with keep='all' or keep=N to keep that call's graph.",
            )
        return self.graphs[number]

    def trace(self, tensor: torch.Tensor | Sequence[torch.Tensor], **kwargs: Any) -> Graph:
        """Trace `tensor` now, with this recording's forward values (see `trace`)."""
        self.flush()
        if self._mode.values:
            self._mode.adopt(_as_list(tensor))
        self._mode.paused += 1
        try:
            namespaces = [*self.namespaces, *kwargs.pop("namespaces", ())]
            return trace(tensor, namespaces=namespaces, watch=self.watch, **kwargs)
        finally:
            self._mode.paused -= 1


#: Metadata key of a node that was the root of a call with `create_graph=True` (a gradient
#: penalty, a PINN's derivatives, MAML's inner step): the graph that holds it is built on it on
#: purpose, in the same iteration.
CREATE_GRAPH_KEY = "gradviz_create_graph"


def keep_out_of_dynamo(modules: ModuleStack, watch: Watch) -> None:
    """Mark the frames gradviz runs inside the user's code as never compiled (`compiled`)."""
    skip_frames(
        ForwardRecorder.__torch_dispatch__,
        ForwardRecorder.flush,
        modules._push,
        modules._pop,
        watch._module_called,
        watch.clips.note,
    )


def record(
    keep: str | int | Callable[[int], bool] = "all",
    namespaces: Sequence[Mapping[str, Any]] = (),
    stop_after: int | None = None,
) -> Recorder:
    """Record forward values and every backward call of a block of code.

    `keep` says which calls keep their full graph: ``"all"``, a call number ``N``, ``-N`` for
    the last N calls, or a predicate. Every call keeps its light `CallInfo` in `calls`. With
    ``-N``, a call's graph (and the summaries of its values) is built only once it is sure to
    stay among the last N: when recording stops or `graph()` is asked, so `graphs` holds them
    from then on.
    With `stop_after=N`, recording stops once call N is recorded: the rest of the block runs
    at full speed, and later backward calls are only counted (`unobserved`).

    Example:
        >>> with graphviz_grad.record() as rec:
        ...     train()                     # the user's own loop, unchanged
        >>> graphviz_grad.write(rec.graph(-1), "last_step.svg")
    """
    return Recorder(keep=keep, namespaces=namespaces, stop_after=stop_after)


def trace(
    tensor: torch.Tensor | Sequence[torch.Tensor],
    *,
    grad_output: str | torch.Tensor | None = None,
    namespaces: Iterable[Mapping[str, Any]] = (),
    grads: bool = True,
    watch: Watch | None = None,
) -> Graph:
    """The annotated graph of `tensor`, with gradients computed by gradviz.

    The gradients come from an extra `torch.autograd.grad` pass over a retained graph: no
    `.grad` field of any tensor is changed. A non-scalar `tensor` needs `grad_output`
    (``"ones"`` or a tensor of its shape). Forward values come from `record()` when the tensor
    was computed inside one, else from whatever the graph saved for backward. `watch` (a
    recording's `Watch`) keeps what the diagnostics read of this graph (`Recorder.trace` passes
    its own).

    Example:
        >>> w = torch.tensor(1.0, requires_grad=True)
        >>> g = graphviz_grad.trace((2.0 * w - 4.0) ** 2)
        >>> g.leaves[0].grad.data
        -8.0
    """
    tensors = _as_list(tensor)
    roots = []
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise RootError(f"Can only trace tensors, not {type(t).__name__}.")
        edge = gradient_edge(t)
        if edge is None:
            raise RootError(
                "The tensor does not require grad, so it has no autograd graph.",
                hint="Set `requires_grad=True` on a leaf it is computed from.",
            )
        roots.append(edge)
    names = Names()
    frame = USER_FRAMES.find(sys._getframe(1))
    frames = [frame.f_locals, frame.f_globals] if frame is not None else []
    names.scan_all([*frames, *namespaces])
    capture = CallCapture(roots, names, kind="gradviz")
    capture.walk()
    if grads:
        _own_pass(capture, tensors, _seeds(tensors, grad_output), names)
    graph = capture.build()
    if watch is not None:
        watch.after_trace(capture, graph)
    capture.release()
    return graph


def _seeds(tensors: list[torch.Tensor], grad_output: str | torch.Tensor | None) -> list[Any]:
    seeds: list[Any] = []
    for t in tensors:
        if isinstance(grad_output, torch.Tensor):
            seeds.append(grad_output)
        elif grad_output == "ones" or t.numel() == 1:
            seeds.append(torch.ones_like(t))
        else:
            raise RootError(
                f"The root has shape {list(t.shape)}; gradients start from a scalar.",
                hint="Reduce it to a scalar (e.g. `.sum()`), or seed it with `--grad-output ones`.",
            )
    return seeds


def _own_pass(capture: CallCapture, tensors: list[Any], seeds: list[Any], names: Names) -> None:
    """Gradients of every node by `autograd.grad`, without touching any `.grad`."""
    leaves = [(i, n.variable) for i, n in enumerate(capture.nodes) if hasattr(n, "variable")]
    retained = [t for _, t in names.tensors() if t.grad_fn is not None and t.retains_grad]
    before = [t.grad for t in retained]
    capture.attach()
    try:
        found = torch.autograd.grad(
            tensors,
            [v for _, v in leaves],
            grad_outputs=seeds,
            retain_graph=True,
            allow_unused=True,
        )
    except RuntimeError as exc:
        capture.error = str(exc).split("\n")[0]
        return
    finally:
        capture.detach()
        for t, g in zip(retained, before):
            t.grad = g
    from .summary import summarize_many

    for (i, _), s in zip(leaves, summarize_many(found)):  # one read for all of them
        capture.leaf_grads[i] = s


def _create_graph(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """`create_graph` of an intercepted call, passed by keyword or by position
    (`backward(tensors, grad_tensors, retain_graph, create_graph)`,
    `grad(outputs, inputs, grad_outputs, retain_graph, create_graph)`)."""
    if "create_graph" in kwargs:
        return bool(kwargs["create_graph"])
    position = 3 if kind == "backward" else 4
    return bool(args[position]) if len(args) > position else False


def _grads_batched(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """`torch.autograd.grad(..., is_grads_batched=True)` (its eighth argument)."""
    flag = kwargs.get("is_grads_batched", args[7] if len(args) > 7 else False)
    return bool(flag)


def _has_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a `backward` call names its `inputs` (only their accumulators run then)."""
    inputs = kwargs.get("inputs", args[5] if len(args) > 5 else None)
    if isinstance(inputs, torch.Tensor):
        return True
    return inputs is not None and len(inputs) > 0


#: Recorders inside their `with` block, for `_forget_all_in_child`.
_RECORDING: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _forget_all_in_child() -> None:
    for recorder in list(_RECORDING):
        recorder._forget_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows, which spawns
    os.register_at_fork(after_in_child=_forget_all_in_child)


def _drop_mode(mode: Any) -> None:
    """Take `mode` off this thread's dispatch stack, leaving any mode above it in place."""
    from torch.utils._python_dispatch import (
        _get_current_dispatch_mode,
        _get_current_dispatch_mode_stack,
        _pop_mode,
        _push_mode,
    )

    if not any(m is mode for m in _get_current_dispatch_mode_stack()):
        return
    leave = mode.__exit__
    above: list[Any] = []
    while _get_current_dispatch_mode() is not mode:
        above.append(_pop_mode())
    leave(None, None, None)
    for other in reversed(above):
        _push_mode(other)


def _as_list(tensors: Any) -> list[Any]:
    if isinstance(tensors, torch.Tensor):
        return [tensors]
    if isinstance(tensors, (list, tuple)):
        return list(tensors)
    return [tensors] if tensors is not None else []


#: torch's own files a backward call passes through on its way from the script.
_PASSING = ("_tensor.py", os.path.join("autograd", "__init__.py"))


def _made_by_torch(frame: Any) -> str | None:
    """The file of torch's own code that made a backward call (`autograd/gradcheck.py`),
    relative to torch's folder, past `Tensor.backward` itself; None when the script made it."""
    while frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR):
        name = frame.f_code.co_filename[len(_TORCH_DIR) :]
        if name not in _PASSING:
            return name
        frame = frame.f_back
    return None
