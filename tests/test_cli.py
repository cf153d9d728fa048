"""The `gradviz` command end to end: outputs, golden files, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.cli import invoke_script
from helpers.golden import check_golden as check_file
from typer.testing import CliRunner

from graphviz_grad.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
GOLDEN = Path(__file__).resolve().parent / "golden"

runner = CliRunner()


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def gradviz(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def check_golden(name: str, text: str) -> None:
    check_file(GOLDEN / name, text)


def script(tmp_path: Path, body: str, name: str = "script.py") -> Path:
    p = tmp_path / name
    p.write_text(body, encoding="utf-8")
    return p


LESSON = ["linear.py", "affine.py", "training_loop.py"]


# -- golden outputs ----------------------------------------------------------------------------
@pytest.mark.parametrize("sample", LESSON)
def test_dot_matches_golden(sample: str) -> None:
    code, out, _ = gradviz("render", f"samples/{sample}", "-o", "-", "--format", "dot")
    assert code == 0
    check_golden(sample.replace(".py", ".dot"), out[out.index("digraph") :])


@pytest.mark.parametrize("sample", LESSON)
def test_json_matches_golden(sample: str) -> None:
    code, out, _ = gradviz("render", f"samples/{sample}", "-o", "-", "--format", "json")
    assert code == 0
    check_golden(sample.replace(".py", ".json"), out[out.index('{\n "schema"') :])


@pytest.mark.parametrize("sample", LESSON)
def test_tree_matches_golden(sample: str) -> None:
    code, out, _ = gradviz("tree", f"samples/{sample}")
    assert code == 0
    check_golden(sample.replace(".py", ".tree.txt"), out[out.index("#0 ") :])


def test_json_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert gradviz("render", "samples/mlp.py", "-o", str(a))[0] == 0
    assert gradviz("render", "samples/mlp.py", "-o", str(b))[0] == 0
    assert a.read_bytes() == b.read_bytes()
    data = json.loads(a.read_text())
    assert data["schema"] == "gradviz/2" and data["call"] == 5


# -- the script runs as under python -------------------------------------------------------------
def test_svg_render_and_script_stdout_passes_through(tmp_path: Path) -> None:
    out = tmp_path / "linear.svg"
    code, stdout, stderr = gradviz("render", "samples/linear.py", "-o", str(out))
    assert code == 0
    plain = subprocess.run(
        [sys.executable, "samples/linear.py"], capture_output=True, text=True, check=True
    )
    assert stdout == plain.stdout
    assert "wrote" in stderr
    svg = ET.parse(out).getroot()
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert {"n0", "n1", "n2", "n3"} <= set(titles)


def test_default_output_is_script_name_in_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, _ = gradviz("render", str(SAMPLES / "linear.py"), "--format", "json")
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linear.json"]


def test_script_arguments_reach_sys_argv(tmp_path: Path) -> None:
    p = script(
        tmp_path,
        "import sys, torch\n"
        "print(sys.argv[1:])\n"
        "w = torch.tensor(float(sys.argv[1]), requires_grad=True)\n"
        "loss = w * 3\n",
    )
    code, out, err = gradviz("render", str(p), "-o", "-", "-f", "json", "--", "2.5", "--flag")
    assert code == 0, err
    assert json.loads(out)["nodes"]  # stdout holds the data only
    assert "['2.5', '--flag']\n" in err  # the script's prints went to stderr
    assert "computed the gradients itself" in err


def test_the_scripts_own_option_after_the_script_says_to_pass_it_after_dashes(
    tmp_path: Path,
) -> None:
    p = script(tmp_path, "import torch\n")
    result = runner.invoke(app, ["render", str(p), "-o", "x.svg", "--steps", "20", "-c", "2"])
    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())
    assert "No such option: --steps. Options after the script are gradviz's" in text
    assert f"gradviz render {p} -o x.svg -c 2 -- --steps 20" in text
    assert not (tmp_path / "x.svg").exists()
    result = runner.invoke(app, ["render", "--stepz", str(p)])  # before the script: gradviz's
    assert result.exit_code == 2 and "after `--`" not in result.output


def test_call_picks_a_backward_call() -> None:
    code, out, _ = gradviz("render", "samples/training_loop.py", "-o", "-", "-f", "json", "-c", "1")
    assert code == 0
    data = json.loads(out[out.index('{\n "schema"') :])
    assert data["call"] == 1
    w = next(n for n in data["nodes"] if n["kind"] == "leaf")
    assert w["names"] == ["w"] and w["value"]["data"] == [1.0] and w["grad"]["data"] == [-2.0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            (),
            "read backward call 300 of 300 (--call N picks another); the checks across calls"
            " read all 300",
        ),
        (
            ("--call", "2"),
            "read backward call 2 of 300 (--call N picks another); the checks across calls"
            " read 2 of",
        ),
    ],
)
def test_doctor_says_which_call_its_graph_checks_read(args: tuple[str, ...], says: str) -> None:
    """The lesson makes 300 backward calls; doctor's findings on one graph are about one of
    them, which it names (a finding of call 1 is not reported at call 300)."""
    code, _, err = gradviz("doctor", "samples/training_loop.py", *args)
    assert code == 0
    assert says in " ".join(err.split())


def test_a_target_no_backward_call_computed_says_so_truly(tmp_path: Path) -> None:
    """The double-backward tutorial: `--target grad_x` is traced by gradviz, but the script did
    make backward calls, so "the script never called backward" would be false."""
    script = tmp_path / "double.py"
    script.write_text(
        "import torch\n"
        "x = torch.tensor(2.0, requires_grad=True)\n"
        "out = x**3\n"
        "(grad_x,) = torch.autograd.grad(out, x, create_graph=True)\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        app, ["render", str(script), "--target", "grad_x", "-f", "dot", "-o", "-"]
    )
    assert result.exit_code == 0, result.output
    assert "no backward call of the script (1 backward call) computed this graph" in result.stderr
    assert "never called backward" not in result.stderr
    assert "gradients computed by gradviz (not by a backward call of the script)" in result.stdout


@pytest.mark.parametrize("command", ["tree", "doctor"])
def test_a_target_backpropagated_by_an_earlier_call_shows_that_call(
    tmp_path: Path, command: str
) -> None:
    """`--target loss_a`, where `loss_a.backward()` ran before another call: gradviz shows the
    script's own call 1 (with the gradient the script got), not a re-run of its own on a freed
    graph that reports "backward-twice" against the script."""
    source = (
        "import torch\n"
        "w = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "v = torch.tensor([3.0], requires_grad=True)\n"
        "loss_a = (w ** 2).sum()\n"
        "loss_a.backward()\n"
        "for _ in range(3):\n"
        "    loss_b = (v * 3).sum()\n"
        "    loss_b.backward()\n"
    )
    result = invoke_script(tmp_path, "two.py", source, command, "--target", "loss_a")
    assert result.exit_code == 0, result.output
    assert "backward-twice" not in result.output
    assert "showing backward call 1 of 4" in " ".join(result.stderr.split()) or command == "doctor"
    if command == "tree":
        assert "grad=[2.0, 4.0]" in result.stdout  # w.grad after the script's call
        result = invoke_script(tmp_path, "two.py", source, command, "--target", "loss_b")
        assert result.exit_code == 0, result.output
        assert "showing backward call 4 of 4" in " ".join(result.stderr.split())


@pytest.mark.parametrize("command", ["tree", "doctor"])
def test_a_target_inside_a_freed_graph_says_so_instead_of_blaming_the_script(
    tmp_path: Path, command: str
) -> None:
    """`--target hidden`, an intermediate tensor of a graph the script's one backward call freed:
    gradviz cannot compute its gradients again. It draws what it has and says so in its notes,
    without a `backward-twice` error at the script's correct line (`doctor` exited 10): that
    failed pass is gradviz's own, not the script's."""
    source = (
        "import torch\n"
        "w = torch.tensor(1.5, requires_grad=True)\n"
        "hidden = w * 3.0\n"
        "loss = hidden.sin() ** 2\n"
        "loss.backward()\n"
    )
    result = invoke_script(tmp_path, "flat.py", source, command, "--target", "hidden")
    assert result.exit_code == 0, result.output
    assert "backward-twice" not in result.output
    if command == "tree":
        assert "no backward call of the script (1 backward call) computed" in result.stderr


def test_a_range_past_the_last_call_says_which_calls_are_shown(tmp_path: Path) -> None:
    """`--call 1:99` on a script of 3 calls draws calls 1 to 3, and says so (it was silent)."""
    source = (
        "import torch\n"
        "w = torch.tensor(1.0, requires_grad=True)\n"
        "for _ in range(3):\n"
        "    (w * 2).backward()\n"
    )
    result = invoke_script(tmp_path, "three.py", source, "tree", "--call", "1:99")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "--call 1:99 names calls up to 99; the script made 3, so calls 1 to 3 are shown." in said
    result = invoke_script(tmp_path, "three.py", source, "tree", "--call", "2:3")
    assert result.exit_code == 0 and "names calls up to" not in result.stderr


def test_call_numbers_have_thousands_separators(tmp_path: Path) -> None:
    """As the progress line and the Ctrl-C message write them: `1,200`, not `1200`."""
    script = tmp_path / "loop.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor(1.0, requires_grad=True)\n"
        "for step in range(1200):\n"
        "    (w * 3).backward()\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["render", str(script), "-f", "json", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "showing backward call 1,200 of 1,200 (--call N)" in result.stderr


def test_non_scalar_root_needs_a_seed(tmp_path: Path) -> None:
    p = script(tmp_path, "import torch\nw = torch.ones(3, requires_grad=True)\nloss = w * 2\n")
    code, _, err = gradviz("render", str(p), "-o", "-", "-f", "json")
    assert code == 5 and "scalar" in err and "--grad-output ones" in err
    code, out, _ = gradviz("render", str(p), "-o", "-", "-f", "json", "--grad-output", "ones")
    assert code == 0 and json.loads(out)["nodes"][1]["grad"]["data"] == [2.0, 2.0, 2.0]


def test_python_dash_m_and_help_do_not_import_torch() -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from graphviz_grad.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0 and 'render' in r.stdout\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    version = subprocess.run(
        [sys.executable, "-m", "graphviz_grad", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.startswith("gradviz ")


# -- bad input: one sentence, a hint, a distinct exit code, no traceback of ours ------------------
BAD = [
    ("missing file", ["render", "nope.py"], 3, "There is no file"),
    ("a folder", ["render", "samples"], 3, "is a folder"),
    ("unknown suffix", ["render", "samples/linear.py", "-o", "x.txt"], 7, "cannot tell the format"),
    ("svg to stdout", ["render", "samples/linear.py", "-o", "-", "-f", "svg"], 7, "to stdout"),
    ("missing folder", ["render", "samples/linear.py", "-o", "no/such/x.svg"], 7, "does not exist"),
    ("call out of range", ["render", "samples/linear.py", "-c", "5"], 6, "no backward call 5"),
    ("only one call", ["render", "samples/linear.py", "-c", "5"], 6, "only call is 1 (or -1"),
    ("call past many", ["tree", "samples/training_loop.py", "-c", "301"], 6, "from 1 to 300,"),
    ("call zero", ["render", "samples/linear.py", "-c", "0"], 2, "counted from 1"),
    ("call not a number", ["render", "samples/linear.py", "-c", "abc"], 2, "neither a call number"),
    ("unknown target", ["render", "samples/linear.py", "-t", "los"], 5, "Did you mean `loss`"),
    ("not a tensor", ["tree", "samples/training_loop.py", "-t", "x_data"], 5, "not a tensor"),
]


@pytest.mark.parametrize(("what", "args", "code", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input(what: str, args: list[str], code: int, message: str) -> None:
    exit_code, _, err = gradviz(*args)
    assert exit_code == code, err
    assert message in err
    assert "Traceback" not in err


SCRIPTS = [
    ("syntax error", "x = (\n", 3, "syntax error at line 1"),
    ("not utf-8", b"x = '\xff'\n", 3, "not UTF-8"),
    ("binary", b"\x7fELF\x00\x01", 3, "binary"),
    ("no tensors", "x = 1\n", 5, "built no autograd graph"),
    ("no grad", "import torch\nw = torch.ones(1)\nloss = w * 2\n", 5, "does not require grad"),
    ("exits 3", "import sys\nsys.exit(3)\n", 3, "exited with status 3"),
    (
        "two roots",
        "import torch\nw = torch.ones(1, requires_grad=True)\na = w * 2\nb = w * 3\n",
        5,
        "a [1] has grad_fn",
    ),
]


@pytest.mark.parametrize(("what", "body", "code", "message"), SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_bad_script(tmp_path: Path, what: str, body: str | bytes, code: int, message: str) -> None:
    p = tmp_path / "bad.py"
    if isinstance(body, bytes):
        p.write_bytes(body)
    else:
        p.write_text(body)
    exit_code, _, err = gradviz("render", str(p), "-o", str(tmp_path / "out.svg"))
    assert exit_code == code, err
    assert message in err
    assert not (tmp_path / "out.svg").exists()


def test_script_error_shows_only_the_users_traceback(tmp_path: Path) -> None:
    p = script(tmp_path, "import torch\n\ndef f():\n    return 1 / 0\n\nf()\n")
    code, _, err = gradviz("render", str(p), "-o", str(tmp_path / "o.svg"))
    assert code == 4
    assert "bad.py" not in err and 'script.py", line 6' in err and "line 4" in err
    assert "ZeroDivisionError" in err and "graphviz_grad" not in err
    assert not (tmp_path / "o.svg").exists()


def test_output_equal_to_script_is_refused(tmp_path: Path) -> None:
    p = script(tmp_path, "import torch\nw = torch.ones(1, requires_grad=True)\nloss = w * 2\n")
    before = p.read_bytes()
    code, _, err = gradviz("render", str(p), "-o", str(p), "-f", "dot")
    assert code == 7 and "script itself" in err
    assert p.read_bytes() == before


def test_missing_dot_says_how_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    out = tmp_path / "x.svg"
    done = subprocess.run(
        [sys.executable, "-m", "graphviz_grad", "render", "samples/linear.py", "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 8
    assert "apt-get install graphviz" in done.stderr and "--format dot" in done.stderr
    assert not out.exists()
    dot = tmp_path / "x.dot"
    done = subprocess.run(
        [sys.executable, "-m", "graphviz_grad", "render", "samples/linear.py", "-o", str(dot)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0 and dot.read_text().startswith("digraph")


def test_paths_are_shown_from_the_folder_of_each_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One process, two runs from two folders (a notebook, `--watch`, the test suite): each
    graph names the script from its own run's folder."""
    monkeypatch.chdir(tmp_path)
    code, out, _ = gradviz("render", str(SAMPLES / "linear.py"), "-o", "-", "--format", "json")
    assert code == 0
    assert json.loads(out[out.index('{\n "schema"') :])["call_file"] == str(SAMPLES / "linear.py")
    monkeypatch.chdir(ROOT)
    code, out, _ = gradviz("render", "samples/linear.py", "-o", "-", "--format", "json")
    assert code == 0
    assert json.loads(out[out.index('{\n "schema"') :])["call_file"] == "samples/linear.py"


