"""Bad input, one row each: the exit code and the message gradviz answers with, never its traceback.

`TABLE` is also the table in docs/bad-input.md: `test_the_doc_is_the_table` keeps the two in step
(rewrite the doc with GRADVIZ_UPDATE_GOLDEN=1). Rows run in process through Typer's CliRunner
unless they need a real process (`proc`: stdin from /dev/null, a PATH without `dot`, Ctrl-C);
either way the working folder is a fresh temp folder, so nothing lands in the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers.gradviz_proc import ENV, ROOT, SAMPLES, gradviz
from typer.testing import CliRunner

from graphviz_grad.cli import app
from graphviz_grad.errors import EXIT_CODES

DOC = ROOT / "docs" / "bad-input.md"
UPDATE = os.environ.get("GRADVIZ_UPDATE_GOLDEN") == "1"


@dataclass(frozen=True)
class Bad:
    """One bad input: `body` is written to `script.py` (bytes as they are); `args` may name
    `{script}`, `{tmp}` and `{samples}`. `message` must appear in stderr (the doc shows it)."""

    what: str
    body: str | bytes | None
    args: tuple[str, ...]
    code: int
    message: str
    proc: bool = False
    skip: str | None = None


def _leaf(body: str) -> str:
    return "import torch\nw = torch.ones(3, requires_grad=True)\n" + body


S = "{script}"
SVG = ("-o", "{tmp}/out.svg")
JSON = ("-o", "{tmp}/out.json")
LINEAR = "{samples}/linear.py"
CUDA = "a GPU is present, so CUDA tensors are not an error" if torch.cuda.is_available() else None

TABLE: tuple[Bad, ...] = (
    # -- the script itself -------------------------------------------------------------------
    Bad("missing file", None, ("render", "{tmp}/nope.py"), 3, "There is no file"),
    Bad("a folder", None, ("render", "{tmp}"), 3, "is a folder, not a Python script"),
    Bad("binary file", b"\x7fELF\x02\x01\x00\x00", ("render", S), 3, "it is a binary file"),
    Bad("non-Python text", "# Notes\n\nTwo words.\n", ("render", S), 3, "has a syntax error"),
    Bad("non-UTF-8 source", b"x = '\xff'\n", ("render", S), 3, "is not UTF-8 text"),
    Bad("syntax error", "x = (\n", ("render", S), 3, "has a syntax error at line 1"),
    Bad("missing module", None, ("render", "-m", "nope_gv"), 3, "There is no module `nope_gv`"),
    Bad("a path given to -m", "", ("render", "-m", S), 3, "is a path, not a module name"),
    Bad(
        "a package's script run by its path",
        "from .model import Net\n",
        ("render", S),
        4,
        "no known parent package",
    ),
    Bad("empty script", "", ("render", S), 5, "The script built no autograd graph"),
    Bad("no tensors at all", "x = 1\n", ("render", S), 5, "built no autograd graph"),
    Bad(
        "the script's own --help",
        "import argparse\nargparse.ArgumentParser().parse_args()\n",
        ("render", S, "--", "--help"),
        5,
        "exited (`sys.exit`, status 0) before it built any autograd graph",
    ),
    Bad(
        "a model run under no_grad only",
        "import torch\nm = torch.nn.Linear(2, 1)\nwith torch.no_grad():\n"
        "    out = m(torch.ones(2))\n",
        ("render", S),
        5,
        "built no autograd graph",
    ),
    Bad(
        "gradients from torch.func only",
        "import torch\nfrom torch.func import grad\n"
        "g = grad(lambda w: (w * w).sum())(torch.ones(2))\n",
        ("render", S),
        5,
        "takes its gradients with `torch.func`",
    ),
    Bad(
        "torch.func for predictions only",
        "import torch\nfrom torch.func import functional_call, vmap\n"
        "m = torch.nn.Linear(2, 1)\n"
        "p = {k: v.expand(3, *v.shape) for k, v in m.named_parameters()}\n"
        "out = vmap(lambda q, x: functional_call(m, q, (x,)))(p, torch.ones(3, 2))\n"
        "other = m(torch.ones(2))\n",
        ("render", S),
        5,
        "Pick one with --target NAME. Tensors in the script: out [3, 1] has grad_fn",
    ),
    Bad(
        "script raises",
        "def f():\n    return 1 / 0\n\nf()\n",
        ("render", S, *SVG),
        4,
        "raised ZeroDivisionError: division by zero",
    ),
    Bad(
        "torch.cat of scalars",
        "import torch\nw = torch.ones(2, requires_grad=True)\ntorch.cat([w.sum(), w[0]])\n",
        ("render", S),
        4,
        "use `torch.stack(scalars)`",
    ),
    Bad(
        "a parameter generator used twice",
        "import torch\nm = torch.nn.Linear(2, 1)\nparams = m.parameters()\n"
        "a = torch.optim.SGD(params, lr=0.1)\nb = torch.optim.Adam(params)\n",
        ("render", S),
        4,
        "`params` is a generator (`model.parameters()` returns one)",
    ),
    Bad(
        "a module the script imports is not installed",
        "import cv2\n",
        ("render", S),
        4,
        "`cv2` is not installed in the Python gradviz runs the script with",
    ),
    Bad("sys.exit(3)", "import sys\nsys.exit(3)\n", ("render", S), 3, "exited with status 3"),
    Bad(
        "init_process_group without torchrun",
        "import torch.distributed as dist\ndist.init_process_group('gloo')\n",
        ("render", S),
        4,
        "Run it under torchrun",
    ),
    Bad(
        "sys.exit('text')",
        "import sys\nsys.exit('bye')\n",
        ("render", S),
        1,
        "exited with status 1",
    ),
    Bad(
        "script reads stdin (/dev/null)",
        _leaf("name = input('name? ')\nloss = (w * 2).sum()\n"),
        ("render", S, *JSON),
        4,
        "raised EOFError: EOF when reading a line",
        proc=True,
    ),
    Bad(
        "script reads all of stdin",
        _leaf("import sys\ndata = sys.stdin.read()\nloss = (w * len(data)).sum()\n"),
        ("render", S, *JSON),
        0,
        "wrote",
        proc=True,
    ),
    Bad(
        "script never finishes",
        "while True:\n    pass\n",
        ("render", S, "--timeout", "1"),
        11,
        "ran longer than the 1 s that --timeout allows",
    ),
    Bad(
        "script raises KeyboardInterrupt",
        "raise KeyboardInterrupt\n",
        ("render", S),
        130,
        "interrupted",
    ),
    Bad(
        "backward twice without retain_graph",
        _leaf("loss = (w * w).sum()\nloss.backward()\nloss.backward()\n"),
        ("render", S, *JSON),
        4,
        "raised RuntimeError: Trying to backward through the graph a second time",
    ),
    # -- the root ----------------------------------------------------------------------------
    Bad(
        "root does not require grad",
        "import torch\nw = torch.ones(1)\nloss = w * 2\n",
        ("render", S),
        5,
        "`loss` does not require grad",
    ),
    Bad(
        "non-scalar root",
        _leaf("loss = w * 2\n"),
        ("render", S, *JSON),
        5,
        "The root has shape [3]; gradients start from a scalar.",
    ),
    Bad("--target names nothing", None, ("render", LINEAR, "-t", "los"), 5, "Did you mean `loss`"),
    Bad("--target not a tensor", None, ("render", LINEAR, "-t", "torch"), 5, "not a tensor"),
    Bad("--call out of range", None, ("render", LINEAR, "-c", "5"), 6, "no backward call 5"),
    Bad("--call 0", None, ("render", LINEAR, "-c", "0"), 2, "calls are counted from 1"),
    Bad("--rank without torchrun", None, ("tree", LINEAR, "--rank", "1"), 2, "under torchrun"),
    # -- the options and the output ------------------------------------------------------------
    Bad(
        "unknown --format", None, ("render", LINEAR, "-f", "gif"), 2, "Invalid value for '--format'"
    ),
    Bad("unknown output suffix", None, ("render", LINEAR, "-o", "x.txt"), 7, "from its suffix"),
    Bad("SVG to stdout", None, ("render", LINEAR, "-o", "-", "-f", "svg"), 7, "cannot be written"),
    Bad(
        "suffix and format disagree",
        None,
        ("render", LINEAR, "-o", "{tmp}/out.svg", "-f", "png"),
        7,
        "says SVG but `--format png` asks for PNG",
    ),
    Bad("--focus on no node", None, ("tree", LINEAR, "--focus", "los"), 5, "Did you mean `loss`?"),
    Bad(
        "output folder missing",
        None,
        ("render", LINEAR, "-o", "{tmp}/no/such/x.svg"),
        7,
        "does not exist",
    ),
    Bad(
        "output folder not writable",
        None,
        ("render", LINEAR, "-o", "/proc/gradviz.json"),
        7,
        "Cannot write",
    ),
    Bad("output is a folder", None, ("render", LINEAR, "-o", "{tmp}", "-f", "json"), 7, "folder"),
    Bad(
        "output names a missing folder",
        None,
        ("render", LINEAR, "-o", "{tmp}/newdir/"),
        7,
        "names a folder, not a file, and the folder",
    ),
    Bad(
        "output is the script",
        _leaf("loss = (w * 2).sum()\n"),
        ("render", S, "-o", S, "-f", "dot"),
        7,
        "is the script itself; gradviz never overwrites it",
    ),
    Bad("`dot` missing", None, ("render", LINEAR, *SVG), 8, "`dot` program is not installed"),
    Bad(
        "graph over the layout budget",
        None,
        ("render", "{samples}/mlp.py", *SVG, "--budget", "4"),
        0,
        "nodes are above the layout budget of 4",
    ),
    Bad("--precision 0", None, ("render", LINEAR, "-p", "0"), 2, "Invalid value for '--precision'"),
    Bad("negative --timeout", None, ("render", LINEAR, "--timeout", "-1"), 2, "Invalid value"),
    # -- unusual tensors: drawn, or the user's own error -----------------------------------------
    Bad(
        "NaN and Inf values",
        _leaf("x = torch.tensor([float('nan'), float('inf'), 1.0])\nloss = (w * x).sum()\n"),
        ("render", S, *SVG),
        0,
        "wrote",
    ),
    Bad(
        "complex tensors",
        "import torch\nz = torch.tensor([1 + 2j, 3j], requires_grad=True)\n"
        "loss = (z * z.conj()).real.sum()\nloss.backward()\n",
        ("render", S, *SVG),
        0,
        "wrote",
    ),
    Bad(
        "float16",
        "import torch\nw = torch.ones(3, dtype=torch.float16, requires_grad=True)\n"
        "loss = (w * 2).sum()\nloss.backward()\n",
        ("render", S, *SVG),
        0,
        "wrote",
    ),
    Bad(
        "bfloat16",
        "import torch\nw = torch.ones(3, dtype=torch.bfloat16, requires_grad=True)\n"
        "loss = (w * 2).sum()\nloss.backward()\n",
        ("render", S, *SVG),
        0,
        "wrote",
    ),
    Bad(
        "integer leaf with requires_grad",
        "import torch\nw = torch.tensor([1, 2], requires_grad=True)\n",
        ("render", S, *SVG),
        4,
        "raised RuntimeError: Only Tensors of floating point",
    ),
    Bad(
        "integer and bool tensors in the graph",
        _leaf(
            "i = torch.tensor([1, 2, 3])\nmask = torch.tensor([True, False, True])\n"
            "loss = torch.where(mask, w * i, w).sum()\nloss.backward()\n"
        ),
        ("render", S, *SVG),
        0,
        "wrote",
    ),
    Bad(
        "sparse tensors",
        "import torch\ni = torch.tensor([[0, 1], [1, 0]])\n"
        "s = torch.sparse_coo_tensor(i, torch.tensor([1.0, 2.0]), (2, 2)).requires_grad_()\n"
        "loss = torch.sparse.sum(s * 3.0)\nloss.backward()\n",
        ("render", S, *SVG),
        0,
        "wrote",
    ),
    Bad(
        "meta tensors",
        "import torch\nw = torch.ones(3, device='meta', requires_grad=True)\n"
        "loss = (w * 2).sum()\nloss.backward()\n",
        ("render", S, *SVG),
        0,
        "wrote",
    ),
    Bad(
        "zero-size tensors",
        "import torch\nw = torch.ones(0, 3, requires_grad=True)\nloss = (w * 2).sum()\n"
        "loss.backward()\n",
        ("render", S, *SVG),
        0,
        "wrote",
    ),
    Bad(
        "CUDA tensor without a GPU",
        "import torch\nw = torch.ones(3, device='cuda', requires_grad=True)\n",
        ("render", S, *SVG),
        4,
        "The script `script.py` raised",
        skip=CUDA,
    ),
    Bad(
        "torch.compile",
        _leaf(
            "f = torch.compile(lambda x: torch.sin(x) * 2)\nloss = f(w).sum()\nloss.backward()\n"
        ),
        ("render", S, *SVG),
        0,
        "wrote",
    ),
    Bad(
        "checkpoint, use_reentrant=True",
        _leaf(
            "from torch.utils.checkpoint import checkpoint\n"
            "loss = checkpoint(lambda x: torch.sin(x) * 2, w, use_reentrant=True).sum()\n"
            "loss.backward()\n"
        ),
        ("render", S, *SVG),
        0,
        "wrote",
    ),
    Bad(
        "checkpoint, use_reentrant=False",
        _leaf(
            "from torch.utils.checkpoint import checkpoint\n"
            "loss = checkpoint(lambda x: torch.sin(x) * 2, w, use_reentrant=False).sum()\n"
            "loss.backward()\n"
        ),
        ("render", S, *SVG),
        0,
        "wrote",
    ),
    Bad(
        "double backward (create_graph=True)",
        _leaf(
            "loss = (w**3).sum()\n(g,) = torch.autograd.grad(loss, w, create_graph=True)\n"
            "g.sum().backward()\n"
        ),
        ("render", S, *SVG),
        0,
        "showing backward call 2 of 2",
    ),
)


def _ids() -> list[str]:
    return [row.what for row in TABLE]


def _fill(arg: str, script: Path, tmp: Path) -> str:
    return arg.format(script=script, tmp=tmp, samples=SAMPLES)


def _run_row(row: Bad, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Exit code and stderr of the row, run in `tmp`."""
    script = tmp / "script.py"
    if isinstance(row.body, bytes):
        script.write_bytes(row.body)
    elif row.body is not None:
        script.write_text(row.body, encoding="utf-8")
    args = [_fill(a, script, tmp) for a in row.args]
    if row.proc or row.what == "`dot` missing":
        env = {**ENV, "PATH": str(tmp / "empty-path")} if row.what == "`dot` missing" else ENV
        done = gradviz(*args, cwd=tmp, env=env, timeout=120)
        return done.returncode, done.stderr
    monkeypatch.chdir(tmp)
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stderr


