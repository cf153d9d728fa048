"""When stdout carries data, the script's own prints go to stderr: a pipe holds exactly the data.

Each test runs gradviz in a fresh process, as a shell pipe would, on a script that prints.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from helpers.gradviz_proc import ENV, GRADVIZ, run

PRINTING = """\
import sys
import torch

print("hello from the script")
w = torch.tensor([1.0, 2.0], requires_grad=True)
for step in range(2):
    loss = (w * w).sum()
    loss.backward()
    print(f"step {step}: loss {loss.item()}")
    sys.stdout.flush()
    with torch.no_grad():
        w -= 0.1 * w.grad
    w.grad = None
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "printing.py"
    path.write_text(PRINTING, encoding="utf-8")
    return path


def test_render_json_to_stdout_is_only_json(script: Path) -> None:
    proc = run([*GRADVIZ, "render", str(script), "-f", "json", "-o", "-"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["root"] is not None or data["nodes"]
    assert "hello from the script" in proc.stderr
    assert "step 1: loss" in proc.stderr


def test_render_dot_to_stdout_is_only_dot(script: Path) -> None:
    proc = run([*GRADVIZ, "render", str(script), "-o", "-"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("digraph")
    assert proc.stdout.rstrip().endswith("}")
    assert "hello from the script" in proc.stderr


def test_steps_json_and_csv_are_only_data(script: Path) -> None:
    as_json = run([*GRADVIZ, "steps", str(script), "-f", "json"])
    assert as_json.returncode == 0, as_json.stderr
    calls = json.loads(as_json.stdout)["calls"]
    assert [c["call"] for c in calls] == [1, 2]
    assert "hello from the script" in as_json.stderr
    as_csv = run([*GRADVIZ, "steps", str(script), "-f", "csv"])
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["call"] for r in rows] == ["1", "2"]
    assert float(rows[0]["root"]) == pytest.approx(5.0)
    assert "step 0: loss" in as_csv.stderr


def test_piped_tree_holds_only_the_tree(script: Path) -> None:
    proc = run([*GRADVIZ, "tree", str(script)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("#0 SumBackward0 loss")
    assert "hello" not in proc.stdout
    assert "hello from the script" in proc.stderr


@pytest.mark.parametrize(
    ("command", "starts"), [("explain", "Backward pass from loss"), ("steps", "2 backward calls")]
)
def test_piped_explain_and_steps_hold_only_their_report(
    script: Path, command: str, starts: str
) -> None:
    """`gradviz explain x.py > steps.txt` mixed the script's prints into the file, as the tree
    did before it sent them to stderr; so did the steps table."""
    proc = run([*GRADVIZ, command, str(script)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(starts)
    assert "hello" not in proc.stdout
    assert "hello from the script" in proc.stderr


def test_doctor_to_stdout_reports_on_stderr(tmp_path: Path) -> None:
    script = tmp_path / "cut.py"
    script.write_text(
        "import torch\nprint('chatty')\nw = torch.tensor(2.0, requires_grad=True)\n"
        "loss = w * w.detach()\nloss.backward()\n",
        encoding="utf-8",
    )
    proc = run([*GRADVIZ, "doctor", str(script), "-f", "json", "-o", "-"])
    data = json.loads(proc.stdout)
    assert any(f["code"] == "cut" for f in data["findings"])
    assert "chatty" in proc.stderr
    assert "cut" in proc.stderr  # the findings report went to stderr


@pytest.mark.parametrize("command", ["doctor", "steps", "explain"])
def test_piped_reports_have_no_trailing_spaces(command: str, tmp_path: Path) -> None:
    """Each line of a report in a pipe ends at its last word (rich padded a finding's lines,
    the steps table's rows and the explanation's to the console's width: a file of trailing
    spaces for `grep` and `diff`)."""
    script = tmp_path / "cut.py"
    script.write_text(
        "import torch\nw = torch.tensor(2.0, requires_grad=True)\n"
        "loss = w * w.detach()\nloss.backward()\n",
        encoding="utf-8",
    )
    proc = run([*GRADVIZ, command, str(script)], env={**ENV, "COLUMNS": "100"})
    lines = proc.stdout.splitlines()
    assert len(lines) > 2 and max(map(len, lines)) <= 100
    assert [line for line in lines if line != line.rstrip()] == []


def test_stdout_to_stderr_moves_python_and_fd_writes_and_restores(
    capfd: pytest.CaptureFixture[str],
) -> None:
    import os
    import sys

    from graphviz_grad.cli._run import stdout_to_stderr

    with stdout_to_stderr():
        print("from print")
        sys.stdout.flush()
        os.write(1, b"from fd 1\n")  # as C code or a child process would write
    print("after")
    sys.stdout.flush()
    out, err = capfd.readouterr()
    assert out == "after\n"
    assert "from print\n" in err and "from fd 1\n" in err


def test_messages_on_a_terminal_wrap_at_words(tmp_path: Path) -> None:
    """On an 80-column terminal gradviz's notes wrap between words; rich left the line whole
    (right for a pipe or a log) and the terminal cut it mid-word: `(graph-grows` / `, grad-`."""
    import os
    import pty
    import select
    import subprocess

    script = tmp_path / "once.py"
    script.write_text(
        "import torch\nw = torch.tensor(2.0, requires_grad=True)\n(w * w).backward()\n",
        encoding="utf-8",
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*GRADVIZ, "doctor", str(script)],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**ENV, "COLUMNS": "80", "TERM": "xterm"},
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    lines = [line.rstrip("\r") for line in text.split("\n")]
    assert any(line.startswith("note: the script made one backward call") for line in lines)
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)


def test_quiet_hides_the_scripts_warnings_but_doctor_still_reports_them(tmp_path: Path) -> None:
    """`-q` hides what the script prints: its warnings too (a spatial transformer's
    `grid_sample` warned through every render). `doctor` still reports them as findings."""
    path = tmp_path / "warns.py"
    path.write_text(
        "import warnings\nimport torch\nw = torch.ones(2, requires_grad=True)\n"
        "warnings.warn('align_corners will change')\n(w * 2).sum().backward()\n",
        encoding="utf-8",
    )
    quiet = run([*GRADVIZ, "tree", str(path), "-q"])
    assert quiet.returncode == 0 and "align_corners" not in quiet.stderr
    loud = run([*GRADVIZ, "tree", str(path)])
    assert loud.returncode == 0 and "align_corners" in loud.stderr
    doctor = run([*GRADVIZ, "doctor", str(path), "-q"])
    assert "torch-warning" in doctor.stdout and "align_corners" in doctor.stdout


def test_a_reader_that_stops_early_ends_gradviz_quietly(tmp_path: Path) -> None:
    """`gradviz tree big.py | head`: the pipe closes while gradviz still writes. It stops with
    the shell's status for that (141), no traceback and no "bug in gradviz"."""
    import subprocess

    from graphviz_grad.errors import EXIT_CODES

    script = tmp_path / "chain.py"
    script.write_text(
        "import torch\nx = torch.tensor(1.0, requires_grad=True)\ny = x\n"
        "for _ in range(3000):\n    y = y * 1.0001 + 0.1\ny.backward()\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [*GRADVIZ, "tree", str(script)],
        env=ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.read(64)  # what `head -c 64` reads, then it exits
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert first
    assert code == EXIT_CODES["pipe-closed"] == 141, stderr
    assert "Traceback" not in stderr and "bug in gradviz" not in stderr
