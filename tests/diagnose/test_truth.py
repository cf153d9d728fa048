"""Every finding is true of what it names, and correct scripts stay quiet.

Each false positive the issue lists is a script in `scripts/` that failed before the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from graphviz_grad.capture import Captured, CaptureOptions, capture_script
from graphviz_grad.diagnose import with_findings

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def run(path: Path, **options: object) -> Captured:
    return with_findings(capture_script(path, [], CaptureOptions(**options)))  # type: ignore[arg-type]


def loud(captured: Captured) -> list[str]:
    return [f"{f.code}: {f.message}" for f in captured.graph.findings if f.severity != "info"]


def test_a_tensor_another_call_used_is_not_unused() -> None:
    """`w` got its gradient from call 1; call 2's doctor must not say `w.grad` stays None."""
    found = run(SCRIPTS / "two_graphs.py").graph.findings
    assert not [f for f in found if "`w`" in f.message]


def test_a_name_rebound_after_the_call_shown_is_not_judged() -> None:
    """Call 1's `x` is a leaf of its graph; the `x` at the end of the run is another tensor."""
    captured = run(SCRIPTS / "rebound.py", call=1)
    assert any("x" in n.names for n in captured.graph.leaves)
    assert not [f for f in captured.graph.findings if "`x`" in f.message]


def test_parameters_at_their_optimum_are_not_vanishing() -> None:
    """LegendrePolynomial3: `a` and `c` sit at 0 with small gradients; that is right."""
    found = run(SCRIPTS / "legendre3.py").graph.findings
    assert [f.code for f in found] == []


def test_a_vanishing_net_is_never_called_exploding() -> None:
    found = run(SCRIPTS / "tanh400.py").graph.findings
    scale = [f for f in found if f.code == "grad-scale"]
    assert len(scale) == 1 and "exploding" not in scale[0].message.lower()
    assert scale[0].message.startswith("Vanishing gradients: over parameters at 800 depths")
    assert "`blocks.0.0.weight` 2.86e-05" in scale[0].message


def test_a_scale_finding_gives_each_tensor_its_own_figure() -> None:
    found = run(ROOT / "samples" / "pitfalls" / "grad_scale.py").graph.findings
    assert "`w_age` norm " in found[0].message and " times the median (" in found[0].message


@pytest.mark.parametrize("name", ["mlp_1000.py", "helper_loss.py", "two_graphs.py"])
def test_correct_loops_stay_quiet(name: str) -> None:
    assert loud(run(SCRIPTS / name)) == []


@pytest.mark.parametrize(
    "name", ["training_loop.py", "mlp.py", "transformer.py", "lstm.py", "linear_nobackward.py"]
)
def test_correct_samples_stay_quiet(name: str) -> None:
    assert loud(run(ROOT / "samples" / name)) == []


def test_root_without_backward_is_the_graph_that_contains_the_others() -> None:
    """`total` contains every `l`: it is the root, and the running total is reported."""
    captured = run(SCRIPTS / "total_no_backward.py")
    assert captured.graph.grad_source == "gradviz"
    assert "total" in captured.graph.nodes[captured.graph.root].names
    f = captured.graph.findings[0]
    assert (f.code, f.severity, f.line) == ("graph-retained", "warning", 13)
    assert "`total` adds up the tensors of 9 iterations at line 13" in f.message


def test_a_loss_at_exactly_zero_has_no_dead_gradient(tmp_path: Path) -> None:
    """SGD that lands exactly on the target: the gradient is 0 because it is the optimum."""
    script = tmp_path / "exact.py"
    script.write_text(
        "import torch\n"
        "w = torch.tensor([0.0, 2.0, -1.0], requires_grad=True)\n"
        "target = torch.ones(3)\n"
        "opt = torch.optim.SGD([w], lr=0.5)\n"
        "for step in range(4):\n"
        "    loss = ((w - target) ** 2).sum()\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n",
        encoding="utf-8",
    )
    assert loud(run(script)) == []
