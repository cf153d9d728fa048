"""`gradviz steps -o steps.svg`: the loss and every parameter over the backward calls, drawn.

Reads only `Recorder.calls` (`CallInfo`), like the steps table: per call the root's value, and per
leaf its value before the call and the gradient it got. A leaf that is one number is drawn as
that number; a tensor as its norm; a gradient always as its norm (‖∂loss/∂w‖ ≥ 0). An axis
whose values span several decades is drawn on a log scale (symlog when zeros or negative values
are in it). A call where the number is NaN or ±inf is not joined by the line: it gets a red mark
at the edge of the plot (× for NaN, ▲/▼ for ±inf) and is counted in the axis title.

matplotlib is an optional extra (``pip install 'gradviz[plot]'``); it is imported only here, and
drawn without pyplot (no global backend, no window).

Example:
    >>> write_steps_plot(recorder.calls, "steps.svg")
    PosixPath('steps.svg')
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphviz_grad.errors import OutputError, PlotMissingError
from graphviz_grad.model import CallInfo, TensorSummary, calls_by_root

#: The formats a steps plot can be written in, by file suffix.
PLOT_FORMATS = ("svg", "png", "pdf", "html")
#: Most parameters drawn (one row each); the rest are named in a note.
MAX_LEAVES = 12
#: A positive series spanning at least this ratio gets a log axis.
DECADES = 100.0
INSTALL = "pip install 'gradviz[plot]'  (or: pip install matplotlib)"


@dataclass(frozen=True)
class Series:
    """One line of the picture: a label and one number per call (NaN/inf kept as such)."""

    label: str
    calls: tuple[int, ...]
    values: tuple[float | None, ...]

    @property
    def nan(self) -> list[int]:
        return [c for c, v in zip(self.calls, self.values) if v is not None and math.isnan(v)]

    def inf(self, sign: int) -> list[int]:
        return [c for c, v in zip(self.calls, self.values) if v == sign * math.inf]

    @property
    def finite(self) -> list[float]:
        return [v for v in self.values if v is not None and math.isfinite(v)]


def plotted(s: TensorSummary | None, norm: bool = False) -> float | None:
    """The number drawn for a summary: itself when it is one number, else its norm.

    A summary with NaN elements is NaN; one with ±inf (and no NaN) is ±inf; `norm` takes |·|.
    """
    if s is None:
        return None
    if s.nan:
        return math.nan
    one = _one_number(s)
    if s.inf:
        return -math.inf if one is not None and one < 0 and not norm else math.inf
    if one is not None:
        return abs(one) if norm else one
    return s.norm


def _one_number(s: TensorSummary) -> float | None:
    data: Any = s.data
    if s.numel != 1 or data is None:
        return None
    while isinstance(data, list) and len(data) == 1:
        data = data[0]
    return float(data) if isinstance(data, (bool, int, float)) else None


def leaf_names(calls: Sequence[CallInfo]) -> list[str]:
    """Every leaf name, in the order first seen (the order of the picture's rows)."""
    seen: dict[str, None] = {}
    for call in calls:
        for leaf in call.leaves:
            seen.setdefault(leaf.name, None)
    return list(seen)


def loss_series(calls: Sequence[CallInfo]) -> list[Series]:
    """The root's value over the calls, labelled "loss"; when the calls alternate losses (a
    GAN's `d_loss` and `g_loss`), one series per loss over its own calls, by its name."""
    found = calls_by_root(calls)
    if not found:
        numbers = tuple(c.number for c in calls)
        return [Series("loss", numbers, tuple(plotted(c.root_value) for c in calls))]
    return [
        Series(name, tuple(c.number for c in own), tuple(plotted(c.root_value) for c in own))
        for name, own in found.items()
    ]


def steps_series(calls: Sequence[CallInfo]) -> tuple[list[Series], list[tuple[Series, Series]]]:
    """The loss series (`loss_series`), and per leaf (value, gradient norm) over the calls whose
    graph holds it (a GAN's generator is in every other call: no gap for the others)."""
    per_leaf = []
    by_name = [(c.number, {x.name: x for x in c.leaves}) for c in calls]
    for name in leaf_names(calls):
        found = [(number, leaves[name]) for number, leaves in by_name if name in leaves]
        numbers = tuple(n for n, _ in found)
        tensor = any(x.value is not None and x.value.numel != 1 for _, x in found)
        value = Series(
            f"‖{name}‖" if tensor else name, numbers, tuple(plotted(x.value) for _, x in found)
        )
        grad = Series(
            f"‖∂loss/∂{name}‖", numbers, tuple(plotted(x.grad, norm=True) for _, x in found)
        )
        per_leaf.append((value, grad))
    return loss_series(calls), per_leaf


def scale(series: Series) -> tuple[str, float]:
    """The y axis for a series: ("linear"|"log"|"symlog", symlog's linear threshold)."""
    finite = series.finite
    if not finite:
        return "linear", 1.0
    mags = [abs(v) for v in finite if v != 0]
    if not mags or max(mags) / min(mags) < DECADES:
        return "linear", 1.0
    if all(v > 0 for v in finite):
        return "log", 1.0
    return "symlog", min(mags)


def _matplotlib() -> Any:
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotMissingError(
            "Drawing the steps as a picture needs matplotlib, which is not installed.",
            hint=f"Install it: `{INSTALL}`; or leave out -o for the table in the terminal.",
        ) from None
    return Figure


def steps_figure(calls: Sequence[CallInfo], title: str | None = None) -> Any:
    """A matplotlib `Figure`: the loss on top, then one row per leaf (value | gradient norm)."""
    figure_type = _matplotlib()
    losses, per_leaf = steps_series(calls)
    shown, rest = per_leaf[:MAX_LEAVES], per_leaf[MAX_LEAVES:]
    rows = len(losses) + len(shown)
    fig = figure_type(figsize=(10, 2.4 * len(losses) + 2.1 * len(shown)), layout="constrained")
    grid = fig.add_gridspec(rows, 2)
    for i, loss in enumerate(losses):
        _draw(fig.add_subplot(grid[i, :]), loss, "C0")
    for i, (value, grad) in enumerate(shown, start=len(losses)):
        _draw(fig.add_subplot(grid[i, 0]), value, "C2")
        _draw(fig.add_subplot(grid[i, 1]), grad, "C1")
    head = title or f"{len(calls)} backward call{'s' if len(calls) != 1 else ''}"
    if rest:
        head += f" (first {MAX_LEAVES} parameters of {len(per_leaf)} shown)"
    fig.suptitle(head)
    fig.supxlabel("backward call")
    return fig


def _draw(ax: Any, series: Series, color: str) -> None:
    """One series: the line through its finite points, marks for NaN and ±inf, its scale."""
    from matplotlib.ticker import MaxNLocator

    xs = list(series.calls)
    ys = [v if v is not None and math.isfinite(v) else math.nan for v in series.values]
    ax.plot(xs, ys, color=color, marker="." if len(xs) <= 60 else None, linewidth=1.4)
    kind, threshold = scale(series)
    if kind == "symlog":
        ax.set_yscale("symlog", linthresh=threshold)
        ticks = list(ax.get_yticks())
        ax.set_yticks(ticks[:: max(1, math.ceil(len(ticks) / 7))])
    elif kind == "log":
        ax.set_yscale("log")
    bad = _mark(ax, series.nan, 0.96, "x", "NaN", "nan")
    bad += _mark(ax, series.inf(1), 0.96, "^", "+inf", "posinf")
    bad += _mark(ax, series.inf(-1), 0.04, "v", "-inf", "neginf")
    note = {"linear": "", "log": " (log scale)", "symlog": " (symmetric log scale)"}[kind]
    ax.set_title(f"{series.label}{note}{bad}", loc="left", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # calls are whole numbers
    ax.set_gid(f"gradviz-series-{series.label}")


def _mark(ax: Any, calls: list[int], y: float, marker: str, label: str, gid: str) -> str:
    """Red marks at the top (or bottom) edge for the calls where the value is not finite."""
    if not calls:
        return ""
    for c in calls:
        ax.axvline(c, color="#d62728", alpha=0.15, linewidth=3)
    marks = ax.plot(
        calls,
        [y] * len(calls),
        linestyle="none",
        marker=marker,
        markersize=8,
        color="#d62728",
        transform=ax.get_xaxis_transform(),
        clip_on=False,
        label=label,
    )
    marks[0].set_gid(f"gradviz-{gid}")
    ax.legend(loc="upper right", fontsize=8)
    return f" — {label} at {len(calls)} call{'s' if len(calls) != 1 else ''}"


def plot_bytes(calls: Sequence[CallInfo], fmt: str, title: str | None = None) -> bytes:
    """The picture as SVG, PNG, PDF or a self-contained HTML page (the SVG inline)."""
    if fmt not in PLOT_FORMATS:
        raise OutputError(
            f"A steps picture cannot be written as {fmt!r}.",
            hint=f"Use one of: {', '.join('.' + f for f in PLOT_FORMATS)}.",
        )
    fig = steps_figure(calls, title)  # says so clearly when matplotlib is missing
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "gradviz", "svg.fonttype": "none"}):
        fig.savefig(
            buf,
            format="svg" if fmt == "html" else fmt,
            dpi=110,
            metadata=_metadata(fmt),
        )
    data = buf.getvalue()
    return _page(data.decode("utf-8"), title) if fmt == "html" else data


