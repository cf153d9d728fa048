"""Nothing `explain` states is false: over every sample and over scripts written as users write
them, each formula's numbers are worked out again and compared with the recorded values, and every
input is named as the script names it (a tensor by its variable, a Python number as a number)."""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import pytest

from graphviz_grad.capture import CaptureOptions, capture_script
from graphviz_grad.model import Graph
from graphviz_grad.teach.explain import Explanation
from graphviz_grad.teach.sources import from_source

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted(p.name for p in (ROOT / "samples").glob("*.py"))
#: Only numbers and arithmetic: what a formula's "numbers" part is made of.
_ARITHMETIC = re.compile(r"^[\d.eE+\-*/() ]+$")

USER_SCRIPTS = {
    "global_target.py": """\
        import torch
        import torch.nn.functional as F
        target = torch.tensor([1.0, 2.0, 3.0])
        w = torch.tensor([0.5, 1.0, 1.5], requires_grad=True)
        x = torch.tensor([2.0, 2.0, 2.0])
        pred = w * x
        loss = F.mse_loss(pred, target)
        loss.backward()
        """,
    "local_tensor.py": """\
        import torch
        def step(w):
            scale = torch.tensor(3.0)
            y = w * scale
            return (y - 1.0) ** 2
        w = torch.tensor(2.0, requires_grad=True)
        loss = step(w)
        loss.backward()
        """,
    "numbers.py": """\
        import torch
        w = torch.tensor(1.5, requires_grad=True)
        b = torch.tensor(-0.5, requires_grad=True)
        loss = (w * 2.0 + b - 4.0) ** 2 / 2.0
        """,
    "inplace_leaky.py": """\
        import torch
        import torch.nn.functional as F
        w = torch.tensor(-1.5, requires_grad=True)
        h = w * 2.0
        F.leaky_relu(h, 0.1, inplace=True)
        loss = (h - 1.0) ** 2
        loss.backward()
        """,
}


def _number(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text.strip("()"))
    except ValueError:
        return None


def _evaluate(text: str) -> float | None:
    expr = text.replace("·", "*").replace("²", "**2").replace("³", "**3").strip()
    if not _ARITHMETIC.match(expr.replace("**", "*")):
        return None
    try:
        return float(eval(expr, {"__builtins__": {}}))  # noqa: S307 - digits and operators only
    except (ZeroDivisionError, OverflowError, SyntaxError):
        return None


def _close(a: float, b: float, expr: str) -> bool:
    """Equal up to the rounding of the shown numbers (4 significant digits each)."""
    shown = [abs(float(n)) for n in re.findall(r"\d+(?:\.\d*)?(?:e[+-]?\d+)?", expr)]
    return math.isclose(a, b, rel_tol=3e-3, abs_tol=1e-3 * sum(shown) + 1e-6)


def check(graph: Graph) -> int:
    """Re-compute every all-number step of every line; returns how many were checked."""
    explanation = Explanation(graph, notes=from_source(graph))
    checked = 0
    for step in explanation.steps():
        for label, text in step.lines:
            assert "plain Python number" not in text
            parts = text.split(" = ")
            if label not in ("forward", "local", "chain") or len(parts) < 3:
                continue
            result = _number(parts[-1])
            value = _evaluate(parts[-2])
            if result is None or value is None:
                continue
            assert _close(value, result, parts[-2]), f"{step.title}: {text}"
            checked += 1
    return checked


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_explains_true_numbers(name: str) -> None:
    graph = capture_script(ROOT / "samples" / name, [], CaptureOptions()).graph
    check(graph)


@pytest.mark.parametrize("name", sorted(USER_SCRIPTS))
def test_user_scripts_explain_true_numbers(tmp_path: Path, name: str) -> None:
    script = tmp_path / name
    script.write_text(textwrap.dedent(USER_SCRIPTS[name]), encoding="utf-8")
    graph = capture_script(script, [], CaptureOptions()).graph
    checked = check(graph)
    assert checked > 0 or name == "global_target.py"  # vectors: no all-number lines there


