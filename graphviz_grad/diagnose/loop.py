"""Checks over the backward calls of a loop, from the light per-call records (`CallInfo`).

[loop-nonfinite]: the loss or a gradient becomes NaN/Inf (the first call, and whether the
forward pass or the backward pass produced it).
[loss-diverges]: the loss grows by orders of magnitude over the calls (the learning rate), or
rises because a hand-written update adds the gradient (`ascent`).
[params-frozen]: parameters that get a gradient every call but whose value stops changing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ..model import (
    CallInfo,
    Finding,
    Graph,
    LeafStep,
    TensorSummary,
    display_path,
    has_nonfinite,
)
from ._common import at_line, listing, plural
from .ascent import Uphill, descent, uphill

#: Growth of the loss (last over first) that counts as diverging: three orders of magnitude.
DIVERGE_RATIO = 1e3
#: Calls needed before a trend over the loop is judged.
MIN_CALLS = 3
#: A frozen stretch is at least this many calls and half of the calls of the loop.
FROZEN_CALLS = 3
#: A frozen parameter's gradient at the end is at least this share of its gradient when it
#: stopped moving (a gradient that shrinks to nothing is a parameter at its optimum).
FROZEN_GRAD_SHARE = 0.1


def _what(s: TensorSummary) -> str:
    parts = [f"{s.nan} NaN" if s.nan else "", f"{s.inf} Inf" if s.inf else ""]
    return " and ".join(p for p in parts if p)


def nonfinite(
    calls: Sequence[CallInfo], graph: Graph | None = None, why: Sequence[Finding] = ()
) -> list[Finding]:
    """[loop-nonfinite]: the first call whose loss or a gradient is NaN/Inf (loops only).
    `why`: the findings that say, on `graph` (the call shown), why its loss is NaN/Inf
    (`forward-nonfinite`, `loss-empty`); the loss's finding points to them when that call is
    the first bad one, or when the loss was bad at every call up to it."""
    if len(calls) < 2:
        return []
    for i, call in enumerate(calls):
        if has_nonfinite(call.root_value) and call.root_value is not None:
            said = _said_by(calls[i:], graph, why)
            return [_loss_bad(call, call.root_value, first=i == 0, said=said)]
        bad = [x for x in call.leaves if has_nonfinite(x.grad) or has_nonfinite(x.value)]
        if bad and not _skipped(bad, calls[i + 1 :]):
            return [_grad_bad(call, bad, first=i == 0)]
    return []


def _skipped(bad: list[LeafStep], later: Sequence[CallInfo]) -> bool:
    """A gradient that was non-finite once while the values and every later call stay finite:
    the update was skipped (`torch.amp.GradScaler` does this on purpose), nothing went wrong."""
    if not later or any(has_nonfinite(x.value) for x in bad):
        return False
    return all(
        not has_nonfinite(c.root_value)
        and not any(has_nonfinite(x.grad) or has_nonfinite(x.value) for x in c.leaves)
        for c in later
    )


def _said_by(
    calls: Sequence[CallInfo], graph: Graph | None, why: Sequence[Finding]
) -> Finding | None:
    """The finding of `why` that explains the loss of the call shown, when every call from the
    first bad one (`calls[0]`) to the one shown has a bad loss (the same cause, most likely)."""
    if not why or graph is None or graph.call is None:
        return None
    upto = [c for c in calls if c.number <= graph.call]
    if (
        not upto
        or upto[-1].number != graph.call
        or not all(has_nonfinite(c.root_value) for c in upto)
    ):
        return None
    return why[0]


def _loss_bad(
    call: CallInfo, value: TensorSummary, first: bool, said: Finding | None = None
) -> Finding:
    if said is not None:
        where = "from the first backward call" if first else f"at backward call {call.number}"
        message = (
            f"The loss is non-finite {where}{at_line(call.line)} ({_what(value)}) and stays so: "
            f"`{said.code}` says why, on the call shown."
        )
        hint = (
            f"Fix what `{said.code}` finds; `gradviz doctor --call {call.number}` shows that call."
        )
        return Finding("loop-nonfinite", "error", message, call.file, call.line, (), hint)
    if call.data_nan:  # the data of that very call: not the updates, not an op's domain
        where = (
            "is non-finite from the first backward call"
            if first
            else f"becomes non-finite at backward call {call.number}"
        )
        message = (
            f"The loss {where}{at_line(call.line)} ({_what(value)}), and the "
            f"inputs of that call that need no gradient (the data) hold "
            f"{plural(call.data_nan, 'NaN')}: the data brought it in."
        )
        hint = (
            "Check the data for NaN where it is loaded (`torch.isnan(x).any()`), or drop the "
            f"rows that hold it; `gradviz doctor --call {call.number}` shows where it enters."
        )
        return Finding("loop-nonfinite", "error", message, call.file, call.line, (), hint)
    if first:  # no update ran before it: the initial values or the forward pass itself
        message = (
            f"The loss is non-finite from the first backward call{at_line(call.line)} "
            f"({_what(value)}): the forward pass produced it from the initial values (a value "
            "too large for its dtype, or a log, sqrt or division outside its domain)."
        )
    else:
        message = (
            f"The loss becomes non-finite at backward call {call.number}{at_line(call.line)} "
            f"({_what(value)}); the calls before it were finite: the forward pass produced it, "
            "from the values the earlier updates left (a step too large, or a log, sqrt or "
            "division outside its domain)."
        )
    hint = (
        f"Run `gradviz doctor --call {call.number}` to see where in that call's graph; lower "
        "the learning rate, or clip gradients with `torch.nn.utils.clip_grad_norm_`."
    )
    return Finding("loop-nonfinite", "error", message, call.file, call.line, (), hint)


def _grad_bad(call: CallInfo, bad: list[LeafStep], first: bool) -> Finding:
    values = [x for x in bad if has_nonfinite(x.value)]
    names = listing([x.name for x in bad])
    if values:
        s = values[0].value
        what = f"`{values[0].name}` itself is non-finite ({_what(s) if s else 'NaN/Inf'})"
        why = "it was so from the start" if first else "an earlier update wrote NaN/Inf into it"
    else:
        s = bad[0].grad
        what = f"the gradient of {names} is non-finite ({_what(s) if s else 'NaN/Inf'})"
        why = "the loss was finite, so the backward pass produced it"
    message = (
        f"At backward call {call.number}{at_line(call.line)}, the first to go wrong, {what}: {why}."
        if not first
        else f"From the first backward call{at_line(call.line)}, {what}: {why}."
    )
    hint = (
        f"Run `gradviz doctor --call {call.number}` to see the first non-finite gradient; add an "
        "epsilon to sqrt/log/division, lower the learning rate, or clip the gradients."
    )
    return Finding("loop-nonfinite", "error", message, call.file, call.line, (), hint)


def _loss(call: CallInfo) -> float | None:
    s = call.root_value
    if s is None or s.numel != 1 or s.nan or s.inf:
        return None
    for x in (s.data, s.mean, s.max):
        if isinstance(x, (int, float)):
            return abs(float(x))
    return None


def diverges(
    calls: Sequence[CallInfo], learning_rates: Mapping[str, float] | None = None
) -> list[Finding]:
    """[loss-diverges]: per backward line, the loss ends orders of magnitude above its start.
    `learning_rates`: the largest rate each kind of optimizer stepped with, for the hint."""
    by_site: dict[tuple[str | None, int | None], list[CallInfo]] = {}
    for call in calls:
        by_site.setdefault((call.file, call.line), []).append(call)
    found = []
    for site, group in by_site.items():
        # a leaf that other backward lines also reach (a GAN's discriminator, in the
        # generator's loss) moves by their gradients too: its steps say nothing of this one
        elsewhere = {
            leaf.name for other, calls_there in by_site.items() if other != site
            for c in calls_there for leaf in c.leaves
        }  # fmt: skip
        finding = _diverging(group, learning_rates or {}, elsewhere)
        if finding is not None:
            found.append(finding)
    return found


def _diverging(
    group: list[CallInfo], learning_rates: Mapping[str, float], elsewhere: Collection[str] = ()
) -> Finding | None:
    losses = [(c, v) for c in group if (v := _loss(c)) is not None]
    blew_up = any(has_nonfinite(c.root_value) for c in group)
    if len(losses) < MIN_CALLS:
        return None
    start = min(v for _, v in losses[:MIN_CALLS])
    peak_call, peak = max(losses, key=lambda cv: cv[1])
    last = losses[-1][1]
    growing = sum(b > a for (_, a), (_, b) in zip(losses, losses[1:])) >= 0.6 * (len(losses) - 1)
    big = peak >= DIVERGE_RATIO * max(start, 1e-30) and last >= 0.1 * peak
    # a loss that jumped orders of magnitude and stayed there diverged, trend or not (Adam
    # with a learning rate of 20: 5.8, 9207, 20920, 13950, 12140)
    stayed = last >= DIVERGE_RATIO * max(start, 1e-30)
    # a torch.optim optimizer steps downhill (unless told `maximize=True`): only a
    # hand-written update can add the gradient by mistake
    if start > 0 and growing and last > start and not learning_rates:
        climbing = uphill(group, exclude=elsewhere)
        if climbing is not None:  # the update adds the gradient: not the learning rate
            return _ascent(group, climbing, start, last, peak, peak_call.number)
    if not (big and (growing or blew_up or stayed)) or start <= 0:
        return None
    first = group[0]
    end = ", then NaN/Inf" if blew_up else ""
    if not blew_up and losses[-1][0] is not peak_call:
        end = f", {last:.3g} at call {losses[-1][0].number}"
    message = (
        f"The loss diverges over the {plural(len(group), 'backward call')}"
        f"{at_line(first.line)}: from {start:.3g} to {peak:.3g} (call {peak_call.number}), "
        f"{math.log10(peak / start):.0f} orders of magnitude up{end}. Each update overshoots: "
        "the learning rate is the usual suspect."
    )
    return Finding(
        "loss-diverges", "warning", message, first.file, first.line, (), _lower(learning_rates)
    )


def _ascent(
    group: list[CallInfo], up: Uphill, start: float, last: float, peak: float, peak_at: int
) -> Finding:
    """[loss-diverges]: a hand-written update moves parameters along their gradient."""
    first = group[0]
    name = up.names[0]
    top = f", {peak:.3g} at call {peak_at}" if peak > last else ""
    where = f" at line {up.line}, `{up.text}`," if up.line and up.text else ""
    message = (
        f"The loss rises over the {plural(len(group), 'backward call')}{at_line(first.line)}: "
        f"from {start:.3g} to {last:.3g}{top}. The update{where} moves "
        f"{listing(list(up.names))} along {'its' if len(up.names) == 1 else 'their'} gradient, "
        f"uphill: at {up.steps} of {up.compared} steps the change of `{name}` has the sign of "
        f"`{name}.grad`. Gradient descent subtracts the gradient; this adds it."
    )
    fixed = descent(up.text) if up.text else None
    if fixed is not None:
        hint = f"Subtract the gradient: `{fixed}` (a loss to maximise: minimise its negative)."
    else:
        w = name if name.isidentifier() else "p"
        hint = (
            f"Subtract the gradient: `{w}.data = {w}.data - lr * {w}.grad.data`, or "
            f"`with torch.no_grad(): {w} -= lr * {w}.grad` (a loss to maximise: minimise "
            "its negative)."
        )
    file, line = (up.file, up.line) if up.line else (first.file, first.line)
    return Finding("loss-diverges", "warning", message, file, line, (), hint)


#: Optimizers whose step moves a parameter by about the learning rate whatever the size of its
#: gradient (they divide by a running scale of it): clipping the gradient does not shorten it.
ADAPTIVE = frozenset(
    {"Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "SparseAdam"}
)


def _lower(learning_rates: Mapping[str, float]) -> str:
    """The hint of `loss-diverges`: the rates to lower, by optimizer, when the run stepped any."""
    rates = " and ".join(f"`{kind}` lr={lr:g}" for kind, lr in sorted(learning_rates.items()))
    adaptive = sorted(k for k in learning_rates if k in ADAPTIVE)
    if adaptive:
        return (
            f"Lower the learning rate ({rates}) by 10x until the loss goes down: `{adaptive[0]}` "
            "moves every parameter by about lr a step whatever the size of its gradient, so "
            "clipping gradients does not shorten its steps."
        )
    where = f" ({rates})" if rates else ""
    return (
        f"Lower the learning rate{where} by 10x until the loss goes down, normalise the "
        "inputs, or clip gradients with `torch.nn.utils.clip_grad_norm_`."
    )


def _unread(s: TensorSummary) -> bool:
    return s.data is None and s.mean is None and s.numel > 0


def _same(a: TensorSummary | None, b: TensorSummary | None) -> bool:
    """Whether two values were read and are the same (one that could not be read, a meta
    tensor or one whose memory FSDP freed, is the same as nothing)."""
    if a is None or b is None or _unread(a) or _unread(b):
        return False
    return (a.shape, a.data, a.norm, a.mean, a.min, a.max) == (
        b.shape,
        b.data,
        b.norm,
        b.mean,
        b.min,
        b.max,
    )


def _norm(s: TensorSummary | None) -> float:
    if s is None or s.nan or s.inf:
        return 0.0
    if s.norm is not None:
        return s.norm
    return abs(float(s.data)) if isinstance(s.data, (int, float)) else 0.0


def frozen(
    calls: Sequence[CallInfo],
    gradless: tuple[int, str | None, int | None] | None = None,
    explained: Collection[str] = (),
    leaves: Leaves | None = None,
) -> list[Finding]:
    """[params-frozen]: a leaf that gets a real gradient every call and whose value has stopped
    changing for the last calls (at least half of them): the update does not reach it.
    `gradless`: (count, file, line) of optimizer steps taken with no `.grad` held, which says
    why (`zero_grad()` between backward and step). `explained`: names another finding accounts
    for (the parameters of layers kept in a plain list). `leaves` (see `Leaves`): a module's
    parameter that never moved, in a script that updates nothing, is not being trained (FGSM or
    a saliency map differentiates with respect to the input) and is not reported; one no
    optimizer steps, while optimizers step others (neural style transfer optimises the image
    through a fixed network), is an info that offers both readings. One that moved and then
    stopped is always a warning."""
    series: dict[str, list[tuple[CallInfo, LeafStep]]] = {}
    for call in calls:
        if call.same_graph_as is not None:  # the same graph again: no new forward, no step
            continue
        if call.kind == "autograd.grad":  # gradients returned, not put in `.grad`: what they
            continue  # are for (per-sample gradients, a Jacobian's rows) needs no update
        seen: set[str] = set()
        for step in call.leaves:
            # a root that is itself a leaf (`torch.tensor(loss.item(), requires_grad=True)`) is
            # no parameter: the `cut` finding explains it
            if step.name == call.root_name and call.nodes == 1:
                continue
            if step.name not in seen and step.name != "leaf" and step.name not in explained:
                seen.add(step.name)
                series.setdefault(step.name, []).append((call, step))
    since = {name: _stuck_since(steps) for name, steps in series.items()}
    stuck = [(name, steps) for name, steps in series.items() if since[name] is not None]
    fixed: list[tuple[str, list[tuple[CallInfo, LeafStep]]]] = []
    if leaves is not None:
        never = {name for name, _ in stuck if since[name] == 0}
        if not leaves.updates:
            never &= leaves.module_params
            stuck = [(name, steps) for name, steps in stuck if name not in never]
        else:
            fixed = [(name, steps) for name, steps in stuck if name in never & leaves.outside]
            stuck = [
                (name, steps)
                for name, steps in stuck
                if name not in leaves.outside or name not in never
            ]
    found = [_frozen_finding(stuck, gradless)] if stuck else []
    if fixed and leaves is not None:
        found.append(_fixed_finding(fixed, leaves))
    return found


@dataclass(frozen=True)
class Leaves:
    """What the run says of the leaves `frozen` sees, by their names in `steps`."""

    #: The script updates leaves: an optimizer, a write after a backward call, `.data`.
    updates: bool
    #: The parameters of the script's modules.
    module_params: frozenset[str]
    #: The module parameters no optimizer steps, when optimizers step others.
    outside: frozenset[str]


def _freeze_these(names: list[str], leaves: Leaves) -> str:
    """How to turn off the gradients of `names`: their model's, or, when an optimizer trains
    other parameters of that model (LoRA's adapters beside the base), the modules that own
    them (`model.layers.0.base.requires_grad_(False)`)."""
    tops = sorted({n.split(".")[0] for n in names})
    beside = any(p.split(".")[0] in tops and p not in leaves.outside for p in leaves.module_params)
    if not beside:
        return " and ".join(f"`{t}.requires_grad_(False)`" for t in tops)
    owners = sorted(
        {n.rsplit(".", 1)[0] for n in names if "." in n},
        key=lambda o: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", o)],
    )
    shown = ", ".join(f"`{o}.requires_grad_(False)`" for o in owners[:3])
    more = len(owners) - 3
    return shown + (f" and the same for the {more} other modules" if more > 0 else "")


def _fixed_finding(
    fixed: list[tuple[str, list[tuple[CallInfo, LeafStep]]]], leaves: Leaves
) -> Finding:
    """Parameters that get a gradient at every call, never move, and no optimizer steps."""
    _, steps = fixed[0]
    first, last = steps[0][0], steps[-1][0]
    one = len(fixed) == 1
    names = listing([n for n, _ in fixed])
    message = (
        f"{names} {'gets' if one else 'get'} a gradient at every backward call"
        f"{at_line(last.line)}, but no optimizer steps {'it' if one else 'them'}, and "
        f"{'it has' if one else 'they have'} not changed since call {first.number}."
    )
    hint = (
        "If they are meant to stay fixed (a pretrained feature extractor, a frozen backbone), "
        f"turn their gradients off ({_freeze_these([n for n, _ in fixed], leaves)}): backward "
        "then skips them, and nothing piles up in their `.grad`. If they should learn, give "
        "them to the optimizer."
    )
    return Finding("params-frozen", "info", message, first.file, first.line, (), hint)


def _stuck_since(steps: list[tuple[CallInfo, LeafStep]]) -> int | None:
    """The index from which the value no longer changes (None if it still moves)."""
    if len(steps) < FROZEN_CALLS:
        return None
    start = len(steps) - 1
    while start > 0 and _same(steps[start - 1][1].value, steps[-1][1].value):
        start -= 1
    span = steps[start:]
    if len(span) < max(FROZEN_CALLS, (len(steps) + 1) // 2):
        return None
    if len(span) <= _accumulation_window(steps):
        return None  # no longer than the micro-batches of one optimizer step: still to come
    grads = [_norm(s.grad) for _, s in span]
    if min(grads) <= 0 or grads[-1] < FROZEN_GRAD_SHARE * grads[0]:
        return None
    if start > 0 and _below_precision(steps[start - 1][1], span[0][1], grads[-1]):
        return None
    if start == 0 and max(grads) < _RESOLUTION * _norm(span[-1][1].value):
        # never moved, with a gradient float rounding swallows at any learning rate up to 1
        # (a bias a softmax over the batch cancels): no update is lost, there is none to make
        return None
    return start


def _accumulation_window(steps: list[tuple[CallInfo, LeafStep]]) -> int:
    """The most calls whose gradients added up before one zeroing (gradient accumulation over
    micro-batches: `loss / 4`, `step()` and `zero_grad()` every 4th call); 1 when every call
    starts from no gradient. Only windows a zeroing closed count: gradients that are never
    zeroed say nothing of when the step comes."""
    longest = run = 1
    for _, step in steps[1:]:
        if _norm(step.grad_before) > 0:
            run += 1
        else:
            longest, run = max(longest, run), 1
    return longest


#: Relative change of a value below which float32 rounding swallows an update.
_RESOLUTION = 1e-6


def _below_precision(before: LeafStep, after: LeafStep, grad: float) -> bool:
    """Whether the last update's step size (change over gradient) applied to the gradient now
    is lost in the value's rounding: a converged parameter, not a frozen one."""
    change = _change(before.value, after.value)
    g = _norm(before.grad)
    scale = _norm(after.value)
    if g <= 0 or scale <= 0:
        return False
    return change / g * grad < _RESOLUTION * scale


def _change(a: TensorSummary | None, b: TensorSummary | None) -> float:
    if a is None or b is None:
        return 0.0
    pairs = [(a.mean, b.mean), (a.norm, b.norm)]
    if isinstance(a.data, (int, float)) and isinstance(b.data, (int, float)):
        pairs.append((float(a.data), float(b.data)))
    return max((abs(x - y) for x, y in pairs if x is not None and y is not None), default=0.0)


def _frozen_finding(
    stuck: list[tuple[str, list[tuple[CallInfo, LeafStep]]]],
    gradless: tuple[int, str | None, int | None] | None,
) -> Finding:
    _, steps = stuck[0]
    call = steps[_stuck_since(steps) or 0][0]
    last = steps[-1][0]
    each = "; ".join(
        f"`{n}` unchanged from call {s[_stuck_since(s) or 0][0].number}, gradient norm "
        f"{_norm(s[-1][1].grad):.3g} at call {s[-1][0].number}"
        for n, s in stuck[:4]
    )
    more = f" (and {len(stuck) - 4} more)" if len(stuck) > 4 else ""
    one = len(stuck) == 1
    message = (
        f"{listing([n for n, _ in stuck])} {'gets' if one else 'get'} a gradient at every "
        f"backward call{at_line(last.line)} but {'its' if one else 'their'} value stops "
        f"changing: {each}{more}. The update never reaches {'it' if one else 'them'}."
    )
    hint = (
        "Call `optimizer.step()` after backward, give the optimizer these parameters "
        "(`torch.optim.SGD(model.parameters(), ...)`), check the learning rate is not 0, and "
        "update the tensor itself (`w -= lr * w.grad` under `no_grad`), not a copy."
    )
    if gradless is not None and gradless[0] * 2 >= len(steps):  # most steps found no gradient
        count, file, line = gradless
        ran = (
            f" `optimizer.step()`{at_line(line)} ran {plural(count, 'time')} with no gradient held"
        )
        same_file = file is None or last.file is None or display_path(file) == last.file
        if line is not None and last.line is not None and same_file and line < last.line:
            # the step comes before backward in the loop: it runs on the cleared gradients
            message += (
                f"{ran}: it runs before `backward()`{at_line(last.line)}, right after the "
                "gradients were cleared."
            )
            hint = (
                "Call `optimizer.step()` after `loss.backward()`: `optimizer.zero_grad()`, "
                "`loss.backward()`, `optimizer.step()`, in that order."
            )
        else:
            message += f"{ran}: the gradients were cleared between backward and step."
            hint = (
                "Call `optimizer.zero_grad()` before `loss.backward()` (or after "
                "`optimizer.step()`), never between them."
            )
    return Finding("params-frozen", "warning", message, call.file, call.line, (), hint)