@pytest.mark.parametrize("row", [pytest.param(r, id=r.what) for r in TABLE])
def test_bad_input(row: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if row.skip:
        pytest.skip(row.skip)
    if row.what.endswith("not writable") and not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    code, stderr = _run_row(row, tmp_path, monkeypatch)
    assert (code, row.message in stderr) == (row.code, True), stderr
    assert "graphviz_grad" not in stderr, stderr
    if "Traceback" in stderr:  # only the user's own, trimmed to the script's frames
        assert code == 4 and 'script.py", line' in stderr, stderr
    if code not in (0, 4):  # a script that raised after backward still gets its graph drawn
        assert not any(p.name.startswith("out.") for p in tmp_path.iterdir())


def test_the_table_is_long_enough() -> None:
    assert len(TABLE) >= 30
    assert len(set(_ids())) == len(TABLE)


# -- docs/bad-input.md ----------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _command(row: Bad) -> str:
    parts = ["gradviz", *row.args]
    names = {S: "script.py", "{tmp}": "DIR", LINEAR: "samples/linear.py"}
    shown = [names.get(p, p) for p in parts]
    shown = [p.replace("{tmp}", "DIR").replace("{samples}", "samples") for p in shown]
    return " ".join(shown)


def table_lines() -> list[str]:
    """The markdown table of `TABLE`, as in docs/bad-input.md and the README."""
    lines = [
        "| Input | Command | Message (stderr contains) | Exit code |",
        "|---|---|---|---|",
    ]
    for row in TABLE:
        command = _cell(_command(row))
        lines.append(f"| {_cell(row.what)} | `{command}` | {_cell(row.message)} | {row.code} |")
    return lines


def doc_text() -> str:
    """docs/bad-input.md, made from `TABLE`."""
    lines = [
        "# Bad input: what gradviz answers",
        "",
        "Each row is a test (`tests/reliability/test_bad_input.py`): the command, what stderr",
        "says, and the exit code. gradviz never answers with a traceback of its own; when the",
        "script fails, its own traceback is shown, trimmed to the script's frames. Exit code 0",
        "rows are inputs that gradviz draws (with a note where something is unusual).",
        "",
        "This file is generated from the test's table: "
        "`GRADVIZ_UPDATE_GOLDEN=1 pytest tests/reliability/test_bad_input.py`.",
        "",
        *table_lines(),
        "",
        "`script.py` holds the input of the row (see the test for its text); `DIR` is a folder.",
        "Exit codes: 2 usage, 3 script not found or not Python (or the script's own",
        "`sys.exit(3)`), 4 the script raised, 5 no root, 6 no such backward call, 7 output,",
        "8 `dot` missing,",
        "11 timeout, 70 a bug in gradviz, 130 interrupted;",
        "a script's `sys.exit(N)` is passed on as N.",
        "",
    ]
    return "\n".join(lines)


def test_the_doc_is_the_table() -> None:
    text = doc_text()
    if UPDATE:
        DOC.write_text(text, encoding="utf-8")
    assert DOC.exists(), "run with GRADVIZ_UPDATE_GOLDEN=1 to write docs/bad-input.md"
    assert DOC.read_text(encoding="utf-8") == text


README = ROOT / "README.md"
START, END = "<!-- bad-input table: start -->", "<!-- bad-input table: end -->"


def test_the_readme_has_the_table() -> None:
    text = README.read_text(encoding="utf-8")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    fresh = head + START + "\n" + "\n".join(table_lines()) + "\n" + END + tail
    if UPDATE:
        README.write_text(fresh, encoding="utf-8")
    assert START in text and END in text
    assert text == fresh, "run with GRADVIZ_UPDATE_GOLDEN=1 to rewrite the README's table"


def test_an_error_inside_gradviz_is_reported_as_gradviz_s_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception raised in gradviz's own code while the script runs is no error of the
    script's: the message says so and where, the hint does not claim that `python script.py`
    fails too, the traceback keeps gradviz's frames for the report, and the exit code is 70."""
    from graphviz_grad.capture import summary

    script = tmp_path / "script.py"
    script.write_text(
        "import torch\nw = torch.randn(100, requires_grad=True)\n(w * 2.0).sum().backward()\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(summary, "DATA_LIMIT", None)  # `numel() > None` raises in gradviz
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["render", "script.py", "-o", "out.json"])
    assert result.exit_code == EXIT_CODES["internal"] == 70, result.stderr
    assert "gradviz failed while running the script `script.py`: TypeError" in result.stderr
    assert "(raised in gradviz's own code, capture/summary.py:" in result.stderr
    assert "This is a bug in gradviz, not in your script" in result.stderr
    assert "shows the same error" not in result.stderr
    assert "graphviz_grad/capture/summary.py" in result.stderr  # the frames for the report
    assert not (tmp_path / "out.json").exists()


def test_an_error_in_gradviz_after_the_script_ended_is_one_sentence_and_exit_70(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception out of gradviz's own code once the script has ended (building the graphs)
    printed a rich traceback dump and exit 1: now the sentence, the hint, the traceback for the
    report, and 70; nothing is written."""
    from graphviz_grad.capture import _snapshot

    def broken(self: object) -> None:
        raise ValueError("a bug of gradviz's\nsecond line")

    script = tmp_path / "script.py"
    script.write_text(
        "import torch\nw = torch.randn(3, requires_grad=True)\n(w * 2.0).sum().backward()\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(_snapshot.CallCapture, "build", broken)
    monkeypatch.chdir(tmp_path)
    for command in (["render", "script.py", "-o", "out.json"], ["tree", "script.py"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == EXIT_CODES["internal"] == 70, result.output
        assert "error: gradviz failed: ValueError: a bug of gradviz's (raised in gradviz's " in (
            " ".join(result.stderr.split())
        )
        assert "This is a bug in gradviz, not in your script" in result.stderr
        assert "in broken" in result.stderr  # the traceback, for the report
        assert "╭" not in result.stderr  # no rich traceback dump
    assert not (tmp_path / "out.json").exists()


def test_an_op_of_the_script_that_fails_under_the_recorder_is_the_script_s_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder's dispatch mode passes each op on to torch: a shape error torch raises
    there is the script's (exit 4, `python script.py` fails the same way), not gradviz's."""
    script = tmp_path / "script.py"
    script.write_text(
        "import torch\n"
        "w = torch.randn(3, 4, requires_grad=True)\n"
        "y = torch.mm(w, torch.randn(3, 2))\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["render", "script.py", "-o", "out.json"])
    assert result.exit_code == 4, result.stderr
    assert "The script `script.py` raised RuntimeError" in result.stderr
    assert "gradviz's own code" not in result.stderr


def test_a_script_error_with_terminal_escapes_reads_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's own messages carry bold escapes (`torch.load`'s "weights only" error): the one
    sentence gradviz prints has the words, not `[1m` (as a pipe would show them)."""
    script = tmp_path / "script.py"
    script.write_text(
        'raise RuntimeError("load failed, \\x1b[1mdo this only if you trust it\\x1b[0m. Or not")\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["render", "script.py", "-o", "out.json"])
    assert result.exit_code == 4, result.stderr
    assert "raised RuntimeError: load failed, do this only if you trust it. Or not" in " ".join(
        result.stderr.split()
    )
    # the script's traceback above it is as `python script.py` prints it, escapes and all
    sentence = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "\x1b" not in sentence and "[1m" not in sentence


def test_backward_on_a_number_names_the_item_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A learner's `loss = F.mse_loss(...).item()` then `loss.backward()`: the hint says that
    `.item()` at that line made the loss a number, not "fix the error in your script"."""
    script = tmp_path / "script.py"
    script.write_text(
        "import torch\n"
        "w = torch.randn(3, requires_grad=True)\n"
        "loss = ((w - 1.0) ** 2).mean().item()\n"
        "loss.backward()\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["doctor", "script.py"])
    assert result.exit_code == 4, result.stderr
    assert (
        "hint: `.backward()` was called on a Python number, not a tensor: `.item()` at line 3 "
        "turned the loss into a number" in " ".join(result.stderr.split())
    )


def test_a_read_only_output_is_not_replaced(tmp_path: Path) -> None:
    """`-o out.svg` where out.svg is read-only: gradviz refuses (exit 7) before running the
    script, and the file keeps its bytes (it replaces files atomically, which a read-only mode
    would not stop)."""
    out = tmp_path / "out.svg"
    out.write_text("mine", encoding="utf-8")
    out.chmod(0o444)
    try:
        linear = LINEAR.format(samples=SAMPLES)
        result = CliRunner().invoke(app, ["render", linear, "-o", str(out)])
        assert result.exit_code == 7, result.output
        assert "is read-only; gradviz does not replace it" in result.stderr
        assert out.read_text(encoding="utf-8") == "mine"
    finally:
        out.chmod(0o644)
