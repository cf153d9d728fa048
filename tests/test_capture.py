"""Every value and gradient gradviz records equals what PyTorch itself computes."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest
import torch
from helpers.oracle import Oracle, mismatches

import graphviz_grad as gg
from graphviz_grad.capture import Recorder, load_source
from graphviz_grad.capture.script import CaptureOptions, capture_script
from graphviz_grad.model import Graph

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SCRIPTS = sorted(p.name for p in SAMPLES.glob("*.py"))


def run_with_oracle(script: Path) -> tuple[Recorder, Oracle, dict]:
    path, code = load_source(script)
    ns: dict = {"__name__": "__main__", "__file__": str(path)}
    argv = sys.argv
    sys.argv = [str(path)]
    try:
        with Recorder(keep="all", namespaces=[ns]) as rec, Oracle() as oracle:
            exec(code, ns)
    finally:
        sys.argv = argv
    return rec, oracle, ns


@pytest.mark.parametrize("name", [s for s in SCRIPTS if s != "linear_nobackward.py"])
def test_every_call_of_every_sample_matches_autograd(
    name: str, capsys: pytest.CaptureFixture
) -> None:
    rec, oracle, _ = run_with_oracle(SAMPLES / name)
    assert rec.calls, "the sample makes backward calls"
    assert len(oracle.expected) == len(rec.calls)
    for number, expected in enumerate(oracle.expected, start=1):
        graph = rec.graph(number)
        assert mismatches(graph, expected) == [], f"call {number}"


def one_call_against_autograd(tmp_path: Path, *lines: str) -> tuple[Graph, list[str]]:
    """Run a script of `lines` (after `import torch` and a seed) that makes one backward call;
    its graph and where it differs from torch's own values and gradients."""
    script = tmp_path / "script.py"
    script.write_text(
        "\n".join(("import torch", "torch.manual_seed(0)", *lines)) + "\n", encoding="utf-8"
    )
    rec, oracle, _ = run_with_oracle(script)
    [expected] = oracle.expected
    graph = rec.graph(1)
    return graph, mismatches(graph, expected)


def test_a_causal_mask_of_minus_inf_matches_autograd(tmp_path: Path) -> None:
    """Attention scores plus a causal mask of -inf (pytorch/examples' word_language_model): the
    node's value counts the infinities and takes the statistics of the rest, as torch's."""
    graph, wrong = one_call_against_autograd(
        tmp_path,
        "q = torch.randn(2, 5, 8, requires_grad=True)",
        "mask = torch.nn.Transformer.generate_square_subsequent_mask(5)",
        "scores = q @ q.transpose(1, 2) / 8**0.5 + mask",
        "loss = (torch.softmax(scores, dim=-1) @ q).pow(2).mean()",
        "loss.backward()",
    )
    assert any(n.value is not None and n.value.inf for n in graph.nodes)  # the masked scores
    assert wrong == []


def test_a_complex_graph_matches_autograd(tmp_path: Path) -> None:
    """Complex values and gradients (an FFT, a complex parameter) against torch's, node by node:
    the data of small tensors as complex numbers, the statistics of larger ones as of |z|."""
    _, wrong = one_call_against_autograd(
        tmp_path,
        "w = torch.randn(8, dtype=torch.complex64, requires_grad=True)",
        "spec = torch.fft.fft(torch.randn(8) * w.real) * w",
        "big = torch.randn(40, dtype=torch.complex64) * w.sum()",
        "loss = spec.abs().pow(2).mean() + big.abs().sum()",
        "loss.backward()",
    )
    assert wrong == []


def test_numbers_whose_squares_pass_the_float_range_match_autograd(tmp_path: Path) -> None:
    """A diverging float64 model: a small tensor near 1e154 has squares that sum past the float
    range. Its norm is inf, as torch's `vector_norm` gives (gradviz failed with OverflowError)."""
    graph, wrong = one_call_against_autograd(
        tmp_path,
        "w = torch.tensor([1.3e154, -1.3e154, 2.0], dtype=torch.float64, requires_grad=True)",
        "loss = (w * 3.0).sum() + w.abs().max()",
        "loss.backward()",
    )
    assert any(n.value is not None and n.value.norm == float("inf") for n in graph.nodes)
    assert wrong == []


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_op_node_has_a_value(name: str, capsys: pytest.CaptureFixture) -> None:
    rec, _, ns = run_with_oracle(SAMPLES / name)
    graph = rec.graph() if rec.calls else rec.trace(ns["loss"])
    missing = [n for n in graph.nodes if n.value is None]
    assert missing == []


