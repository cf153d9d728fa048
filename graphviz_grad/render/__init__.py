"""Render a `Graph`: DOT and JSON text here, SVG/PNG/PDF through Graphviz's `dot` program.

`render_bytes` makes the bytes of one format; `write` puts them in a file atomically (a temp file
in the same folder, then `os.replace`), so a failed render never leaves a half-written file.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from graphviz_grad._gc import on_big_graphs
from graphviz_grad.errors import GraphvizMissingError, OutputError, RenderError
from graphviz_grad.model import Graph
from graphviz_grad.render.dot import to_dot
from graphviz_grad.render.formats import FORMATS, LAYOUT_FORMATS, TEXT_FORMATS, infer_format
from graphviz_grad.render.json import from_dict, to_dict, to_json, write_json
from graphviz_grad.render.options import DrawOptions
from graphviz_grad.render.tree import GraphTree, tree_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from graphviz_grad.render.html_data import StepText
    from graphviz_grad.views import View

__all__ = [
    "FORMATS",
    "LAYOUT_FORMATS",
    "TEXT_FORMATS",
    "DrawOptions",
    "GraphTree",
    "choose_view",
    "from_dict",
    "infer_format",
    "numbered",
    "render_bytes",
    "to_dict",
    "to_dot",
    "to_json",
    "tree_text",
    "write",
    "write_calls",
]

_MISSING_DOT = "Graphviz's `dot` program is not installed, so SVG/PNG/PDF/HTML cannot be drawn."
_MISSING_DOT_HINT = (
    "Install it (Debian/Ubuntu: `sudo apt-get install graphviz`; macOS: `brew install graphviz`),"
    ' or write DOT or JSON with `fmt="dot"` / `fmt="json"`.'
)


def _layout(dot: str, fmt: str) -> bytes:
    """Run Graphviz's `dot` on `dot`; the Python package is imported here, not at start-up."""
    if shutil.which("dot") is None:
        raise GraphvizMissingError(_MISSING_DOT, hint=_MISSING_DOT_HINT)
    try:
        import graphviz
    except ImportError as exc:
        raise GraphvizMissingError(
            "The Python package `graphviz` is not installed, so SVG/PNG/PDF/HTML cannot be drawn.",
            hint="Install it with `pip install graphviz`, or write DOT or JSON instead.",
        ) from exc
    try:
        data: bytes = graphviz.pipe("dot", fmt, dot.encode("utf-8"))
    except graphviz.ExecutableNotFound as exc:
        raise GraphvizMissingError(_MISSING_DOT, hint=_MISSING_DOT_HINT) from exc
    except graphviz.CalledProcessError as exc:
        raise RenderError(
            f"Graphviz could not lay out the graph: {_last_line(exc.stderr)}",
            hint='Write it with `fmt="dot"` and run `dot -Tsvg` on it to see the whole error.',
        ) from exc
    return data


