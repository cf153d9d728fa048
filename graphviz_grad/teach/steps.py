"""`gradviz steps`: every backward call of a run as one row, and how the numbers moved.

Reads only `Recorder.calls` (one light `CallInfo` per call): the root's value, each leaf's value
before the call and the gradient it got, the graph's size. A leaf is followed across calls by
its name. Tensors that are not one number are shown by their summary and followed by their norm.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from graphviz_grad.diagnose.calls import added_up
from graphviz_grad.model import CallInfo, LeafStep, TensorSummary, calls_by_root
from graphviz_grad.render.format import fmt_number, fmt_summary
from graphviz_grad.render.plot import plotted
from graphviz_grad.teach.formulas import scalar

BARS = "▁▂▃▄▅▆▇█"
#: Sparklines are at most this many characters; longer series are averaged into buckets.
SPARK_WIDTH = 60


@dataclass(frozen=True)
class Row:
    """One backward call, flattened: the root value and per leaf (value, grad)."""

    call: int
    root: TensorSummary | None
    leaves: dict[str, tuple[TensorSummary | None, TensorSummary | None]]
    nodes: int
    error: str | None = None
    root_name: str | None = None


def leaf_names(calls: Sequence[CallInfo]) -> list[str]:
    """Every leaf name, in the order first seen."""
    names: list[str] = []
    for call in calls:
        for leaf in call.leaves:
            if leaf.name not in names:
                names.append(leaf.name)
    return names


#: A name that stands for more tensors than this gets one column, labelled with their count.
SPLIT_MOST = 4


def distinct_leaves(calls: Sequence[CallInfo]) -> list[CallInfo]:
    """`calls`, with a leaf name that stands for several tensors over the calls told apart:
    by shape (`self.weight [500, 784]`, each layer's in a layer-by-layer loop), then by tensor
    object (`self.bias`, `self.bias (2)`: the layers' biases of one shape; `model.lin.weight (2)`
    of a model made anew), one column and one sparkline per tensor, not one per name. That is
    when each of up to `SPLIT_MOST` tensors lasts several calls; a name that is a new tensor at
    nearly every call (a new `data` each batch, `w` rebuilt by each update) keeps one column,
    labelled with the count: `data (64 tensors)`."""
    shapes: dict[str, set[tuple[int, ...]]] = {}
    for call in calls:
        for leaf in call.leaves:
            if leaf.value is not None:
                shapes.setdefault(leaf.name, set()).add(tuple(leaf.value.shape))
    mixed = {name for name, found in shapes.items() if len(found) > 1}

    def shaped(leaf: LeafStep) -> str:
        if leaf.name not in mixed or leaf.value is None:
            return leaf.name
        return f"{leaf.name} {list(leaf.value.shape)}"

    seen: dict[str, Counter[int]] = {}
    for call in calls:
        for leaf in call.leaves:
            if leaf.tensor:
                seen.setdefault(shaped(leaf), Counter())[leaf.tensor] += 1
    labels: dict[tuple[str, int], str] = {}
    for name, counts in seen.items():
        if len(counts) < 2:
            continue
        if len(counts) <= SPLIT_MOST and min(counts.values()) > 1:
            for k, tensor in enumerate(counts):  # in the order first seen
                labels[(name, tensor)] = name if k == 0 else f"{name} ({k + 1})"
        else:
            for tensor in counts:
                labels[(name, tensor)] = f"{name} ({len(counts)} tensors)"
    if not mixed and not labels:
        return list(calls)

    def named(leaf: LeafStep) -> LeafStep:
        name = shaped(leaf)
        name = labels.get((name, leaf.tensor), name)
        return leaf if name == leaf.name else replace(leaf, name=name)

    return [replace(c, leaves=tuple(named(x) for x in c.leaves)) for c in calls]


def root_name(calls: Sequence[CallInfo]) -> str:
    """What the root is called in the script (``loss``), the most common name over the calls;
    ``root`` when it has none."""
    names = Counter(c.root_name for c in calls if c.root_name)
    return names.most_common(1)[0][0] if names else "root"


#: A table of more calls than this shows every K-th call by default (`auto_every`).
AUTO_ROWS = 100


def auto_every(total: int, most: int = AUTO_ROWS // 2) -> int:
    """The K of `--every` a table of `total` calls gets when none is given: 1 up to `AUTO_ROWS`
    calls, else the first of 2, 5, 10, 20, 50, 100... that leaves at most `most` rows (and the
    last call), so that rows fall on round call numbers (1, 101, 201...)."""
    if total <= AUTO_ROWS:
        return 1
    k, steps = 1, (2, 5, 10)
    while True:
        for m in steps:
            if math.ceil(total / (k * m)) <= most:
                return k * m
        k *= 10


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 100th."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def rows(calls: Sequence[CallInfo], every: int = 1) -> list[Row]:
    """One row per call; with `every` K, calls 1, 1+K, 1+2K... and always the last one."""
    picked = [c for i, c in enumerate(calls) if i % every == 0 or i == len(calls) - 1]
    return [
        Row(
            c.number,
            c.root_value,
            {x.name: (x.value, x.grad) for x in c.leaves},
            c.nodes,
            c.error,
            c.root_name,
        )
        for c in picked
    ]


def number(s: TensorSummary | None) -> float | None:
    """What a sparkline follows: the number itself, else the norm; NaN or ±inf when the tensor
    holds one (its summary's statistics are those of the finite rest), as in the picture."""
    return plotted(s)


def sparkline(values: Sequence[float | None], width: int = SPARK_WIDTH) -> str:
    """``▁▂▅█``: each value's height between the series' finite min and max; gaps are spaces,
    NaN is ``!``, +inf ``↑`` and -inf ``↓`` (a loop that blows up still gets its line)."""
    series = _buckets(list(values), width)
    known = [v for v in series if v is not None and math.isfinite(v)]
    if not known and all(v is None for v in series):
        return ""
    lo, hi = (min(known), max(known)) if known else (0.0, 0.0)
    span = hi - lo
    out = []
    for v in series:
        if v is None:
            out.append(" ")
        elif not math.isfinite(v):
            out.append(_NONFINITE["nan" if math.isnan(v) else ("+" if v > 0 else "-")])
        else:
            level = 0 if span == 0 else round((v - lo) / span * (len(BARS) - 1))
            out.append(BARS[min(max(level, 0), len(BARS) - 1)])
    return "".join(out)


#: How a sparkline shows a value that is not a finite number.
_NONFINITE = {"nan": "!", "+": "↑", "-": "↓"}


def _buckets(values: list[float | None], width: int) -> list[float | None]:
    """`values` averaged into `width` buckets; a bucket holding a NaN/inf shows the first one."""
    if len(values) <= width:
        return values
    out: list[float | None] = []
    for b in range(width):
        chunk = values[b * len(values) // width : (b + 1) * len(values) // width]
        known = [v for v in chunk if v is not None]
        bad = [v for v in known if not math.isfinite(v)]
        if bad:
            out.append(bad[0])
        else:
            out.append(_mean(known))
    return out


def _mean(values: list[float]) -> float | None:
    """The mean, exact for equal values (a constant series stays flat, not ▁█ from rounding),
    computed so that large finite values do not overflow to inf."""
    if not values:
        return None
    if min(values) == max(values):
        return values[0]
    try:
        total = math.fsum(values)
    except OverflowError:  # finite numbers whose sum is past the float range: fsum raises
        total = math.inf
    if math.isfinite(total):
        return total / len(values)
    return math.fsum(v / len(values) for v in values)


class StepsTable:
    """A rich renderable: one row per backward call, then sparklines of the loss and leaves.

    When one column per leaf does not fit the console (an `nn.Module` at 80 columns), the table
    keeps the call, the loss and the size, and each leaf gets a row of its own below: its value
    and gradient at the first and the last call, with sparklines between. Nothing is cut.

    Example:
        >>> Console().print(StepsTable(recorder.calls, every=10))
    """

    def __init__(self, calls: Sequence[CallInfo], *, every: int = 1, precision: int = 4) -> None:
        self.calls = list(calls)
        self.every = every
        self.precision = precision
        self.names = leaf_names(self.calls)
        self.root = root_name(self.calls)
        #: Several roots (a GAN's two losses): a column names each call's, and each has its own
        #: sparkline.
        self.by_root = calls_by_root(self.calls)

    def table(self, leaves: bool = True) -> Table:
        """One row per call: the call, the root, per leaf (with `leaves`) value and gradient."""
        table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
        table.add_column("call", justify="right", no_wrap=True)
        if self.by_root:
            table.add_column("root", no_wrap=True)
        table.add_column("value" if self.by_root else self.root, justify="right", no_wrap=True)
        names = self.names if leaves else []
        for name in names:
            table.add_column(name, justify="right", no_wrap=True)
            table.add_column(f"∂/∂{name}", justify="right", no_wrap=True)
        table.add_column("nodes", justify="right", no_wrap=True)
        for row in rows(self.calls, self.every):
            cells = [str(row.call), self._fmt(row.root)]
            if self.by_root:
                cells.insert(1, row.root_name or "root")
            for name in names:
                value, grad = row.leaves.get(name, (None, None))
                cells += [self._fmt(value), self._fmt(grad)]
            table.add_row(*cells, str(row.nodes))
        return table

    def _fmt(self, s: TensorSummary | None) -> str:
        """A number as itself; a tensor as its norm, ``‖1.726‖`` (the table stays narrow)."""
        value = number(s)
        if value is None:
            return ""
        text = fmt_number(value, self.precision)
        return text if scalar(s) is not None else f"‖{text}‖"

    def _root_series(self) -> list[tuple[str, list[float | None]]]:
        """The root's value over the calls; with several roots, each over its own calls."""
        if not self.by_root:
            return [(self.root, [number(c.root_value) for c in self.calls])]
        return [(name, [number(c.root_value) for c in own]) for name, own in self.by_root.items()]

    def _series(self) -> list[tuple[str, list[float | None]]]:
        series = self._root_series()
        by_name = [{x.name: x for x in c.leaves} for c in self.calls]
        for name in self.names:
            # over the calls whose graph holds the leaf (a GAN's generator is in every other)
            found = [x for x in (leaves.get(name) for leaves in by_name) if x is not None]
            series.append((name, [number(x.value) for x in found]))
            series.append((f"∂/∂{name}", [number(x.grad) for x in found]))
        return series

    def _ends(self, values: list[float | None]) -> str:
        """``first → last`` of a series (one number when there is one call)."""
        known = [v for v in values if v is not None]
        if not known:
            return ""
        first = fmt_number(known[0], self.precision)
        return first if len(values) == 1 else f"{first} → {fmt_number(known[-1], self.precision)}"

    def sparklines(self, max_width: int = 100) -> list[str]:
        series = self._series()
        width = max(len(n) for n, _ in series)
        lines = []
        for name, values in series:
            ends = self._ends(values)
            if not ends:
                continue
            room = max(8, min(SPARK_WIDTH, max_width - width - len(ends) - 4))
            lines.append(f"{name.ljust(width)}  {sparkline(values, room)}  {ends}")
        return lines

    def leaf_rows(self, max_width: int) -> list[tuple[str, str, str]]:
        """Per leaf (the root first): name, value and gradient over all calls, each as a
        sparkline and its first → last numbers (`max_width` sizes the sparklines)."""
        series = dict(self._series())
        names = [*(self.by_root or [self.root]), *self.names]
        ends = [(self._ends(series[n]), self._ends(series.get(f"∂/∂{n}", []))) for n in names]
        # the first column is as wide as its heading at least (`leaf_view`)
        fixed = max(len(n) for n in [*names, "over all calls"]) + sum(
            max(len(e[i]) for e in ends) for i in (0, 1)
        )
        room = max(5, min(len(self.calls), 24, (max_width - fixed - 8) // 2))
        out = []
        for name, (value, grad) in zip(names, ends, strict=True):
            cells = []
            for text, values in ((value, series[name]), (grad, series.get(f"∂/∂{name}", []))):
                spark = sparkline(values, room) if len(values) > 1 and text else ""
                cells.append(f"{spark} {text}".strip())
            out.append((name, cells[0], cells[1]))
        return out

    def leaf_view(self, max_width: int) -> Table | Group:
        """The leaves over all calls: a table of name, value and gradient when it fits in
        `max_width`, else one short block per leaf (name, then value and gradient)."""
        found = self.leaf_rows(max_width)
        heads = ("over all calls", "value", "gradient")
        widths = [max(len(r[i]) for r in [heads, *found]) for i in range(3)]
        if sum(widths) + 4 <= max_width:
            table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
            for head in heads:
                table.add_column(head, no_wrap=True)
            for row in found:
                table.add_row(*row)
            return table
        blocks: list[Text] = [Text("over all calls", style="bold")]
        for name, value, grad in found:
            blocks.append(Text(name, style="bold", overflow="fold"))
            if not grad or len(value) + len(grad) + 20 <= max_width:
                line = Text.assemble("  value ", value, *(("   gradient ", grad) if grad else ()))
                blocks.append(line)
            else:  # one line each, rather than a gradient wrapped under its label
                blocks.append(Text.assemble("  value    ", value))
                blocks.append(Text.assemble("  gradient ", grad))
        return Group(*blocks)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.calls:
            yield Text("The script made no backward call.")
            return
        total = len(self.calls)
        shown = "" if self.every == 1 else f", every {ordinal(self.every)} shown"
        values = [scalar(x.value) is None for c in self.calls for x in c.leaves]
        if any(values):  # a one-element tensor beside them is its signed number, not a norm
            which = "tensors" if all(values) else "tensors of more than one element"
            shown += f"; {which} are shown by their norm ‖·‖"
        head = Text(f"{total:,} backward call{'s' if total != 1 else ''}{shown}", style="bold")
        warn = [Text(line, style="yellow") for line in self.warnings()]
        wide = self.table()
        need = Measurement.get(console, options.update(max_width=10**6), wide).maximum
        if need <= options.max_width:
            spark = [Text(line) for line in self.sparklines(options.max_width)]
            body: list[Text | Table] = [head, wide, *warn, Text("")]
            yield Group(*body, Text("over all calls", style="bold"), *spark)
            return
        note = Text(
            f"One column per leaf needs {need} columns; `--format csv` has them all.",
            style="dim",
        )
        narrow: list[Text | Table] = [head, self.table(leaves=False), *warn, Text("")]
        yield Group(*narrow, self.leaf_view(options.max_width), note)

    def warnings(self) -> list[str]:
        """Leaves whose `.grad` was not zero when a backward call began, as `doctor`'s
        grad-accumulates reads it (`added_up`: not a sum that no update used, as a GAN's
        discriminator gets in the generator's call, nor a `torch.autograd.grad` call). Leaves
        with the same calls share one note."""
        hits, _, _ = added_up(self.calls)
        calls: dict[str, list[int]] = {}
        updated: set[str] = set()
        for call, name, stepped in hits:
            calls.setdefault(name, []).append(call.number)
            if stepped:
                updated.add(name)
        groups: dict[tuple[tuple[int, ...], bool], list[str]] = {}
        for name, found in calls.items():
            groups.setdefault((tuple(found), name in updated), []).append(name)
        out = []
        for (numbers, stepped), names in groups.items():
            shown = ", ".join(str(n) for n in numbers[:5]) + (", …" if len(numbers) > 5 else "")
            who = ", ".join(f"{n}.grad" for n in names[:3])
            if len(names) > 3:
                who += f" and {len(names) - 3} more"
            was = "was" if len(names) == 1 else "were"
            if stepped:
                tail = (
                    "so the new gradient was added to the old one and an update used the sum "
                    "(zero it after each step)."
                )
            else:
                tail = "so the gradients of these calls add up (fine for micro-batches)."
            out.append(f"note: {who} {was} not zero when call(s) {shown} began, {tail}")
        inside = [c for c in self.calls if c.via is not None]
        if inside:
            files = list(dict.fromkeys(c.via for c in inside if c.via))
            lines = sorted({c.line for c in inside if c.line})
            shown = ", ".join(str(n) for n in lines[:5]) + (", …" if len(lines) > 5 else "")
            line_s = "lines" if len(lines) > 1 else "line"
            at = f", for the script's {line_s} {shown}" if lines else ""
            out.append(
                f"note: {len(inside):,} of the {len(self.calls):,} calls were made inside "
                f"torch's own code ({', '.join(f'torch/{f}' for f in files[:3])}){at}, not by "
                "the script's own backward calls."
            )
        scaled = [c for c in self.calls if c.grad_scale is not None]
        if scaled:
            low = min(c.grad_scale or 0.0 for c in scaled)
            high = max(c.grad_scale or 0.0 for c in scaled)
            shown = f"x{low:g}" if low == high else f"x{low:g} to x{high:g}"
            ran = [c.number for c in scaled]
            if len(scaled) == len(self.calls):
                which = "every call"
            elif ran == list(range(ran[0], ran[-1] + 1)):
                which = f"calls {ran[0]:,} to {ran[-1]:,}"
            else:
                which = f"{len(scaled):,} calls"
            out.append(
                f"note: in {which} the loss was scaled by GradScaler ({shown}): the loss and "
                "the gradients shown are that many times the true ones (`scaler.step` divides "
                "the gradients back)."
            )
        return out


def _cell(s: TensorSummary | None) -> Any:
    value = scalar(s)
    if value is not None:
        return value
    if s is None:
        return None
    return s.data if s.data is not None else {"shape": list(s.shape), "norm": s.norm}


def to_records(calls: Sequence[CallInfo], every: int = 1) -> list[dict[str, Any]]:
    """The rows as plain dicts (the JSON output): numbers, small lists, or shape and norm."""
    out = []
    for row in rows(calls, every):
        leaves = {n: {"value": _cell(v), "grad": _cell(g)} for n, (v, g) in row.leaves.items()}
        record: dict[str, Any] = {"call": row.call, "root": _cell(row.root)}
        record["root_name"] = row.root_name
        record["leaves"] = leaves
        record["nodes"] = row.nodes
        if row.error:
            record["error"] = row.error
        out.append(record)
    return out


def to_json(calls: Sequence[CallInfo], every: int = 1) -> str:
    """The rows as JSON; NaN and infinities are the strings "nan", "inf" and "-inf" (as in the
    graph's JSON), so that a loop that blew up still gives valid JSON."""
    records = _json_safe({"calls": to_records(calls, every)})
    return json.dumps(records, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by its name (nesting is a tensor's rank)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def to_csv(calls: Sequence[CallInfo], every: int = 1, precision: int = 17) -> str:
    """One line per call: call, root, then value and grad per leaf, then nodes. A leaf that
    is a tensor (more than one number) also gets `NAME_norm` and `grad_NAME_norm`, numbers a
    spreadsheet or pandas can plot (the other cells hold the summary as text)."""
    names = leaf_names(calls)
    picked = rows(calls, every)
    tensors = {
        name
        for row in picked
        for name, pair in row.leaves.items()
        if any(s is not None and scalar(s) is None for s in pair)
    }
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["call", "root"]
    for name in names:
        header += [name, f"grad_{name}"]
        if name in tensors:
            header += [f"{name}_norm", f"grad_{name}_norm"]
    writer.writerow([*header, "nodes"])
    for row in picked:
        cells = [str(row.call), _csv(row.root, precision)]
        for name in names:
            value, grad = row.leaves.get(name, (None, None))
            cells += [_csv(value, precision), _csv(grad, precision)]
            if name in tensors:
                cells += [_norm(value), _norm(grad)]
        writer.writerow([*cells, str(row.nodes)])
    return buf.getvalue()


def _norm(s: TensorSummary | None) -> str:
    """The norm of a summary as a CSV number (`plotted`: NaN and inf by name), or empty."""
    found = plotted(s, norm=True)
    return "" if found is None else repr(found)


def _csv(s: TensorSummary | None, precision: int) -> str:
    return "" if s is None else fmt_summary(s, precision, max_chars=10_000)


def steps_text(calls: Sequence[CallInfo], *, every: int = 1, width: int = 100) -> str:
    """The table and sparklines as plain text, `width` cells wide (tests, docs)."""
    console = Console(
        width=width, file=io.StringIO(), color_system=None, force_terminal=False, record=True
    )
    console.print(StepsTable(calls, every=every))
    text = console.export_text(styles=False)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())