def test_text_of_the_users_is_printed_as_it_is_not_as_markup(tmp_path: Path) -> None:
    """A folder named `[run]` and an indexing op's formula `w[indices]` look like rich markup
    tags; they are printed as they are, not swallowed."""
    folder = tmp_path / "[run]"
    folder.mkdir()
    code, _, stderr = gradviz("render", "samples/linear.py", "-f", "json", "-o", f"{folder}/g.json")
    assert code == 0 and f"wrote {folder}/g.json" in stderr.replace("\n", "")
    body = (
        "import torch\nw = torch.ones(5, requires_grad=True)\n"
        "w[torch.tensor([0, 2])].sum().backward()\n"
    )
    code, stdout, _ = gradviz("explain", str(script(tmp_path, body)))
    assert code == 0 and "= w[indices] = [1.0, 1.0]" in stdout


def test_a_script_that_changes_folder_gets_its_output_where_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    body = (
        "import os, torch\nos.chdir('data')\nw = torch.tensor(2.0, requires_grad=True)\n"
        "(w * w).backward()\n"
    )
    monkeypatch.chdir(tmp_path)
    code, _, _ = gradviz("render", str(script(tmp_path, body)), "-f", "json")
    assert code == 0
    assert (tmp_path / "script.json").is_file() and not (tmp_path / "data" / "script.json").exists()
    assert Path.cwd() == tmp_path