def _last_line(stderr: bytes | str | None) -> str:
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = [line for line in (stderr or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "dot failed without a message."


@on_big_graphs
def choose_view(graph: Graph, fmt: str, options: DrawOptions | None = None) -> View:
    """What to draw of `graph` in `fmt`: `options.view`, fitted to `options.budget` for the
    formats Graphviz lays out (unless `options.full`); the view's `notes` say what was done.

    Example:
        >>> choose_view(graph, "svg", DrawOptions(budget=200)).size
        200
    """
    from graphviz_grad.views import fit_budget, make_view

    opts = options or DrawOptions()
    if fmt in LAYOUT_FORMATS and not opts.full:
        return fit_budget(graph, opts.view, opts.budget)
    return make_view(graph, opts.view)


def render_bytes(
    graph: Graph,
    fmt: str,
    options: DrawOptions | None = None,
    *,
    view: View | None = None,
    steps: Sequence[StepText] = (),
) -> bytes:
    """The bytes of `graph` in `fmt` (one of `FORMATS`); text formats are UTF-8. `view` is what
    to draw (default: `choose_view`); JSON always holds the whole graph. HTML is the explorer
    page, which lays the graph out itself in the browser (`steps`, `explain`'s text per backward
    step, add its step control).

    Example:
        >>> svg = render_bytes(graph, "svg", DrawOptions(edge_grads=True))
    """
    from graphviz_grad.render.formats import check_format

    fmt = check_format(fmt)
    opts = options or DrawOptions()
    if fmt == "json":
        return to_json(graph, indent=opts.indent).encode("utf-8")
    if fmt == "html":
        from graphviz_grad.render.html import to_html

        page = to_html(graph, None, title=opts.title, steps=steps, precision=opts.precision)
        return page.encode("utf-8")
    if view is None:
        view = choose_view(graph, fmt, opts)
    dot = to_dot(graph, opts, view=view, fmt=fmt)
    if fmt == "dot":
        return dot.encode("utf-8")
    return _layout(dot, fmt)


def _check_folder(path: Path) -> Path:
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(
            f"Cannot write {path}: the folder {folder} does not exist.",
            hint=f"Create it first (`mkdir -p {folder}`) or choose another output path.",
        )
    if path.is_dir():
        raise OutputError(
            f"Cannot write {path}: it is a folder.", hint="Give a file name, e.g. graph.svg."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            f"Cannot write {path}: the folder {folder} is not writable.",
            hint="Choose an output path in a folder you can write to.",
        )
    return folder


def _replace_atomically(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Write `data` (bytes, or a function that writes them) to a temp file next to `path`,
    then move it over `path` in one step."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data) if isinstance(data, bytes) else data(f)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(
            f"Cannot write {path}: {exc.strerror or exc}.",
            hint="Check the path, free disk space and permissions, or choose another output path.",
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _stream_json(graph: Graph, f: BinaryIO, indent: int | None) -> None:
    text = io.TextIOWrapper(f, encoding="utf-8", newline="\n", write_through=False)
    write_json(graph, text, indent)
    text.flush()
    text.detach()


def _check_stdout(fmt: str) -> None:
    if fmt not in TEXT_FORMATS:
        raise OutputError(
            f"{fmt.upper()} cannot be written to standard output (`-`).",
            hint='Give a file name such as graph.svg, or use `fmt="dot"` / `fmt="json"`.',
        )


def write(
    graph: Graph,
    path: Path | str,
    fmt: str | None = None,
    options: DrawOptions | None = None,
    *,
    view: View | None = None,
    steps: Sequence[StepText] = (),
) -> Path:
    """Write `graph` to `path` (``"-"``: standard output, DOT or JSON only); return the path.

    The format is `fmt`, else the suffix of `path` (``.svg .png .pdf .dot .gv .json .html``; svg
    when there is none; dot for ``"-"``). An existing file is replaced only once rendering
    succeeded, so a failed render never leaves a half-written file. `steps` (`explain`'s text
    per backward step) give an HTML page its step control.

    Example:
        >>> write(graph, "out/graph.svg", options=DrawOptions(edge_grads=True))
        PosixPath('out/graph.svg')
    """
    fmt = infer_format(path, fmt)
    to_stdout = str(path) == "-"
    target = Path(path)
    if to_stdout:
        _check_stdout(fmt)
    else:
        _check_folder(target)
    if fmt == "json" and not to_stdout:  # streamed: a huge graph never becomes one string
        indent = (options or DrawOptions()).indent
        _replace_atomically(target, lambda f: _stream_json(graph, f, indent))
        return target
    data = render_bytes(graph, fmt, options, view=view, steps=steps)
    if to_stdout:
        sys.stdout.write(data.decode("utf-8"))
        sys.stdout.flush()
        return target
    _replace_atomically(target, data)
    return target


def numbered(folder: Path, stem: str, number: int, total: int, fmt: str) -> Path:
    """``folder/stem-007.svg``: numbers padded so the files sort in call order."""
    width = max(3, len(str(total)))
    return folder / f"{stem}-{number:0{width}d}.{fmt}"


def write_calls(
    graphs: Sequence[Graph],
    folder: Path,
    stem: str,
    fmt: str,
    total: int,
    options: DrawOptions | None = None,
) -> list[Path]:
    """One picture per graph, ``folder/stem-001.svg``..., titled with its backward call."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(
            f"`{folder}` is a file; several calls make several pictures, written into a folder.",
            hint="Give a folder, e.g. pictures/",
        )
    folder.mkdir(parents=True, exist_ok=True)
    opts = options or DrawOptions()
    written = []
    for graph in graphs:
        number = graph.call or 0
        title = f"backward call {number:,} of {total:,}"
        path = numbered(folder, stem, number, total, fmt)
        written.append(write(graph, path, fmt, replace(opts, title=title)))
    return written
