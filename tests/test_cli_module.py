"""`--module/-m`: a script of a package runs as `python -m pkg.train` would (relative imports,
`__package__`, `sys.argv[0]`, the current folder first on `sys.path`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphviz_grad.cli import app

TRAIN = """\
import sys, torch
from .model import make
torch.manual_seed(0)
net = make()
opt = torch.optim.SGD(net.parameters(), lr=0.1)
for step in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
    loss = net(torch.ones(4, 2)).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
print("ran", __name__, __package__, Path := sys.argv[0].endswith("train.py"), sys.path[0])
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package `gvpkg` (unique: it stays imported) with a training module and a __main__."""
    pkg = tmp_path / "gvpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "model.py").write_text(
        "import torch\ndef make():\n    return torch.nn.Linear(2, 1)\n", encoding="utf-8"
    )
    (pkg / "train.py").write_text(TRAIN, encoding="utf-8")
    (pkg / "__main__.py").write_text("from . import train\n", encoding="utf-8")
    empty = tmp_path / "nomain"
    empty.mkdir()
    (empty / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    forget()


def forget() -> None:
    """Drop the packages from `sys.modules` (one process runs them several times here)."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("gvpkg", "nomain")]:
        del sys.modules[name]


def gradviz(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_module_runs_inside_its_package(project: Path) -> None:
    code, stdout, stderr = gradviz("render", "-m", "gvpkg.train", "-f", "json", "--", "5")
    assert code == 0, stderr
    assert f"ran __main__ gvpkg True {project}" in stdout
    graph = json.loads((project / "train.json").read_text(encoding="utf-8"))  # named as the module
    assert graph["call"] == 5
    assert len([n for n in graph["nodes"] if n["kind"] != "input"]) == 6


def test_a_package_runs_its_main(project: Path) -> None:
    code, _, stderr = gradviz("tree", "-m", "gvpkg")
    assert code == 0, stderr
    forget()
    code, _, _ = gradviz("render", "-m", "gvpkg", "-f", "json")
    assert code == 0 and (project / "gvpkg.json").is_file()


@pytest.mark.parametrize("command", ["doctor", "steps", "explain"])
def test_every_command_takes_a_module(project: Path, command: str) -> None:
    code, _, stderr = gradviz(command, "-m", "gvpkg.train")
    assert code == 0, stderr


def test_a_package_script_run_by_path_gets_the_module_to_run(project: Path) -> None:
    code, _, stderr = gradviz("render", "gvpkg/train.py")
    assert code == 4
    assert "run it as a module, `-m gvpkg.train`" in " ".join(stderr.split())


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-m", "nosuch_gv_module"], 3, "There is no module `nosuch_gv_module`."),
        (["-m", "gvpkg/train.py"], 3, "`gvpkg/train.py` is a path, not a module name."),
        (["-m", "nomain"], 3, "`nomain` is a package with no `__main__` module"),
        (["-m", "--expr", "x*w", "--let", "x=2", "--param", "w=1"], 2, "--module runs FILE"),
    ],
)
def test_bad_modules(project: Path, args: list[str], code: int, message: str) -> None:
    got, _, stderr = gradviz("render", *args)
    assert got == code
    assert message in " ".join(stderr.split())
    assert "Traceback" not in stderr
