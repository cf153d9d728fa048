"""Property test: on random expression DAGs, gradviz reports what PyTorch itself computes.

A program is a list of ops over a pool of tensors (leaves, a constant, every op output so far).
Each op picks its operands from the pool, so subexpressions are shared and leaves reused; ops that
return several tensors (split, unbind, chunk...) put all of them in the pool. The loss sums every
pool tensor nobody consumed. For every example the graph gradviz records (and traces) must match
the oracle in tests/oracle.py node for node, its edges must be the `next_functions`, and the three
renderings (DOT through `dot -Tsvg`, JSON against the schema, the tree) must be well formed.

CI runs a fixed, bounded set of examples; `GRADVIZ_HYPOTHESIS=long` runs many more by hand:

    GRADVIZ_HYPOTHESIS=long pytest tests/reliability/test_random_graphs.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
import torch.nn.functional as F
from helpers.oracle import UNKNOWN, Expected, Oracle, close, walk
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import graphviz_grad as gg
from graphviz_grad.model import Graph
from graphviz_grad.render import DrawOptions, to_dot, to_json, tree_text

SCHEMA = json.loads(
    (Path(gg.__file__).parent / "render" / "schema.json").read_text(encoding="utf-8")
)

settings.register_profile(
    "gradviz-ci",
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "gradviz-long",
    max_examples=2000,
    derandomize=False,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PROFILE = settings.get_profile("gradviz-" + os.environ.get("GRADVIZ_HYPOTHESIS", "ci"))

Tensor = torch.Tensor
OpFn = Callable[[list[Tensor], int], Any]


# -- the ops --------------------------------------------------------------------------------------
class Cube(torch.autograd.Function):
    """A custom autograd Function that saves its input."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x * x * grad


def _fit(b: Tensor, a: Tensor) -> Tensor:
    """`b` if it broadcasts against `a`, else its sum (a scalar broadcasts against anything)."""
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        return b.sum()
    return b


def _fit_into(b: Tensor, a: Tensor) -> Tensor:
    """`b` if it broadcasts into `a`'s shape without growing it (for in-place ops)."""
    try:
        ok = torch.broadcast_shapes(a.shape, b.shape) == a.shape
    except RuntimeError:
        ok = False
    return b if ok else b.sum()


def _dim(x: Tensor, p: int) -> int:
    return p % max(x.dim(), 1)


def _const(x: Tensor, p: int) -> Tensor:
    g = torch.Generator().manual_seed(p)
    return torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype)


def _matmul(xs: list[Tensor], p: int) -> Tensor:
    a, b = xs
    m = a.reshape(a.shape[0] if a.dim() else 1, -1)
    k = m.shape[1]
    other = b.reshape(k, -1) if b.numel() % k == 0 and b.numel() else m.t()
    return m @ other


def _cat(xs: list[Tensor], p: int) -> Tensor:
    a, b = xs
    if a.dim() and b.dim() == a.dim() and a.shape[1:] == b.shape[1:]:
        return torch.cat([a, b])
    return torch.cat([a.reshape(-1), b.reshape(-1)])


def _stack(xs: list[Tensor], p: int) -> Tensor:
    a, b = xs
    return torch.stack([a, b if b.shape == a.shape else a * 0.5], dim=p % (a.dim() + 1))


def _inplace_add(xs: list[Tensor], p: int) -> Tensor:
    c = xs[0] * 1.0
    c.add_(_fit_into(xs[1], c))
    return c


def _inplace_mul(xs: list[Tensor], p: int) -> Tensor:
    c = xs[0].clone()
    c.mul_(p % 3 + 1.5)
    return c


def _inplace_view(xs: list[Tensor], p: int) -> Tensor:
    c = xs[0].clone()
    (c[p % c.shape[0]] if c.dim() else c).mul_(-2.0)
    return c


def _split(xs: list[Tensor], p: int) -> tuple[Tensor, ...]:
    x = xs[0]
    return x.split(p % 2 + 1, dim=_dim(x, p)) if x.dim() else (x * 1.0,)


def _max_dim(xs: list[Tensor], p: int) -> Tensor:
    x = xs[0]
    return x.max(dim=_dim(x, p)).values if x.dim() else x.max()


