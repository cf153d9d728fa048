"""On a CUDA GPU (every test here is skipped without one): a training loop reads the device a
few times per backward call and never per op; mixed precision, torch.compile's own kernels and
the command line give torch's values and gradients there too."""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers.oracle import Oracle, close, mismatches
from torch import nn
from training_run import GRADVIZ, run

from graphviz_grad.capture import Recorder

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@contextlib.contextmanager
def counting_syncs() -> Iterator[list[str]]:
    """Every host-device synchronisation inside the block (torch's sync debug mode), by where
    it happened."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "called a synchronizing" in str(w.message)]
    found.extend(f"{Path(w.filename).name}:{w.lineno}" for w in syncs)


def test_device_tensors_read_together_are_summarised_as_one_at_a_time() -> None:
    from helpers.tensors import mixed_floats

    from graphviz_grad.capture.summary import summarize, summarize_many

    tensors = [t.cuda() for t in [*mixed_floats(), torch.arange(5), torch.tensor([True, False])]]
    found = summarize_many(tensors)
    # bit for bit, compared as text (a NaN equals no other NaN); both read on the GPU, whose
    # float64 sums may differ from the CPU's in the last bits
    assert repr(found) == repr([summarize(t) for t in tensors])
    for got, t in zip(found, tensors):  # a few numbers are read in full: the CPU's exactly
        if t.numel() <= 16:
            assert got is not None and repr(got.data) == repr(summarize(t.cpu()).data)
    finite = [t.cuda() for t in mixed_floats() if bool(t.float().isfinite().all())]
    with counting_syncs() as syncs:
        summarize_many(finite)
    assert len(syncs) == 1, syncs  # one copy to the host for all of them


def _mlp() -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)
    ).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(128, 32, device="cuda"), torch.randn(128, 1, device="cuda")
    return model, optimizer, x, y


def _steps(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, n: int
) -> torch.Tensor:
    loss = torch.zeros((), device="cuda")
    for _ in range(n):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    return loss


def test_a_training_loop_reads_the_device_a_few_times_a_call_never_per_op() -> None:
    model, optimizer, x, y = _mlp()
    _steps(model, optimizer, x, y, 2)  # torch's own first-use syncs happen outside the count
    with counting_syncs() as plain:
        _steps(model, optimizer, x, y, 20)
    torch.cuda.synchronize()
    with counting_syncs() as recorded, Recorder(keep=-1) as rec:
        _steps(model, optimizer, x, y, 20)
    print(f"syncs: plain {len(plain)}, recorded {len(recorded)} in 20 calls; {recorded[:12]}")
    assert len(rec.calls) == 20
    extra = len(recorded) - len(plain)
    assert extra <= 4 * 20, recorded  # a batch of summaries per call, not one per op (~20 a step)


def test_over_the_memory_budget_a_forward_pass_still_never_waits_for_the_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model whose values do not fit the budget (`capture._deferred`) has them worked out on
    the device at each op and read with the graph, never at the op; the graph is the same."""
    import graphviz_grad.capture._deferred as deferred

    def loop(strict: bool) -> Recorder:
        model, optimizer, x, y = _mlp()
        with Recorder(keep=-1) as rec:
            for _ in range(3):
                optimizer.zero_grad()
                torch.cuda.set_sync_debug_mode("error" if strict else "default")
                try:
                    loss = nn.functional.mse_loss(model(x), y)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
                loss.backward()
                optimizer.step()
        return rec

    usual = loop(strict=False)
    monkeypatch.setattr(deferred, "BUDGET", 40_000)  # one op output of the MLP is 32 kB
    over = loop(strict=True)
    assert over._mode.deferred.eager
    assert over.graph(-1) == usual.graph(-1)


def test_the_last_call_of_a_loop_is_torchs_on_cuda() -> None:
    model, optimizer, x, y = _mlp()
    with Recorder(keep=-1) as rec, Oracle() as oracle:
        _steps(model, optimizer, x, y, 5)
    assert mismatches(rec.graph(-1), oracle.expected[-1]) == []


def test_autocast_float16_and_grad_scaler_match_torch() -> None:
    model, optimizer, x, y = _mlp()
    scaler = torch.amp.GradScaler("cuda", init_scale=256.0)
    with Recorder(keep=-1, namespaces=[{"model": model}]) as rec, Oracle() as oracle:
        for _ in range(3):
            optimizer.zero_grad()
            with torch.autocast("cuda", dtype=torch.float16):
                loss = nn.functional.mse_loss(model(x).float(), y)
            scaler.scale(loss).backward()
            scale = float(scaler.get_scale())
            scaler.step(optimizer)
            scaler.update()
    graph = rec.graph(-1)
    assert mismatches(graph, oracle.expected[-1]) == []
    assert graph.grad_scale == scale
    addmm = graph.find("AddmmBackward0")
    assert addmm is not None and addmm.dtype == "float16"
    for leaf in graph.leaves:
        name = leaf.names[0].removeprefix("model.")
        # what flowed is scaled; `scaler.step` unscaled `.grad` in place since
        assert close(leaf.grad, dict(model.named_parameters())[name].grad * scale)


def test_inductor_compiled_model_values_and_gradients_are_torchs() -> None:
    dynamo = pytest.importorskip("torch._dynamo")

    def once(recorded: bool) -> tuple[Recorder | None, dict[str, torch.Tensor]]:
        dynamo.reset()
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 1)).cuda()
        compiled = torch.compile(model)
        x = torch.randn(64, 16, device="cuda")
        rec = Recorder(namespaces=[{"model": model}]) if recorded else None
        with rec if rec is not None else contextlib.nullcontext():
            loss = compiled(x).pow(2).mean()
            loss.backward()
        seen = {"loss": loss.detach()}
        seen.update({n: p.grad.detach().clone() for n, p in model.named_parameters()})
        return rec, seen

    _, plain = once(False)
    rec, recorded = once(True)
    assert rec is not None
    for name, value in plain.items():
        assert torch.equal(value, recorded[name]), name
    graph = rec.graph(-1)
    root = graph.nodes[graph.root]
    assert close(root.value, plain["loss"])
    for leaf in graph.leaves:
        assert close(leaf.grad, plain[leaf.names[0].removeprefix("model.")])


SCRIPT = """\
import torch
from torch import nn

torch.manual_seed(0)
device = "cuda"
model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
x, y = torch.randn(64, 8, device=device), torch.randn(64, 1, device=device)
for step in range(30):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
print("loss", round(loss.item(), 4))
"""


def test_the_commands_on_a_cuda_script(tmp_path: Path) -> None:
    script = tmp_path / "train_cuda.py"
    script.write_text(SCRIPT)
    out = tmp_path / "g.json"
    rendered = run([*GRADVIZ, "render", str(script), "--format", "json", "-o", str(out)])
    assert rendered.returncode == 0, rendered.stderr
    data = json.loads(out.read_text())
    assert data["call"] == 30 and len(data["nodes"]) > 5
    plain = run([sys.executable, str(script)])
    assert plain.stdout.strip() in rendered.stdout  # the script's own output, unchanged
    doctor = run([*GRADVIZ, "doctor", str(script)])
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    steps = run([*GRADVIZ, "steps", str(script)])
    assert steps.returncode == 0, steps.stderr
    assert "30" in steps.stdout
