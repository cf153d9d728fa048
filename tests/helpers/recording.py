"""Run a sample script under a `Recorder`, as the CLI would (its own `__main__`, its argv)."""

from __future__ import annotations

import sys
from pathlib import Path

from graphviz_grad.capture import Recorder, load_source


def run_recorded(script: Path, **kwargs: object) -> Recorder:
    """The recording of `script` run to its end; `kwargs` go to `Recorder`."""
    path, code = load_source(script)
    ns: dict = {"__name__": "__main__", "__file__": str(path)}
    argv, sys.argv = sys.argv, [str(path)]
    try:
        with Recorder(namespaces=[ns], **kwargs) as rec:  # type: ignore[arg-type]
            exec(code, ns)
    finally:
        sys.argv = argv
    return rec
