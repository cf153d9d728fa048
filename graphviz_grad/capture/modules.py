"""A script run as a module, as `python -m pkg.train` runs it: from the current folder, inside
its package, so that `from .model import Net` works.

The module is found as Python finds it (the current folder first on `sys.path`); a package runs
its `__main__`. Finding it imports its parent packages, as `python -m` does before running it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ScriptNotFoundError


@dataclass(frozen=True)
class ModuleRun:
    """A module to run as `__main__`: the name given, its file, its package and import spec."""

    name: str
    path: Path
    package: str
    spec: Any

    @property
    def stem(self) -> str:
        """The default name of what gradviz writes: `train` for `pkg.train`, `pkg` for a
        package run through its `__main__`."""
        return self.name.rsplit(".", 1)[-1]


def find_module(name: str) -> ModuleRun:
    """The module `python -m name` would run, from the current folder.

    Example:
        >>> find_module("samples.linear").path.name
        'linear.py'
    """
    hint = (
        "Give a module's dotted name, as `python -m` takes it (`-m mypkg.train`), and run "
        "gradviz from the folder that holds the package; or give the script's path without -m."
    )
    if name.endswith(".py") or os.sep in name or "/" in name:
        found = module_name(Path(name))
        raise ScriptNotFoundError(
            f"`{name}` is a path, not a module name.",
            hint="Give the path without -m"
            + (f", or the module's name with it: `-m {found[0]}`." if found else "."),
        )
    spec = _spec(name, hint)
    if spec is not None and spec.submodule_search_locations is not None:  # a package
        spec = _spec(f"{name}.__main__", hint)
        if spec is None:
            raise ScriptNotFoundError(
                f"`{name}` is a package with no `__main__` module, so it cannot be run.", hint=hint
            )
    if spec is None:
        raise ScriptNotFoundError(f"There is no module `{name}`.", hint=hint)
    origin = spec.origin
    if not isinstance(origin, str) or not origin.endswith(".py"):
        raise ScriptNotFoundError(f"`{name}` is not a Python source module ({origin}).", hint=hint)
    return ModuleRun(name, Path(origin).resolve(), spec.parent or "", spec)


def _spec(name: str, hint: str) -> Any:
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:  # a parent package that is missing or fails
        raise ScriptNotFoundError(
            f"The module `{name}` cannot be found: {type(exc).__name__}: {exc}", hint=hint
        ) from None
    except Exception as exc:  # the parent package's `__init__` raised
        raise ScriptNotFoundError(
            f"Importing the package of `{name}` raised {type(exc).__name__}: {exc}", hint=hint
        ) from None
    finally:
        sys.path.pop(0)


def module_name(path: Path) -> tuple[str, Path] | None:
    """The dotted name `python -m` takes for the script at `path`, and the folder to run it from:
    the one above its outermost package (`pkg/train.py` -> `pkg.train`, run from `pkg/..`)."""
    try:
        path = path.resolve()
    except OSError:
        return None
    parts, folder = [path.stem], path.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    if not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts), folder
