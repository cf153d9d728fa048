"""Processes the script starts (`multiprocessing`, `torch.multiprocessing`, a process pool):
gradviz records the process it runs in, so a backward call made in one of them is never seen.

While a script runs, `BaseProcess.start` (which every start method and `ProcessPoolExecutor`
go through) counts the processes started, DataLoader workers aside, and notes where the first
was, so that a run whose training happened there says so instead of "no backward call" alone.
"""

from __future__ import annotations

import sys
from typing import Any

from ._forward import USER_FRAMES


class Subprocesses:
    """Counts the processes the script starts while installed."""

    def __init__(self) -> None:
        #: Processes started so far.
        self.started = 0
        #: The script's file and line that started the first one.
        self.where: tuple[str | None, int | None] = (None, None)
        self._saved: Any = None

    def install(self) -> None:
        import multiprocessing.process as process

        if self._saved is not None:
            return
        original = process.BaseProcess.start
        self._saved = original
        counter = self

        def start(proc: Any) -> Any:
            target = getattr(proc, "_target", None)
            if getattr(target, "__module__", "").startswith("torch.utils.data"):
                return original(proc)  # a DataLoader worker: it loads data, no autograd
            counter.started += 1
            if counter.started == 1:
                frame = USER_FRAMES.find(sys._getframe(1))
                if frame is not None:
                    counter.where = (frame.f_code.co_filename, frame.f_lineno)
            return original(proc)

        start.__wrapped__ = original  # type: ignore[attr-defined]
        start.__doc__ = original.__doc__
        process.BaseProcess.start = start  # type: ignore[method-assign,assignment]

    def remove(self) -> None:
        if self._saved is None:
            return
        import multiprocessing.process as process

        process.BaseProcess.start = self._saved  # type: ignore[method-assign]
        self._saved = None

    def sentence(self) -> str | None:
        """What to tell the user about them, or None when the script started none."""
        if not self.started:
            return None
        from ..model import display_path

        n = self.started
        file, line = self.where
        at = f" at {display_path(file)}:{line}" if file and line else ""
        return (
            f"it started {n} subprocess{'es' if n != 1 else ''}{at} (multiprocessing), and "
            "gradviz records only the process it runs in: backward calls made there are not "
            "seen"
        )