def test_lesson_hand_values() -> None:
    rec, _, _ = run_with_oracle(SAMPLES / "linear.py")
    g = rec.graph()
    by_name = {name: n for n in g.nodes for name in reversed(n.names)}
    assert by_name["loss"].value.data == 4.0
    assert by_name["r"].value.data == -2.0
    assert by_name["y_hat"].value.data == 2.0
    assert by_name["w"].kind == "leaf"
    assert by_name["w"].grad.data == -8.0
    assert by_name["loss"].grad.data == 1.0


def test_trace_without_backward_leaves_grad_untouched() -> None:
    w = torch.tensor(1.0, requires_grad=True)
    y_hat = 2.0 * w
    y_hat.retain_grad()
    loss = (y_hat - 4.0) ** 2
    graph = gg.trace(loss)
    assert w.grad is None and y_hat.grad is None
    assert graph.grad_source == "gradviz"
    leaf = graph.leaves[0]
    assert leaf.names == ("w",)
    assert leaf.grad.data == -8.0


def test_record_api_keeps_last_calls_only() -> None:
    w = torch.tensor([1.0], requires_grad=True)
    with gg.record(keep=-2) as rec:
        for x in (1.0, 2.0, 3.0):
            loss = ((x * w - 2 * x) ** 2).sum()
            loss.backward()
    assert [c.number for c in rec.calls] == [1, 2, 3]
    assert sorted(rec.graphs) == [2, 3]
    with pytest.raises(gg.GradvizError):
        rec.graph(1)


def test_training_loop_ends_with_same_w_as_plain_python() -> None:
    plain: dict = {"__name__": "__main__"}
    path, code = load_source(SAMPLES / "training_loop.py")
    exec(code, plain)
    _, _, recorded = run_with_oracle(SAMPLES / "training_loop.py")
    assert torch.equal(plain["w"], recorded["w"])


def test_leaf_value_is_before_the_update() -> None:
    rec, _, ns = run_with_oracle(SAMPLES / "training_loop.py")
    first, second = rec.calls[0], rec.calls[1]
    assert first.leaves[0].value.data == [1.0]
    assert second.leaves[0].value.data == pytest.approx([1.0 - 0.01 * first.leaves[0].grad.data[0]])


def test_module_parameters_are_named_with_qualified_names() -> None:
    rec, _, _ = run_with_oracle(SAMPLES / "mlp.py")
    names = {name for n in rec.graph().leaves for name in n.names}
    assert "model.0.weight" in names and "model.2.bias" in names


def test_a_buffer_that_requires_grad_is_named_like_a_parameter() -> None:
    """A module may hold a leaf that requires grad as a buffer (a learnable scale kept out of
    `parameters()` on purpose): it is named `model.<buffer>` as its parameters are."""
    model = torch.nn.Linear(3, 1)
    model.register_buffer("scale", torch.ones(1, requires_grad=True))
    with gg.record() as rec:
        loss = (model(torch.ones(2, 3)) * model.scale).sum()
        loss.backward()
    names = {name for n in rec.graph().leaves for name in n.names}
    assert {"model.weight", "model.bias", "model.scale"} <= names


def test_a_buffer_an_op_reads_is_named_as_its_input() -> None:
    """A BatchNorm's running statistics take no gradient but are inputs of its op: drawn as
    `model.0.running_mean`, not as an anonymous input."""
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(3))
    with gg.record() as rec:
        loss = model(torch.randn(4, 3)).sum()
        loss.backward()
    names = {name for u in rec.graph().input_uses() for name in ([u.name] if u.name else [])}
    assert {"model.0.running_mean", "model.0.running_var"} <= names, names