HOGWILD = """\
import torch
import torch.multiprocessing as mp
from torch import nn


def train(seed):
    torch.manual_seed(seed)
    model = nn.Linear(3, 1)
    model(torch.randn(4, 3)).pow(2).mean().backward()


if __name__ == "__main__":
{main}    workers = [mp.get_context("spawn").Process(target=train, args=(i,)) for i in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    loader = torch.utils.data.DataLoader(torch.zeros(4, 3), batch_size=2, num_workers=2)
    for batch in loader:
        pass
"""


@pytest.mark.parametrize(
    "main", ["", "    w = torch.ones(2, requires_grad=True)\n    (w * 2).sum().backward()\n"]
)
def test_training_in_subprocesses_is_named_not_denied(tmp_path: Path, main: str) -> None:
    """mnist_hogwild trains in `mp.Process` workers: gradviz, which records its own process,
    said "the script built no autograd graph" and told the user to give tensors
    `requires_grad=True`. It now says where the processes started (DataLoader workers are not
    counted), as the error when the main process made no backward call, as a note when it did."""
    path = script(tmp_path, HOGWILD.format(main=main), "hogwild.py")
    code, _, err = gradviz("tree", str(path), "-q")
    said = " ".join(err.split())
    line = 15 + main.count("\n")  # `p.start()`
    assert f"started 2 subprocesses at {path}:{line} (multiprocessing)" in said
    if main:
        assert code == 0 and "note: The script started 2 subprocesses" in said
    else:
        assert code != 0 and "made no backward call in its own process" in said
        assert "requires_grad" not in said


def test_tree_and_explain_show_a_small_tensor_in_full(tmp_path: Path) -> None:
    """The README promises a tensor of up to 16 elements in full: the tree and explain cut
    one of 8 to 16 elements at 60 characters (`[-0.08026, ..., 0.06135,…`), whatever the
    width. They wrap it over lines now; a picture's label still keeps to one short line."""
    path = script(
        tmp_path,
        "import torch\nw = torch.linspace(-1.5, 1.5, 16).requires_grad_()\n"
        "loss = (w * w / 2).sum()\nloss.backward()\n",  # its gradient is w itself
    )
    for command in ("tree", "explain"):
        code, out, _ = gradviz(command, str(path), "-q")
        assert code == 0
        flat = " ".join(out.replace("│", " ").split())  # the tree's guides aside
        assert "-1.5, -1.3, -1.1, -0.9, -0.7, -0.5, -0.3, -0.1, 0.1, 0.3, 0.5," in flat
        assert "0.7, 0.9, 1.1, 1.3, 1.5]" in flat and "…" not in out
