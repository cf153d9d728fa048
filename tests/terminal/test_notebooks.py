"""A notebook runs as its code cells, in order, for every command; magics are skipped with a
note; tracebacks and findings name the cell and its line."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import torch
from helpers.gradviz_proc import GRADVIZ, run

from graphviz_grad.capture import CaptureOptions, capture_script, in_big_stack, load_cells
from graphviz_grad.diagnose import with_findings
from graphviz_grad.errors import ScriptNotFoundError

CELLS = [
    ("markdown", "# A lesson\nIn words, not code."),
    ("code", "import torch\n%matplotlib inline\nx = torch.tensor([2.0, 3.0])"),
    ("code", "!pip list\nw = torch.tensor([1.0, -1.0], requires_grad=True)\nprint('hi')"),
    ("code", "%%bash\necho not python"),
    ("code", "y_hat = x * w\nloss = ((y_hat - 4) ** 2).sum()\nloss.backward()"),
]


def notebook(path: Path, cells: list[tuple[str, str]] = CELLS) -> Path:
    nb = nbformat.v4.new_notebook()
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}
    nb.cells = [make[kind](source) for kind, source in cells]
    nbformat.write(nb, str(path))
    return path


def test_cells_compile_in_order_with_cell_names(tmp_path: Path) -> None:
    path, codes, notes = load_cells(notebook(tmp_path / "nb.ipynb"))
    assert [c.co_filename for c in codes] == [
        f"{path}[cell 2]",
        f"{path}[cell 3]",
        f"{path}[cell 5]",
    ]
    assert len(notes) == 1
    assert "skipped 3 IPython magic/shell lines" in notes[0]
    assert "cell 2, line 2 (%matplotlib)" in notes[0]
    assert "cell 4 (cell magic %%bash)" in notes[0]


def test_values_and_gradients_match_autograd(tmp_path: Path) -> None:
    path = notebook(tmp_path / "nb.ipynb")
    captured = in_big_stack(lambda: capture_script(path, [], CaptureOptions()))
    graph = captured.graph
    x = torch.tensor([2.0, 3.0])
    w = torch.tensor([1.0, -1.0], requires_grad=True)
    loss = ((x * w - 4) ** 2).sum()
    (expected,) = torch.autograd.grad(loss, w)
    root = graph.nodes[graph.roots[0]]
    assert root.value is not None and root.value.data == pytest.approx(loss.item())
    leaf = next(n for n in graph.nodes if n.kind == "leaf" and "w" in n.names)
    assert leaf.grad is not None and leaf.grad.data == pytest.approx(expected.tolist())
    assert root.file is not None and root.file.endswith("nb.ipynb[cell 5]")
    assert root.line == 2


def test_findings_name_cell_and_line(tmp_path: Path) -> None:
    cells = [
        ("code", "import torch\nw = torch.tensor(2.0, requires_grad=True)"),
        ("code", "c = w.detach()\nloss = w * c\nloss.backward()"),
    ]
    path = notebook(tmp_path / "cut.ipynb", cells)
    captured = in_big_stack(lambda: with_findings(capture_script(path, [], CaptureOptions())))
    cut = next(f for f in captured.graph.findings if f.code == "cut")
    assert cut.file is not None and cut.file.endswith("cut.ipynb[cell 2]")
    assert cut.line == 1


def test_not_a_notebook_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.ipynb"
    bad.write_text('{"cells": [', encoding="utf-8")
    with pytest.raises(ScriptNotFoundError, match="not a readable Jupyter notebook"):
        load_cells(bad)


def test_syntax_error_names_the_cell(tmp_path: Path) -> None:
    path = notebook(tmp_path / "nb.ipynb", [("code", "x = 1"), ("code", "y = (\n")])
    with pytest.raises(ScriptNotFoundError, match=r"syntax error at cell 2, line"):
        load_cells(path)


def test_every_command_runs_a_notebook(tmp_path: Path) -> None:
    path = notebook(tmp_path / "nb.ipynb")
    out = tmp_path / "nb.json"
    proc = run([*GRADVIZ, "render", str(path), "-o", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["nodes"]
    assert "note: nb.ipynb: skipped 3 IPython magic/shell lines" in proc.stderr
    for command in (["tree"], ["explain"], ["steps"], ["doctor"]):
        proc = run([*GRADVIZ, *command, str(path)])
        assert proc.returncode == 0, (command, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_traceback_names_cell_and_line(tmp_path: Path) -> None:
    cells = [("code", "import torch"), ("code", "x = 1\nraise ValueError('boom')")]
    proc = run([*GRADVIZ, "tree", str(notebook(tmp_path / "bad.ipynb", cells))])
    assert proc.returncode == 4, proc.stderr
    assert 'bad.ipynb[cell 2]", line 2' in proc.stderr
    assert "raise ValueError('boom')" in proc.stderr  # the cell's line, through linecache
    assert "error: The script `bad.ipynb` raised ValueError: boom" in proc.stderr
