"""Values summarised late (`capture._deferred`) are the values summarised at once, bit for bit:
the graph of the last call built when no later call came equals the graph built at the call, and
in-place writes after an op (the optimizer's update, `add_`, `out=`) do not leak into it."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.recording import run_recorded
from helpers.tensors import mixed_floats

from graphviz_grad.capture import Recorder
from graphviz_grad.capture._deferred import Deferred
from graphviz_grad.capture.summary import summarize, summarize_many

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SCRIPTS = sorted(p.name for p in SAMPLES.glob("*.py") if p.name != "linear_nobackward.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_last_graph_built_late_equals_the_graph_built_at_its_call(script: str) -> None:
    late = run_recorded(SAMPLES / script, keep=-1)
    now = run_recorded(SAMPLES / script, keep="all")
    assert late.calls == now.calls, "light per-call records equal those of built graphs"
    if now.calls:
        assert late.graph(-1) == now.graph(-1)


def _mlp_steps(steps: int, *, write_after: bool = False) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x = torch.randn(16, 8)
    for _ in range(steps):
        opt.zero_grad()
        h = model(x)
        loss = (h**2).mean()
        loss.backward()
        opt.step()  # writes every parameter in place after the call
        if write_after:
            h.data.mul_(3.0)  # and an op output, through `.data`
            torch.add(h.detach(), 1.0, out=h.data)


@pytest.mark.parametrize("write_after", [False, True])
def test_in_place_writes_after_the_call_do_not_change_the_values_shown(write_after: bool) -> None:
    with Recorder(keep=-1) as late:
        _mlp_steps(3, write_after=write_after)
    with Recorder(keep="all") as now:
        _mlp_steps(3, write_after=write_after)
    assert late.graph(-1) == now.graph(3)


def test_the_guard_is_what_keeps_those_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the write guard the same run shows the values after the writes: the test above
    does exercise it."""
    with Recorder(keep="all") as now:
        _mlp_steps(3, write_after=True)
    monkeypatch.setattr(Deferred, "written", lambda self, tensors: None)
    with Recorder(keep=-1) as late:
        _mlp_steps(3, write_after=True)
    assert late.graph(-1) != now.graph(3)


def test_a_write_to_an_op_output_before_backward_is_not_seen_either() -> None:
    def run() -> None:
        w = torch.randn(40, requires_grad=True)
        y = w * 2
        z = y.sum()
        y.data.add_(100.0)  # the value drawn is the one `z` was computed from
        z.backward()

    with Recorder(keep=-1) as late:
        torch.manual_seed(1)
        run()
    with Recorder(keep="all") as now:
        torch.manual_seed(1)
        run()
    assert late.graph(-1) == now.graph(-1)
    mul = next(n for n in late.graph(-1).nodes if n.op == "MulBackward0")
    assert mul.value is not None and mul.value.max is not None and mul.value.max < 50


def test_large_gradients_are_summarised_late_to_the_same_values() -> None:
    def run() -> None:
        torch.manual_seed(2)
        w = torch.randn(64, 64, requires_grad=True)
        for _ in range(3):
            loss = (w @ w).tanh().sum()
            loss.backward()
            with torch.no_grad():
                w -= 0.01 * w.grad
                w.grad.zero_()

    with Recorder(keep=-1) as late:
        run()
    with Recorder(keep="all") as now:
        run()
    assert late.graph(-1) == now.graph(3)
    assert late.calls == now.calls


def test_summarize_many_equals_summarize_bit_for_bit() -> None:
    torch.manual_seed(0)
    tensors = [
        torch.randn(100, 37) * 3,
        torch.randn(50, dtype=torch.float64),
        torch.randn(3, 300)[:, ::2],
        torch.tensor([1.0] * 20 + [float("nan")]),
        torch.tensor([1.0] * 20 + [float("inf")]),
        torch.randn(20).half(),
        torch.arange(30),
        torch.nn.Parameter(torch.randn(17)),
        torch.randn(4),
        None,
    ]
    assert summarize_many(tensors) == [None if t is None else summarize(t) for t in tensors]