def test_a_batch_norms_running_statistics_are_shown_as_the_op_received_them() -> None:
    """`native_batch_norm` updates `running_mean` and `running_var` in place while training,
    though its schema does not say so: the inputs drawn are the values the op read, not the ones
    it left (they were read after the op)."""
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm1d(3)
    w = torch.ones(3, requires_grad=True)
    seen = []
    with gg.record(keep="all") as rec:
        for _ in range(2):
            seen.append((bn.running_mean.clone(), bn.running_var.clone()))
            bn(torch.randn(8, 3) * w + 5).pow(2).sum().backward()
    assert not torch.equal(seen[0][0], bn.running_mean)  # the op did update them
    for call, (mean, var) in enumerate(seen, start=1):
        inputs = {u.name: u.value for u in rec.graph(call).input_uses() if u.name}
        assert inputs["bn.running_mean"].data == mean.tolist()  # type: ignore[union-attr]
        assert inputs["bn.running_var"].data == var.tolist()  # type: ignore[union-attr]


def graph_of(tmp_path: Path, *lines: str) -> Graph:
    """The graph `gradviz render` draws of a script of `lines` (after `import torch`)."""
    script = tmp_path / "script.py"
    script.write_text("\n".join(("import torch", *lines)) + "\n", encoding="utf-8")
    return capture_script(script, [], CaptureOptions()).graph


def test_items_of_a_parameter_group_list_give_way_to_module_names(tmp_path: Path) -> None:
    """`decay = [p for p in model.parameters() if p.dim() >= 2]` (AdamW's parameter groups)
    does not name the weights `decay[0]` beside `model.weight`; a list of tensors with no module
    behind them still names them."""
    graph = graph_of(
        tmp_path,
        "model = torch.nn.Linear(3, 1)",
        "decay = [p for p in model.parameters() if p.dim() >= 2]",
        "extra = [torch.ones(1, requires_grad=True)]",
        "loss = (model(torch.ones(2, 3)) * extra[0]).sum()",
        "loss.backward()",
    )
    names = sorted(n.names for n in graph.leaves)
    assert names == [("extra[0]",), ("model.bias",), ("model.weight",)], names


@pytest.mark.parametrize(
    "change",
    [
        "model[0] = torch.nn.Linear(2, 2)",  # a new layer: new parameters
        "model[0].weight = torch.nn.Parameter(torch.ones(2, 2))",
        "model[0]._parameters['weight'] = torch.nn.Parameter(torch.ones(2, 2))",  # no hook sees it
        "model.add_module('extra', torch.nn.Linear(2, 2))",
        "model[0].register_buffer('scale', torch.tensor(2.0))",
    ],
)
def test_a_model_changed_between_calls_is_named_as_it_is_at_the_call(
    tmp_path: Path, change: str
) -> None:
    """A model's names are read once and reused while nothing in it changes (a training loop
    names the same model at every call); a layer, parameter or buffer added or replaced in
    between, by any route, is named at the next call."""
    graph = graph_of(
        tmp_path,
        "model = torch.nn.Sequential(torch.nn.Linear(2, 2))",
        "for step in range(3):",
        f"    if step == 2: {change}",
        "    out = model(torch.ones(1, 2))",
        "    if hasattr(model, 'extra'): out = model.extra(out)",
        "    if hasattr(model[0], 'scale'): out = out * model[0].scale",
        "    out.sum().backward()",
    )
    names = {name for n in graph.nodes for name in n.names}
    names |= {u.name for u in graph.input_uses() if u.name}
    assert {"model.0.weight", "model.0.bias"} <= names, names
    if "extra" in change:
        assert {"model.extra.weight", "model.extra.bias"} <= names, names
    if "scale" in change:
        assert "model.0.scale" in names, names