UNARY: dict[str, OpFn] = {
    "neg": lambda xs, p: -xs[0],
    "tanh": lambda xs, p: torch.tanh(xs[0]),
    "sigmoid": lambda xs, p: torch.sigmoid(xs[0]),
    "sin": lambda xs, p: torch.sin(xs[0]),
    "relu": lambda xs, p: F.relu(xs[0]),
    "square": lambda xs, p: xs[0] * xs[0],
    "pow": lambda xs, p: xs[0] ** 2,
    "exp_tanh": lambda xs, p: torch.exp(torch.tanh(xs[0])),
    "softplus": lambda xs, p: F.softplus(xs[0]),
    "sqrt1": lambda xs, p: torch.sqrt(xs[0] * xs[0] + 1),
    "log1p_sq": lambda xs, p: torch.log1p(xs[0] * xs[0]),
    "scale": lambda xs, p: xs[0] * (p % 5 - 2.5),
    "clamp": lambda xs, p: xs[0].clamp(-0.5, 0.5),
    "add_const": lambda xs, p: xs[0] + _const(xs[0], p),
    "cube": lambda xs, p: Cube.apply(xs[0]),
    # reductions
    "sum": lambda xs, p: xs[0].sum(),
    "sum_dim": lambda xs, p: xs[0].sum(dim=_dim(xs[0], p), keepdim=p % 2 == 0),
    "mean_dim": lambda xs, p: xs[0].mean(dim=_dim(xs[0], p)),
    "amax": lambda xs, p: xs[0].amax(dim=_dim(xs[0], p)),
    "logsumexp": lambda xs, p: torch.logsumexp(xs[0], dim=_dim(xs[0], p)),
    "softmax": lambda xs, p: torch.softmax(xs[0], dim=_dim(xs[0], p)),
    # views
    "flatten": lambda xs, p: xs[0].reshape(-1),
    "view": lambda xs, p: xs[0].contiguous().view(tuple(reversed(xs[0].shape))),
    "transpose": lambda xs, p: xs[0].transpose(0, -1) if xs[0].dim() else xs[0].t(),
    "permute": lambda xs, p: xs[0].permute(*reversed(range(xs[0].dim()))),
    "expand": lambda xs, p: xs[0].unsqueeze(0).expand(2, *xs[0].shape),
    "squeeze": lambda xs, p: xs[0].unsqueeze(-1).squeeze(-1),
    "unsqueeze": lambda xs, p: xs[0].unsqueeze(p % (xs[0].dim() + 1)),
    # indexing
    "select": lambda xs, p: xs[0][p % xs[0].shape[0]] if xs[0].dim() else xs[0][()],
    "slice": lambda xs, p: xs[0][p % 2 :: 1 + p % 2] if xs[0].dim() else xs[0],
    "index_select": lambda xs, p: xs[0].reshape(-1).index_select(0, torch.tensor([0, 0])),
    "fancy_index": lambda xs, p: xs[0].reshape(-1)[torch.tensor([-1, 0, -1])],
    # in place on tensors nobody saved
    "inplace_mul": _inplace_mul,
    "inplace_view": _inplace_view,
    # several outputs
    "split": _split,
    "unbind": lambda xs, p: xs[0].unbind(_dim(xs[0], p)) if xs[0].dim() else (xs[0] + 0,),
    "chunk": lambda xs, p: xs[0].chunk(2, dim=-1) if xs[0].dim() else (xs[0] + 0,),
    "max_dim": _max_dim,
}
BINARY: dict[str, OpFn] = {
    "add": lambda xs, p: xs[0] + _fit(xs[1], xs[0]),
    "sub": lambda xs, p: xs[0] - _fit(xs[1], xs[0]),
    "mul": lambda xs, p: xs[0] * _fit(xs[1], xs[0]),
    "div": lambda xs, p: xs[0] / (_fit(xs[1], xs[0]) ** 2 + 1),
    "maximum": lambda xs, p: torch.maximum(xs[0], _fit(xs[1], xs[0])),
    "where": lambda xs, p: torch.where(xs[0] > 0, xs[0], _fit(xs[1], xs[0])),
    "matmul": _matmul,
    "cat": _cat,
    "stack": _stack,
    "inplace_add": _inplace_add,
}
OPS: dict[str, OpFn] = {**UNARY, **BINARY}
ARITY = {name: (2 if name in BINARY else 1) for name in OPS}


# -- programs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    op: str
    args: tuple[int, ...]
    param: int


