"""Run a user's script as `python FILE ARGS` would, inside a recording.

The script runs as `__main__`, its folder first on `sys.path`, `ARGS` as `sys.argv[1:]`; its
stdout is untouched (the CLI sends it to stderr when stdout carries data). A Jupyter notebook
(`.ipynb`) runs as its code cells, in order. Everything gradviz changes in the interpreter (argv,
path, `__main__`, the patched autograd functions) is restored afterwards, whether the script
returns, raises, calls `sys.exit` or is interrupted.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import json
import linecache
import os
import re
import shlex
import sys
import threading
import traceback
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from ..errors import (
    GradvizError,
    InternalError,
    Interrupted,
    ScriptError,
    ScriptNotFoundError,
    TimeoutError_,
)
from ..model import rebinding_update
from .modules import ModuleRun, module_name

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
    #: The script ended by `sys.exit` (an argparse `--help` too), whatever the status.
    exited: bool = False
    error: ScriptError | Interrupted | TimeoutError_ | None = None
    #: `--timeout`'s seconds, once they ran out while the script ran (`_ask_to_stop`).
    timed_out: float | None = None
    #: What gradviz said about the source before running it (notebook cells skipped...).
    notes: list[str] = field(default_factory=list)
    #: Variables of the script's functions, gone by the end (`Recorder.take_locals`).
    locals: dict[str, Any] = field(default_factory=dict)

    @property
    def variables(self) -> dict[str, Any]:
        """The script's variables, and those of its functions around its last backward call
        and its last graph op (`def main(): ...`); the script's own names come first and win."""
        if not self.locals:
            return self.namespace
        ns = self.namespace
        return {**ns, **{k: v for k, v in self.locals.items() if k not in ns}}


def load_source(path: str | Path) -> tuple[Path, types.CodeType]:
    """Read and compile the script, or say clearly why it cannot be run.

    A notebook (``.ipynb``) compiles to its first code cell here; `load_cells` gives them all.
    """
    resolved, cells, _ = load_cells(path)
    return resolved, cells[0] if cells else compile("", str(resolved), "exec")


def load_cells(path: str | Path) -> tuple[Path, list[types.CodeType], list[str]]:
    """The code to run, in order, and notes for the user: one code object for a script, one
    per code cell for a notebook (named ``nb.ipynb[cell 3]`` in tracebacks and findings).

    Example:
        >>> path, cells, notes = load_cells("samples/linear.py")
    """
    p = Path(path)
    source = _read_text(p, str(path))
    if p.suffix.lower() == ".ipynb":
        return p.resolve(), *notebook_cells(p.resolve(), source, str(path))
    return p.resolve(), [_compile(source, str(p.resolve()), str(path))], []


