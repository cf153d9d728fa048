"""`cli._coerce`: the values gradviz converts without pydantic are converted exactly as typer's own
(pydantic) coercion converts them, and everything else still goes through typer."""

from __future__ import annotations

import re
from typing import Any

import pytest
from typer.testing import CliRunner

from graphviz_grad.cli import _app, app
from graphviz_grad.cli._coerce import UNSURE, plain

coercion = pytest.importorskip("typer._coercion")

#: Spellings a user may type for any option: numbers plain and odd, choices, paths, junk.
VALUES = [
    *("0", "1", "3", "17", "18", "2400", "2401", "-2", "-0", "007", "+3", " 3", "3 ", "1_000"),
    *("1.5", "-0.5", "0.25", "1e3", ".5", "5.", "inf", "nan", "9" * 25, "1." + "0" * 30),
    *("", "abc", "svg", "SVG", "dot", "json", "grad", "LR", "all", "1:6", "-1"),
    *("samples/linear.py", "samples", "-", "no/such/file.py", "ünïcode.py", "a b"),
]
PARAMS = [
    pytest.param(name, p, id=f"{name}-{p.name}")
    for name in sorted(_app.COMMANDS)
    for p in _app.load(name).params
]


def typers(param: Any, value: Any, ctx: Any) -> Any:
    own = coercion.build_runtime_param(param.type_descriptor)
    return own._coerce_value(value, param=param, ctx=ctx)


@pytest.mark.parametrize(("name", "param"), PARAMS)
def test_plain_values_coerce_as_typer_does(name: str, param: Any) -> None:
    command = _app.load(name)
    ctx = command.context_class(command)
    desc = param.type_descriptor
    values: list[Any] = [*VALUES, param.default]
    if param.multiple or param.nargs == -1:
        values = [(), ("a", "b"), ["samples/linear.py"], ("3", "x"), *((v,) for v in VALUES)]
    for value in values:
        done = plain(desc.annotation, desc.parameter_info, value, ctx)
        if done is UNSURE or value is None:
            continue
        expected = typers(param, value, ctx)
        assert (type(done), done) == (type(expected), expected), (param.name, value)


def test_the_plain_path_is_taken_for_ordinary_values() -> None:
    command = _app.load("render")
    ctx = command.context_class(command)
    by_name = {p.name: p for p in command.params}
    for name, value in [("depth", "3"), ("timeout", "2.5"), ("file", "x.py"), ("fmt", "svg")]:
        desc = by_name[name].type_descriptor
        assert plain(desc.annotation, desc.parameter_info, value, ctx) is not UNSURE, name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--depth", "x"], "Input should be a valid integer"),
        (["--precision", "99"], "less than or equal to 17"),
        (["--timeout", "-1"], "greater than or equal to 0"),
        (["--format", "gif"], "is not one of"),
    ],
)
def test_other_values_get_typers_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["render", "samples/linear.py", *args])
    assert result.exit_code == 2
    assert message in " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())
    assert "Traceback" not in result.output
