"""Run a user's script as `python FILE ARGS` would, inside a recording.

The script runs as `__main__`, its folder first on `sys.path`, `ARGS` as `sys.argv[1:]`; its
stdout is untouched. Everything gradviz changes in the interpreter (argv, path, `__main__`, the
patched autograd functions) is restored afterwards, whether the script returns, raises, calls
`sys.exit` or is interrupted.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import traceback
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import GradvizError, ScriptError, ScriptNotFoundError, TimeoutError_

T = TypeVar("T")

#: C stack for the thread that runs the user's code: freeing a very deep autograd graph recurses
#: in C++ once Python has touched its nodes, and overflows the default 8 MB.
BIG_STACK = 1024 * 1024 * 1024


@dataclass
class ScriptRun:
    """What running the script left behind: its globals, the recording, how it ended."""

    path: Path
    namespace: dict[str, Any]
    recorder: Any
    exit_code: int = 0
    error: ScriptError | None = None


def load_source(path: str | Path) -> tuple[Path, types.CodeType]:
    """Read and compile the script, or say clearly why it cannot be run."""
    p = Path(path)
    hint = "Give the path of a Python script, e.g. `gradviz render samples/linear.py`."
    if not p.exists():
        raise ScriptNotFoundError(f"There is no file `{path}`.", hint=hint)
    if p.is_dir():
        raise ScriptNotFoundError(f"`{path}` is a folder, not a Python script.", hint=hint)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ScriptNotFoundError(f"`{path}` cannot be read: {exc.strerror}.", hint=hint) from None
    if b"\0" in raw:
        raise ScriptNotFoundError(
            f"`{path}` is not a Python script (it is a binary file).", hint=hint
        )
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScriptNotFoundError(
            f"`{path}` is not UTF-8 text (byte {exc.start} cannot be decoded).",
            hint="Save the script as UTF-8, as Python 3 expects.",
        ) from None
    try:
        code = compile(source, str(p.resolve()), "exec")
    except SyntaxError as exc:
        raise ScriptNotFoundError(
            f"`{path}` has a syntax error at line {exc.lineno}: {exc.msg}.",
            hint="Fix the script so that `python " + str(path) + "` runs it.",
        ) from None
    return p.resolve(), code


def run_script(
    path: str | Path,
    argv: Sequence[str] = (),
    recorder_factory: Callable[[list[Any]], Any] | None = None,
) -> ScriptRun:
    """Run the script inside a recorder made by `recorder_factory(namespaces)`."""
    resolved, code = load_source(path)
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=str(resolved), __builtins__=__builtins__, __spec__=None)
    namespace = module.__dict__
    recorder = recorder_factory([namespace]) if recorder_factory else None
    run = ScriptRun(resolved, namespace, recorder)
    saved = (sys.argv, list(sys.path), sys.modules.get("__main__"))
    sys.argv = [str(path), *argv]
    sys.path.insert(0, str(resolved.parent))
    sys.modules["__main__"] = module
    try:
        if recorder is not None:
            with recorder:
                _exec(code, namespace, run)
        else:
            _exec(code, namespace, run)
    finally:
        sys.argv, sys.path[:] = saved[0], saved[1]
        if saved[2] is not None:
            sys.modules["__main__"] = saved[2]
        _flush_std()
    return run


def _exec(code: types.CodeType, namespace: dict[str, Any], run: ScriptRun) -> None:
    try:
        exec(code, namespace)
    except SystemExit as exc:
        run.exit_code = _exit_code(exc.code)
    except (KeyboardInterrupt, GradvizError):
        raise
    except Exception as exc:
        from .distributed import launch_hint

        run.error = ScriptError(
            f"The script `{run.path.name}` raised {type(exc).__name__}: {_first_line(exc)}",
            hint=launch_hint(exc, run.path.name)
            or "Fix the error in your script (see its traceback above); `python "
            + run.path.name
            + "` shows the same error.",
            details=user_traceback(exc),
        )


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.split("\n")[0] if text else "(no message)"


def user_traceback(exc: BaseException) -> str:
    """The traceback of `exc`, keeping only the frames of the user's own files."""
    from ._forward import USER_FRAMES

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if USER_FRAMES.is_user(f.filename)]
    lines = ["Traceback (most recent call last):\n"]
    lines.extend(traceback.format_list(frames))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def in_big_stack(fn: Callable[[], T], timeout: float | None = None) -> T:
    """Run `fn` in a thread with a large C stack; Ctrl-C and `timeout` interrupt it cleanly."""
    result: list[Any] = []
    failure: list[BaseException] = []
    # Not `worker.is_alive()`: after a Ctrl-C interrupts `join`, Python 3.11 may call a live
    # thread stopped (bpo-45274), and the script's own outcome would be lost.
    done = threading.Event()

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)
        finally:
            leave_torch_modes()
            done.set()

    old = threading.stack_size()
    try:
        threading.stack_size(BIG_STACK)
        worker = threading.Thread(target=target, name="gradviz-script", daemon=True)
        worker.start()
    finally:
        threading.stack_size(old)
    _wait(worker, timeout, done)
    worker.join(_JOIN_GRACE)
    if failure:
        raise failure[0]
    return result[0]


#: Seconds to wait for the script's thread to end once its job is done (it only unwinds).
_JOIN_GRACE = 5.0


def leave_torch_modes() -> None:
    """Leave every torch mode the script entered on this thread and did not leave.

    torch keeps its function- and dispatch-mode stacks (`torch.set_default_device` pushes one)
    in C++ thread-local storage that holds Python objects. If they are still set when the
    thread ends while the interpreter is shutting down, their destructor takes the GIL from a
    dying thread and the process aborts (SIGABRT). Emptying them here, on the thread that
    entered them, makes the thread's end free of Python work.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return
    with contextlib.suppress(Exception):
        torch.set_default_device(None)
    c = torch._C
    with contextlib.suppress(Exception):
        while c._len_torch_function_stack() > 0:
            c._pop_torch_function_stack()
    with contextlib.suppress(Exception):
        while c._len_torch_dispatch_stack() > 0:
            c._pop_torch_dispatch_stack()


def _wait(worker: threading.Thread, timeout: float | None, done: threading.Event) -> None:
    interrupted: BaseException | None = None
    timed_out = False
    deadline = None if timeout is None else _now() + timeout
    while not done.is_set():
        try:
            done.wait(0.05)
        except KeyboardInterrupt as exc:
            interrupted = exc
            _raise_in(worker, KeyboardInterrupt)
            continue
        if deadline is not None and not timed_out and _now() > deadline:
            timed_out = True
            _raise_in(worker, _ScriptTimeout)
    if timed_out and interrupted is None:
        raise TimeoutError_(
            f"The script ran longer than the {timeout:g} s that --timeout allows and was stopped.",
            hint="Raise --timeout, or make the script do less (fewer epochs or steps).",
        )


class _ScriptTimeout(BaseException):
    """Raised inside the script's thread when --timeout runs out."""


def _raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    ident = thread.ident
    if ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(exc_type)
        )


def _now() -> float:
    return os.times().elapsed
