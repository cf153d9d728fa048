"""Render a `Graph`: DOT and JSON text here, SVG/PNG/PDF through Graphviz's `dot` program.

`render_bytes` makes the bytes of one format; `write` puts them in a file atomically (a temp file
in the same folder, then `os.replace`), so a failed render never leaves a half-written file.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from graphviz_grad.errors import GraphvizMissingError, OutputError, RenderError
from graphviz_grad.model import Graph
from graphviz_grad.render.dot import to_dot
from graphviz_grad.render.json import from_dict, to_dict, to_json
from graphviz_grad.render.tree import GraphTree, tree_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from graphviz_grad.render.html_data import StepText
    from graphviz_grad.views import View

__all__ = [
    "FORMATS",
    "GraphTree",
    "from_dict",
    "infer_format",
    "render_bytes",
    "to_dict",
    "to_dot",
    "to_json",
    "tree_text",
    "write",
]

FORMATS = ("svg", "png", "pdf", "dot", "json", "html")
TEXT_FORMATS = ("dot", "json")
_SUFFIXES: dict[str, str] = {
    ".svg": "svg",
    ".png": "png",
    ".pdf": "pdf",
    ".dot": "dot",
    ".gv": "dot",
    ".json": "json",
    ".html": "html",
    ".htm": "html",
}
_MISSING_DOT = "Graphviz's `dot` program is not installed, so SVG/PNG/PDF/HTML cannot be drawn."
_MISSING_DOT_HINT = (
    "Install it (Debian/Ubuntu: `sudo apt-get install graphviz`; macOS: `brew install graphviz`),"
    ' or write DOT or JSON with `fmt="dot"` / `fmt="json"`.'
)


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise OutputError(
            f"Unknown output format `fmt={fmt!r}`.", hint=f"Choose one of: {', '.join(FORMATS)}."
        )
    return fmt


def infer_format(path: Path | str, fmt: str | None = None) -> str:
    """`fmt` when given, else the format the suffix of `path` names (svg when it has none).

    A `fmt` that contradicts a known suffix (``out.svg`` with ``fmt="png"``) is refused rather
    than writing a PNG named ``.svg``.
    """
    if fmt is not None:
        fmt = _check_format(fmt.lower())
        named = _SUFFIXES.get(Path(path).suffix.lower()) if str(path) != "-" else None
        if named is not None and named != fmt:
            raise OutputError(
                f"The file name {str(path)!r} says {named.upper()} but `fmt={fmt!r}` asks for "
                f"{fmt.upper()}.",
                hint=f"Name the file `{Path(path).stem}.{fmt}`, or leave out `fmt=`.",
            )
        return fmt
    if str(path) == "-":
        return "dot"
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "svg"
    if suffix not in _SUFFIXES:
        raise OutputError(
            f"Cannot tell the output format from the file name {str(path)!r}.",
            hint=f"End it in {', '.join(_SUFFIXES)} or pass `fmt=`.",
        )
    return _SUFFIXES[suffix]


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


def render_bytes(
    graph: Graph,
    fmt: str,
    *,
    precision: int = 4,
    edge_grads: bool = False,
    show_saved: bool = False,
    title: str | None = None,
    indent: int | None = 1,
    view: View | None = None,
    order: bool = False,
    show_cuts: bool = False,
    color: str | None = None,
    steps: Sequence[StepText] = (),
) -> bytes:
    """The bytes of `graph` in `fmt` (one of `FORMATS`); text formats are UTF-8. HTML is the
    explorer page, which lays the graph out itself (`steps` add its backward step control).

    Example:
        >>> svg = render_bytes(graph, "svg", edge_grads=True)
    """
    fmt = _check_format(fmt)
    if fmt == "json":
        return to_json(graph, indent=indent).encode("utf-8")
    if fmt == "html":
        from graphviz_grad.render.html import to_html

        page = to_html(graph, None, title=title, steps=steps, precision=precision)
        return page.encode("utf-8")
    dot = to_dot(
        graph,
        precision=precision,
        edge_grads=edge_grads,
        show_saved=show_saved,
        title=title,
        view=view,
        order=order,
        show_cuts=show_cuts,
        color=color,
    )
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


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temp file next to `path`, then move it over `path` in one step."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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
    *,
    precision: int = 4,
    edge_grads: bool = False,
    show_saved: bool = False,
    title: str | None = None,
    indent: int | None = 1,
    view: View | None = None,
    order: bool = False,
    show_cuts: bool = False,
    color: str | None = None,
    steps: Sequence[StepText] = (),
) -> Path:
    """Write `graph` to `path` (``"-"``: standard output, DOT or JSON only); return the path.

    The format is `fmt`, else the suffix of `path` (``.svg .png .pdf .dot .gv .json``; svg when
    there is none; dot for ``"-"``). An existing file is replaced only once rendering succeeded.

    Example:
        >>> write(graph, "out/graph.svg", edge_grads=True)
        PosixPath('out/graph.svg')
    """
    fmt = infer_format(path, fmt)
    to_stdout = str(path) == "-"
    target = Path(path)
    if to_stdout:
        _check_stdout(fmt)
    else:
        _check_folder(target)
    data = render_bytes(
        graph,
        fmt,
        precision=precision,
        edge_grads=edge_grads,
        show_saved=show_saved,
        title=title,
        indent=indent,
        view=view,
        order=order,
        show_cuts=show_cuts,
        color=color,
        steps=steps,
    )
    if to_stdout:
        sys.stdout.write(data.decode("utf-8"))
        sys.stdout.flush()
        return target
    _replace_atomically(target, data)
    return target