def test_a_models_layout_is_read_again_only_when_it_changed() -> None:
    from graphviz_grad.capture import naming

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    first = naming._layout(model)
    assert naming._layout(model) is first
    assert [name for name, _ in first.tensors] == ["0.weight", "0.bias"]
    model[0].bias = torch.nn.Parameter(torch.zeros(2))
    second = naming._layout(model)
    assert second is not first and second.tensors[1][1] is model[0].bias
    del model[1]
    assert naming._layout(model).layers == ((model[0], "0"),)

    class Own(torch.nn.Module):  # walks its layers its own way: read every time
        def named_parameters(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            return super().named_parameters(*args, **kwargs)

    own = Own()
    assert naming._layout(own) is not naming._layout(own)


def test_a_batch_of_gradients_under_vmap_is_counted_not_drawn(tmp_path: Path) -> None:
    """`autograd.grad(..., is_grads_batched=True)` runs the backward pass under vmap: its hooks
    would see batched tensors (gradviz failed: "Batching rule not implemented for aten::detach").
    The script's own backward calls around it are drawn as ever; alone, it is said plainly."""
    from graphviz_grad.errors import RootError

    batched = (
        "(jac,) = torch.autograd.grad(x @ w, w, grad_outputs=torch.eye(5), is_grads_batched=True)"
    )
    lines = ("w = torch.randn(4, requires_grad=True)", "x = torch.randn(5, 4)", batched)
    graph = graph_of(
        tmp_path, *lines, "(x @ w).pow(2).sum().backward()", "assert jac.shape == (5, 4)"
    )
    assert {name for n in graph.leaves for name in n.names} == {"w"}
    assert any(n.grad is not None for n in graph.leaves)
    with pytest.raises(RootError, match="one call of `torch.autograd.grad"):
        graph_of(tmp_path, *lines)


TRAINER = (
    "class Trainer:",
    "    def __init__(self, model):",
    "        self.model = model",
    "        self.scale = torch.tensor(2.0, requires_grad=True)",
    "    def fit(self):",
    "        loss = (self.model(torch.ones(2, 3)) * self.scale).sum()",
    "        loss.backward()",
)


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        # the model exists only inside the trainer: named from the method's `self`
        (
            "Trainer(torch.nn.Linear(3, 1)).fit()",
            [("self.model.bias",), ("self.model.weight",), ("self.scale",)],
        ),
        # a script variable holds it too: its own name comes first
        (
            "model = torch.nn.Linear(3, 1)\nTrainer(model).fit()",
            [
                ("model.bias", "self.model.bias"),
                ("model.weight", "self.model.weight"),
                ("self.scale",),
            ],
        ),
    ],
    ids=["inside the trainer", "also a script variable"],
)
def test_parameters_held_by_the_scripts_own_objects_are_named(
    made: str, expected: list[tuple[str, ...]], tmp_path: Path
) -> None:
    """A trainer class whose method calls backward (`self.model`, `self.scale`): its leaves
    were nameless; they are named through the script's own object, one level deep."""
    graph = graph_of(tmp_path, *TRAINER, made)
    assert sorted(n.names for n in graph.leaves) == expected


@pytest.mark.parametrize(
    ("made", "expected"),
    [
        ("model = Tied()\nraw_model = model", ("model.wte.weight", "model.head.weight")),
        # a wrapper (DDP, torch.compile) adds the wrapper's name once, as before
        (
            "net = Tied()\nmodel = torch.nn.DataParallel(net)\nraw_model = model",
            ("net.wte.weight", "net.head.weight", "model.wte.weight", "model.head.weight"),
        ),
    ],
    ids=["plain", "wrapped"],
)
def test_a_second_variable_for_the_same_model_adds_no_names(
    made: str, expected: tuple[str, ...], tmp_path: Path
) -> None:
    """nanoGPT's `raw_model = model.module if ddp else model`: one model, two variables. Its
    parameters keep the first name (a tied weight had four: `model.wte.weight`,
    `model.head.weight`, `raw_model.wte.weight`, `raw_model.head.weight`)."""
    graph = graph_of(
        tmp_path,
        "class Tied(torch.nn.Module):",
        "    def __init__(self):",
        "        super().__init__()",
        "        self.wte = torch.nn.Embedding(5, 3)",
        "        self.head = torch.nn.Linear(3, 5, bias=False)",
        "        self.head.weight = self.wte.weight",
        "    def forward(self, idx):",
        "        return self.head(self.wte(idx))",
        made,
        "model(torch.tensor([1, 2])).sum().backward()",
    )
    assert [n.names for n in graph.leaves] == [expected]