@pytest.mark.usefixtures("aten_stats")
def test_tensors_read_together_are_summarised_as_one_at_a_time_bit_for_bit() -> None:
    """`read_together` is for tensors off the CPU, which `summarize` reads with the same ATen
    reductions there (`aten_stats`)."""
    from graphviz_grad.capture.summary import read_together

    tensors = mixed_floats()
    # compared as text: a NaN in the data equals no other NaN object
    assert repr(read_together(tensors)) == repr([summarize(t) for t in tensors])
    assert read_together([]) == []


def test_the_index_holds_its_holders_weakly() -> None:
    class Holder:
        def __init__(self, t: torch.Tensor) -> None:
            self.t: object = t

        def raw(self, tag: object) -> torch.Tensor | None:
            return self.t if isinstance(self.t, torch.Tensor) else None

        def put(self, tag: object, value: object) -> None:
            self.t = value

    index = Deferred()
    t = torch.randn(100)
    holder = Holder(t)
    index.hold(holder, 0, t)
    ref = weakref.ref(holder)
    index.written([t[10:20]])  # a write to the same storage: summarised before it
    assert holder.t == summarize(t)
    index.hold(holder, 1, torch.randn(100))
    del holder
    gc.collect()
    assert ref() is None
    index.settle_all()  # a dead holder is skipped


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_recording_a_forward_pass_on_cuda_never_waits_for_the_device() -> None:
    """No op of the forward pass makes gradviz read a value back (a host sync); the values are
    read once, in a batch, when the graph is built."""

    def forward(device: str) -> torch.Tensor:
        torch.manual_seed(0)
        w = torch.randn(64, 64, device=device, requires_grad=True)
        b = torch.randn(4, device=device, requires_grad=True)
        h = (torch.randn(8, 64, device=device) @ w).relu()
        # a constant made on the device (`torch.tensor(2.0, device=...)` waits for it itself)
        two = torch.full((), 2.0, device=device)
        return (h[:, :4] * b * two + 0.5).sum()

    def recorded(keep: int | str, strict: bool) -> Recorder:
        with Recorder(keep=keep) as rec:
            torch.cuda.set_sync_debug_mode("error" if strict else "default")
            try:
                loss = forward("cuda")
            finally:
                torch.cuda.set_sync_debug_mode("default")
            loss.backward()
        return rec

    # the same lines, names and values as when everything is summarised at once
    assert recorded(-1, strict=True).graph(-1) == recorded("all", strict=False).graph(1)


def test_values_over_the_memory_budget_are_summarised_early_to_the_same_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import graphviz_grad.capture._deferred as deferred

    with Recorder(keep="all") as now:
        _mlp_steps(3, write_after=True)
    monkeypatch.setattr(deferred, "BUDGET", 4096)  # a few tensors at most
    with Recorder(keep=-1) as late:
        _mlp_steps(3, write_after=True)
        assert late._mode.deferred.bytes <= 4096
    assert late.graph(-1) == now.graph(3)


def test_a_view_of_a_leaf_is_read_again_after_a_write_through_data() -> None:
    """`w.t()` of the same `w` is copied once per version; a write through `.data` (which does
    not bump `w`'s version) still makes the next `w.t()` a new copy."""
    torch.manual_seed(3)
    w = torch.randn(20, 20, requires_grad=True)
    x = torch.randn(20, 3)
    before = summarize(w.detach().t())
    with Recorder(keep=-1) as rec:
        a = w.t() @ x
        w.data.mul_(2.0)
        b = w.t() @ x
        (a + b).sum().backward()
    views = [n.value for n in rec.graph(-1).nodes if n.op == "TBackward0"]
    assert sorted(v.max for v in views) == sorted([before.max, 2 * before.max])  # type: ignore[union-attr]


