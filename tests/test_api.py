"""The public Python API: exactly `__all__`, cheap to import, typed, and the examples in
docs/api.md run and give the values PyTorch gives."""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import graphviz_grad as gg

ROOT = Path(__file__).resolve().parent.parent
API_DOC = ROOT / "docs" / "api.md"
PUBLIC = [
    "CallInfo",
    "DrawOptions",
    "Edge",
    "Finding",
    "Graph",
    "GradvizError",
    "Node",
    "Recorder",
    "TensorSummary",
    "__version__",
    "record",
    "trace",
    "write",
]


def test_all_is_exactly_the_public_api() -> None:
    # A deliberate change to the API updates this list, docs/api.md and the CHANGELOG together.
    assert sorted(gg.__all__) == sorted(PUBLIC)
    assert len(set(gg.__all__)) == len(gg.__all__)


@pytest.mark.parametrize("name", [n for n in PUBLIC if n != "__version__"])
def test_every_public_name_resolves_is_typed_and_documented(name: str) -> None:
    obj = getattr(gg, name)
    assert inspect.getdoc(obj), f"{name} has no docstring"
    assert f"`{name}" in API_DOC.read_text(encoding="utf-8"), f"docs/api.md does not cover {name}"
    if inspect.isfunction(obj):
        hints = inspect.get_annotations(obj)
        params = [p for p in inspect.signature(obj).parameters.values() if p.kind != p.VAR_KEYWORD]
        assert "return" in hints and all(p.name in hints for p in params)
        assert "Example:" in (obj.__doc__ or "")


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, Any] = {}
    exec("from graphviz_grad import *", namespace)
    assert set(PUBLIC) <= set(namespace)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gg.nope  # noqa: B018


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, graphviz_grad; graphviz_grad.Graph; print('torch' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert proc.stdout.strip() == "False"


def test_the_package_is_typed() -> None:
    assert (ROOT / "graphviz_grad" / "py.typed").exists()


def test_version_matches_pyproject() -> None:
    found = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found and found.group(1) == gg.__version__


# -- the examples in docs/api.md ---------------------------------------------------------------
def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", API_DOC.read_text(encoding="utf-8"), re.S)


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """Run every example of docs/api.md in order, in one namespace, in an empty folder."""
    if shutil.which("dot") is None:
        pytest.skip("the examples write SVG: Graphviz's `dot` is not installed")
    folder = tmp_path_factory.mktemp("api")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    printed = io.StringIO()
    mp = pytest.MonkeyPatch()
    mp.chdir(folder)
    try:
        with contextlib.redirect_stdout(printed):
            for block in doc_blocks():
                exec(compile(block, str(API_DOC), "exec"), namespace)
    finally:
        mp.undo()
    namespace["printed"] = printed.getvalue().splitlines()
    return namespace, folder


def lesson_grad(w0: float) -> float:
    w = torch.tensor(w0, requires_grad=True)
    (grad,) = torch.autograd.grad((torch.tensor(2.0) * w - torch.tensor(4.0)) ** 2, w)
    return float(grad)


def test_the_doc_has_examples_for_each_task() -> None:
    text = "\n".join(doc_blocks())
    for call in ("gg.trace(", "gg.record(", "rec.graph(", "gg.write(", ".findings", "rich.print("):
        assert call in text


def test_trace_example_matches_pytorch(examples: tuple[dict[str, Any], Path]) -> None:
    ns, _ = examples
    assert ns["graph"].find("w").grad.data == lesson_grad(1.0)
    assert ns["graph"].grad_source == "gradviz"
    assert ns["printed"][:2] == ["-8.0", "None"]  # as the comments in the example say


def test_record_example_keeps_every_call(examples: tuple[dict[str, Any], Path]) -> None:
    ns, _ = examples
    rec = ns["rec"]
    assert [c.number for c in rec.calls] == [1, 2, 3]
    w = 1.0
    for call in rec.calls:
        (leaf,) = call.leaves
        assert leaf.grad.data == pytest.approx(lesson_grad(w), rel=1e-6)
        w -= 0.1 * leaf.grad.data
    assert ns["first"].call == 1 and ns["last"].call == 3
    assert ns["last"].find("w").grad.data == rec.calls[-1].leaves[0].grad.data


def test_write_example_writes_every_format(examples: tuple[dict[str, Any], Path]) -> None:
    _, folder = examples
    written = {p.name: p.read_bytes() for p in folder.iterdir()}
    formats = ("json", "dot", "svg", "html", "page")
    assert set(written) == {f"lesson.{s}" for s in formats} | {"lesson-steps.html"}
    assert written["lesson.page"] == written["lesson.html"]
    stepper = b'class="gv-stepper"'
    assert stepper in written["lesson-steps.html"] and stepper not in written["lesson.html"]
    assert written["lesson.svg"].lstrip().startswith(b"<?xml")
    assert written["lesson.dot"].startswith(b"digraph")


def test_error_example_catches_a_gradviz_error(examples: tuple[dict[str, Any], Path]) -> None:
    ns, _ = examples
    assert ns["printed"][-1].startswith("The tensor does not require grad")
    assert ns["printed"][-1].endswith(" 5")  # RootError's exit code