def test_the_throwaway_name_names_nothing(tmp_path: Path) -> None:
    """`_, loss = model(x, y)` (a GPT's logits and loss): the logits are not called `_`."""
    graph = graph_of(
        tmp_path,
        "w = torch.ones(3, requires_grad=True)",
        "def model(x):",
        "    out = x * w",
        "    return out, out.sum()",
        "_, loss = model(torch.ones(3))",
        "loss.backward()",
    )
    assert all("_" not in n.names for n in graph.nodes)
    assert graph.nodes[0].names == ("loss",)


def test_tied_weights_list_every_alias() -> None:
    emb = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = emb.weight
    model = torch.nn.Sequential(emb, head)
    with gg.record() as rec:
        loss = model(torch.tensor([1, 2])).sum()
        loss.backward()
    leaf = rec.graph().leaves[0]
    assert {"model.0.weight", "model.1.weight"} <= set(leaf.names)


def test_ops_record_module_and_line() -> None:
    rec, _, _ = run_with_oracle(SAMPLES / "mlp.py")
    addmm = [n for n in rec.graph().nodes if n.op == "AddmmBackward0"]
    assert {n.module for n in addmm} == {"model.0", "model.2"}
    assert all(n.file and n.file.endswith("mlp.py") and n.line for n in addmm)


def test_multi_output_node_shows_every_output() -> None:
    x = torch.arange(4.0, requires_grad=True)
    with gg.record() as rec:
        a, b = x.split(2)
        loss = (a * 2).sum() + (b * 3).sum()
        loss.backward()
    split = next(n for n in rec.graph().nodes if n.op == "SplitBackward0")
    assert len(split.outputs) == 2
    assert split.outputs[0].value.data == [0.0, 1.0]
    assert split.outputs[1].grad.data == [3.0, 3.0]


def test_decomposed_linear_gets_values_everywhere() -> None:
    layer = torch.nn.Linear(3, 2)
    with gg.record() as rec:
        loss = layer(torch.ones(4, 3)).pow(2).sum()
        loss.backward()
    ops = {n.op: n for n in rec.graph().nodes}
    assert "TBackward0" in ops and "AddmmBackward0" in ops
    assert all(n.value is not None for n in rec.graph().nodes)


def test_recorder_restores_autograd_functions_when_the_block_raises() -> None:
    backward, grad = torch.autograd.backward, torch.autograd.grad
    with pytest.raises(ZeroDivisionError), gg.record():
        raise ZeroDivisionError
    assert torch.autograd.backward is backward and torch.autograd.grad is grad


def test_display_path_follows_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphviz_grad.model import display_path

    script = tmp_path / "a" / "s.py"
    script.parent.mkdir()
    monkeypatch.chdir(tmp_path)
    assert display_path(str(script)) == os.path.join("a", "s.py")
    monkeypatch.chdir(script.parent)
    assert display_path(str(script)) == "s.py"
    other = tmp_path / "b"
    other.mkdir()
    monkeypatch.chdir(other)
    assert display_path(str(script)) == str(script)
    assert display_path(str(script), str(tmp_path)) == os.path.join("a", "s.py")


def test_a_backward_call_in_another_thread_says_its_forward_values_are_unknown() -> None:
    """The dispatch mode sees the recording thread's ops only: a loop run in a worker thread
    gets its gradients (checked against torch) and a note instead of made-up values."""
    import threading

    found: dict[str, torch.Tensor] = {}

    def work() -> None:
        w = torch.tensor([1.0, -2.0], requires_grad=True)
        loss = (w * torch.tensor([3.0, 4.0])).pow(2).sum()
        loss.backward()
        found["grad"] = w.grad.clone()

    with gg.record() as rec:
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    graph = rec.graph(-1)
    assert any("another thread than the one the script started in" in n for n in graph.notes)
    [leaf] = graph.leaves
    assert leaf.grad is not None and leaf.grad.data == found["grad"].tolist()
    with gg.record() as rec:
        work()
    assert not any("another thread" in n for n in rec.graph(-1).notes)


