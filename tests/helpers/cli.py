"""The CLI as a test drives it in process: a script written to a file, one command run on it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from graphviz_grad.cli import app


def cli_output(
    tmp_path: Path, name: str, source: str, command: str, columns: int = 200, *args: str
) -> str:
    """What `gradviz COMMAND -q` prints on stdout for a script made of `source`, at `columns`
    columns; the command must succeed."""
    script = tmp_path / name
    script.write_text(source, encoding="utf-8")
    result = CliRunner().invoke(
        app, [command, str(script), "-q", *args], env={"COLUMNS": str(columns)}
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout


def invoke_script(tmp_path: Path, name: str, source: str, command: str, *args: str) -> Result:
    """`gradviz COMMAND SCRIPT ARGS` in process, on a script `name` made of `source` in
    `tmp_path`; the result whatever it is (exit code, stdout and stderr apart)."""
    script = tmp_path / name
    script.write_text(source, encoding="utf-8")
    return CliRunner().invoke(app, [command, str(script), *args])