def _metadata(fmt: str) -> dict[str, Any]:
    """No dates in the file, so the same run gives the same bytes."""
    if fmt in ("svg", "html"):
        return {"Date": None}
    if fmt == "pdf":
        return {"CreationDate": None}
    return {}


def _page(svg: str, title: str | None) -> bytes:
    start = svg.find("<svg")
    name = html.escape(title or "gradviz steps")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{name}</title>\n"
        "<style>body{margin:1.5em;font-family:sans-serif}svg{max-width:100%;height:auto}</style>\n"
        f"</head>\n<body>\n{svg[start:]}</body>\n</html>\n"
    )
    return page.encode("utf-8")


def plot_format(path: Path | str) -> str:
    """The picture's format from the file's suffix."""
    suffix = Path(path).suffix.lower().lstrip(".")
    suffix = "html" if suffix == "htm" else suffix
    if suffix not in PLOT_FORMATS:
        raise OutputError(
            f"gradviz cannot draw the steps as `{path}`: the suffix says no picture format.",
            hint="End the file name in .svg, .png, .pdf or .html (or leave out -o for the table).",
        )
    return suffix


def write_steps_plot(calls: Sequence[CallInfo], path: Path | str, title: str | None = None) -> Path:
    """Draw the steps into `path` (format from its suffix), replacing it atomically."""
    from graphviz_grad.render import _check_folder, _replace_atomically

    target = Path(path)
    fmt = plot_format(target)
    _check_folder(target)
    _replace_atomically(target, plot_bytes(calls, fmt, title))
    return target
