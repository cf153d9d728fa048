"""Typer's value coercion without pydantic for the plain values gradviz's options take.

Typer (0.29 and later) turns every command-line value into its parameter's type through a
pydantic `TypeAdapter`, so each run imports pydantic and builds some thirty adapters before the
script starts: about 0.05 s of the lesson's start-up, for turning "3" into 3. `install` gives typer
a coercion that does the plain cases itself and hands everything else to typer's own (pydantic)
coercion, built only then: a value it converts is one pydantic converts the same way (a test runs
both on the same values), and every value it is unsure of, every error message included, stays
typer's. With a typer that has no such coercion (older releases), `install` changes nothing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

#: What `_plain` returns for a value it leaves to typer.
UNSURE: Any = object()
#: Numbers in the plainest spelling (no spaces, `_`, exponent, `inf`), short enough for `int()`.
_INT = re.compile(r"-?[0-9]{1,18}")
_FLOAT = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,18})?")


def install() -> None:
    """Let typer coerce values through `PlainParam` (once; a no-op where typer has no
    `typer._coercion`, or where someone else replaced its coercion already)."""
    try:
        import typer.core
        from typer import _coercion
    except ImportError:
        return
    if getattr(typer.core, "build_runtime_param", None) is not _coercion.build_runtime_param:
        return
    if not hasattr(_coercion, "RuntimeParam") or not hasattr(_coercion, "TypeDescriptor"):
        return
    typer.core.build_runtime_param = _builder(_coercion)  # type: ignore[attr-defined]


def _builder(coercion: Any) -> Any:
    """typer's `build_runtime_param`, giving a `PlainParam` where the parameter may take one."""
    typers_own = coercion.build_runtime_param

    @dataclass(frozen=True)
    class PlainParam(coercion.RuntimeParam):  # type: ignore[misc,name-defined]
        """Coerces plain values itself and everything else as typer would."""

        descriptor: Any = None
        _typers: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            done = plain(self.annotation, self.parameter_info, value, ctx)
            if done is not UNSURE:
                return done
            if "param" not in self._typers:
                self._typers["param"] = typers_own(self.descriptor)
            return self._typers["param"]._coerce_value(value, param=param, ctx=ctx)

    def build(descriptor: Any) -> Any:
        if descriptor.file_annotation is not None or not _takes_plain(descriptor):
            return typers_own(descriptor)
        return PlainParam(
            annotation=descriptor.annotation,
            parameter_info=descriptor.parameter_info,
            descriptor=descriptor,
        )

    return build


def _takes_plain(descriptor: Any) -> bool:
    """Parameters `plain` knows: bool, str, int, float, Path, an Enum, or a list of those,
    with no parser, clamp, path type or formats of their own."""
    info = descriptor.parameter_info
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None) is not None:
        return False
    if getattr(info, "clamp", False) or getattr(info, "path_type", None) is not None:
        return False
    annotation = descriptor.annotation
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation) or (None,)
    return annotation in (bool, str, int, float, Path) or _is_enum(annotation)


def _is_enum(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Enum)


def plain(annotation: Any, info: Any, value: Any, ctx: Any = None) -> Any:
    """`value` as `annotation`, when it is plain enough to be sure; else `UNSURE`."""
    if get_origin(annotation) is list:
        if not isinstance(value, (list, tuple)):
            return UNSURE
        (item,) = get_args(annotation)
        done = [plain(item, info, v, ctx) for v in value]
        return UNSURE if any(d is UNSURE for d in done) else done
    if annotation is bool:  # a flag's True/False; a spelled-out value is typer's
        return value if isinstance(value, bool) else UNSURE
    if annotation in (int, float) and type(value) is annotation:  # a default: 4, 0.5
        return _in_range(value, info)
    if not isinstance(value, str):
        return UNSURE
    if annotation is str:
        return value
    if annotation is int:
        return _number(int, _INT, value, info)
    if annotation is float:
        return _number(float, _FLOAT, value, info)
    if annotation is Path:
        return _path(value, info)
    if _is_enum(annotation) and getattr(ctx, "token_normalize_func", None) is None:
        return _member(annotation, value, info)
    return UNSURE


def _number(kind: type, spelling: re.Pattern[str], value: str, info: Any) -> Any:
    """An int or float in range (`min`/`max`); out of range or odd, typer says why."""
    if not spelling.fullmatch(value):
        return UNSURE
    return _in_range(kind(value), info)


def _in_range(number: float, info: Any) -> Any:
    low, high = getattr(info, "min", None), getattr(info, "max", None)
    if (low is not None and number < low) or (high is not None and number > high):
        return UNSURE
    return number


def _path(value: str, info: Any) -> Any:
    """A Path for a parameter that checks nothing about it (exists, dash, resolve, ...) but that
    it is readable when it exists; an unreadable one gets typer's message."""
    checks = ("exists", "resolve_path", "allow_dash", "writable")
    if not value or any(getattr(info, c, False) for c in checks):
        return UNSURE
    if not getattr(info, "file_okay", True) or not getattr(info, "dir_okay", True):
        return UNSURE
    path = Path(value)
    unreadable = os.path.lexists(path) and not os.access(path, os.R_OK)
    return UNSURE if getattr(info, "readable", True) and unreadable else path


def _member(enum: type[Enum], value: str, info: Any) -> Any:
    """The member whose value is exactly `value` (a case-insensitive choice: typer's)."""
    if not getattr(info, "case_sensitive", True):
        return UNSURE
    for member in enum:
        if member.value == value:
            return member
    return UNSURE