@pytest.mark.parametrize("budget", [None, 4096])
def test_a_view_of_a_leaf_is_read_once_until_its_own_storage_is_written(
    budget: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the budget (a copy) and over it (a summary), `w.t()` of an unrolled loop is read
    once while only other tensors are written in place (an LSTM cell's `sigmoid_` on its gates
    at every step); a write to `w` (through `.data`: no new version) makes the next one new."""
    import graphviz_grad.capture._deferred as deferred
    import graphviz_grad.capture._forward as forward

    if budget is not None:
        monkeypatch.setattr(deferred, "BUDGET", budget)
    reads: list[tuple[int, ...]] = []
    original = forward.summarize_small

    def counted(t: torch.Tensor) -> Any:
        reads.append(tuple(t.shape))
        return original(t)

    monkeypatch.setattr(forward, "summarize_small", counted)
    torch.manual_seed(3)
    w = torch.randn(20, 20, requires_grad=True)
    w0 = w.detach().clone()
    h = torch.randn(4, 20)
    with Recorder(keep=-1) as rec:
        if budget is not None:  # a first call over the budget: the next one reads values at once
            (torch.randn(40, 40, requires_grad=True) * 2).sum().backward()
        for _ in range(5):
            h = (h @ w.t()).sigmoid_()  # the gates written in place at every step
        w.data.mul_(2.0)
        h = h @ w.t()
        w.data.add_(1.0)
        h = h @ w.t()
        h.sum().backward()
    views = [n.value for n in rec.graph(-1).nodes if n.op == "TBackward0"]
    expected = [summarize(w0.t())] * 5 + [summarize((2 * w0).t()), summarize((2 * w0 + 1).t())]
    assert sorted(v.max for v in views) == sorted(e.max for e in expected)  # type: ignore[union-attr]
    if budget is not None:
        assert rec._mode.deferred.eager
        assert reads.count((20, 20)) == 3, reads  # once per value of w


# -- the accelerator's path, taken on the CPU (`summary.CPU_AS_DEVICE`) --------------------------


@pytest.fixture
def aten_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    """The C++ extension off: on a device, the statistics are ATen's reductions, which these
    tests take on the CPU and compare with what `summarize` reads there; with the extension on,
    `summarize` may read a CPU tensor in one C++ pass (`native.fused`), which adds in another
    order."""
    from graphviz_grad.capture import native

    monkeypatch.setattr(native, "_loaded", [None])


@pytest.mark.usefixtures("aten_stats")
def test_summaries_worked_out_on_the_device_are_read_as_summarize_reads_them() -> None:
    """`reduce_on_device` reads nothing; what `summarize_many` reads back later is `summarize`'s
    summary, bit for bit for finite tensors. With a NaN or an Inf among many numbers, the
    counts, min and max are the same, and the mean and norm agree to float64 rounding."""
    from graphviz_grad.capture.summary import OnDevice, reduce_on_device

    tensors = mixed_floats()
    reduced = [reduce_on_device(t) for t in tensors]
    assert all(isinstance(r, OnDevice) for r in reduced)
    got = summarize_many(reduced)
    for t, g in zip(tensors, got):
        want = summarize(t)
        assert g is not None
        if t.numel() <= 16 or bool(t.isfinite().all()):
            assert repr(g) == repr(want)
        else:
            assert (g.nan, g.inf, g.min, g.max, g.numel) == (
                want.nan,
                want.inf,
                want.min,
                want.max,
                want.numel,
            )
            assert g.mean == pytest.approx(want.mean, rel=1e-12)
            assert g.norm == pytest.approx(want.norm, rel=1e-12)
    before = torch.randn(4, dtype=torch.float64)
    written = before.clone()
    reduced_before = reduce_on_device(written)
    written.mul_(2.0)  # a write right after: what was worked out is the value before it
    assert summarize_many([reduced_before, None])[0] == summarize(before)
    everything_odd = torch.full((40,), float("nan"))
    (only_nan,) = summarize_many([reduce_on_device(everything_odd), None])[:1]
    assert repr(only_nan) == repr(summarize(everything_odd))


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read of a value that gradviz asks for from now on, by where it asks: a summary of
    one value, or a batch that holds one not summarised yet (on an accelerator, each waits for
    the device)."""
    import graphviz_grad.capture._deferred as deferred
    import graphviz_grad.capture._forward as forward
    import graphviz_grad.capture._snapshot as snapshot
    import graphviz_grad.capture.summary as summary

    reads: list[str] = []

    def counted(module: Any, name: str) -> None:
        original = getattr(module, name)

        def counting(values: Any, *args: Any) -> Any:
            if not isinstance(values, list) or any(summary.unread(v) for v in values):
                reads.append(f"{module.__name__}.{name}")
            return original(values, *args)

        monkeypatch.setattr(module, name, counting)

    for module in (forward, snapshot):
        for name in ("summarize", "summarize_small", "summarize_unread"):
            counted(module, name)
    counted(snapshot, "summarize_many")
    counted(deferred, "summarize_many")
    return reads


@pytest.mark.usefixtures("aten_stats")
def test_a_recording_over_its_memory_budget_reads_no_value_during_the_forward_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over the budget, on an accelerator, a value is worked out on the device when it cannot be
    held, never read at that op (each read waits for the device): nothing is summarised during
    a forward pass, and the graph shown is the graph of the usual path."""
    import graphviz_grad.capture._deferred as deferred
    import graphviz_grad.capture.summary as summary

    with Recorder(keep=-1) as usual:
        _mlp_steps(3, write_after=True)
    monkeypatch.setattr(summary, "CPU_AS_DEVICE", True)
    # one op output of the model below is 8 kB: the second is over the budget, and the first
    # is settled then (before, it is held; after, nothing is)
    monkeypatch.setattr(deferred, "BUDGET", 12_000)
    reads = _count_reads(monkeypatch)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    x = torch.randn(64, 8)  # a constant over 16 numbers: worked out on the device over budget
    with Recorder(keep=-1) as rec:
        for _ in range(2):
            loss = (model(x) ** 2).mean()
            assert reads == []
            loss.backward()
            reads.clear()  # a backward call reads, twice (see the test below)
    assert rec._mode.deferred.eager
    with Recorder(keep=-1) as late:
        _mlp_steps(3, write_after=True)
    assert late.graph(-1) == usual.graph(-1)


@pytest.mark.usefixtures("aten_stats")
@pytest.mark.parametrize("name", ["mlp.py", "transformer.py", "quadratic.py"])
def test_the_accelerators_path_over_its_budget_gives_torchs_values_and_gradients(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The samples' every call against torch, on the accelerator's path and over a small
    budget: values worked out at each op and read with the graph are still torch's."""
    from helpers.oracle import Oracle, mismatches

    import graphviz_grad.capture._deferred as deferred
    import graphviz_grad.capture.summary as summary
    from graphviz_grad.capture import load_source

    monkeypatch.setattr(summary, "CPU_AS_DEVICE", True)
    monkeypatch.setattr(deferred, "BUDGET", 4096)
    path, code = load_source(Path(__file__).resolve().parent.parent / "samples" / name)
    ns: dict[str, Any] = {"__name__": "__main__", "__file__": str(path)}
    monkeypatch.setattr("sys.argv", [str(path)])
    with Recorder(keep="all", namespaces=[ns]) as rec, Oracle() as oracle:
        exec(code, ns)
    assert rec.calls and len(oracle.expected) == len(rec.calls)
    for number, expected in enumerate(oracle.expected, start=1):
        assert mismatches(rec.graph(number), expected) == [], f"call {number}"


@pytest.mark.usefixtures("aten_stats")
def test_the_gradients_of_leaves_that_did_not_run_are_read_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`torch.autograd.grad(loss, params)` runs no leaf's accumulator: each leaf's gradient is
    the sum of what reached it, summarised with the others in one batch (one read of an
    accelerator per call, not one per leaf), and equal to torch's."""
    from helpers.oracle import Oracle, close, mismatches

    import graphviz_grad.capture._snapshot as snapshot

    alone: list[Any] = []
    original = snapshot.summarize
    monkeypatch.setattr(snapshot, "summarize", lambda t: alone.append(t) or original(t))
    torch.manual_seed(0)
    ws = [torch.randn(20 + k, requires_grad=True) for k in range(3)]  # told apart by shape
    with Recorder(keep=-1) as rec, Oracle() as oracle:
        for _ in range(2):
            loss = sum(((w * (k + 1)) ** 2).sum() + w.sum() for k, w in enumerate(ws))
            grads = torch.autograd.grad(loss, ws)
    assert alone == []
    graph = rec.graph(-1)
    assert mismatches(graph, oracle.expected[-1]) == []
    by_shape = {tuple(w.shape): g for w, g in zip(ws, grads)}
    assert len(graph.leaves) == 3
    for leaf in graph.leaves:
        assert close(leaf.grad, by_shape[leaf.shape])
    assert all(step.grad is not None for step in rec.calls[-1].leaves)


@pytest.mark.usefixtures("aten_stats")
@pytest.mark.parametrize("budget", [None, 4096])
def test_on_the_accelerators_path_a_backward_call_reads_the_device_twice(
    budget: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the GPU run measured (41 reads in 20 calls), counted on the CPU's copy of the
    accelerator's path, under the memory budget and over it: the leaves before a call, its
    gradients and loss after it, nothing per op; the graph is the usual path's."""
    import graphviz_grad.capture._deferred as deferred
    import graphviz_grad.capture.summary as summary

    def loop() -> Recorder:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.randn(128, 32), torch.randn(128, 1)
        with Recorder(keep=-1) as rec:
            for _ in range(20):
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
        return rec

    usual = loop()
    monkeypatch.setattr(summary, "CPU_AS_DEVICE", True)
    if budget is not None:
        monkeypatch.setattr(deferred, "BUDGET", budget)
    reads = _count_reads(monkeypatch)
    rec = loop()
    assert len(reads) <= 2 * 20 + 1, reads  # and once to build the graph shown
    assert rec.graph(-1) == usual.graph(-1)


@pytest.mark.parametrize("budget", [None, 4096])
def test_a_large_constant_is_shown_as_the_op_read_it(
    budget: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data of `x + w` (over 16 numbers) is summarised as the op read it, under the memory
    budget and over it: read with the graph, or before an in-place write to it (the script
    reuses its batch buffer before calling backward)."""
    import graphviz_grad.capture._deferred as deferred

    if budget is not None:
        monkeypatch.setattr(deferred, "BUDGET", budget)
    torch.manual_seed(1)
    w = torch.randn(5, requires_grad=True)
    x = torch.randn(40, 5)
    x[3, 2] = float("nan")
    first = summarize(x)
    with Recorder(keep=-1) as rec:
        if budget is not None:  # a first call over the budget: the next one reads at once
            (torch.randn(40, 40, requires_grad=True) * 2).sum().backward()
        h = x + w
        x.mul_(10.0).nan_to_num_(0.0)  # the buffer filled with the next batch
        loss = (h.nan_to_num(0.0) + (x + w)).sum()
        loss.backward()
    constants = [s for n in rec.graph(-1).nodes for _, s in n.constants if s.numel == 200]
    assert constants == [first, summarize(x)]
    assert constants[0].nan == 1 and constants[0].min is not None


def test_a_large_constant_changed_where_the_recorder_cannot_see_shows_its_shape() -> None:
    """A write to a view of the data bumps the version the op read: the value is no longer the
    one the op read, so only its shape and dtype are shown (never the later values); a
    constant freed before its graph is built shows its shape too."""
    w = torch.randn(5, requires_grad=True)
    x = torch.randn(40, 5)
    with Recorder(keep=-1) as rec:
        h = x + w
        x[0].zero_()  # through a view: another tensor object, the same version counter
        (h.sum() + (torch.randn(30, 5) + w).sum()).backward()
    constants = {s.numel: s for n in rec.graph(-1).nodes for _, s in n.constants}
    assert constants[200].shape == (40, 5) and constants[200].dtype == "float32"
    assert constants[200].mean is None and constants[200].nan == 0
    assert constants[150].mean is None  # the `torch.randn(30, 5)` was freed at once


def test_an_inference_tensor_as_data_is_read_too() -> None:
    """A batch made under `torch.inference_mode` has no version counter (reading it raises);
    it cannot be written outside that mode, so it is read as it is."""
    with torch.inference_mode():
        x = torch.randn(40, 5)
    w = torch.randn(5, requires_grad=True)
    with Recorder(keep=-1) as rec:
        (x + w).sum().backward()
    (s,) = [s for n in rec.graph(-1).nodes for _, s in n.constants]
    assert s == summarize(x)


def test_the_large_constants_watched_for_writes_stay_bounded_without_backward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A forward pass never followed by a backward call (an evaluation loop that forgot
    `no_grad`) watches at most two rounds of `LATE_LIMIT` tensors."""
    import graphviz_grad.capture._deferred as deferred

    monkeypatch.setattr(deferred, "LATE_LIMIT", 8)
    w = torch.randn(5, requires_grad=True)
    batches = [torch.randn(20, 5) for _ in range(50)]
    with Recorder(keep=-1) as rec:
        for x in batches:
            _ = x + w
        index = rec._mode.deferred
        assert len(index._late) <= 9 and len(index._late_before) <= 9