@dataclass(frozen=True)
class Program:
    """Leaf shapes, a dtype, a value seed and the ops; `run` builds the graph eagerly."""

    leaves: tuple[tuple[int, ...], ...]
    dtype: torch.dtype
    seed: int
    steps: tuple[Step, ...]

    def inputs(self) -> list[Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        made = [torch.randn(s, generator=g, dtype=self.dtype) for s in self.leaves]
        leaves = [t.requires_grad_() for t in made[:-1]]
        return [*leaves, made[-1]]  # the last one is a constant (no grad)

    def run(self, pool: list[Tensor]) -> Tensor:
        """Apply the steps to `pool` (extended in place); the loss sums every unused tensor."""
        used: set[int] = set()
        for step in self.steps:
            out = OPS[step.op]([pool[i] for i in step.args], step.param)
            used.update(step.args)
            pool.extend(out if isinstance(out, tuple) else (out,))
        sinks = [t for i, t in enumerate(pool) if i not in used and t.requires_grad]
        return torch.stack([t.sum() for t in sinks]).sum() if sinks else pool[0].sum()


SHAPES = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


@st.composite
def programs(draw: st.DrawFn) -> Program:
    """A random program whose every step runs (checked by running it as it is drawn)."""
    leaves = tuple(draw(st.lists(SHAPES, min_size=2, max_size=4)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    seed = draw(st.integers(0, 2**16))
    program = Program(leaves, dtype, seed, ())
    pool = program.inputs()
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, 12))):
        op = draw(st.sampled_from(sorted(OPS)))
        args = tuple(draw(st.integers(0, len(pool) - 1)) for _ in range(ARITY[op]))
        step = Step(op, args, draw(st.integers(0, 7)))
        try:
            out = OPS[op]([pool[i] for i in args], step.param)
        except (RuntimeError, IndexError, ValueError, TypeError):
            continue  # not valid for these shapes: leave it out
        steps.append(step)
        pool.extend(out if isinstance(out, tuple) else (out,))
    return Program(leaves, dtype, seed, tuple(steps))


# -- checks ---------------------------------------------------------------------------------------
def _edges_of(nodes: list[Any]) -> list[tuple[int, int, int, int]]:
    """(src, dst, index, output_nr) of every next_functions entry, in gradviz's id order."""
    index = {id(n): i for i, n in enumerate(nodes)}
    return [
        (index[id(child)], dst, k, nr)
        for dst, node in enumerate(nodes)
        for k, (child, nr) in enumerate(node.next_functions)
        if child is not None
    ]


def check_structure(graph: Graph, nodes: list[Any]) -> None:
    """The node set is exactly the unique grad_fns reachable from the root, edges included."""
    assert len(graph.nodes) == len(nodes)
    assert [n.op for n in graph.nodes] == [
        None if hasattr(n, "variable") else type(n).__name__ for n in nodes
    ]
    got = sorted((e.src, e.dst, e.index, e.output_nr) for e in graph.edges)
    assert got == sorted(_edges_of(nodes))


def check_values(graph: Graph) -> None:
    """Every op node recorded inside `record()` has a forward value."""
    missing = [f"#{n.id} {n.op}" for n in graph.nodes if n.kind == "op" and n.value is None]
    assert missing == []


def _close(summary: Any, ref: Tensor | None) -> bool:
    """`oracle.close`, also for zero-size tensors (which have no statistics to compare)."""
    if ref is not None and ref.numel() == 0:
        return summary is not None and tuple(summary.shape) == tuple(ref.shape)
    return close(summary, ref)


def node_mismatches(graph: Graph, expected: Expected, all_values: bool = True) -> list[str]:
    """Like `oracle.mismatches`; with `all_values=False` a missing value is not a mismatch."""
    if len(graph.nodes) != len(expected.ops):
        return [f"{len(graph.nodes)} nodes, oracle walked {len(expected.ops)}"]
    problems = []
    for node, op, value, grad in zip(graph.nodes, expected.ops, expected.values, expected.grads):
        if node.op != op:
            problems.append(f"#{node.id}: op {node.op} != {op}")
        checked = value is not None and (all_values or node.value is not None)
        if checked and not _close(node.value, value):
            problems.append(f"#{node.id} {node.op}: value {node.value} != {value}")
        if grad is not UNKNOWN and not _close(node.grad, grad):
            problems.append(f"#{node.id} {node.op}: grad {node.grad} != {grad}")
    return problems