def _read_text(p: Path, shown: str) -> str:
    hint = "Give the path of a Python script, e.g. `gradviz render samples/linear.py`."
    if not p.exists():
        raise ScriptNotFoundError(f"There is no file `{shown}`.", hint=hint)
    if p.is_dir():
        raise ScriptNotFoundError(f"`{shown}` is a folder, not a Python script.", hint=hint)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ScriptNotFoundError(f"`{shown}` cannot be read: {exc.strerror}.", hint=hint) from None
    if b"\0" in raw:
        raise ScriptNotFoundError(
            f"`{shown}` is not a Python script (it is a binary file).", hint=hint
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScriptNotFoundError(
            f"`{shown}` is not UTF-8 text (byte {exc.start} cannot be decoded).",
            hint="Save the script as UTF-8, as Python 3 expects.",
        ) from None


def _compile(source: str, filename: str, shown: str, where: str = "") -> types.CodeType:
    try:
        return compile(source, filename, "exec")
    except SyntaxError as exc:
        raise ScriptNotFoundError(
            f"`{shown}` has a syntax error at {where}line {exc.lineno}: {exc.msg}.",
            hint="Fix the script so that `python " + shown + "` runs it."
            if not where
            else "Fix that cell so that the notebook runs top to bottom.",
        ) from None


def notebook_cells(path: Path, text: str, shown: str) -> tuple[list[types.CodeType], list[str]]:
    """The code cells of a notebook, compiled in order, and a note per skipped magic line.

    IPython magics (``%time``, ``%%bash``) and shell escapes (``!pip``) are not Python: a magic
    line becomes ``pass`` (indentation kept); a cell magic (``%%``) skips its whole cell. Each
    cell's source is registered with `linecache`, so tracebacks and `explain` show its lines.
    """
    cells = _code_cells(text, shown)
    codes: list[types.CodeType] = []
    skipped: list[str] = []
    for number, source in cells:
        name = f"{path}[cell {number}]"
        if source.lstrip().startswith("%%"):
            skipped.append(f"cell {number} (cell magic {source.split()[0]})")
            continue
        lines = source.splitlines(keepends=True)
        for i, line in enumerate(lines):
            stripped = line.lstrip()
            if stripped.startswith(("%", "!")):
                lines[i] = line[: len(line) - len(stripped)] + "pass\n"
                skipped.append(f"cell {number}, line {i + 1} ({stripped.split()[0]})")
        code_text = "".join(lines)
        linecache.cache[name] = (len(code_text), None, lines, name)
        codes.append(_compile(code_text, name, shown, f"cell {number}, "))
    notes = []
    if skipped:
        shown_list = "; ".join(skipped[:5]) + ("; …" if len(skipped) > 5 else "")
        notes.append(
            f"{Path(shown).name}: skipped {len(skipped)} IPython magic/shell line"
            f"{'s' if len(skipped) != 1 else ''} that Python cannot run: {shown_list}."
        )
    return codes, notes


def _code_cells(text: str, shown: str) -> list[tuple[int, str]]:
    """(1-based cell number among all cells, source) of every code cell, from the JSON."""
    try:
        cells = json.loads(text)["cells"]
        found = [
            (i, c["source"] if isinstance(c["source"], str) else "".join(c["source"]))
            for i, c in enumerate(cells, start=1)
            if c.get("cell_type") == "code"
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ScriptNotFoundError(
            f"`{shown}` is not a readable Jupyter notebook ({type(exc).__name__}: {exc}).",
            hint="Open and save it in Jupyter, or export it with `jupyter nbconvert --to script`.",
        ) from None
    return found


#: The runs in progress, innermost last (read by `live_status` from another thread).
_LIVE: list[ScriptRun] = []


def live_status() -> str | None:
    """A few words on the script run in progress (backward calls, optimizer steps), or None."""
    run = _LIVE[-1] if _LIVE else None
    status = getattr(run.recorder, "status", None) if run is not None else None
    return status() if callable(status) else None


def run_script(
    path: str | Path | ModuleRun,
    argv: Sequence[str] = (),
    recorder_factory: Callable[[list[Any]], Any] | None = None,
) -> ScriptRun:
    """Run the script (or a module, as `python -m` would) inside a recorder made by
    `recorder_factory(namespaces)`."""
    as_module, source = (path, path.path) if isinstance(path, ModuleRun) else (None, path)
    resolved, codes, notes = load_cells(source)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=str(resolved), __builtins__=__builtins__, __spec__=None)
    if as_module is not None:  # inside its package: relative imports work
        module.__dict__.update(__package__=as_module.package, __spec__=as_module.spec)
    namespace = module.__dict__
    recorder = recorder_factory([namespace]) if recorder_factory else None
    run = ScriptRun(resolved, namespace, recorder, notes=notes)
    saved = (sys.argv, list(sys.path), sys.modules.get("__main__"))
    cwd = _cwd()  # a script that changes folder (`os.chdir`) leaves gradviz's outputs where asked
    sys.argv = [str(resolved) if as_module else str(path), *argv]
    # `python -m` puts the current folder first on the path, `python FILE` the script's folder
    sys.path.insert(0, (cwd or "") if as_module else str(resolved.parent))
    sys.modules["__main__"] = module
    _LIVE.append(run)
    try:
        if recorder is not None:
            with recorder:
                _exec_all(codes, namespace, run)
                if hasattr(recorder, "take_locals"):
                    run.locals = recorder.take_locals()
        else:
            _exec_all(codes, namespace, run)
    finally:
        _LIVE.remove(run)
        sys.argv, sys.path[:] = saved[0], saved[1]
        if saved[2] is not None:
            sys.modules["__main__"] = saved[2]
        if cwd is not None and _cwd() != cwd:
            with contextlib.suppress(OSError):
                os.chdir(cwd)
        _flush_std()
    return run


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the folder was removed under us
        return None


def _exec_all(codes: Sequence[types.CodeType], namespace: dict[str, Any], run: ScriptRun) -> None:
    """Run each code object in turn (a notebook's cells), stopping at an error or exit."""
    for code in codes:
        if not _exec(code, namespace, run):
            return


def _exec(code: types.CodeType, namespace: dict[str, Any], run: ScriptRun) -> bool:
    """Run `code`; False when the script stopped (an error or `sys.exit`)."""
    try:
        exec(code, namespace)
        return True
    except SystemExit as exc:
        run.exited = True
        run.exit_code = _exit_code(exc.code)
    except (KeyboardInterrupt, _ScriptTimeout) as exc:
        if run.recorder is None or getattr(run.recorder, "stopping", None) is not type(exc):
            raise  # the script's own, or a second Ctrl-C: nothing is shown
        run.error = _interrupted(run, exc)
    except GradvizError:
        raise
    except Exception as exc:
        from .distributed import launch_hint

        own = _own_frame(exc)
        if own is not None:  # not the script's error: gradviz's own, raised inside it
            run.error = InternalError(
                f"gradviz failed while running the script `{run.path.name}`: "
                f"{type(exc).__name__}: {_first_line(exc)} (raised in gradviz's own code, "
                f"{own}).",
                hint=f"This is a bug in gradviz, not in your script (`python {run.path.name}` "
                "runs without gradviz): please report it with the script and the traceback "
                "above, which shows gradviz's frames.",
                details="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            )
            return False
        run.error = ScriptError(
            f"The script `{run.path.name}` raised {type(exc).__name__}: {_first_line(exc)}",
            hint=launch_hint(exc, run.path.name)
            or _package_hint(run, exc)
            or _missing_module_hint(exc)
            or _no_graph_hint(run, exc)
            or _number_backward_hint(run, exc)
            or _known_hint(exc)
            or _grad_none_hint(exc)
            or _fix_hint(run.path),
            details=user_traceback(exc),
        )
    return False


def _interrupted(run: ScriptRun, exc: BaseException) -> Interrupted | TimeoutError_:
    """Ctrl-C or `--timeout` stopped the script: where it stood (what completed before it can
    be shown)."""
    frames = _user_frames(exc)
    at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    if isinstance(exc, _ScriptTimeout):
        return TimeoutError_(
            f"The script `{run.path.name}` ran longer than the {run.timed_out or 0:g} s that "
            f"--timeout allows and was stopped{at}.",
            hint=_TIMEOUT_HINT,
        )
    return Interrupted(
        f"Ctrl-C stopped the script `{run.path.name}`{at}.",
        hint="gradviz shows what completed before Ctrl-C; press it twice to quit at once.",
    )


_TIMEOUT_HINT = "Raise --timeout, or make the script do less (fewer epochs or steps)."


def _no_graph_hint(run: ScriptRun, exc: BaseException) -> str | None:
    """For PyTorch's "element 0 of tensors does not require grad": why, as the recording saw it
    (a `torch.no_grad()` or `.detach()` on the way, or no tensor with `requires_grad`)."""
    if run.recorder is None or "does not require grad and does not have a grad_fn" not in str(exc):
        return None
    reason = getattr(run.recorder, "no_graph", None)
    return reason if isinstance(reason, str) else None


#: Autograd's errors that learners meet most, by a piece of PyTorch's message: how to fix them.
_KNOWN = (
    (
        "zero-dimensional tensor (at position",
        "`torch.cat` joins tensors along a dimension, and a 0-dim tensor (a scalar: "
        "`x.sum()`, `v[0][i]`) has none: use `torch.stack(scalars)` to make a 1-D tensor of them, "
        "or give each one a dimension with `.view(1)`.",
    ),
    (
        "a leaf Variable that requires grad is being used in an in-place operation",
        "Update a parameter under `torch.no_grad()`: `with torch.no_grad(): w -= lr * w.grad` "
        "(or `w.data -= lr * w.grad.data`); autograd does not let a leaf it tracks change in "
        "place.",
    ),
    (
        "assigned grad expected to be a Tensor or None",
        "`.grad` holds a tensor or None, not a number: clear it with `w.grad = None` or "
        "`w.grad.zero_()` after the update (`optimizer.zero_grad()` does it for all of an "
        "optimizer's parameters).",
    ),
    (
        "optimizer got an empty parameter list",
        "The optimizer was given no parameters: a model whose layers are kept in a plain "
        "Python list or dict (`self.layers = [nn.Linear(...), ...]`) registers none of them; "
        "keep them in `nn.ModuleList([...])` or `nn.ModuleDict({...})`. Build the optimizer "
        "after the model, from `model.parameters()`.",
    ),
    (
        "grad can be implicitly created only for scalar outputs",
        "`backward()` without arguments needs a loss of one number: reduce it first "
        "(`loss.mean()` or `loss.sum()`), or pass `gradient=` a tensor of the loss's shape.",
    ),
    (
        "Trying to backward through the graph a second time",
        "Compute the forward pass again before each backward call (inside the loop); if a "
        "tensor carried over from the previous step (an RNN's hidden state) links the graphs, "
        "`.detach()` it; pass `retain_graph=True` to the earlier call only if the graph is needed "
        "twice. `gradviz doctor` names the tensor and both calls.",
    ),
    (
        "has been modified by an inplace operation",
        "Use the out-of-place op (`x = x + 1`, not `x += 1`) or `.clone()` before the in-place "
        "one; `gradviz doctor` names the in-place op and its line.",
    ),
    (
        "Inference tensors cannot be saved for backward",
        "A tensor made under `torch.inference_mode()` feeds a computation that needs a "
        "gradient: make it under `torch.no_grad()` instead, or `.clone()` it outside inference "
        "mode before using it.",
    ),
    (
        "Only Tensors of floating point and complex dtype can require gradients",
        "Make the tensor floating point: `torch.tensor([1.0, 2.0], requires_grad=True)` (`1.0`, "
        "not `1`), or pass `dtype=torch.float32`.",
    ),
    (
        "expected target dtype to be Long",
        "Class-index targets (`cross_entropy`, `nll_loss`) must be int64 (`Long`) integers: "
        "`target.long()`; for probabilities or one-hot targets of the prediction's shape, a "
        "float target is fine.",
    ),
    (
        "must be the same as input size",
        "`binary_cross_entropy(_with_logits)` compares prediction and target element by "
        "element and needs one shape: a model ending in one output gives [N, 1] against a "
        "target of [N]; use `pred.squeeze(1)` or `target.unsqueeze(1)` (`target.view_as(pred)`).",
    ),
    (
        "0D or 1D target tensor expected, multi-target not supported",
        "`cross_entropy` takes class indices of shape [N]: `target.squeeze(1)` for an [N, 1] "
        "target, `target.argmax(1)` for one-hot rows.",
    ),
    (
        "shapes cannot be multiplied",
        "The input's last dimension must equal the layer's `in_features` (the first number of "
        "`nn.Linear(in, out)`): fix the layer's size, or flatten the input first "
        "(`x.flatten(1)` after a convolution).",
    ),
    (
        "must have the same dtype",
        "Two tensors of different dtypes meet here. Data from numpy is float64 (`Double`) while "
        "layers are float32: convert it with `.float()` (or `torch.tensor(a, "
        "dtype=torch.float32)`).",
    ),
    (
        "Expected more than 1 value per channel when training",
        "BatchNorm in training mode needs at least 2 samples per batch: drop the last short "
        "batch (`DataLoader(..., drop_last=True)`), or call `model.eval()` before predicting "
        "one sample.",
    ),
    (
        "to match target batch_size",
        "The prediction and the target have different numbers of rows: a `view`/`reshape` "
        "before the loss merged or split samples (`x.view(-1, N)` with the wrong N; "
        "`x.flatten(1)` keeps the batch dimension), or inputs and labels are batched "
        "differently.",
    ),
    (
        "appears to not have been used in the graph",
        "The output does not depend on that input: a `.detach()`, `.item()` or `torch.no_grad()` "
        "on the way cuts it (`gradviz doctor` names the cuts it saw), or pass "
        "`allow_unused=True` (its gradient is then None).",
    ),
    (
        "returned an incorrect number of gradients",
        "A custom `autograd.Function`'s `backward` returns one gradient per input of `forward`, "
        "in order: `return grad_x, None` for an input that needs none (a number, a flag).",
    ),
    (
        "returned an invalid gradient at index",
        "A custom `autograd.Function`'s `backward` returns, for each input of `forward`, a "
        "gradient of that input's shape (or None).",
    ),
    (
        "save_for_backward can only save variables",
        "`ctx.save_for_backward` takes tensors only: keep other values as attributes of `ctx` "
        "(`ctx.k = k`).",
    ),
    (
        "cannot be converted to Scalar",
        "`.item()` and `float()` need a tensor of one number: reduce it first "
        "(`loss.mean().item()`), or use `.tolist()` for all the numbers.",
    ),
    (
        "Expected target size",
        "For a sequence, `cross_entropy` wants the classes in dimension 1: "
        "`logits.permute(0, 2, 1)` ([N, C, L] against a target of [N, L]), or flatten both "
        "(`cross_entropy(logits.reshape(-1, C), target.reshape(-1))`).",
    ),
    (
        "_target_out_of_bounds_",  # `_known_hint` matches PyTorch's "Target 12 is out of bounds"
        "A class index in the target is beyond the classes the model outputs: the last layer "
        "needs one output per class (labels 0 to C-1; labels that start at 1 need "
        "`target - 1`).",
    ),
    (
        "all elements of input should be between 0 and 1",
        "`binary_cross_entropy` (`nn.BCELoss`) takes probabilities: apply `torch.sigmoid` "
        "first, or better, give the raw scores to `binary_cross_entropy_with_logits` "
        "(`nn.BCEWithLogitsLoss`), which is stabler.",
    ),
    (
        "must match the size of tensor b",
        "Two tensors whose shapes do not broadcast meet in an elementwise op (`+`, `*`, a "
        "loss): print their `.shape` at that line. A missing or extra dimension is fixed with "
        "`unsqueeze`/`squeeze`, a swapped one with `.T` or `permute`.",
    ),
    (
        "view size is not compatible with input tensor's size and stride",
        "`view` needs memory laid out in order, and a `.t()`, `transpose` or `permute` before "
        "it changed that: use `.reshape(...)` (it copies when it must) or `.contiguous().view("
        "...)`; both keep the graph.",
    ),
    (
        "Dimension out of range",
        "The `dim` given is past the tensor's dimensions (`t.dim()`): a single sample has no "
        "batch dimension (`x.unsqueeze(0)` adds one), and `dim=-1` names the last dimension "
        "whatever the rank.",
    ),
    (
        "Can't call numpy() on Tensor that requires grad",
        "`.numpy()` leaves the graph: for a value to print or plot, take `t.detach().numpy()` "
        "(or `t.item()` for one number); for a result that needs its gradient, stay in torch "
        "(`torch.exp`, not `np.exp`).",
    ),
    (
        "'indices' to have one of the following scalar types",
        "`nn.Embedding` looks its rows up by integer index: make the indices integers with "
        "`.long()` (floats come from `torch.tensor([1.0, 2.0])` or data loaded as float).",
    ),
    (
        "stack expects each tensor to be equal size",
        "`torch.stack` (and a DataLoader's default collate, which stacks the samples of a "
        "batch) needs tensors of one shape: pad them to one length (`nn.utils.rnn.pad_sequence`) "
        "or give the DataLoader a `collate_fn` that pads.",
    ),
    (
        "Expected all tensors to be on the same device",
        "Move the model and every tensor it meets to one device: `model.to(device)`, "
        "`x = x.to(device)`, `y = y.to(device)`.",
    ),
)


_MATMUL = re.compile(r"shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")
_CHANNELS = re.compile(r"expected input\[([\d, ]+)\] to have (\d+) channels, but got (\d+)")


def _known_hint(exc: BaseException) -> str | None:
    text = str(exc)
    target = re.match(r"Target (-?\d+) is out of bounds", text)
    if target is not None:
        text = "_target_out_of_bounds_"
    hint = next((hint for piece, hint in _KNOWN if piece in text), None)
    if target is not None and hint is not None:
        hint = hint.replace("A class index", f"Class {target[1]}", 1)
    if "index out of range in self" in text and _raised_in(exc, "embedding"):
        hint = (
            "An index reached an `nn.Embedding` beyond its `num_embeddings` (or below 0): make "
            "the layer as large as the vocabulary (`nn.Embedding(len(vocab), dim)`), or map "
            "unknown tokens to an index inside it."
        )
    if "optimizer got an empty parameter list" in text:
        spent = _spent_generator(exc)
        if spent is not None:
            hint = (
                f"`{spent}` is a generator (`model.parameters()` returns one), and something "
                "before this line (another optimizer, a loop) went through it: it is empty "
                f"now. Pass `model.parameters()` again, or keep a list: `{spent} = "
                "list(model.parameters())`."
            )
    channels = _CHANNELS.search(text)
    if channels is not None:
        takes, has = channels[2], channels[3]
        hint = (
            f"The layer takes {takes} input channels and the input has {has}: channels are "
            f"dimension 1 ([N, C, ...]). Make the layer's first argument {has} if the input is "
            "right; an image with its channels last ([N, H, W, C]) needs "
            "`x.permute(0, 3, 1, 2)`, a grayscale image for a colour model `x.repeat(1, 3, 1, 1)`."
        )
    match = _MATMUL.search(text)
    if match is not None and match[2] != match[3]:
        has, takes, out = match[2], match[3], match[4]
        hint = (
            f"The input has {has} features per row but the layer takes {takes}: for an "
            f"`nn.Linear({takes}, {out})`, make it `nn.Linear({has}, {out})` if the input is "
            "right, or flatten the input first (`x.flatten(1)` after a convolution)."
        )
    return hint


_NUMBER_BACKWARD = re.compile(r"'(float|int)' object has no attribute 'backward'")


def _number_backward_hint(run: ScriptRun, exc: BaseException) -> str | None:
    """`loss = criterion(out, y).item()`, then `loss.backward()`: the number has no graph. Names
    the line of the last `.item()` the recording saw on a tensor that requires grad."""
    if not isinstance(exc, AttributeError) or not _NUMBER_BACKWARD.search(str(exc)):
        return None
    watch = getattr(run.recorder, "watch", None)
    items = list(getattr(watch, "items", {}).values())
    what = "`.item()` (or `float(...)`)"
    if items and items[-1].line is not None:
        what = f"`.item()` at line {items[-1].line}"
    return (
        f"`.backward()` was called on a Python number, not a tensor: {what} turned the loss "
        "into a number and left its graph behind. Call `backward()` on the loss tensor, and "
        "take `loss.item()` after it, for printing."
    )


def _spent_generator(exc: BaseException) -> str | None:
    """The name, on the innermost line of the user's code in `exc`'s traceback, of a variable
    that holds a generator (`params = model.parameters()`, used up by then)."""
    from ._forward import USER_FRAMES

    frames = [f for f, _ in traceback.walk_tb(exc.__traceback__)]
    frame = next((f for f in reversed(frames) if USER_FRAMES.is_user(f.f_code.co_filename)), None)
    if frame is None:
        return None
    text = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    try:
        tree = ast.parse(text.rstrip(":"))
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            value = frame.f_locals.get(node.id, frame.f_globals.get(node.id))
            if isinstance(value, types.GeneratorType):
                return node.id
    return None


def _raised_in(exc: BaseException, function: str) -> bool:
    """Whether a function of that name (PyTorch's or the script's) is on `exc`'s traceback."""
    return any(f.name == function for f in traceback.extract_tb(exc.__traceback__))


def _grad_none_hint(exc: BaseException) -> str | None:
    """For `w.grad.zero_()` / `w.grad.data` / `lr * w.grad` on a `.grad` that is None (an
    AttributeError or TypeError on None at a line that reads a `.grad`): why a `.grad` is None,
    naming it when the error's position shows which; for `w = w - lr * w.grad`, that this very
    line made `w` a non-leaf."""
    text = str(exc)
    on_none = (
        isinstance(exc, AttributeError) and "'NoneType' object has no attribute" in text
    ) or (isinstance(exc, TypeError) and "'NoneType'" in text)
    if not on_none:
        return None
    frames = _user_frames(exc)
    if not frames or ".grad" not in (frames[-1].line or ""):
        return None
    last = frames[-1]
    text = last.line or ""
    rebound = rebinding_update(text)
    if rebound is not None:
        return (
            f"`{rebound}.grad` is None: line {last.lineno} makes a new `{rebound}` from the old "
            "one with grad tracking on, so after the first update it is no leaf and backward "
            f"fills no `.grad` for it. Update the leaf in place, untracked: `with "
            f"torch.no_grad(): {rebound} -= lr * {rebound}.grad`, then `{rebound}.grad.zero_()`."
        )
    # the failing expression's columns (Python 3.11+), on one line
    start, end = getattr(last, "colno", None), getattr(last, "end_colno", None)
    if start is not None and end is not None and last.lineno == getattr(last, "end_lineno", None):
        raw = linecache.getline(last.filename, last.lineno or 0)
        indent = len(raw) - len(raw.lstrip())  # `line` is stripped, the columns are not
        text = text[max(start - indent, 0) : max(end - indent, 0)] or text
    names = re.findall(r"([A-Za-z_][\w.\[\]]*)\.grad\b", text)
    which = f"`{names[0]}.grad`" if len(set(names)) == 1 else "A `.grad`"
    return (
        f"{which} is None here: it stays None until a backward call reaches that tensor, which "
        "needs the loss to depend on it (and one backward call to have run). `gradviz doctor` "
        "names the tensors the loss does not depend on."
    )


def _package_hint(run: ScriptRun, exc: BaseException) -> str | None:
    """For a script of a package run by its path (`from .model import Net` fails as under
    `python pkg/train.py`): run it as a module, as `python -m pkg.train` would."""
    if not isinstance(exc, ImportError) or "no known parent package" not in str(exc):
        return None
    found = module_name(run.path)
    if found is None:
        return "The script belongs to a package: run it as a module with -m (`-m pkg.train`)."
    name, folder = found
    where = "" if folder == Path.cwd().resolve() else f" from `{folder}`"
    return (
        f"The script belongs to a package: run it as a module{where}, `-m {name}` (as "
        f"`python -m {name}` would)."
    )


#: Modules whose package on PyPI has another name.
_DISTRIBUTIONS = {
    "PIL": "pillow",
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "cv2": "opencv-python",
    "dotenv": "python-dotenv",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
}


def _missing_module_hint(exc: BaseException) -> str | None:
    """A module the script imports is not installed where gradviz runs: gradviz runs the script
    in its own Python, which may not be the environment the script was written for."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    if top in sys.modules or top in ("torch", "graphviz_grad"):
        return None  # a submodule of an installed package: a real error in the script
    python = sys.executable or "python"
    package = _DISTRIBUTIONS.get(top, top)
    return (
        f"`{top}` is not installed in the Python gradviz runs the script with ({python}): "
        f"install it there, `{shlex.quote(python)} -m pip install {package}`, or install "
        "gradviz in the environment the script runs in."
    )


def _fix_hint(path: Path) -> str:
    if path.suffix.lower() == ".ipynb":
        return "Fix the error in that cell (see its traceback above); the notebook shows the same."
    return (
        "Fix the error in your script (see its traceback above); "
        f"`python {path.name}` shows the same error."
    )


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


#: A terminal's escape sequence (colour, bold) in an exception's text: torch's own messages
#: carry some (`torch.load`'s "weights only" error), which a pipe would show as `[1m`.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def _first_line(exc: BaseException) -> str:
    text = _ESCAPES.sub("", str(exc)).strip()
    return text.split("\n")[0] if text else "(no message)"


def _user_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The frames of `exc`'s traceback in the user's own files."""
    from ._forward import USER_FRAMES

    return [f for f in traceback.extract_tb(exc.__traceback__) if USER_FRAMES.is_user(f.filename)]


def _own_frame(exc: BaseException) -> str | None:
    """Where in gradviz's own code `exc` was raised (`capture/summary.py:509`), when the
    innermost frame of its traceback is gradviz's: a bug of gradviz's, not the script's."""
    from ._forward import _OWN_DIR

    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or not frames[-1].filename.startswith(_OWN_DIR):
        return None
    last = frames[-1]
    return f"{Path(last.filename).relative_to(_OWN_DIR).as_posix()}:{last.lineno}"


def user_traceback(exc: BaseException) -> str:
    """The traceback of `exc`, keeping only the frames of the user's own files."""
    frames = _user_frames(exc)
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
    if failure and isinstance(failure[0], _ScriptTimeout):  # it landed outside the script
        raise _timeout_error(timeout)
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
    asked: Any = None  # the recording asked to stop the script at a safe point
    grace: float | None = None  # when it is stopped from outside if no safe point did it
    #: When the stop was raised into the script's thread, how long it may take, and the exit
    #: code if it never arrives: a thread blocked in C (`time.sleep`, a read, a lock) runs no
    #: bytecode, so the exception waits forever (a Ctrl-C ends such a call in plain Python).
    sent: tuple[float, float, int] | None = None
    while not done.is_set():
        try:
            done.wait(0.05)
        except KeyboardInterrupt as exc:
            first, interrupted = interrupted is None, exc
            if first:
                asked = _ask_to_stop(KeyboardInterrupt)
            elif asked is not None:
                asked.abandon_stop()  # a second Ctrl-C: quit at once, showing nothing
            grace = _now() + _STOP_GRACE if first and asked is not None else None
            if grace is None:
                _raise_in(worker, KeyboardInterrupt)
                sent = (_now(), _STUCK if first else _STUCK_AGAIN, Interrupted.exit_code)
            continue
        if grace is not None and _now() > grace and not asked.busy():
            # the script runs no op (it sleeps, loads data, computes in plain Python): stop it
            # from outside, unless a safe point stopped it meanwhile or it has ended
            grace = None
            if asked.take_stop() and any(run.recorder is asked for run in _LIVE):
                _raise_in(worker, asked.stopping)
                code = Interrupted.exit_code if interrupted else TimeoutError_.exit_code
                sent = (_now(), _STUCK, code)
        if deadline is not None and not timed_out and _now() > deadline:
            timed_out = True
            if interrupted is None:
                asked = _ask_to_stop(_ScriptTimeout, timeout)
            grace = _now() + _STOP_GRACE if interrupted is None and asked is not None else None
            if grace is None:
                _raise_in(worker, _ScriptTimeout)
                sent = (_now(), _STUCK, TimeoutError_.exit_code)
        if sent is not None and _now() > sent[0] + sent[1] and not done.is_set():
            _quit_stuck(sent[2])
    if timed_out and interrupted is None and asked is None:
        raise _timeout_error(timeout)


#: Seconds a script's thread has to stop once the stop is raised in it, then gradviz quits
#: without it (after a second Ctrl-C, sooner).
_STUCK = 3.0
_STUCK_AGAIN = 1.0


def _quit_stuck(code: int) -> NoReturn:
    """The script's thread did not stop: it is blocked in a call that runs no Python (a long
    `time.sleep`, a read that waits, a lock). Say so and end the process without it; nothing is
    drawn, and no file is half written (outputs are replaced whole)."""
    sys.stderr.write(
        "error: The script did not stop: it is blocked in a call Python cannot interrupt from "
        "another thread (time.sleep, a read that waits, a lock), so gradviz quit without "
        "drawing.\nhint: Run it with `python` to see where it waits; gradviz runs the script "
        "in a thread of its own, where Ctrl-C does not end such a call.\n"
    )
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code)


def _timeout_error(timeout: float | None) -> TimeoutError_:
    return TimeoutError_(
        f"The script ran longer than the {timeout or 0:g} s that --timeout allows and was stopped.",
        hint=_TIMEOUT_HINT,
    )


class _ScriptTimeout(BaseException):
    """Raised inside the script's thread when --timeout runs out."""


#: Seconds a stop (Ctrl-C, `--timeout`) leaves the script to reach a safe point (its next op)
#: before it is stopped from outside.
_STOP_GRACE = 0.3


def _ask_to_stop(exc_type: type[BaseException], timeout: float | None = None) -> Any:
    """At the first Ctrl-C or at `--timeout`, ask the recording of the script run in progress
    to stop it where the backward calls already completed stay whole: that recorder, or None
    when no script runs under one."""
    run = _LIVE[-1] if _LIVE else None
    recorder = run.recorder if run is not None else None
    if run is None or recorder is None or not hasattr(recorder, "request_stop"):
        return None
    if exc_type is _ScriptTimeout:
        run.timed_out = timeout
    recorder.request_stop(exc_type)
    return recorder


def _raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    ident = thread.ident
    if ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(exc_type)
        )


def _now() -> float:
    return os.times().elapsed
