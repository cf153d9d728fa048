"""Output formats and file suffixes: the one table the library and the CLI both read."""

from __future__ import annotations

from pathlib import Path

from graphviz_grad.errors import OutputError

#: Every format gradviz writes.
FORMATS: tuple[str, ...] = ("svg", "png", "pdf", "dot", "json", "html")
#: Formats that are text and can go to standard output.
TEXT_FORMATS: tuple[str, ...] = ("dot", "json")
#: Formats that Graphviz lays out (the layout budget applies to these).
LAYOUT_FORMATS: tuple[str, ...] = ("svg", "png", "pdf", "html")
#: File suffix -> format.
SUFFIXES: dict[str, str] = {
    ".svg": "svg",
    ".png": "png",
    ".pdf": "pdf",
    ".dot": "dot",
    ".gv": "dot",
    ".json": "json",
    ".html": "html",
    ".htm": "html",
}


def check_format(fmt: str) -> str:
    """`fmt` in lower case, or an `OutputError` naming the formats there are."""
    name = fmt.lower()
    if name not in FORMATS:
        raise OutputError(
            f"Unknown output format `fmt={fmt!r}`.", hint=f"Choose one of: {', '.join(FORMATS)}."
        )
    return name


def infer_format(path: Path | str, fmt: str | None = None) -> str:
    """The format to write `path` in: `fmt` when given, else the one its suffix names (svg when
    it has none, dot for ``"-"``, standard output). A suffix that names another format than `fmt`
    is refused, so `x.svg` never holds a PNG.

    Example:
        >>> infer_format("graph.gv"), infer_format("-"), infer_format("out", "json")
        ('dot', 'dot', 'json')
    """
    suffix = Path(path).suffix.lower() if str(path) != "-" else ""
    named = SUFFIXES.get(suffix)
    if fmt is not None:
        fmt = check_format(fmt)
        if named is not None and named != fmt:
            raise OutputError(
                f"The file name {str(path)!r} says {named.upper()} but `fmt={fmt!r}` asks for "
                f"{fmt.upper()}.",
                hint=f"Name the file `{Path(path).stem}.{fmt}`, or leave out `fmt=`.",
            )
        return fmt
    if str(path) == "-":
        return "dot"
    if not suffix:
        return "svg"
    if named is None:
        raise OutputError(
            f"gradviz cannot tell the format of `{path}` from its suffix `{suffix}`.",
            hint=f"Use one of {' '.join(SUFFIXES)}, or pass `fmt=`.",
        )
    return named
