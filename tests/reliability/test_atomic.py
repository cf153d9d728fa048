"""gradviz never loses data: outputs are replaced atomically, and nothing else is written.

A run that fails or is interrupted leaves the old output as it was (or, after success, the new one
whole), and no temporary file behind. In the user's folder gradviz writes the requested output and
nothing else: no cache, no bytecode, no hidden file.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.gradviz_proc import ENV, SAMPLES, ctrl_c, gradviz, run
from typer.testing import CliRunner

import graphviz_grad as gg
from graphviz_grad.cli import app
from graphviz_grad.errors import OutputError
from graphviz_grad.render import write

OLD = b'{"old": "output, still whole"}\n'


def _graph() -> gg.Graph:
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    return gg.trace(((w * 3).sin() ** 2).sum())


def _listing(folder: Path) -> list[str]:
    """Every path under `folder`, hidden ones included, relative and sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


class _HalfWriter(io.RawIOBase):
    """A file that writes half of what it is given, then fails as a full disk does."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        os.write(self.fd, bytes(data)[: len(data) // 2])
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


# -- in the library -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "dot"])
def test_a_failed_write_keeps_the_old_file(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / f"graph.{fmt}"
    out.write_bytes(OLD)
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: _HalfWriter(fd))
    with pytest.raises(OutputError, match="No space left on device"):
        write(_graph(), out)
    assert out.read_bytes() == OLD
    assert _listing(tmp_path) == [out.name]


def test_an_interrupted_replace_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "graph.json"
    out.write_bytes(OLD)

    def interrupted(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write(_graph(), out)
    assert out.read_bytes() == OLD
    assert _listing(tmp_path) == [out.name]


def test_a_render_failure_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "graph.svg"
    out.write_bytes(OLD)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(gg.GradvizError):
        write(_graph(), out)
    assert out.read_bytes() == OLD
    assert _listing(tmp_path) == [out.name]


def test_a_successful_write_replaces_the_file_whole_and_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "graph.json"
    out.write_bytes(OLD)
    out.chmod(0o640)
    write(_graph(), out)
    assert json.loads(out.read_text())["schema"] == "gradviz/2"
    assert out.stat().st_mode & 0o777 == 0o640
    assert _listing(tmp_path) == [out.name]


# -- through the command line ---------------------------------------------------------------------
def test_cli_disk_full_exits_7_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "linear.json"
    out.write_bytes(OLD)
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: _HalfWriter(fd))
    result = CliRunner().invoke(app, ["render", str(SAMPLES / "linear.py"), "-o", str(out)])
    assert result.exit_code == 7, result.stderr
    assert "No space left on device" in result.stderr
    assert out.read_bytes() == OLD
    assert _listing(tmp_path) == [out.name]


FAILING = {
    "script raises before backward": ("import torch\nraise ValueError('no')\n", 4),
    "script calls sys.exit(2)": ("import sys\nsys.exit(2)\n", 2),
    "no root": ("x = 1\n", 5),
}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_a_failed_run_keeps_the_old_output(case: str, tmp_path: Path) -> None:
    body, code = FAILING[case]
    script = tmp_path / "script.py"
    script.write_text(body, encoding="utf-8")
    out = tmp_path / "script.json"
    out.write_bytes(OLD)
    result = CliRunner().invoke(app, ["render", str(script), "-o", str(out)])
    assert result.exit_code == code, result.stderr
    assert out.read_bytes() == OLD
    assert _listing(tmp_path) == ["script.json", "script.py"]


def test_ctrl_c_keeps_the_old_output(tmp_path: Path) -> None:
    script = tmp_path / "spin.py"
    script.write_text(
        "import time, torch\nw = torch.ones(1, requires_grad=True)\nloss = (w * 2).sum()\n"
        "print('ready', flush=True)\nwhile True:\n    time.sleep(0.01)\n",
        encoding="utf-8",
    )
    out = tmp_path / "spin.json"
    out.write_bytes(OLD)
    assert ctrl_c("render", str(script), "-o", str(out), cwd=tmp_path).returncode == 130
    assert out.read_bytes() == OLD
    assert _listing(tmp_path) == ["spin.json", "spin.py"]


# -- nothing but the requested output -------------------------------------------------------------
def _user_folder(tmp_path: Path) -> Path:
    """A user's project: a script that imports a helper module next to it."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "helper.py").write_text("def square(x):\n    return x * x\n", encoding="utf-8")
    shutil.copy(SAMPLES / "linear.py", folder / "train.py")
    text = (folder / "train.py").read_text(encoding="utf-8")
    (folder / "train.py").write_text(
        text.replace("loss = r**2", "from helper import square\nloss = square(r)"),
        encoding="utf-8",
    )
    return folder


@pytest.mark.parametrize(
    ("args", "outputs"),
    [
        (["render", "train.py", "-o", "graph.json"], ["graph.json"]),
        (["render", "train.py"], ["train.svg"]),
        (["render", "train.py", "-o", "-", "-f", "dot"], []),
        (["tree", "train.py"], []),
    ],
    ids=["render-json", "render-default", "render-stdout", "tree"],
)
def test_gradviz_writes_nothing_but_the_output(
    args: list[str], outputs: list[str], tmp_path: Path
) -> None:
    if args[-1] == "train.py" and args[0] == "render" and shutil.which("dot") is None:
        pytest.skip("`dot` is not installed")
    folder = _user_folder(tmp_path)
    env = {k: v for k, v in ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
    plain = run([sys.executable, "train.py"], cwd=folder, env=env)
    assert plain.returncode == 0, plain.stderr
    after_python = _listing(folder)  # python itself caches helper.py in __pycache__
    samples_before = _listing(SAMPLES)
    done = gradviz(*args, cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert _listing(folder) == sorted(after_python + outputs)
    assert _listing(SAMPLES) == samples_before
