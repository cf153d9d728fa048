"""gradviz's own node hooks (`capture._snapshot.plain_hook_dicts`) live beside the user's.

gradviz registers its per-node hooks through a swapped `_HookMixin._register_hook` (plain dicts,
no `RemovableHandle`) only while it hooks a graph; these tests hold that the user's own node hooks
still get PyTorch's handles, fire as often as without gradviz, can be removed, and that gradviz's
hooks are gone once a call returns (a retained graph run again fires none of them).
"""

from __future__ import annotations

import torch
from torch.autograd.function import _HookMixin
from torch.utils.hooks import RemovableHandle

from graphviz_grad.capture.recorder import record

ORIGINAL = _HookMixin.__dict__["_register_hook"]


def _script(counts: dict[str, int], handles: list[object]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two backward calls over one retained graph, with the user's node hooks on it."""
    w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    h = (w * 3.0).tanh()
    loss = (h * h).sum()

    def pre(grad_outputs: tuple[torch.Tensor, ...]) -> None:
        counts["pre"] = counts.get("pre", 0) + 1

    def post(grad_inputs: tuple[torch.Tensor, ...], grad_outputs: tuple[torch.Tensor, ...]) -> None:
        counts["post"] = counts.get("post", 0) + 1

    handles.append(h.grad_fn.register_prehook(pre))
    handles.append(h.grad_fn.register_hook(post))
    loss.backward(retain_graph=True)
    # registered between the calls, on a node gradviz hooked in the first one
    handles.append(loss.grad_fn.register_prehook(pre))
    loss.backward(retain_graph=True)
    return w, loss


def test_users_node_hooks_fire_as_without_gradviz_and_keep_their_handles() -> None:
    plain_counts: dict[str, int] = {}
    _script(plain_counts, [])
    counts: dict[str, int] = {}
    handles: list[object] = []
    with record() as rec:
        w, loss = _script(counts, handles)
    assert counts == plain_counts == {"pre": 3, "post": 2}
    assert all(isinstance(h, RemovableHandle) for h in handles)
    assert _HookMixin.__dict__["_register_hook"] is ORIGINAL
    for h in handles:
        h.remove()  # type: ignore[attr-defined]
    counts.clear()
    loss.backward(retain_graph=True)
    assert counts == {}
    assert len(rec.calls) == 2


def test_gradviz_hooks_are_gone_after_each_call() -> None:
    with record() as rec:
        w = torch.tensor([0.5, 1.5], requires_grad=True)
        loss = ((w * 2.0).sin() * w).sum()
        loss.backward(retain_graph=True)
    first = rec.graph(1)
    # outside the recording, the retained graph runs again: none of gradviz's hooks fire
    w.grad = None
    loss.backward(retain_graph=True)
    (expected,) = torch.autograd.grad(loss, w)
    assert torch.equal(w.grad, expected)
    assert rec.graph(1) is first
    assert [n.order for n in first.nodes] == [n.order for n in rec.graph(1).nodes]


def test_retained_graph_recorded_twice_gives_torchs_gradients_each_time() -> None:
    with record() as rec:
        w = torch.tensor([0.25, -1.0, 2.0], requires_grad=True)
        h = (w * w).exp()
        loss = (h * 0.5).sum()
        loss.backward(retain_graph=True)
        loss.backward(retain_graph=True)
    (dw,) = torch.autograd.grad(loss, w, retain_graph=True)
    (dh,) = torch.autograd.grad(loss, h)
    for number in (1, 2):
        graph = rec.graph(number)
        exp = next(n for n in graph.nodes if n.op == "ExpBackward0")
        assert exp.grad is not None and exp.grad.data == dh.tolist()
        (leaf,) = graph.leaves
        assert leaf.grad is not None
        assert leaf.grad.data == dw.tolist()  # this call's gradient, not the sum in `.grad`


def test_a_hook_registered_inside_the_recording_gets_a_removable_handle() -> None:
    found: list[object] = []
    with record():
        w = torch.ones(2, requires_grad=True)
        y = (w * 2.0).sum()
        found.append(y.grad_fn.register_prehook(lambda g: None))
        y.backward()
        z = (w * 3.0).sum()
        found.append(z.grad_fn.register_hook(lambda gi, go: None))
    assert all(isinstance(h, RemovableHandle) for h in found)


def test_hooks_are_removed_also_when_pytorch_hands_back_its_own_handles(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Should a PyTorch register node hooks without asking `_register_hook`, gradviz keeps the
    handles it gets back and removes its hooks with them."""
    import contextlib

    from graphviz_grad.capture import _snapshot, native

    monkeypatch.setattr(native, "_loaded", [None])  # the Python pre-hooks, not the C++ ones
    monkeypatch.setattr(_snapshot, "plain_hook_dicts", lambda hooked: contextlib.nullcontext())
    fired: list[int] = []
    make = _snapshot.CallCapture._pre_hook

    def counting(self, i):  # type: ignore[no-untyped-def]
        hook = make(self, i)

        def counted(grad_outputs):  # type: ignore[no-untyped-def]
            fired.append(i)
            return hook(grad_outputs)

        return counted

    monkeypatch.setattr(_snapshot.CallCapture, "_pre_hook", counting)
    with record() as rec:
        w = torch.tensor([0.5, 1.5], requires_grad=True)
        loss = ((w * 2.0).sin() * w).sum()
        loss.backward(retain_graph=True)
    (expected,) = torch.autograd.grad(loss, w, retain_graph=True)
    assert rec.graph(1).leaves[0].grad.data == expected.tolist()  # type: ignore[union-attr]
    during = len(fired)
    assert during > 0
    loss.backward()  # outside the recording: none of gradviz's hooks is left to fire
    assert len(fired) == during


def test_a_hook_another_thread_registers_meanwhile_gets_pytorchs_handle() -> None:
    import threading

    from graphviz_grad.capture import _snapshot

    w = torch.ones(2, requires_grad=True)
    y = (w * 2.0).sum()
    handles: list[object] = []
    with _snapshot.plain_hook_dicts([]):
        thread = threading.Thread(
            target=lambda: handles.append(y.grad_fn.register_prehook(lambda g: None))
        )
        thread.start()
        thread.join()
    assert len(handles) == 1 and isinstance(handles[0], RemovableHandle)


def test_a_leaf_used_at_every_step_gets_torchs_gradient_summed_as_it_arrives() -> None:
    """`autograd.grad(loss, [w])` runs no `AccumulateGrad`: the gradient of a weight an unrolled
    loop uses at every step is the sum of what each step passed it. gradviz adds the parts as
    they arrive (one tensor held a leaf, not one a step), in the order torch adds them."""
    torch.manual_seed(0)
    w = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    u = torch.randn(3, 3, requires_grad=True)
    with record() as rec:
        h = torch.ones(2, 3, dtype=torch.float64)
        for _ in range(30):
            h = torch.tanh(h @ w) * 1.1
        loss = (h * h).sum() + (u * 2.0).sum()
        (expected,) = torch.autograd.grad(loss, [w])
    by_name = {n.names[0]: n for n in rec.graph().leaves}
    assert by_name["w"].grad is not None and by_name["w"].grad.data == expected.tolist()
    assert by_name["u"].grad is None  # not asked for: its `mul` did not run
