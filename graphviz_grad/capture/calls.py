"""Which backward calls to keep: `--call 3`, `--call -1`, `--call all`, `--call 1:6`.

A `CallSpec` is what `--call` says: one call (``3``, ``-1``), every call (``all``), or a range
(``1:6``, both ends included, either may be left out: ``:10``, ``250:``). The recorder keeps
only the graphs a range names (its `keep` predicate), so a 10 000-call run stays light.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CallError, ScriptExitError, UsageError
from ..model import Graph
from .modules import ModuleRun

_RANGE = re.compile(r"^\s*(-?\d+)?\s*:\s*(-?\d+)?\s*$")
_HINT = "Use --call N (1-based, -1 for the last), --call all, or a range such as --call 1:6."


@dataclass(frozen=True)
class CallSpec:
    """One call (`single`), or the range `first`..`last` (None: open end)."""

    single: int | None = None
    first: int | None = None
    last: int | None = None

    @property
    def many(self) -> bool:
        return self.single is None

    def keep(self, number: int) -> bool:
        """The recorder's `keep` predicate: does the range name call `number`?"""
        lo = self.first if self.first is not None else 1
        return number >= lo and (self.last is None or number <= self.last)

    @property
    def stop_after(self) -> int | None:
        """The last call the spec names, when it has one: recording can stop after it."""
        if self.single is not None:
            return self.single if self.single > 0 else None
        return self.last


def parse_call_spec(text: str | int) -> CallSpec:
    """``"3"`` / ``"-1"`` -> one call; ``"all"``, ``"1:6"``, ``":10"`` -> a range.

    Example:
        >>> parse_call_spec("2:5")
        CallSpec(single=None, first=2, last=5)
    """
    if isinstance(text, int):
        return _single(text)
    raw = text.strip().lower()
    if raw == "all":
        return CallSpec()
    if re.fullmatch(r"-?\d+", raw):
        return _single(int(raw))
    match = _RANGE.match(raw)
    if not match:
        raise UsageError(f"--call `{text}` is neither a call number, `all`, nor a range.", _HINT)
    first, last = (int(g) if g is not None else None for g in match.groups())
    if (first is not None and first < 1) or (last is not None and last < 1):
        raise UsageError(f"--call `{text}`: the ends of a range count from 1.", _HINT)
    if first is not None and last is not None and first > last:
        raise UsageError(f"--call `{text}` is an empty range: {first} comes after {last}.", _HINT)
    return CallSpec(first=first, last=last)


def _single(number: int) -> CallSpec:
    if number == 0:
        raise UsageError(
            "--call 0 names no call: calls are counted from 1.",
            hint="Use --call 1 for the first backward call, or --call -1 for the last.",
        )
    return CallSpec(single=number)


def run_recorded(
    path: str | Path | ModuleRun,
    argv: Sequence[str],
    keep: Callable[[int], bool],
    partial: bool = False,
    stop_after: int | None = None,
) -> Any:
    """Run the script under a recorder that keeps the graphs `keep` names (and records nothing
    after call `stop_after`); script errors raise, unless `partial` and the script made backward
    calls first (then `run.error` holds it)."""
    from graphviz_grad.capture import Recorder, run_script

    def recorder(ns: list[Any]) -> Any:
        return Recorder(keep=keep, namespaces=ns, stop_after=stop_after)

    run = run_script(path, argv, recorder)
    if run.error is not None and not (partial and run.recorder.calls):
        raise run.error
    if run.exit_code != 0:
        raise ScriptExitError(
            f"The script `{run.path.name}` exited with status {run.exit_code} (sys.exit), "
            "so gradviz showed nothing.",
            code=run.exit_code,
            hint="gradviz passes the script's exit status on; fix what made it exit.",
        )
    return run


def capture_calls(
    path: str | Path | ModuleRun, argv: Sequence[str], spec: CallSpec
) -> tuple[Any, list[Graph]]:
    """Run the script, keeping the graphs of the calls `spec` names; (run, graphs in order)."""
    run = run_recorded(path, argv, spec.keep, stop_after=spec.stop_after)
    graphs = [run.recorder.graphs[n] for n in sorted(run.recorder.graphs)]
    if not graphs:
        total = run.recorder.total_calls
        raise CallError(
            f"--call names no backward call of this run: the script made {total}.",
            hint=f"Pick calls from 1 to {total}." if total else "Call `loss.backward()` first.",
        )
    return run, graphs


def no_graph(number: int) -> bool:
    """A `keep` predicate that keeps no graph (only the light per-call records)."""
    return False
