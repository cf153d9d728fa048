"""The formulas of `teach.nn_rules`: for scalars, each local derivative times the upstream
gradient is the gradient PyTorch recorded on the edge (boundaries and ties included), and every
op of the table gets its formula on tensors too."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

import graphviz_grad as gg
from graphviz_grad.model import Graph
from graphviz_grad.teach.explain import Explanation
from graphviz_grad.teach.formulas import Ctx, formula, scalar
from graphviz_grad.teach.nn_rules import NN_RULES

Build = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: name -> (the expression of two scalars a and b, the op it must make)
SCALARS: dict[str, tuple[Build, str]] = {
    "clamp both": (lambda a, b: a.clamp(0.0, 1.0), "ClampBackward1"),
    "clamp min, inside": (lambda a, b: a.clamp(min=1.0), "ClampBackward1"),
    "clamp min, at the bound": (lambda a, b: a.clamp(min=1.5), "ClampBackward1"),
    "clamp max, outside": (lambda a, b: a.clamp(max=1.0), "ClampBackward1"),
    "hardtanh, outside": (lambda a, b: F.hardtanh(a), "HardtanhBackward0"),
    "hardtanh, at the bound": (lambda a, b: F.hardtanh(a, -1.0, 1.5), "HardtanhBackward0"),
    "relu6": (lambda a, b: F.relu6(a), "HardtanhBackward0"),
    "maximum": (lambda a, b: torch.maximum(a, b), "MaximumBackward0"),
    "maximum, tie": (lambda a, b: torch.maximum(a, a * 1.0), "MaximumBackward0"),
    "minimum": (lambda a, b: torch.minimum(a, b), "MinimumBackward0"),
    "where, taken": (lambda a, b: torch.where(a > b, a * 2.0, b), "WhereBackward0"),
    "where, not taken": (lambda a, b: torch.where(a < b, a * 2.0, b), "WhereBackward0"),
    "masked_fill": (lambda a, b: a.masked_fill(a > 1.0, 0.0) + b, "MaskedFillBackward0"),
    "clone": (lambda a, b: a.clone() * b, "CloneBackward0"),
    "to double": (lambda a, b: a.double() * 3.0, "ToCopyBackward0"),
    "floor": (lambda a, b: torch.floor(a) + b, "FloorBackward0"),
    "round": (lambda a, b: torch.round(a) * b, "RoundBackward0"),
    "sign": (lambda a, b: torch.sign(a) + b, "SignBackward0"),
    "log1p": (lambda a, b: torch.log1p(a), "Log1PBackward0"),
    "log2": (lambda a, b: torch.log2(a), "Log2Backward0"),
    "log10": (lambda a, b: torch.log10(a), "Log10Backward0"),
    "exp2": (lambda a, b: torch.exp2(a), "Exp2Backward0"),
    "reciprocal": (lambda a, b: torch.reciprocal(a - 2.0), "ReciprocalBackward0"),
    "rsqrt": (lambda a, b: torch.rsqrt(a), "RsqrtBackward0"),
    "tan": (lambda a, b: torch.tan(a), "TanBackward0"),
    "erf": (lambda a, b: torch.erf(a), "ErfBackward0"),
    "silu": (lambda a, b: F.silu(a - 2.0), "SiluBackward0"),
    "logsigmoid": (lambda a, b: F.logsigmoid(a), "LogSigmoidBackward0"),
    "softplus": (lambda a, b: F.softplus(a), "SoftplusBackward0"),
    "softplus, beta": (lambda a, b: F.softplus(a, beta=2.0), "SoftplusBackward0"),
    "softplus, linear": (lambda a, b: F.softplus(a, beta=20.0), "SoftplusBackward0"),
    "bce with logits": (
        lambda a, b: F.binary_cross_entropy_with_logits(a, torch.tensor(1.0)),
        "BinaryCrossEntropyWithLogitsBackward0",
    ),
    "bce with logits, target learnt": (
        lambda a, b: F.binary_cross_entropy_with_logits(a, b),
        "BinaryCrossEntropyWithLogitsBackward0",
    ),
    "bce": (
        lambda a, b: F.binary_cross_entropy(torch.sigmoid(a), torch.tensor(0.0)),
        "BinaryCrossEntropyBackward0",
    ),
    "bce, target learnt": (
        lambda a, b: F.binary_cross_entropy(torch.sigmoid(a), b),
        "BinaryCrossEntropyBackward0",
    ),
    "smooth l1, inside": (lambda a, b: F.smooth_l1_loss(a, b), "SmoothL1LossBackward0"),
    "smooth l1, outside": (
        lambda a, b: F.smooth_l1_loss(a, b, beta=0.5),
        "SmoothL1LossBackward0",
    ),
    "huber, inside": (lambda a, b: F.huber_loss(a, b, delta=2.0), "HuberLossBackward0"),
    "huber, outside": (lambda a, b: F.huber_loss(a, b, delta=0.25), "HuberLossBackward0"),
    "huber, sum": (
        lambda a, b: F.huber_loss(a, b, delta=0.25, reduction="sum"),
        "HuberLossBackward0",
    ),
    "norm": (lambda a, b: torch.linalg.vector_norm(a - 2.0), "LinalgVectorNormBackward0"),
    "norm 1": (lambda a, b: torch.linalg.vector_norm(a, ord=1), "LinalgVectorNormBackward0"),
    "prod": (lambda a, b: (a * 2.0).prod(), "ProdBackward0"),
    "max": (lambda a, b: a.max() * b, "MaxBackward1"),
    "amax": (lambda a, b: a.amax() * b, "AmaxBackward0"),
}


def _graph(build: Build) -> Graph:
    a = torch.tensor(1.5, requires_grad=True)
    b = torch.tensor(0.5, requires_grad=True)
    with gg.record() as rec:
        return rec.trace(build(a, b))


def _checked(graph: Graph) -> list[str]:
    """Assert local · upstream == recorded edge gradient for every edge; the ops checked."""
    checked = []
    for node in graph.nodes:
        if node.kind != "op":
            continue
        found = formula(Ctx(graph, node))
        assert found is not None, node.op
        up = scalar(node.grad)
        for edge in graph.inputs[node.id]:
            local = next(x for x in found.locals if x.slot == edge.index)
            assert local.value is not None, (node.op, edge.index, local)
            got = scalar(edge.grad)
            assert up is not None and got is not None
            assert math.isclose(up * local.value, got, rel_tol=1e-5, abs_tol=1e-6), (
                node.op,
                edge.index,
                local,
                got,
            )
            checked.append(node.op or "")
    return checked


@pytest.mark.parametrize("name", sorted(SCALARS))
def test_scalar_local_derivatives_times_upstream_are_the_recorded_gradients(name: str) -> None:
    build, op = SCALARS[name]
    assert op in NN_RULES
    assert op in _checked(_graph(build))


def test_the_boundaries_are_pytorchs() -> None:
    """clamp passes the gradient at its bound, hardtanh does not, maximum halves it at a tie:
    the numbers shown are the ones PyTorch computed (and they differ)."""

    def local(name: str) -> float | None:
        graph = _graph(SCALARS[name][0])
        node = next(n for n in graph.nodes if n.op == SCALARS[name][1])
        found = formula(Ctx(graph, node))
        assert found is not None
        return found.locals[0].value

    assert local("clamp min, at the bound") == 1.0
    assert local("hardtanh, at the bound") == 0.0
    assert local("maximum, tie") == 0.5


def _tensor_graphs() -> list[Graph]:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    norm = torch.nn.LayerNorm(5)
    v = torch.randn(6, requires_grad=True)
    builds = [
        lambda: norm(conv(x)).sum(),
        lambda: sum(p.sum() for p in v.split(2)) + sum(p.sum() for p in v.view(2, 3).unbind(0)),
        lambda: v.cumsum(0).sum() + v.repeat(2).sum() + v.var() + v.std() + v.prod(),
        lambda: v.max() + v.min() + v.amax(0) + v.amin(0) + v.max(0)[0] + v.min(0)[0],
        lambda: torch.linalg.vector_norm(v) + v.norm(p=3) + torch.where(v > 0, v, 0.0).sum(),
        lambda: F.binary_cross_entropy_with_logits(v, torch.ones(6), pos_weight=torch.ones(6)),
    ]
    graphs = []
    for build in builds:
        with gg.record() as rec:
            graphs.append(rec.trace(build()))
    return graphs


def test_every_op_of_the_table_is_written_out_on_tensors() -> None:
    seen = set()
    for graph in _tensor_graphs():
        for step in Explanation(graph).steps():
            texts = " ".join(t for _, t in step.lines)
            assert "no formula" not in texts, step.title
        seen |= {n.op for n in graph.nodes if n.op in NN_RULES}
    wanted = {
        "ConvolutionBackward0", "NativeLayerNormBackward0", "SplitBackward0", "UnbindBackward0",
        "CumsumBackward0", "RepeatBackward0", "VarBackward0", "StdBackward0", "ProdBackward0",
        "MaxBackward1", "MinBackward1", "AmaxBackward0", "AminBackward0", "MaxBackward0",
        "MinBackward0", "LinalgVectorNormBackward0", "WhereBackward0",
        "BinaryCrossEntropyWithLogitsBackward0",
    }  # fmt: skip
    assert wanted <= seen


def test_where_says_that_the_branch_not_taken_still_reaches_backward() -> None:
    w = torch.tensor([1.0, 0.0], requires_grad=True)
    with gg.record() as rec:
        graph = rec.trace(torch.where(w > 0, torch.log(w), torch.zeros_like(w)).sum())
    step = next(s for s in Explanation(graph).steps() if "WhereBackward0" in s.title)
    lines = dict(step.lines)
    assert lines["forward"].startswith("#1 = where(cond, #2, c) = ")
    assert "0 · Inf is NaN" in lines["note"]


def test_a_weighted_binary_cross_entropy_says_its_terms_are_scaled() -> None:
    graph = _tensor_graphs()[-1]
    node = next(n for n in graph.nodes if n.op == "BinaryCrossEntropyWithLogitsBackward0")
    found = formula(Ctx(graph, node))
    assert found is not None and found.note is not None and "pos_weight" in found.note


def test_smooth_l1_says_d_before_its_derivative() -> None:
    """actor_critic's `smooth_l1_loss(value, R)` read "…else sign(d), with d = value - R = 1.0":
    the 1.0 printed after a local derivative is its value, which read as d's. d comes first,
    with its own value: 1.5 - 0.5 = 1.0 here."""
    graph = _graph(SCALARS["smooth l1, outside"][0])
    node = next(n for n in graph.nodes if n.op == "SmoothL1LossBackward0")
    found = formula(Ctx(graph, node))
    assert found is not None
    text = found.locals[0].text
    assert text.startswith("with d = a - b = 1.0: ") and text.endswith("else sign(d)")
