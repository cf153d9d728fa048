"""PyTorch as the oracle: reference values and gradients for every node of a backward call.

`Oracle` is entered *inside* a gradviz recording. It keeps every op output that got a grad_fn
(its own dispatch mode, independent of gradviz's), and wraps `torch.autograd.backward` /
`torch.autograd.grad` so that, just before each call, it walks the graph itself and asks
`torch.autograd.grad` for dRoot/dOutput of every node and dRoot/dLeaf of every leaf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from graphviz_grad.model import Graph, TensorSummary

# The real functions, taken before any recorder patches them.
_GRAD = torch.autograd.grad


#: A node whose output tensor was modified in place later: autograd.grad cannot be asked for it.
UNKNOWN: Any = object()


@dataclass
class Expected:
    """Per node, in gradviz's walk order: op name, value tensor and grad tensor (or None)."""

    ops: list[str | None]
    values: list[torch.Tensor | None]
    grads: list[torch.Tensor | None]


def walk(roots: list[Any]) -> list[Any]:
    """The nodes reachable from `roots`, depth first, children in next_functions order."""
    seen: dict[int, int] = {}
    order: list[Any] = []
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = len(order)
        order.append(node)
        for child, _ in reversed(node.next_functions):
            if child is not None:
                stack.append(child)
    return order


class Oracle(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.outputs: dict[tuple[int, int], tuple[Any, torch.Tensor, torch.Tensor]] = {}
        self.pending: list[Any] = []
        self.expected: list[Expected] = []
        self._saved: dict[str, Any] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.resolve()
        out = func(*args, **(kwargs or {}))
        if torch.is_grad_enabled():
            self.pending.append(out)
        return out

    def resolve(self) -> None:
        pending, self.pending = self.pending, []
        for out in pending:
            for t in out if isinstance(out, (list, tuple)) else [out]:
                if isinstance(t, torch.Tensor) and t.grad_fn is not None:
                    key = (id(t.grad_fn), t.output_nr)
                    if key not in self.outputs:
                        self.outputs[key] = (t.grad_fn, t, t.detach().clone())

    def __enter__(self) -> Oracle:
        self._saved = {"backward": torch.autograd.backward, "grad": torch.autograd.grad}
        torch.autograd.backward = self._wrap(self._saved["backward"])  # type: ignore[assignment]
        torch.autograd.grad = self._wrap(self._saved["grad"])  # type: ignore[assignment]
        return super().__enter__()  # type: ignore[no-any-return]

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        torch.autograd.backward = self._saved["backward"]
        torch.autograd.grad = self._saved["grad"]

    def _wrap(self, original: Any) -> Any:
        def wrapped(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            self.resolve()
            roots = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
            self.expected.append(self.expect(roots[0]))
            return original(tensors, *args, **kwargs)

        return wrapped

    def expect(self, root: torch.Tensor) -> Expected:
        nodes = walk([root.grad_fn])
        inputs: list[torch.Tensor] = []
        slots: list[int | None] = []
        values: list[torch.Tensor | None] = []
        for node in nodes:
            if hasattr(node, "variable"):
                t, value = node.variable, node.variable.detach().clone()
            else:
                entry = self.outputs.get((id(node), 0))
                if entry is None or entry[1].grad_fn is not node:
                    slots.append(None)
                    values.append(entry[2] if entry is not None else None)
                    continue
                t, value = entry[1], entry[2]
            slots.append(len(inputs))
            inputs.append(t)
            values.append(value)
        seed = torch.ones_like(root)
        grads = _GRAD(root, inputs, seed, retain_graph=True, allow_unused=True)
        return Expected(
            ops=[None if hasattr(n, "variable") else type(n).__name__ for n in nodes],
            values=values,
            grads=[UNKNOWN if s is None else grads[s] for s in slots],
        )


def close(summary: TensorSummary | None, ref: torch.Tensor | None, rtol: float = 1e-4) -> bool:
    """Whether a gradviz summary describes the reference tensor."""
    if ref is None:
        return summary is None or summary.all_zero
    if summary is None:
        return bool((ref == 0).all())
    if tuple(summary.shape) != tuple(ref.shape):
        return False
    if ref.is_complex():  # data as strings, statistics of |z| (`summary._complex`)
        if summary.data is not None:
            got = torch.tensor(_complex(summary.data), dtype=torch.complex128)
            return bool(torch.allclose(got, ref.cdouble().cpu(), rtol=rtol, atol=1e-6))
        ref = ref.abs()
    if summary.data is not None:
        got = torch.tensor(summary.data, dtype=torch.float64)
        return bool(torch.allclose(got, ref.double().cpu(), rtol=rtol, atol=1e-6, equal_nan=True))
    r = ref.double()
    finite = torch.isfinite(r)
    if not bool(finite.all()):  # gradviz counts NaN and ±inf and takes the rest's statistics
        nan = int(torch.isnan(r).sum())
        if (summary.nan, summary.inf) != (nan, r.numel() - int(finite.sum()) - nan):
            return False
        r = r[finite]
        if r.numel() == 0:
            return summary.min is None
    stats = (r.min().item(), r.max().item(), r.mean().item(), r.norm().item())
    mine = (summary.min, summary.max, summary.mean, summary.norm)
    return all(
        m is not None and math.isclose(m, s, rel_tol=rtol, abs_tol=1e-6)
        for m, s in zip(mine, stats)
    )


def _complex(data: Any) -> Any:
    """Complex data as gradviz keeps it (``"(1+2j)"``) as Python complex numbers."""
    if isinstance(data, list):
        return [_complex(x) for x in data]
    return complex(data)


def mismatches(graph: Graph, expected: Expected) -> list[str]:
    """Human-readable differences between a gradviz graph and the oracle (empty when equal)."""
    problems = []
    if len(graph.nodes) != len(expected.ops):
        return [f"{len(graph.nodes)} nodes, oracle walked {len(expected.ops)}"]
    for node, op, value, grad in zip(graph.nodes, expected.ops, expected.values, expected.grads):
        if node.op != op:
            problems.append(f"#{node.id}: op {node.op} != {op}")
        if value is not None and not close(node.value, value):
            problems.append(f"#{node.id} {node.op}: value {node.value} != {value}")
        if grad is not UNKNOWN and not close(node.grad, grad):
            problems.append(f"#{node.id} {node.op}: grad {node.grad} != {grad}")
    return problems
