"""One-liners: values against torch.autograd.grad, names, and refusing anything unsafe."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from graphviz_grad.cli import app
from graphviz_grad.teach.expr import ExprError, evaluate, parse_bindings
from graphviz_grad.teach.formulas import scalar


def test_lesson_expression_gives_minus_eight() -> None:
    graph = evaluate("(x*w - y)**2", {"x": 2, "y": 4}, {"w": 1.0}).graph
    w = graph.find("w")
    assert w is not None and scalar(w.grad) == -8.0
    assert graph.nodes[graph.root].names == ("L",)


def test_named_steps_and_lists_match_torch() -> None:
    found = evaluate(
        "h = tanh(W @ v); loss = sum(h * h)", {"v": [1.0, -2.0]}, {"W": [[0.1, 0.2], [0.3, 0.4]]}
    )
    W = torch.tensor([[0.1, 0.2], [0.3, 0.4]], requires_grad=True)
    h = torch.tanh(W @ torch.tensor([1.0, -2.0]))
    (expected,) = torch.autograd.grad((h * h).sum(), [W])
    node = found.graph.find("W")
    assert node is not None and node.grad is not None
    got = [v for row in node.grad.data for v in row]  # type: ignore[union-attr]
    assert got == pytest.approx(expected.flatten().tolist())
    assert found.graph.find("h") is not None and found.graph.find("loss") is not None
    assert "W @ v" in found.notes.sources.values()


@pytest.mark.parametrize(
    "text",
    [
        "x.__class__",
        "__import__('os')",
        "x[0]",
        "(lambda: 1)()",
        "open('f')",
        "[x for x in y]",
        "import os",
        "x if y else w",
        "'a' * 3",
        "exp(x, out=w)",
        "del x",
    ],
)
def test_unsafe_or_unknown_syntax_is_refused(text: str) -> None:
    with pytest.raises(ExprError) as info:
        evaluate(text, {"x": 1.0, "y": 2.0}, {"w": 1.0})
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "item", ["x", "=2", "x=abc", "x=__import__('os')", "x=[1, 'a']", "x=True", "1x=2"]
)
def test_bad_bindings_are_refused(item: str) -> None:
    with pytest.raises(ExprError):
        parse_bindings([item], "--let")


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (  # the lesson: x and y are data, w is what to differentiate
            "y_hat = x*w; loss = (y_hat - y)**2",
            "`x`, `w` and `y` have no value.",
            "Give each a value: --param w=1.0 (what to differentiate: leaves that get a "
            "gradient), --let x=2.0 --let y=2.0 (constants).",
        ),
        (  # one variable: differentiate with respect to it
            "x**2 + sin(x)",
            "`x` has no value.",
            "Give it a value: --param x=1.0 (what to differentiate: leaves that get a gradient).",
        ),
    ],
)
def test_names_without_a_value_are_all_named_with_the_options_to_give(
    text: str, message: str, hint: str
) -> None:
    with pytest.raises(ExprError) as raised:
        evaluate(text, {}, {})
    assert (raised.value.message, raised.value.hint) == (message, hint)


def test_unbound_name_and_no_parameter() -> None:
    with pytest.raises(ExprError, match="`z` has no value"):
        evaluate("z * w", {}, {"w": 1.0})
    with pytest.raises(ExprError, match="does not depend on any --param"):
        evaluate("x * y", {"x": 1.0, "y": 2.0}, {})


def test_render_expr_cli_writes_dot_with_names() -> None:
    result = CliRunner().invoke(
        app,
        ["render", "--expr", "y_hat = x*w; loss = (y_hat - y)**2", "--let", "x=2", "--let",
         "y=4", "--param", "w=1.0", "-o", "-", "-f", "dot", "--order", "--edge-grads"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    dot = result.stdout
    assert "<b>w</b> leaf" in dot and "y_hat" in dot and "loss" in dot
    assert "backward step 1" in dot and "backward: gradient" in dot
    assert "label=<-8.0>" in dot and "style=dashed" in dot
