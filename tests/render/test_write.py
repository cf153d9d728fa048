from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from helpers.graphs import lesson

import graphviz_grad.render as render
from graphviz_grad.errors import GraphvizMissingError, OutputError, RenderError
from graphviz_grad.render import FORMATS, DrawOptions, infer_format, render_bytes, to_dot, write

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")


def test_public_api() -> None:
    assert FORMATS == ("svg", "png", "pdf", "dot", "json", "html")
    for name in render.__all__:
        assert hasattr(render, name)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("g.svg", "svg"), ("g.PNG", "png"), ("g.pdf", "pdf"), ("g.dot", "dot"), ("g.gv", "dot"),
     ("g.json", "json"), ("g", "svg"), ("-", "dot")],
)  # fmt: skip
def test_infer_format(name: str, fmt: str) -> None:
    assert infer_format(name) == fmt


def test_infer_format_errors() -> None:
    with pytest.raises(OutputError, match="cannot tell the format"):
        infer_format("g.jpg")
    with pytest.raises(OutputError, match="Unknown output format"):
        infer_format("g.svg", "bmp")
    with pytest.raises(OutputError, match=r"says SVG but `fmt='json'` asks for JSON"):
        infer_format("g.svg", "json")  # not a JSON file named .svg
    assert infer_format("g.txt", "json") == "json"
    assert infer_format("g.gv", "dot") == "dot"


def test_write_dot_and_json(tmp_path: Path) -> None:
    assert write(lesson(), tmp_path / "g.dot") == tmp_path / "g.dot"
    assert (tmp_path / "g.dot").read_text(encoding="utf-8") == to_dot(lesson())
    write(lesson(), str(tmp_path / "g.json"))
    assert json.loads((tmp_path / "g.json").read_text(encoding="utf-8"))["schema"] == "gradviz/2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.dot", "g.json"]


@needs_dot
def test_write_svg(tmp_path: Path) -> None:
    write(lesson(), tmp_path / "g.svg", options=DrawOptions(edge_grads=True, title="lesson"))
    assert (tmp_path / "g.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert write(lesson(), "-", "json") == Path("-")
    assert json.loads(capsys.readouterr().out)["root"] == 0
    write(lesson(), "-")
    assert capsys.readouterr().out == to_dot(lesson())
    with pytest.raises(OutputError, match="standard output"):
        write(lesson(), "-", "svg")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist") as info:
        write(lesson(), tmp_path / "nope" / "g.dot")
    assert info.value.hint and "mkdir" in info.value.hint


def test_path_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a folder"):
        write(lesson(), tmp_path, "dot")


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root writes")
def test_folder_not_writable(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(OutputError, match="not writable"):
            write(lesson(), folder / "g.dot")
    finally:
        folder.chmod(stat.S_IRWXU)


def test_failed_layout_leaves_file_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "g.svg"
    target.write_text("old", encoding="utf-8")

    def broken(dot: str, fmt: str) -> bytes:
        raise RenderError("Graphviz could not lay out the graph: boom")

    monkeypatch.setattr(render, "_layout", broken)
    with pytest.raises(RenderError):
        write(lesson(), target)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["g.svg"]


def test_failed_write_removes_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "g.dot"
    target.write_text("old", encoding="utf-8")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("graphviz_grad.render.os.replace", broken_replace)
    with pytest.raises(OutputError, match="No space left"):
        write(lesson(), target)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["g.dot"]


def test_replaces_existing_and_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "g.dot"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o640)
    write(lesson(), target)
    assert target.read_text(encoding="utf-8") == to_dot(lesson())
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_dot_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("graphviz_grad.render.shutil.which", lambda name: None)
    with pytest.raises(GraphvizMissingError) as info:
        render_bytes(lesson(), "svg")
    assert info.value.message.startswith("Graphviz's `dot` program is not installed")
    assert info.value.hint and "apt-get install graphviz" in info.value.hint
    assert info.value.exit_code == 8


def test_dot_not_found_while_running(monkeypatch: pytest.MonkeyPatch) -> None:
    graphviz = pytest.importorskip("graphviz")

    def missing(*args: object, **kwargs: object) -> bytes:
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr("graphviz_grad.render.shutil.which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr(graphviz, "pipe", missing)
    with pytest.raises(GraphvizMissingError):
        render_bytes(lesson(), "png")


def test_layout_failure_is_render_error(monkeypatch: pytest.MonkeyPatch) -> None:
    graphviz = pytest.importorskip("graphviz")

    def fails(*args: object, **kwargs: object) -> bytes:
        raise graphviz.CalledProcessError(1, ["dot"], output=b"", stderr=b"Error: syntax\n")

    monkeypatch.setattr("graphviz_grad.render.shutil.which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr(graphviz, "pipe", fails)
    with pytest.raises(RenderError, match="Error: syntax"):
        render_bytes(lesson(), "svg")
