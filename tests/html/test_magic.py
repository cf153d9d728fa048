"""`%load_ext graphviz_grad`, `%%gradviz` and `%gradviz EXPR`, in a notebook executed by nbclient.

The gradients the magic shows are checked against `torch.autograd.grad`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.browser import Dom

from graphviz_grad.magic import split_line

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")

CELLS = [
    "%load_ext graphviz_grad\nimport torch",
    # 1: the lesson, recorded; the view drawn with the backward order
    "%%gradviz --order --edge-grads\n"
    "x = torch.tensor(2.0)\ny = torch.tensor(4.0)\nw = torch.tensor(1.0, requires_grad=True)\n"
    "y_hat = x * w\nloss = (y_hat - y) ** 2\nloss.backward()\nprint('in cell', w.grad.item())",
    # 2: later cells see the cell's variables
    "print('later', w.grad.item(), loss.item())",
    # 3: the recorded graph of a tensor of that cell (its graph was freed by backward)
    "%gradviz --tree loss",
    # 4: an expression, traced now: gradients by gradviz, w.grad untouched
    "%gradviz --tree -p 3 (w * 3.0 - y) ** 2",
    "print('grad still', w.grad.item())",
    # 6: no backward call in the cell: the only new tensor with a grad_fn; -o writes a file too
    "%%gradviz --tree -o affine.json\nb = torch.tensor(2.0, requires_grad=True)\n"
    "out = (x * w + b - y) ** 2",
    # 7..: errors: one sentence and a hint, no traceback
    "%gradviz --bogus w",
    "%gradviz nothing_here",
    "%gradviz x",
    "%%gradviz\nraise ValueError('oops')",
    "%%gradviz --target nope\nz = w * 2",
]


def expected() -> dict[str, float]:
    x, y = torch.tensor(2.0), torch.tensor(4.0)
    w = torch.tensor(1.0, requires_grad=True)
    b = torch.tensor(2.0, requires_grad=True)
    (lesson,) = torch.autograd.grad((x * w - y) ** 2, w)
    (expr,) = torch.autograd.grad((w * 3.0 - y) ** 2, w)
    gw, gb = torch.autograd.grad((x * w + b - y) ** 2, (w, b))
    return {"lesson": lesson.item(), "expr": expr.item(), "affine_w": gw.item(), "b": gb.item()}


def text_of(outputs: list[Any], kind: str) -> str:
    if kind == "stderr" or kind == "stdout":
        return "".join(o.text for o in outputs if o.output_type == "stream" and o.name == kind)
    shown = [o.data for o in outputs if o.output_type in ("display_data", "execute_result")]
    return "\n".join(ANSI.sub("", d.get(kind, "")) for d in shown)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[list[Any]], Path]:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    here = tmp_path_factory.mktemp("magic")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    old = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), old])
    try:
        client = nbclient.NotebookClient(
            nb,
            timeout=300,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(here)}},
        )
        client.execute()
    finally:
        os.environ["PYTHONPATH"] = old
    return [c.outputs for c in nb.cells], here


@pytest.mark.slow
def test_cell_magic_runs_the_cell_and_shows_its_graph(
    executed: tuple[list[list[Any]], Path], needs_dot: None
) -> None:
    cells, _ = executed
    assert not [o for o in cells[0] if o.output_type == "error"]
    want = expected()
    assert f"in cell {want['lesson']}" in text_of(cells[1], "stdout")
    html = text_of(cells[1], "text/html")
    assert 'class="gradviz"' in html
    data = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)
    assert data is not None
    page = json.loads(data.group(1))
    kinds = [page["strings"][i] for i in page["kind"]]
    assert kinds.count("op") == 3 and kinds.count("leaf") == 1  # pow, sub, mul; w
    titles = [n.text[1] for n in Dom.parse(html).all("g", "node")]
    assert any(t.startswith("legend") for t in titles)  # --order's legend: the options count
    assert "#3 leaf w" in text_of(cells[1], "text/plain")
    assert f"grad={want['lesson']}" in text_of(cells[1], "text/plain")
    assert "image/svg+xml" in str([o.data.keys() for o in cells[1] if "data" in o])
    assert f"later {want['lesson']} 4.0" in text_of(cells[2], "stdout")


@pytest.mark.slow
def test_line_magic_shows_recorded_or_traced_graphs(
    executed: tuple[list[list[Any]], Path],
) -> None:
    cells, here = executed
    want = expected()
    assert f"leaf w f32[] value=1.0 grad={want['lesson']}" in text_of(cells[3], "text/plain")
    traced = text_of(cells[4], "text/plain")
    assert f"leaf w f32[] value=1.0 grad={want['expr']:g}" in traced
    assert "PowBackward0 f32[] value=1.0" in traced  # forward value recorded while evaluating
    assert f"grad still {want['lesson']}" in text_of(cells[5], "stdout")
    found = text_of(cells[6], "text/plain")
    assert f"leaf w f32[] value=1.0 grad={want['affine_w']:g}" in found
    assert f"leaf b f32[] value=2.0 grad={want['b']:g}" in found
    assert (here / "affine.json").stat().st_size > 0


@pytest.mark.slow
def test_bad_input_is_one_sentence_and_a_hint(executed: tuple[list[list[Any]], Path]) -> None:
    cells, _ = executed
    said = [text_of(cells[i], "stderr") for i in (7, 8, 9)]
    assert "error: %gradviz: unrecognized arguments: --bogus" in said[0]
    assert "NameError" in said[1] and "hint:" in said[1]
    assert "`x` has no autograd graph" in said[2]
    for i in (7, 8, 9):
        assert not [o for o in cells[i] if o.output_type == "error"]
        assert "Traceback" not in said[i - 7]
    (error,) = [o for o in cells[10] if o.output_type == "error"]  # the cell's own error
    assert error.ename == "ValueError" and not text_of(cells[10], "text/plain")
    said = text_of(cells[11], "stderr")  # the notebook's own names (open, In, Out) not offered
    assert "error: The cell has no variable `nope`." in said
    assert "z [] has grad_fn" in said and "open" not in said


@pytest.mark.parametrize(
    ("line", "flags", "expr"),
    [
        ("loss", [], "loss"),
        ("--order -p 3 (x*w - y)**2", ["--order", "-p", "3"], "(x*w - y)**2"),
        ("--precision=3 -x", ["--precision=3"], "-x"),
        ("-(a + b)", [], "-(a + b)"),
        ("  --tree  ", ["--tree"], ""),
    ],
)
def test_split_line_options_first_then_the_expression(
    line: str, flags: list[str], expr: str
) -> None:
    assert split_line(line) == (flags, expr)