def check_renderings(graph: Graph) -> None:
    """DOT lays out, JSON validates against the schema, the tree prints each node once."""
    dot = to_dot(graph, DrawOptions(edge_grads=True, saved=True))
    if shutil.which("dot"):
        done = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
        assert b"<svg" in done.stdout
    jsonschema.validate(json.loads(to_json(graph)), SCHEMA)
    text = tree_text(graph, width=100_000)
    heads = re.findall(r"^[│├└─ ]*(?:↓ d=\d+ )?#(\d+) ", text, flags=re.M)
    assert sorted(int(h) for h in heads) == list(range(len(graph.nodes)))


def _finite(*tensors: Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if t is not None)


# -- the properties -------------------------------------------------------------------------------
@settings(PROFILE)
@given(programs())
def test_recorded_graph_matches_autograd(program: Program) -> None:
    note(repr(program))
    with gg.record() as rec, Oracle() as oracle:
        pool = program.inputs()
        loss = program.run(pool)
        assume(loss.grad_fn is not None and _finite(*pool))
        nodes = walk([loss.grad_fn])
        traced = rec.trace(loss)
        loss.backward()
    assume(_finite(*(t.grad for t in pool if t.is_leaf and t.requires_grad)))
    recorded = rec.graph()
    assert len(oracle.expected) == 2  # the trace's own pass, then backward
    for graph, expected in ((traced, oracle.expected[0]), (recorded, oracle.expected[1])):
        check_structure(graph, nodes)
        check_values(graph)
        assert node_mismatches(graph, expected) == []
    check_renderings(recorded)


@settings(PROFILE)
@given(programs())
def test_plain_trace_matches_autograd(program: Program) -> None:
    note(repr(program))
    pool = program.inputs()
    loss = program.run(pool)
    assume(loss.grad_fn is not None and _finite(*pool))
    graph = gg.trace(loss)
    with Oracle() as oracle:
        expected = oracle.expect(loss)
    assume(all(g is UNKNOWN or g is None or _finite(g) for g in expected.grads))
    check_structure(graph, walk([loss.grad_fn]))
    assert node_mismatches(graph, expected, all_values=False) == []
    assert all(t.grad is None for t in pool if t.is_leaf)
    check_renderings(graph)


def test_there_are_enough_op_kinds() -> None:
    assert len(OPS) >= 25


@pytest.mark.parametrize("op", sorted(OPS))
def test_each_op_alone(op: str) -> None:
    """Every op kind, on a 2x3 leaf (and itself as second operand), matches autograd."""
    steps = (Step(op, (0, 0)[: ARITY[op]], 3),)
    program = Program(((2, 3), (2, 3), (3,)), torch.float64, 7, steps)
    with gg.record() as rec, Oracle() as oracle:
        pool = program.inputs()
        loss = program.run(pool)
        nodes = walk([loss.grad_fn])
        loss.backward()
    graph = rec.graph()
    check_structure(graph, nodes)
    check_values(graph)
    assert node_mismatches(graph, oracle.expected[0]) == []
    check_renderings(graph)


@pytest.mark.parametrize("how", ["backward", "trace"])
def test_a_custom_function_at_the_root_has_its_value(how: str) -> None:
    """Regression: a node that no op output reaches gets its value when it is used (or traced)."""
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with gg.record() as rec:
        loss = Cube.apply(x.sum())
        graph = rec.trace(loss) if how == "trace" else None
        if graph is None:
            loss.backward()
            graph = rec.graph()
    assert graph.nodes[0].op == "CubeBackward"
    assert graph.nodes[0].value is not None and graph.nodes[0].value.data == 27.0
    assert graph.leaves[0].grad is not None and graph.leaves[0].grad.data == [27.0, 27.0]


def test_zero_size_tensors_in_the_graph() -> None:
    """Regression: a slice that is empty (found by the property test) still matches autograd."""
    steps = (Step("matmul", (0, 0), 0), Step("slice", (3,), 1), Step("add", (0, 4), 0))
    program = Program(((), (), ()), torch.float32, 0, steps)
    with gg.record() as rec, Oracle() as oracle:
        pool = program.inputs()
        loss = program.run(pool)
        nodes = walk([loss.grad_fn])
        loss.backward()
    assert any(t.numel() == 0 for t in pool)
    check_structure(rec.graph(), nodes)
    assert node_mismatches(rec.graph(), oracle.expected[0]) == []
    check_renderings(rec.graph())
