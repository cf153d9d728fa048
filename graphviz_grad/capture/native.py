"""The optional C++ part of capture: gradient pre-hooks that do not enter Python per node, and
the statistics of a tensor without a Python call per reduction.

gradviz runs in pure Python. Built once, the C++ pre-hooks (`_native.cpp`) take over the
hooking of each backward call's nodes, the cost that grows with every node of every call, and
`cpu_stats` the reductions that summarise each large CPU tensor (one pass over the memory where
the CPU has AVX2: `fused`), and `summaries` a whole batch of them with the checks that pick them
out (`docs/performance.md`), and `json_rows` the rows of a big graph's JSON. Everything shown
stays the same (the test suite runs both ways), but for the last bits of a large tensor's float64
mean and norm, which depend on the order of the additions (as ATen's own do between CPUs).

    python -m graphviz_grad.native          # build it (g++ and ninja; about 20 s, once)
    python -m graphviz_grad.native --check  # say whether it is built and used

The build is kept under `$GRADVIZ_CACHE` (default `~/.cache/gradviz`), one per source, torch
and Python version, and found there at import. `GRADVIZ_NATIVE=0` turns it off;
`GRADVIZ_FUSED=0` keeps it but reads the statistics with ATen's reductions (their exact bits).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

SOURCE = Path(__file__).with_name("_native.cpp")

_loaded: list[ModuleType | None] = []


def cache_root() -> Path:
    """Where builds are kept: `$GRADVIZ_CACHE`, else `$XDG_CACHE_HOME/gradviz`."""
    found = os.environ.get("GRADVIZ_CACHE")
    if found:
        return Path(found)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "gradviz"


def build_name() -> str:
    """The extension's module name: one per source, torch version and Python build."""
    import torch

    key = f"{SOURCE.read_bytes().hex()} {torch.__version__} {sys.implementation.cache_tag}"
    return "gradviz_native_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def build_dir() -> Path:
    return cache_root() / "native" / build_name()


def _library(name: str) -> Path | None:
    found = sorted(build_dir().glob(f"{name}*.so"))
    return found[0] if found else None


def load() -> ModuleType | None:
    """The built extension, or None (not built, turned off, or it fails to load)."""
    if not _loaded:
        _loaded.append(_load())
    return _loaded[0]


def hooks() -> ModuleType | None:
    """The extension, when it is built and may hook this backward call: not under compiled
    autograd, which traces Python hooks but cannot trace C++ ones."""
    module = _loaded[0] if _loaded else load()
    if module is None:
        return None
    compiled = sys.modules.get("torch._dynamo.compiled_autograd")
    if compiled is not None and (
        getattr(compiled, "compiled_autograd_enabled", False)
        or getattr(compiled, "in_compiled_autograd_region", False)
    ):
        return None
    return module


def stats() -> Callable[[list[torch.Tensor]], list[tuple[float, float, float, float]]] | None:
    """The extension's `cpu_stats` (`summary._cpu_stats` of each tensor: in one pass where
    `fused`, else with the same ATen calls, bit for bit), or None when it is not built or turned
    off."""
    module = _loaded[0] if _loaded else load()
    return None if module is None else getattr(module, "cpu_stats", None)


def fused() -> bool:
    """Whether `cpu_stats` and `summaries` read a float32/float64 CPU tensor in one pass (a CPU
    with AVX2, unless `GRADVIZ_FUSED=0` or `set_fused(False)`): 3-60 times faster than ATen's
    three reductions at every size, so every such tensor goes to C++, however large. The sum and
    the norm are then float64 sums added in another order than ATen's: the same to ~1e-15
    relative, not bit for bit (`GRADVIZ_FUSED=0` gives ATen's numbers exactly)."""
    module = _loaded[0] if _loaded else load()
    return module is not None and _fused_on[0] and bool(getattr(module, "fused", False))


#: Whether the one-pass statistics are wanted (`set_fused`).
_fused_on = [os.environ.get("GRADVIZ_FUSED", "1") != "0"]


def set_fused(on: bool) -> bool:
    """Use the one-pass statistics or ATen's reductions (in C++ all the same); says whether they
    are used now (never where the CPU cannot)."""
    _fused_on[0] = on
    module = _loaded[0] if _loaded else load()
    use = getattr(module, "use_fused", None)
    return bool(use(on)) if use is not None else False


def summary_one() -> Callable[..., Any] | None:
    """The extension's `summary_one` (`summary.summarize` of one plain large float CPU tensor
    with finite numbers, else None), or None when it is not built or turned off."""
    module = _loaded[0] if _loaded else load()
    return None if module is None else getattr(module, "summary_one", None)


def small_one() -> Callable[..., Any] | None:
    """The extension's `small_one` (`summary.summarize_small` of a few finite float32/float64
    CPU numbers, else None), or None when it is not built or turned off."""
    module = _loaded[0] if _loaded else load()
    return None if module is None else getattr(module, "small_one", None)


def summaries() -> Callable[..., list[Any]] | None:
    """The extension's `summaries` (the large CPU tensors of `summary.summarize_many`, with the
    numbers of `cpu_stats`), or None when it is not built or turned off."""
    module = _loaded[0] if _loaded else load()
    return None if module is None else getattr(module, "summaries", None)


def _load() -> ModuleType | None:
    if os.environ.get("GRADVIZ_NATIVE", "1") == "0":
        return None
    try:
        name = build_name()
        path = _library(name)
        if path is None:
            return None
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (ImportError, OSError):
        return None
    use = getattr(module, "use_fused", None)
    if use is not None:
        use(_fused_on[0])
    return module


def build(verbose: bool = False) -> Path:
    """Compile the extension into `build_dir()` (torch's `cpp_extension`, g++ and ninja)."""
    from torch.utils.cpp_extension import load as compile_and_load

    where = build_dir()
    where.mkdir(parents=True, exist_ok=True)
    # `pip install ninja` puts it beside this Python, which need not be on PATH
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    compile_and_load(
        build_name(),
        [str(SOURCE)],
        extra_cflags=["-O2"],
        build_directory=str(where),
        verbose=verbose,
    )
    _loaded.clear()
    library = _library(build_name())
    if library is None:
        raise OSError(f"the build left no library in {where}")
    return library


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        module = load()
        if module is None:
            off = os.environ.get("GRADVIZ_NATIVE", "1") == "0"
            why = (
                "turned off by GRADVIZ_NATIVE=0"
                if off
                else f"not built for this gradviz and torch ({build_dir()}); "
                "`python -m graphviz_grad.native` builds them (g++ and ninja)"
            )
            print(f"gradviz native hooks: {why}")
            return 1
        print(f"gradviz native hooks: in use ({module.__file__})")
        if fused():
            how = "one pass over each tensor (AVX2)"
        elif getattr(module, "fused", False):
            how = "ATen's reductions (GRADVIZ_FUSED=0)"
        else:
            how = "ATen's reductions (this CPU has no AVX2)"
        print(f"tensor statistics: {how}")
        return 0
    try:
        path = build(verbose="-v" in args)
    except Exception as exc:  # a compiler missing or failing: gradviz runs in pure Python
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"gradviz native hooks not built: {first}", file=sys.stderr)
        print("gradviz works without them, in pure Python (slower on big graphs).", file=sys.stderr)
        return 1
    print(f"gradviz native hooks built: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