def test_layers_called_from_a_method_are_named_from_the_model(tmp_path: Path) -> None:
    """PyTorch's BiLSTM-CRF tutorial calls its layers from `neg_log_likelihood`, not `forward`:
    each layer is then the outermost module running. Its ops are in `model.lstm`, as the
    leaves are named `model.lstm.weight_ih_l0`, not in a module called `LSTM`."""
    script = tmp_path / "tagger.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "class Tagger(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.emb, self.lstm = nn.Embedding(9, 4), nn.LSTM(4, 4)\n"
        "        self.head = nn.Linear(4, 3)\n"
        "    def nll(self, x, y):\n"
        "        h, _ = self.lstm(self.emb(x).unsqueeze(1))\n"
        "        return nn.functional.cross_entropy(self.head(h.squeeze(1)), y)\n"
        "model = Tagger()\n"
        "model.nll(torch.tensor([1, 2, 3]), torch.tensor([0, 1, 2])).backward()\n",
        encoding="utf-8",
    )
    graph = capture_script(script, [], CaptureOptions()).graph
    modules = {n.module for n in graph.nodes if n.kind == "op" and n.module is not None}
    assert modules == {"model.emb", "model.lstm", "model.head"}


def _race(monkeypatch: pytest.MonkeyPatch, a_waits_for_b: bool) -> tuple[Recorder, torch.Tensor]:
    """Thread A's backward call is held up just before its graph is walked; thread B calls
    backward meanwhile. A waits for B's call to be done (`a_waits_for_b`) or for 0.3 s."""
    import threading
    import time

    from graphviz_grad.capture.watch import Watch

    a_started, b_done = threading.Event(), threading.Event()
    note_call = Watch.note_call
    first = threading.get_ident()

    def slow(self: Watch, *args: object) -> None:
        if threading.get_ident() == first:
            a_started.set()
            if a_waits_for_b:
                assert b_done.wait(10)
            else:
                time.sleep(0.3)
        note_call(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Watch, "note_call", slow)
    v = torch.tensor([0.5, -1.0], requires_grad=True)

    def other() -> None:
        assert a_started.wait(10)
        (v.sin() * 3.0).sum().backward()
        b_done.set()

    worker = threading.Thread(target=other)
    with gg.record() as rec:
        worker.start()
        w = torch.tensor([2.0, 1.0], requires_grad=True)
        (w * w).sum().backward()
        worker.join()
    assert rec.graph(1).leaves[0].grad.data == [4.0, 2.0]  # type: ignore[union-attr]
    assert v.grad is not None and v.grad.tolist() == (v.detach().cos() * 3.0).tolist()
    return rec, v


