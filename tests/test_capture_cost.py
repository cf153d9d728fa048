"""What recording costs is proportional to what can be shown: `stop_after` lets the code run on
unobserved without changing a value; the progress line's status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.recording import run_recorded

from graphviz_grad.capture import Recorder, op_record

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SCRIPTS = sorted(p.name for p in SAMPLES.glob("*.py") if p.name != "linear_nobackward.py")


def _train(steps: int) -> torch.Tensor:
    torch.manual_seed(0)
    w = torch.randn(3, requires_grad=True)
    x = torch.randn(4, 3)
    loss = torch.zeros(())
    for _ in range(steps):
        loss = ((x @ w).tanh() ** 2).sum()
        loss.backward()
        with torch.no_grad():
            w -= 0.1 * w.grad
            w.grad = None
    return loss


def test_stop_after_records_up_to_that_call_then_only_counts() -> None:
    with Recorder(keep=2, stop_after=2) as rec:
        _train(5)
        after = (torch.ones(2, requires_grad=True) * 3).sum()
    assert [c.number for c in rec.calls] == [1, 2]
    assert sorted(rec.graphs) == [2]
    assert rec.unobserved == 3 and rec.total_calls == 5 and rec.stopped_early
    assert op_record(after.grad_fn) is None, "nothing is recorded after the last call needed"
    assert torch.autograd.backward is rec._saved["backward"], "the patches are undone on exit"


def test_stop_after_shows_the_same_graph_as_a_full_recording() -> None:
    with Recorder(keep="all") as full:
        _train(4)
    with Recorder(keep=3, stop_after=3) as early:
        _train(4)
    assert early.graph(3) == full.graph(3)
    assert early.calls == full.calls[:3]


def test_stop_after_is_not_reached_when_the_code_makes_fewer_calls() -> None:
    with Recorder(keep=9, stop_after=9) as rec:
        _train(2)
    assert rec.total_calls == 2 and not rec.stopped_early


@pytest.mark.parametrize("name", SCRIPTS)
def test_stop_after_the_first_call_of_every_sample(
    name: str, capsys: pytest.CaptureFixture
) -> None:
    full = run_recorded(SAMPLES / name, keep="all")
    first = run_recorded(SAMPLES / name, keep=1, stop_after=1)
    assert first.graph(1) == full.graph(1)
    assert first.total_calls == full.total_calls


TRAIN = """
import torch
from graphviz_grad.capture import live_status

w = torch.ones(2, requires_grad=True)
opt = torch.optim.SGD([w], lr=0.1)
for _ in range(3):
    opt.zero_grad()
    loss = (w * 2).sum()
    loss.backward()
    opt.step()
STATUS = live_status()
"""


def test_live_status_counts_backward_calls_and_optimizer_steps(tmp_path: Path) -> None:
    from graphviz_grad.capture import live_status, run_script

    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    run = run_script(script, (), lambda ns: Recorder(keep=-1, namespaces=ns))
    assert run.namespace["STATUS"] == "3 backward calls, optimizer step 3"
    assert live_status() is None, "no run in progress"
    early = run_script(script, (), lambda ns: Recorder(keep=1, namespaces=ns, stop_after=1))
    assert early.namespace["STATUS"] == (
        "3 backward calls, optimizer step 3 (recording done, running on)"
    )


def test_progress_line_shows_the_status_and_stays_off_when_quiet() -> None:
    import io

    from rich.console import Console

    from graphviz_grad.cli import _run

    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(_run._Line("running train.py"))
    assert out.getvalue().strip().endswith("running train.py…")
    with _run.progress("running", delay=0.0, quiet=True):
        pass  # nothing starts: no thread, no output


def test_the_profilers_record_function_ops_pass_straight_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`optimizer.zero_grad()` runs two profiler ops (`record_function`) that take and make no
    tensor: the recorder hands them on without looking (they cost a full op each before)."""
    seen: list[str] = []
    with Recorder() as rec:
        original = rec.watch.op

        def op(info: Any, *rest: object) -> object:  # the op's `_forward.OpInfo`
            seen.append(info.aten)
            return original(info, *rest)

        monkeypatch.setattr(rec.watch, "op", op)
        w = torch.nn.Parameter(torch.ones(3))
        optimizer = torch.optim.SGD([w], lr=0.1)
        (w * 2).sum().backward()
        seen.clear()
        optimizer.zero_grad()
        with torch.autograd.profiler.record_function("mine"):
            loss = (w * 3).sum()
    assert seen == ["aten.mul.Tensor", "aten.sum.default"], seen
    assert (
        op_record(loss.grad_fn) is not None and op_record(loss.grad_fn).aten == "aten.sum.default"
    )
