"""Start-up of the `gradviz` command: what it imports before the script runs (no timings here;
`benchmarks/cost.py --only lesson` measures them). Each probe runs in a fresh interpreter."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from graphviz_grad.cli import _app

ROOT = Path(__file__).resolve().parent.parent
COMMAND_MODULES = {f"graphviz_grad.cli.{module}" for module, _ in _app.COMMANDS.values()}

#: Runs the CLI in this interpreter, then prints the modules it loaded as JSON on stderr's last
#: line; the CLI's own exit (typer.Exit, SystemExit) is caught so the probe always reports.
PROBE = """
import json, sys
from graphviz_grad.cli import main
sys.argv = ["gradviz", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\n" + json.dumps(sorted(sys.modules)) + "\\n")
"""


def loaded(*args: str) -> set[str]:
    """The modules `gradviz ARGS` has imported by the time it exits."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_help_imports_no_command_and_no_torch() -> None:
    mods = loaded("--help")
    assert not mods & COMMAND_MODULES
    assert "torch" not in mods
    assert "http.server" not in mods


@pytest.mark.parametrize("name", sorted(_app.COMMANDS))
def test_a_commands_help_imports_that_command_only(name: str) -> None:
    mods = loaded(name, "--help")
    assert mods & COMMAND_MODULES == {f"graphviz_grad.cli.{_app.COMMANDS[name][0]}"}
    assert "torch" not in mods


def test_render_imports_only_what_the_lesson_needs(tmp_path: Path) -> None:
    mods = loaded("render", "samples/linear.py", "-o", str(tmp_path / "linear.json"))
    assert (tmp_path / "linear.json").exists()
    assert "torch" in mods
    assert mods & COMMAND_MODULES == {"graphviz_grad.cli.cmd_render"}
    assert "http.server" not in mods and "graphviz_grad.cli._live" not in mods
    assert "graphviz_grad.teach" not in mods  # the explained steps are for HTML pages only
    assert "pydantic" not in mods  # typer's coercion of plain values (`cli._coerce`)


@pytest.mark.parametrize("name", sorted(_app.COMMANDS))
def test_the_listed_help_is_the_commands_docstring(name: str) -> None:
    """`--help` lists `COMMANDS`' line without importing the command: it must be the first
    paragraph of the command's own docstring, as typer would list it."""
    command = _app.load(name)
    first = inspect.cleandoc(command.help).split("\n\n")[0].replace("\n", " ")
    assert _app.COMMANDS[name][1] == first


def test_every_command_module_is_listed() -> None:
    """A `cmd_*.py` missing from `COMMANDS` would never load: `gradviz` would not know it."""
    modules = {p.stem for p in (ROOT / "graphviz_grad" / "cli").glob("cmd_*.py")}
    assert modules == {module for module, _ in _app.COMMANDS.values()}


def test_the_command_starts_on_a_typer_without_the_newer_help_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyproject asks typer>=0.12; 0.27.2 and older have no `TyperOption.display_type_rich` (which
    gradviz wraps so that a flag shows no type): then nothing is wrapped, and nothing fails."""
    import typer.core

    class OlderOption:  # what typer 0.12's TyperOption has of it: nothing
        pass

    monkeypatch.setattr(typer.core, "TyperOption", OlderOption)
    _app._flags_as_flags()
    assert not hasattr(OlderOption, "display_type_rich")