def test_a_backward_call_of_another_thread_waits_its_turn_and_is_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One backward call is recorded at a time (two captures at once crashed gradviz's own code,
    or numbered two calls 1): a call another thread makes meanwhile is recorded after it."""
    rec, v = _race(monkeypatch, a_waits_for_b=False)
    assert [c.number for c in rec.calls] == [1, 2] and rec.overlapped == 0
    assert rec.graph(2).leaves[0].grad.data == v.grad.tolist()  # type: ignore[union-attr]


def test_a_call_that_waits_its_turn_in_vain_runs_unrecorded_and_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from graphviz_grad.capture import recorder

    monkeypatch.setattr(recorder, "TURN_WAIT", 0.2)
    rec, _ = _race(monkeypatch, a_waits_for_b=True)
    assert len(rec.calls) == 1 and rec.overlapped == 1


def test_a_fused_rnn_kernels_workspace_is_shown_by_shape_not_by_its_bytes() -> None:
    """nn.LSTM's kernel saves its workspace for backward, part of it never written: its numbers
    changed from run to run (the same script gave different JSON)."""
    from graphviz_grad.capture._snapshot import WORKSPACES

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(4, 8, batch_first=True)
    with gg.record() as rec:
        out, _ = lstm(torch.randn(2, 5, 4))
        out.pow(2).mean().backward()
    found = [(n.op, s) for n in rec.graph().nodes for s in n.saved if (n.op, s.name) in WORKSPACES]
    if not found:
        pytest.skip("this build's LSTM runs no fused kernel with a workspace")
    for _, saved in found:
        assert saved.summary is None and saved.text is not None
        assert saved.text.startswith("workspace uint8[") and "(no values)" in saved.text


def test_a_failed_backward_shows_no_partial_gradient_on_a_leaf() -> None:
    """Anomaly mode stops the call at SqrtBackward0: `w`'s AccumulateGrad never runs and `w.grad`
    stays None, though one of its three consumers passed a gradient on before the error. The
    leaf shows no gradient, not the part that arrived."""
    w = torch.nn.Parameter(torch.tensor([1.0, 0.0, 2.0]))
    with gg.record() as rec, torch.autograd.set_detect_anomaly(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = torch.sqrt(w * w - w * w)
        loss = (r * 0.0 + w).sum()
        with pytest.raises(RuntimeError, match="SqrtBackward0"):
            loss.backward()
    assert w.grad is None
    (leaf,) = rec.graph().leaves
    assert leaf.names == ("w",) and leaf.grad is None


def test_autograd_grad_of_one_leaf_shows_no_gradient_on_the_others() -> None:
    """`autograd.grad(loss, [x])` gives `x` its gradient (as torch computes it) and no other
    leaf any: `w`'s `exp` did not even run, so a part that reached it is not a gradient."""
    x = torch.tensor(2.0, requires_grad=True)
    w = torch.tensor(3.0, requires_grad=True)
    v = torch.tensor(5.0, requires_grad=True)
    with gg.record() as rec:
        loss = x * w + w.exp() + x * v
        (expected,) = torch.autograd.grad(loss, [x])
    by_name = {n.names[0]: n for n in rec.graph().leaves}
    assert by_name["x"].grad is not None and by_name["x"].grad.data == expected.item() == 8.0
    assert by_name["w"].grad is None and by_name["v"].grad is None


def test_a_temporary_input_freed_before_the_build_says_its_value_was_not_kept() -> None:
    """`torch.zeros(6, 4).scatter_add(0, idx, m)`: the zeros are a large input that needs no
    gradient, read when the graph is built (most calls of a loop are never shown), and gone by
    then. The summary says so instead of showing "0 NaN" over no numbers; a named input that
    lives on is read."""
    m = torch.randn(8, 4, requires_grad=True)
    idx = torch.tensor([1, 2, 3, 4, 5, 0, 3, 5]).unsqueeze(1).expand(-1, 4)
    kept = torch.ones(6, 4)
    with gg.record() as rec:
        b = torch.zeros(6, 4).scatter_add(0, idx, m) * kept
        b.sum().backward()
    by_op = {n.op: dict(n.constants) for n in rec.graph().nodes if n.kind == "op"}
    zeros, gone = by_op["ScatterAddBackward0"][0], "not kept: a temporary input (freed before"
    assert zeros.note is not None and zeros.note.startswith(gone)
    assert zeros.min is None and zeros.shape == (6, 4)
    named = by_op["MulBackward0"][1]
    assert named.mean == 1.0 and named.note is None


def test_a_pinned_name_keeps_its_call_and_builds_no_graph_before_it_is_asked() -> None:
    """`Recorder(pin="loss_a")` (what `--target loss_a` asks): the last call whose root the code
    holds as `loss_a` stays, with the gradient the code got, among a loop's later calls that
    `keep=-1` drops; and no call's graph is built while the loop runs (`--target loss` on a
    long loop pins every call)."""
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    built_during: list[int] = []
    with gg.capture.Recorder(keep=-1, pin="loss_a") as rec:
        loss_a = (w**2).sum()
        loss_a.backward()
        for _ in range(20):
            loss_b = (w * 3.0).sum()
            loss_b.backward()
            built_during.append(len(rec.graphs))
    assert built_during == [0] * 20
    first = rec.graph(1)
    assert first.nodes[0].names == ("loss_a",)
    (leaf,) = first.leaves
    assert leaf.grad is not None and leaf.grad.data == [2.0, 4.0]
    assert rec.graph(-1).nodes[0].names == ("loss_b",)
    with pytest.raises(gg.errors.CallError):
        rec.graph(2)  # neither pinned nor among the last
