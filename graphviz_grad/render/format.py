"""Value formatting shared by every text view (DOT labels, the terminal tree, detail panes).

Numbers are written exactly and short: ``2.0``, ``-8.0``, ``0.1``, ``1e-08``. A tensor is written
as its number when it has one element, as a compact list when its data was kept, and otherwise as
dtype, shape and statistics (``f32[64, 128] μ=0.01 min=-0.2 max=0.3 norm=4.1``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from graphviz_grad.model import Data, TensorSummary, signed_int64

#: Shown where a tensor (value or gradient) is missing.
MISSING = "—"
ELLIPSIS = "…"

_DTYPES: dict[str, str] = {
    "float64": "f64",
    "float32": "f32",
    "float16": "f16",
    "bfloat16": "bf16",
    "float8_e4m3fn": "f8e4m3",
    "float8_e5m2": "f8e5m2",
    "complex128": "c128",
    "complex64": "c64",
    "complex32": "c32",
    "int64": "i64",
    "int32": "i32",
    "int16": "i16",
    "int8": "i8",
    "uint64": "u64",
    "uint32": "u32",
    "uint16": "u16",
    "uint8": "u8",
    "bool": "bool",
}
_END = object()


def fmt_number(x: float, precision: int = 4) -> str:
    """A number, short and exact enough: ``2.0``, ``-8.0``, ``0.1``, ``1e-08``, ``nan``, ``-inf``.

    An exact whole number keeps its ``.0``; one that only rounds to a whole number does not
    (``2369.4`` is ``2369`` at 4 digits, ``6.0000005`` is ``6.000``), so a bare ``2369`` reads
    as rounded and ``2369.0`` as exact.

    Example:
        >>> fmt_number(2.0, 4), fmt_number(1 / 3, 4), fmt_number(float("-inf"), 4)
        ('2.0', '0.3333', '-inf')
    """
    if type(x) is float and x - x == 0.0:  # finite: the common case first
        return _fmt_finite(x, precision)
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return _fmt_finite(x, precision)


def _fmt_finite(x: float, precision: int) -> str:
    if x == 0.0:
        x = 0.0  # -0.0 prints as 0.0: the sign of a zero is noise here
    text = f"{x:.{precision}g}"
    if "e" in text or "." in text:
        return text
    # 6.0 is exact: "6.0"; 6.0000005 only rounds to 6: "6.000" says digits were dropped;
    # 2369.4 rounds to "2369" (the alternate form's trailing "2369." read as a typo).
    return text + ".0" if x.is_integer() else f"{x:#.{precision}g}".removesuffix(".")


def short_dtype(dtype: str | None) -> str:
    """``"float32"`` -> ``"f32"``; unknown dtypes pass through (``torch.`` prefix dropped)."""
    if dtype is None:
        return "?"
    name = dtype.removeprefix("torch.")
    return _DTYPES.get(name, name)


def fmt_shape(shape: Sequence[int] | None) -> str:
    """``(3, 4)`` -> ``"[3, 4]"``; a 0-dim tensor is ``"[]"``; unknown is ``"?"``."""
    if shape is None:
        return "?"
    return "[" + ", ".join(str(d) for d in shape) + "]"


def fmt_type(shape: Sequence[int] | None, dtype: str | None) -> str:
    """dtype and shape the way PyTorch prints them in graphs: ``f32[3, 4]``."""
    if shape is None and dtype is None:
        return ""
    return short_dtype(dtype) + fmt_shape(shape)


def _fmt_scalar(item: Data, precision: int) -> str:
    if isinstance(item, (bool, int, float)):
        return fmt_number(item, precision)
    if isinstance(item, str) and item.endswith("j)"):
        return fmt_complex(item, precision)
    return str(item)


def fmt_complex(text: str, precision: int = 4) -> str:
    """A complex number as its summary keeps it (Python's exact text) at `precision` digits:
    ``"(0.3285975456237793+0.19177961349487305j)"`` -> ``"0.3286+0.1918j"``.

    Example:
        >>> fmt_complex("(1+0j)"), fmt_complex("(-0.5-2.25j)"), fmt_complex("(nan+infj)")
        ('1.0+0.0j', '-0.5-2.25j', 'nan+infj')
    """
    try:
        z = complex(text)
    except ValueError:
        return text
    imag = fmt_number(z.imag, precision)
    sign = "" if imag.startswith("-") else "+"
    return f"{fmt_number(z.real, precision)}{sign}{imag}j"


def _data_pieces(data: Data, precision: int) -> Iterator[str]:
    """The pieces of ``[[1.0, 2.0], [3.0, 4.0]]``, walked with an explicit stack."""
    stack: list[Iterator[Data]] = [iter((data,))]
    first = [True]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            first.pop()
            if stack:
                yield "]"
            continue
        if not first[-1]:
            yield ", "
        first[-1] = False
        if isinstance(item, list):
            yield "["
            stack.append(iter(item))
            first.append(True)
        else:
            yield _fmt_scalar(item, precision)  # type: ignore[arg-type]


def fmt_data(data: Data, precision: int = 4, max_chars: int = 60) -> str:
    """Nested lists compactly; beyond `max_chars` characters, cut after the last whole number
    that fits, with ``…`` (``[0.5, -1.25,…``: never a number cut short, ``0.…``)."""
    if not isinstance(data, list):
        return _cut(_fmt_scalar(data, precision), max_chars)
    out: list[str] = []
    size = 0
    over = None
    for piece in _data_pieces(data, precision):
        if size + len(piece) > max_chars:
            over = piece
            break
        out.append(piece)
        size += len(piece)
    if over is None:
        return "".join(out)
    if not any(p not in ("[", "]", ", ") for p in out[:-1]):
        # not even one whole number and a comma fit: the first number's leading digits
        return _cut("".join(out) + over, max_chars)
    # end on `[` or a comma, so that what precedes `…` is whole; `,…` with no space between
    # (a view that wraps at spaces then keeps `…` with the last number)
    while out:
        last = out.pop()
        size -= len(last)
        end = last if last == "[" else "," if last == ", " else last + ","  # a number or `]`
        if size + len(end) + 1 <= max_chars:
            out.append(end)
            break
    return "".join(out) + ELLIPSIS


def _cut(text: str, max_chars: int) -> str:
    if len(text) > max_chars:
        return text[: max(max_chars - 1, 0)] + ELLIPSIS
    return text


def _single(data: Data) -> Data:
    """The one element of ``[[3.0]]`` (a 1-element tensor of any rank)."""
    while isinstance(data, list) and len(data) == 1:
        data = data[0]
    return data


def _stats(s: TensorSummary, precision: int) -> list[str]:
    parts: list[str] = []
    if s.mean is not None:
        parts.append(f"μ={fmt_number(s.mean, precision)}")
    if s.min is not None:
        parts.append(f"min={fmt_number(s.min, precision)}")
    if s.max is not None:
        parts.append(f"max={fmt_number(s.max, precision)}")
    if s.norm is not None:
        parts.append(f"norm={fmt_number(s.norm, precision)}")
    if s.nan:
        parts.append(f"nan={s.nan}")
    if s.inf:
        parts.append(f"inf={s.inf}")
    return parts


#: Characters a text view (tree, explain), which wraps its lines, gives a tensor's data: all
#: of a kept tensor's at most 16 elements at 4 digits (a picture's label keeps the default 60).
TEXT_CHARS = 240


def fmt_summary(s: TensorSummary | None, precision: int = 4, max_chars: int = 60) -> str:
    """One tensor on one line: its number, its data, or dtype, shape and statistics.

    Example:
        >>> fmt_summary(TensorSummary(shape=(), dtype="float32", numel=1, data=-8.0))
        '-8.0'
    """
    if s is None:
        return MISSING
    if type(s.data) is float:  # one number (a 0-dim tensor): the most common summary
        text = fmt_number(s.data, precision)
        return text if len(text) <= max_chars else _cut(text, max_chars)
    if s.data is not None and s.numel == 1:
        return fmt_data(_single(s.data), precision, max_chars)
    if s.data is not None:
        return fmt_data(s.data, precision, max_chars)
    parts = [fmt_type(s.shape, s.dtype)]
    if s.numel == 0:
        parts.append("(empty)")
    parts.extend(_stats(s, precision))
    if s.note:
        parts.append(f"({s.note})")
    return " ".join(parts)


def fmt_summary_lines(
    s: TensorSummary | None, precision: int = 4, max_chars: int = 60
) -> list[str]:
    """One tensor on several lines, for detail views: type, data, statistics, counts, note."""
    if s is None:
        return [MISSING]
    noun = "element" if s.numel == 1 else "elements"
    lines = [f"{fmt_type(s.shape, s.dtype)} ({s.numel} {noun})"]
    if s.data is not None:
        lines.append("data: " + fmt_data(s.data, precision, max_chars))
    stats = [p for p in _stats(s, precision) if not p.startswith(("nan=", "inf="))]
    if stats:
        lines.append(" ".join(stats))
    if s.nan or s.inf:
        lines.append(f"nan={s.nan} inf={s.inf}")
    if s.note:
        lines.append(f"note: {s.note}")
    return lines


#: Saved attributes that hold an enum as an int, and what each value means.
_SAVED_ENUMS: dict[str, dict[int, str]] = {
    "reduction": {0: "none", 1: "mean", 2: "sum"},
}


def fmt_saved_value(name: str, text: str) -> str:
    """A saved attribute as a user wrote it: ``reduction='mean'`` for ``1``, ``-100`` for
    ``18446744073709551516`` (autograd stores negative int64 attributes as unsigned)."""
    try:
        number = int(text)
    except ValueError:
        return text
    number = signed_int64(number)
    enum = _SAVED_ENUMS.get(name)
    if enum is not None and number in enum:
        return repr(enum[number])
    return str(number)