def _forward_lines(source: str, tmp_path: Path) -> list[str]:
    script = tmp_path / "s.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    graph = capture_script(script, [], CaptureOptions()).graph
    explanation = Explanation(graph, notes=from_source(graph))
    return [t for s in explanation.steps() for label, t in s.lines if label in ("forward", "")]


def test_a_global_target_tensor_is_named(tmp_path: Path) -> None:
    lines = _forward_lines(USER_SCRIPTS["global_target.py"], tmp_path)
    assert "loss = mean((pred - target)²) = 0.0" in lines


def test_a_local_tensor_is_named_and_numbers_are_numbers(tmp_path: Path) -> None:
    lines = _forward_lines(USER_SCRIPTS["local_tensor.py"], tmp_path)
    assert "#2 = w · scale = 2.0 · 3.0 = 6.0" in lines  # `scale` is local to `step`
    assert "#1 = #2 - 1.0 = 6.0 - 1.0 = 5.0" in lines


def test_an_unnamed_constant_tensor_is_not_called_a_python_number(tmp_path: Path) -> None:
    lines = _forward_lines(
        """\
        import torch
        w = torch.tensor([0.5, 1.0, 1.5], requires_grad=True)
        loss = (w * torch.arange(3.0)).sum() + (w * w).sum()
        loss.backward()
        """,
        tmp_path,
    )
    assert "c is a tensor that does not require grad: autograd treats it as a constant" in lines


def test_a_variable_named_c_is_not_taken_for_the_constant_placeholder(tmp_path: Path) -> None:
    """The tutorial's `y = a + b * P3(c + d * x)`: `c` is a parameter, not "a tensor that does
    not require grad"; an unnamed constant next to it is written `const`."""
    lines = _forward_lines(
        """\
        import torch
        c = torch.tensor(0.5, requires_grad=True)
        d = torch.tensor(2.0, requires_grad=True)
        x = torch.linspace(-1.0, 1.0, 3)
        loss = (c + d * x).sum() + (c * torch.arange(3.0)).sum()
        loss.backward()
        """,
        tmp_path,
    )
    forwards = [line for line in lines if line.startswith("#")]
    assert any(line.startswith("#") and " = c + #" in line for line in forwards), forwards
    assert any(" = c · const = " in line for line in forwards), forwards
    notes = [line for line in lines if "does not require grad" in line]
    assert notes == [
        "const is a tensor that does not require grad: autograd treats it as a constant"
    ]


@pytest.mark.parametrize(("gradient", "seeded"), [("[0.5, 2.0]", True), (None, False)])
def test_a_gradient_given_to_backward_is_named_as_a_vector_jacobian_product(
    tmp_path: Path, gradient: str | None, seeded: bool
) -> None:
    """The 60-minute blitz's `Q.backward(gradient=external_grad)`: what flows back from `Q` is
    v, not "∂Q/∂Q = 1"; a scalar loss's backward says nothing of the kind."""
    root = "Q" if gradient else "Q.sum()"
    call = f"torch.tensor({gradient})" if gradient else ""
    script = tmp_path / "blitz.py"
    script.write_text(
        "import torch\n"
        "a = torch.tensor([2., 3.], requires_grad=True)\n"
        "Q = 3 * a ** 3\n"
        f"{'Q' if gradient else 'S = Q.sum(); S'}.backward({call})\n",
        encoding="utf-8",
    )
    graph = capture_script(script, [], CaptureOptions()).graph
    explanation = Explanation(graph, notes=from_source(graph))
    intro = " ".join(explanation.intro())
    first = next(iter(explanation.steps()))
    upstream = dict(first.lines)["upstream"]
    assert ("vector-Jacobian product" in intro) is seeded, (root, intro)
    assert upstream.endswith(
        "(the `gradient=` given to backward)" if seeded else "(where backward starts)"
    )
