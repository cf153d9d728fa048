"""Gradient ascent by mistake: a hand-written update that adds the gradient (`w.data = w.data +
lr * w.grad.data`), read from what each backward call recorded of a leaf, its value before the
call and the gradient the call gave it. Between two calls, descent moves a parameter against
its gradient; an update that moves it along the gradient at nearly every step climbs the loss,
whatever the learning rate. `loss-diverges` then names the update, not the learning rate.

Only leaves whose values are kept whole are compared (the lesson's `w`, a bias, a small
layer): a large tensor keeps statistics only, and its steps are not judged.
"""

from __future__ import annotations

import linecache
import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..model import CallInfo, LeafStep, TensorSummary

#: Share of the compared steps that go uphill for a leaf to count as climbing.
UPHILL_SHARE = 0.8
#: Steps along the gradient needed before a leaf is said to climb.
MIN_UPHILL = 3


@dataclass(frozen=True)
class Uphill:
    """Leaves that every update moved along their gradient, and the line that updates them."""

    names: tuple[str, ...]
    steps: int  # steps along the gradient, over the leaves named
    compared: int  # steps that moved, over the same leaves
    file: str | None = None
    line: int | None = None
    text: str | None = None


def uphill(group: Sequence[CallInfo], exclude: Collection[str] = ()) -> Uphill | None:
    """The leaves of `group` (the calls of one backward line) that climb, if any; not those
    named in `exclude` (other lines' gradients move them too)."""
    by_name: dict[str, list[LeafStep]] = {}
    for call in group:
        for leaf in call.leaves:
            if leaf.name not in exclude:
                by_name.setdefault(leaf.name, []).append(leaf)
    names: list[str] = []
    steps = compared = 0
    for name, seen in by_name.items():
        signs = [_dot(a, b) for a, b in zip(seen, seen[1:])]
        up = sum(1 for s in signs if s is not None and s > 0)
        moved = sum(1 for s in signs if s is not None and s != 0)
        if up >= MIN_UPHILL and up >= UPHILL_SHARE * moved:
            names.append(name)
            steps, compared = steps + up, compared + moved
    if not names:
        return None
    file, line, text = _update_line(group[0].file, names)
    return Uphill(tuple(names), steps, compared, file, line, text)


def _dot(before: LeafStep, after: LeafStep) -> float | None:
    """(value after − value before) · the gradient of the call before; None if not known."""
    v0, v1, g = _flat(before.value), _flat(after.value), _flat(before.grad)
    if v0 is None or v1 is None or g is None or not len(v0) == len(v1) == len(g):
        return None
    return sum((b - a) * x for a, b, x in zip(v0, v1, g))


def _flat(s: TensorSummary | None) -> list[float] | None:
    """The kept elements of `s`, flat, when every one is a finite number."""
    if s is None or s.data is None:
        return None
    out: list[float] = []
    stack: list[object] = [s.data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            if not math.isfinite(item):
                return None
            out.append(float(item))
        else:
            return None
    return out if len(out) == s.numel else None


#: A line that adds a gradient to a value: `w += lr * w.grad`, `w.data = w.data + lr *
#: w.grad.data`, `p.add_(p.grad, alpha=lr)`.
_ADDS = re.compile(
    r"(\+=[^#\n]*\.grad\b)|(=\s*[\w.\[\]]+\s*\+[^#\n]*\.grad\b)|(\.add_\([^#\n]*\.grad\b(?![^#\n]*-))"
)


def _update_line(
    file: str | None, names: Sequence[str]
) -> tuple[str | None, int | None, str | None]:
    """The line of `file` that adds a gradient to a value, preferring one that names a leaf
    of `names`: (file, line, its text), or Nones when none does."""
    if not file:
        return None, None, None
    found: tuple[str | None, int | None, str | None] = (None, None, None)
    for number, raw in enumerate(linecache.getlines(file), 1):
        text = raw.split("#", 1)[0].strip()
        if not _ADDS.search(text) or not _updates_itself(text):
            continue
        if any(re.search(rf"(?<![\w.]){re.escape(n)}\.grad\b", text) for n in names):
            return file, number, text
        if found[1] is None:
            found = (file, number, text)
    return found


def _updates_itself(text: str) -> bool:
    """Whether the line changes the tensor whose gradient it reads (`p.data += lr * p.grad`),
    not another one (`total += p.grad`, a log)."""
    target = re.split(r"\+=|(?<![=!<>+\-*/])=(?!=)", text, maxsplit=1)[0].split(":")[-1]
    base = re.match(r"\s*([A-Za-z_]\w*)", target)
    owner = re.search(r"([A-Za-z_]\w*)(?:\.\w+|\[[^\]]*\])*?\.grad\b", text)
    return base is not None and owner is not None and base[1] == owner[1]


def descent(text: str) -> str | None:
    """The update line `text` with the gradient subtracted (`w += lr * w.grad` ->
    `w -= lr * w.grad`), or None when it is not one of the simple forms."""
    if "+=" in text:
        return text.replace("+=", "-=", 1)
    found = re.search(r"=\s*[\w.\[\]]+\s*\+", text)
    if found is not None:
        return text[: found.end() - 1] + "-" + text[found.end() :]
    return None
