"""The forward formula and the local derivatives of each op, one short builder per op.

Every builder follows the same pattern (like micrograd's ops): read the inputs from the `Ctx`,
return a `Formula` with the forward expression written with names, the same written with
numbers, and one `Local` per input slot: the derivative of the output with respect to that
input, in symbols and, when every input is a recorded number, as a number. Tensor inputs get a
`chain` instead: the gradient rule written with shapes (``∂L/∂Y · Wᵀ``).

The table `RULES` is keyed by the autograd node's name (``MulBackward0``), the vocabulary the
graph model uses. Nothing here reads a tensor: only the recorded `TensorSummary` numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from graphviz_grad.model import Graph, Node, TensorSummary
from graphviz_grad.render.format import fmt_number, fmt_shape

_SUPERSCRIPTS = {2: "²", 3: "³"}


@dataclass(frozen=True)
class Local:
    """∂output/∂input for one input slot: `text` in symbols, `numbers` substituted, `value`."""

    slot: int
    text: str
    numbers: str | None = None
    value: float | None = None


@dataclass(frozen=True)
class Chain:
    """How the gradient of one tensor input is computed: a rule and, optionally, its shapes."""

    slot: int
    rule: str
    shapes: str | None = None


@dataclass(frozen=True)
class Formula:
    """What an op computed and how its gradient goes back, for one node."""

    forward: str
    numbers: str | None = None
    locals: tuple[Local, ...] = ()
    chains: tuple[Chain, ...] = ()
    note: str | None = None


@dataclass
class Ctx:
    """One op node seen through its inputs: names, recorded values and saved parameters.

    Slot `k` is the op's `k`-th input: an edge from another node (a tensor that needs a
    gradient), or a constant the forward pass recorded at argument position `k`.
    """

    graph: Graph
    node: Node
    precision: int = 4
    arg_names: dict[int, str] = field(default_factory=dict)
    out_name: str = "y"
    grad_name: str = "∂L/∂y"
    #: The placeholder a constant input the source does not name was written as (`constant`),
    #: once `s` wrote one: "c", or "const" when an input is itself called `c`.
    placeholder: str | None = None

    # -- the inputs --------------------------------------------------------------------------
    def summary(self, k: int) -> TensorSummary | None:
        for e in self.graph.inputs[self.node.id]:
            if e.index == k:
                src = self.graph.nodes[e.src]
                outs = src.outputs
                return outs[e.output_nr].value if e.output_nr < len(outs) else src.value
        return dict(self.node.constants).get(k)

    @property
    def edge_slots(self) -> list[int]:
        return [e.index for e in self.graph.inputs[self.node.id]]

    def s(self, k: int) -> str:
        """The symbol of slot `k`: the input's name, `#id`, a constant's name or value, or c."""
        for e in self.graph.inputs[self.node.id]:
            if e.index == k:
                return symbol(self.graph.nodes[e.src])
        if k in self.arg_names:
            return self.arg_names[k]
        named = dict(self.node.operands).get(k)
        if named:  # the script's own name for the tensor, found by the capture
            return named
        const = dict(self.node.constants).get(k)
        if const is not None and scalar(const) is not None:
            return self.num(k)
        return self.constant()

    def constant(self) -> str:
        """The placeholder for a constant tensor input that has no name: `c`, unless one of
        the inputs is the script's own `c` (the tutorial's `y = a + b * P3(c + d * x)`)."""
        if self.placeholder is None:
            named = {symbol(self.graph.nodes[e.src]) for e in self.graph.inputs[self.node.id]}
            named.update(name for _, name in self.node.operands if name)
            named.add(self.out_name)  # `c = torch.cat([x, h])` must not read `cat([c, h])`
            # `model.c` reads as c too (the polynomial tutorial's `self.c * x ** 2`)
            clash = any(n == "c" or n.endswith(".c") for n in named if n)
            self.placeholder = "const" if clash else "c"
        return self.placeholder

    def v(self, k: int) -> float | None:
        return scalar(self.summary(k))

    def num(self, k: int) -> str:
        """Slot `k`'s number, in parentheses when negative (it goes into an expression)."""
        return self.paren(self.v(k))

    def paren(self, x: float | None) -> str:
        if x is None:
            return "?"
        text = fmt_number(x, self.precision)
        return f"({text})" if text.startswith("-") else text

    def shape(self, k: int) -> str:
        s = self.summary(k)
        return fmt_shape(s.shape) if s is not None else "?"

    @property
    def y(self) -> float | None:
        return scalar(self.node.value)

    @property
    def all_scalar(self) -> bool:
        sums = [self.summary(k) for k in self.edge_slots] + [self.node.value, self.node.grad]
        return all(scalar(s) is not None for s in sums)

    def param(self, name: str, default: str = "?") -> str:
        text = self.node.saved_value(name)
        return default if text is None else text

    def fparam(self, name: str) -> float | None:
        try:
            return float(self.param(name))
        except ValueError:
            return None

    def fmt(self, x: float | None) -> str:
        return "?" if x is None else fmt_number(x, self.precision)

    def out_shape(self) -> str:
        return fmt_shape(self.node.shape) if self.node.shape is not None else "?"


def scalar(s: TensorSummary | None) -> float | None:
    """The one number of a one-element summary with kept data, else None."""
    if s is None or s.numel != 1 or s.data is None:
        return None
    data = s.data
    while isinstance(data, list) and len(data) == 1:
        data = data[0]
    if isinstance(data, (bool, int, float)):
        return float(data)
    return None


def symbol(node: Node) -> str:
    """How a node is written in formulas: its first variable name, else ``#id``."""
    return node.names[0] if node.names else f"#{node.id}"


def _safe(fn: Callable[[], float]) -> float | None:
    try:
        value = fn()
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return value if math.isfinite(value) else None


def _loc(c: Ctx, k: int, text: str, numbers: str | None, fn: Callable[[], float]) -> Local:
    return Local(k, text, numbers, _safe(fn) if c.all_scalar else None)


# -- elementwise binary ops --------------------------------------------------------------------
def _add(c: Ctx) -> Formula:
    alpha = c.param("alpha", "1")
    b = c.s(1) if alpha == "1" else f"{alpha}·{c.s(1)}"
    nb = c.num(1) if alpha == "1" else f"{alpha}·{c.num(1)}"
    return Formula(
        f"{c.s(0)} + {b}",
        f"{c.num(0)} + {nb}",
        (_loc(c, 0, "1", None, lambda: 1.0), _loc(c, 1, alpha, None, lambda: float(alpha))),
    )


def _sub(c: Ctx) -> Formula:
    alpha = c.param("alpha", "1")
    b = c.s(1) if alpha == "1" else f"{alpha}·{c.s(1)}"
    nb = c.num(1) if alpha == "1" else f"{alpha}·{c.num(1)}"
    minus = "-1" if alpha == "1" else f"-{alpha}"
    return Formula(
        f"{c.s(0)} - {b}",
        f"{c.num(0)} - {nb}",
        (_loc(c, 0, "1", None, lambda: 1.0), _loc(c, 1, minus, None, lambda: -float(alpha))),
    )


def _rsub(c: Ctx) -> Formula:
    return Formula(
        f"{c.s(1)} - {c.s(0)}", f"{c.num(1)} - {c.num(0)}", (_loc(c, 0, "-1", None, lambda: -1.0),)
    )


def _mul(c: Ctx) -> Formula:
    # PyTorch's gradient of a complex product is the conjugate Wirtinger one: ∂L/∂a = g · conj(b)
    def other(k: int) -> str:
        real = c.v(k) is not None  # a real number (a complex one has no scalar value here)
        return f"conj({c.s(k)})" if _is_complex(c.node) and not real else c.s(k)

    return Formula(
        f"{c.s(0)} · {c.s(1)}",
        f"{c.num(0)} · {c.num(1)}",
        (
            _loc(c, 0, other(1), None, lambda: _need(c.v(1))),
            _loc(c, 1, other(0), None, lambda: _need(c.v(0))),
        ),
    )


def _is_complex(node: Node) -> bool:
    return (node.dtype or "").startswith("complex")


def _div(c: Ctx) -> Formula:
    a, b = c.s(0), c.s(1)
    return Formula(
        f"{a} / {b}",
        f"{c.num(0)} / {c.num(1)}",
        (
            _loc(c, 0, f"1 / {b}", f"1 / {c.num(1)}", lambda: 1.0 / _need(c.v(1))),
            _loc(
                c,
                1,
                f"-{a} / {b}²",
                f"-{c.num(0)} / {c.num(1)}²",
                lambda: -_need(c.v(0)) / _need(c.v(1)) ** 2,
            ),
        ),
    )


def _need(x: float | None) -> float:
    if x is None:
        raise TypeError("value not recorded")
    return x


# -- powers ------------------------------------------------------------------------------------
def _power_text(base: str, exponent: str) -> str:
    try:
        e = float(exponent)
    except ValueError:
        return f"{base}^{exponent}"
    if e.is_integer() and int(e) in _SUPERSCRIPTS:
        return base + _SUPERSCRIPTS[int(e)]
    return f"{base}^{exponent}"


def _pow_scalar(c: Ctx) -> Formula:
    p = c.param("exponent")
    pv = c.fparam("exponent")
    a = c.s(0)
    if pv == 2.0:
        text, numbers = f"2·{a}", f"2 · {c.num(0)}"
    else:
        q = c.fmt(pv - 1) if pv is not None else f"{p}-1"
        text, numbers = f"{p}·{_power_text(a, q)}", f"{p} · {_power_text(c.num(0), q)}"
    return Formula(
        _power_text(a, p),
        _power_text(c.num(0), p),
        (_loc(c, 0, text, numbers, lambda: _need(pv) * _need(c.v(0)) ** (_need(pv) - 1)),),
    )


def _pow_tensor(c: Ctx) -> Formula:
    a, b = c.s(0), c.s(1)
    return Formula(
        f"{a}^{b}",
        f"{c.num(0)}^{c.num(1)}",
        (
            _loc(
                c,
                0,
                f"{b}·{a}^({b}-1)",
                None,
                lambda: _need(c.v(1)) * _need(c.v(0)) ** (_need(c.v(1)) - 1),
            ),
            _loc(c, 1, f"{a}^{b}·ln {a}", None, lambda: _need(c.y) * math.log(_need(c.v(0)))),
        ),
    )


def _pow_base(c: Ctx) -> Formula:
    base = c.param("self")
    return Formula(
        f"{base}^{c.s(0)}",
        f"{base}^{c.num(0)}",
        (
            _loc(
                c,
                0,
                f"{base}^{c.s(0)}·ln {base}",
                None,
                lambda: _need(c.y) * math.log(float(base)),
            ),
        ),
    )


# -- elementwise unary ops ---------------------------------------------------------------------
def _unary(
    fwd: str, local: str, value: Callable[[float, float], float], local_numbers: str | None = None
) -> Callable[[Ctx], Formula]:
    """A builder for `y = f(a)`: `fwd` and `local` use ``{a}`` and ``{y}``; `value(a, y)`."""

    def build(c: Ctx) -> Formula:
        a, n = c.s(0), c.num(0)
        y = c.paren(c.y)
        numbers = (local_numbers or local).format(a=n, y=y)
        return Formula(
            fwd.format(a=a),
            fwd.format(a=n),
            (
                _loc(
                    c,
                    0,
                    local.format(a=a, y=c.out_name),
                    numbers,
                    lambda: value(_need(c.v(0)), _need(c.y)),
                ),
            ),
        )

    return build


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _gelu_local(a: float, y: float) -> float:
    return _phi(a) + a * math.exp(-a * a / 2.0) / math.sqrt(2.0 * math.pi)


def _leaky_relu(c: Ctx) -> Formula:
    slope = c.param("negative_slope", "0.01")
    build = _unary(
        "leaky_relu({a})",
        "1 if {a} > 0 else " + slope,
        lambda a, y: 1.0 if a > 0 else float(slope),
    )
    return build(c)


# -- reductions --------------------------------------------------------------------------------
def _sum(c: Ctx) -> Formula:
    dims = c.param("dim", "")
    over = f", dim={dims}" if dims else ""
    return Formula(
        f"sum({c.s(0)}{over})",
        None,
        (_loc(c, 0, "1", None, lambda: 1.0),),
        (Chain(0, f"{c.grad_name} copied to every element: {c.shape(0)}"),),
    )


def _mean(c: Ctx) -> Formula:
    s = c.summary(0)
    n = s.numel if s is not None else None
    numel = c.param("self_sym_numel", str(n) if n is not None else "n")
    dims = c.param("dim", "")
    over = f", dim={dims}" if dims else ""
    if dims:
        out = c.node.value.numel if c.node.value is not None else None
        numel = str(n // out) if n is not None and out else "n"
    return Formula(
        f"mean({c.s(0)}{over})",
        None,
        (_loc(c, 0, f"1/{numel}", None, lambda: 1.0 / float(numel)),),
        (Chain(0, f"{c.grad_name} / {numel} copied to every element: {c.shape(0)}"),),
    )


# -- matrix products ---------------------------------------------------------------------------
def _t_shape(shape: str) -> str:
    """``[3, 4]`` -> ``[4, 3]`` (the last two dimensions swapped)."""
    dims = shape.strip("[]").split(", ")
    if len(dims) >= 2:
        dims[-2], dims[-1] = dims[-1], dims[-2]
    return "[" + ", ".join(dims) + "]"


def _mm(c: Ctx) -> Formula:
    a, b, g, y = c.s(0), c.s(1), c.grad_name, c.out_shape()
    return Formula(
        f"{a} @ {b}",
        None,
        chains=(
            Chain(0, f"{g} @ {b}ᵀ", f"{c.shape(0)} = {y} @ {_t_shape(c.shape(1))}"),
            Chain(1, f"{a}ᵀ @ {g}", f"{c.shape(1)} = {_t_shape(c.shape(0))} @ {y}"),
        ),
    )


def _mv(c: Ctx) -> Formula:
    a, b, g = c.s(0), c.s(1), c.grad_name
    return Formula(
        f"{a} @ {b}",
        None,
        chains=(
            Chain(0, f"outer({g}, {b})", f"{c.shape(0)} = {c.out_shape()} ⊗ {c.shape(1)}"),
            Chain(1, f"{a}ᵀ @ {g}", f"{c.shape(1)} = {_t_shape(c.shape(0))} @ {c.out_shape()}"),
        ),
    )


def _dot(c: Ctx) -> Formula:
    a, b, g = c.s(0), c.s(1), c.grad_name
    return Formula(
        f"{a} · {b} (dot product)",
        None,
        chains=(Chain(0, f"{g} · {b}", c.shape(0)), Chain(1, f"{g} · {a}", c.shape(1))),
    )


def _add_matmul(batched: bool) -> Callable[[Ctx], Formula]:
    """`beta·input + alpha·(a @ b)`: `addmm` (`F.linear` with a bias), `baddbmm` (attention's
    masked scores) when `batched`."""

    def build(c: Ctx) -> Formula:
        alpha, beta = c.param("alpha", "1"), c.param("beta", "1")
        sa = "" if alpha in ("1", "1.0") else f"{alpha}·"
        sb = "" if beta in ("1", "1.0") else f"{beta}·"
        bias, a, b, g, y = c.s(0), c.s(1), c.s(2), c.grad_name, c.out_shape()
        over = "dimensions" if batched else "rows"
        return Formula(
            f"{sb}{bias} + {sa}{a} @ {b}{' (batched)' if batched else ''}",
            None,
            chains=(
                Chain(0, f"{sb}{g} summed over the {over} broadcast from {bias}", c.shape(0)),
                Chain(1, f"{sa}{g} @ {b}ᵀ", f"{c.shape(1)} = {y} @ {_t_shape(c.shape(2))}"),
                Chain(2, f"{sa}{a}ᵀ @ {g}", f"{c.shape(2)} = {_t_shape(c.shape(1))} @ {y}"),
            ),
        )

    return build


def _bmm(c: Ctx) -> Formula:
    a, b, g, y = c.s(0), c.s(1), c.grad_name, c.out_shape()
    return Formula(
        f"{a} @ {b} (batched)",
        None,
        chains=(
            Chain(0, f"{g} @ {b}ᵀ", f"{c.shape(0)} = {y} @ {_t_shape(c.shape(1))}"),
            Chain(1, f"{a}ᵀ @ {g}", f"{c.shape(1)} = {_t_shape(c.shape(0))} @ {y}"),
        ),
    )


def _logsumexp(c: Ctx) -> Formula:
    a, y, g, dim = c.s(0), c.out_name, c.grad_name, c.param("dim")
    return Formula(
        f"logsumexp({a}, dim={dim}) = ln(sum(exp({a}), dim={dim}))",
        None,
        chains=(
            Chain(0, f"{g} · exp({a} - {y}), that is {g} · softmax({a}, dim={dim})", c.shape(0)),
        ),
    )


# -- shape ops: the gradient is moved, not changed ---------------------------------------------
def _shape_op(fwd: str, rule: str) -> Callable[[Ctx], Formula]:
    """A builder for ops that only move elements; `fwd`/`rule` use {a}, {g}, {in}, {out}."""

    def build(c: Ctx) -> Formula:
        params = {k: c.param(k) for k in ("dim", "dim0", "dim1", "index", "start", "end")}
        fill = {"a": c.s(0), "g": c.grad_name, "in": c.shape(0), "out": c.out_shape(), **params}
        return Formula(
            fwd.format(**fill),
            None,
            (_loc(c, 0, "1", None, lambda: 1.0),),
            (Chain(0, rule.format(**fill), f"{c.shape(0)} ← {c.out_shape()}"),),
        )

    return build


def _joined(kind: str) -> Callable[[Ctx], Formula]:
    """cat / stack: each input gets its own piece of the output's gradient."""

    def build(c: Ctx) -> Formula:
        # an input that needs no gradient has no edge but keeps its place (its slot) in the
        # list: `cat([x, h])` with a constant `x` gives `h` piece 1, not piece 0
        slots = sorted(c.edge_slots)
        dim = c.param("dim")
        names = [c.s(k) if k in slots else c.constant() for k in range(slots[-1] + 1)]
        if _more_after(c, slots, kind, dim):
            names.append("…")
        piece = "slice" if kind == "cat" else "index"
        return Formula(
            f"{kind}([{', '.join(names)}], dim={dim})",
            None,
            chains=tuple(
                Chain(k, f"{c.grad_name} {piece} {k} along dim {dim}", c.shape(k)) for k in slots
            ),
        )

    return build


def _more_after(c: Ctx, slots: list[int], kind: str, dim: object) -> bool:
    """Whether the output holds more pieces than the inputs up to the last slot with an edge
    (constant inputs after it, which left no trace in the graph)."""
    out = c.node.value.shape if c.node.value is not None else None
    try:
        d = int(str(dim)) % len(out) if out else None
    except ValueError:  # not saved ("?")
        d = None
    if out is None or d is None:
        return False
    count = slots[-1] + 1
    if kind != "cat":
        return out[d] > count
    sizes = [c.summary(k) for k in range(count)]
    if any(s is None or s.shape is None or len(s.shape) != len(out) for s in sizes):
        return False
    return sum(s.shape[d] for s in sizes if s is not None and s.shape is not None) < out[d]


def _copy_slices(c: Ctx) -> Formula:
    """A tensor written in place through a view (`buf[i] = x`, `h[:, t] += x`): `CopySlices` is
    the base's node. Slot 0 is the base as it was, the others the in-place op's own inputs."""
    parts = (c.node.aten or "").replace("::", ".").split(".")
    op = parts[1] if len(parts) > 1 else "the op"
    overwrite = op in ("copy_", "fill_", "zero_")
    g, slots = c.grad_name, sorted(c.edge_slots)
    sources = [k for k in slots if k > 0]
    src = ", ".join(c.s(k) for k in sources)
    chains = []
    if 0 in slots:
        rule = (
            f"{g} with the written elements zeroed (they were overwritten)"
            if overwrite
            else f"{g}, the written elements through the derivative of `{op}`"
        )
        chains.append(Chain(0, rule, c.shape(0)))
    for k in sources:
        rule = (
            f"{g} at the written elements"
            if overwrite
            else f"the derivative of `{op}` applied to {g} at the written elements"
        )
        chains.append(Chain(k, rule, c.shape(k)))
    return Formula(
        f"{c.out_name} after `{c.out_name}[…].{op}({src})`",
        None,
        chains=tuple(chains),
        note="CopySlices is autograd's node for a tensor written in place through a view "
        "(`buf[i] = x`); the written elements' old values no longer reach the result.",
    )


# -- softmax and losses ------------------------------------------------------------------------
def _softmax(c: Ctx) -> Formula:
    dim, a, g, y = c.param("dim"), c.s(0), c.grad_name, c.out_name
    return Formula(
        f"softmax({a}, dim={dim})",
        None,
        chains=(Chain(0, f"{y} ⊙ ({g} - sum({g} ⊙ {y}, dim={dim}))", c.shape(0)),),
    )


def _log_softmax(c: Ctx) -> Formula:
    dim, a, g, y = c.param("dim"), c.s(0), c.grad_name, c.out_name
    return Formula(
        f"log_softmax({a}, dim={dim})",
        None,
        chains=(Chain(0, f"{g} - exp({y}) ⊙ sum({g}, dim={dim})", c.shape(0)),),
    )


_REDUCTIONS = {"0": "none", "1": "mean", "2": "sum"}


def _mse(c: Ctx) -> Formula:
    red = _REDUCTIONS.get(c.param("reduction", "1"), "mean")
    a, t, g = c.s(0), c.s(1), c.grad_name
    s = c.summary(0)
    n = str(s.numel) if s is not None else "n"
    scale = f"2·({a} - {t}) / {n}" if red == "mean" else f"2·({a} - {t})"
    value: Callable[[], float] = lambda: (  # noqa: E731
        2.0 * (_need(c.v(0)) - _need(c.v(1))) / (float(n) if red == "mean" else 1.0)
    )
    return Formula(
        f"{red}(({a} - {t})²)",
        None,
        (_loc(c, 0, scale, None, value),),
        (Chain(0, f"{g} · {scale}", c.shape(0)),),
    )


def _nll(c: Ctx) -> Formula:
    red = _REDUCTIONS.get(c.param("reduction", "1"), "mean")
    a, t, g = c.s(0), c.s(1), c.grad_name
    per = "-1/N" if red == "mean" else "-1"
    at = f"{t}[i]"
    number = c.v(1)
    if number is not None and t == c.num(1) and float(number).is_integer():
        at = str(int(number))  # one class index, written in: `torch.tensor([93])`
    return Formula(
        f"-{red}_i {a}[i, {at}]",
        None,
        chains=(Chain(0, f"{g} · ({per} at each [i, {at}], 0 elsewhere)", c.shape(0)),),
        note="cross_entropy is log_softmax followed by this nll_loss",
    )


_VIEW = "{g} reshaped back to {in}"

#: One builder per autograd node name: the formula table.
RULES: dict[str, Callable[[Ctx], Formula]] = {
    "AddBackward0": _add,
    "AddBackward1": _add,
    "SubBackward0": _sub,
    "SubBackward1": _sub,
    "RsubBackward0": _rsub,
    "RsubBackward1": _rsub,
    "MulBackward0": _mul,
    "MulBackward1": _mul,
    "DivBackward0": _div,
    "DivBackward1": _div,
    "NegBackward0": _unary("-{a}", "-1", lambda a, y: -1.0),
    "PowBackward0": _pow_scalar,
    "PowBackward1": _pow_tensor,
    "PowBackward2": _pow_base,
    "ExpBackward0": _unary("exp({a})", "exp({a}) = {y}", lambda a, y: y, "{y}"),
    "LogBackward0": _unary("ln({a})", "1 / {a}", lambda a, y: 1.0 / a),
    "SqrtBackward0": _unary(
        "√{a}", "1 / (2·√{a}) = 1 / (2·{y})", lambda a, y: 0.5 / y, "1 / (2·{y})"
    ),
    "AbsBackward0": _unary("|{a}|", "sign({a})", lambda a, y: float((a > 0) - (a < 0))),
    "SinBackward0": _unary("sin({a})", "cos({a})", lambda a, y: math.cos(a)),
    "CosBackward0": _unary("cos({a})", "-sin({a})", lambda a, y: -math.sin(a)),
    "TanhBackward0": _unary("tanh({a})", "1 - {y}²", lambda a, y: 1.0 - y * y),
    "SigmoidBackward0": _unary("σ({a})", "{y}·(1 - {y})", lambda a, y: y * (1.0 - y)),
    "ReluBackward0": _unary("max(0, {a})", "1 if {a} > 0 else 0", lambda a, y: float(a > 0)),
    "LeakyReluBackward0": _leaky_relu,
    "LeakyReluBackward1": _leaky_relu,  # in place (`inplace=True`): it saves the result
    "GeluBackward0": _unary("gelu({a})", "Φ({a}) + {a}·φ({a})", _gelu_local),
    "SoftmaxBackward0": _softmax,
    "SafeSoftmaxBackward0": _softmax,  # attention's softmax: a fully masked row gives zeros
    "LogSoftmaxBackward0": _log_softmax,
    "SumBackward0": _sum,
    "SumBackward1": _sum,
    "MeanBackward0": _mean,
    "MeanBackward1": _mean,
    "MmBackward0": _mm,
    "MvBackward0": _mv,
    "DotBackward0": _dot,
    "BmmBackward0": _bmm,
    "AddmmBackward0": _add_matmul(batched=False),
    "BaddbmmBackward0": _add_matmul(batched=True),
    "LogsumexpBackward0": _logsumexp,
    "TBackward0": _shape_op("{a}ᵀ", "({g})ᵀ"),
    "TransposeBackward0": _shape_op(
        "{a}.transpose({dim0}, {dim1})", "({g}).transpose({dim0}, {dim1})"
    ),
    "PermuteBackward0": _shape_op("{a}.permute({dim})", "{g} permuted back"),
    "ViewBackward0": _shape_op("{a}.view{out}", _VIEW),
    "UnsafeViewBackward0": _shape_op("{a}.reshape{out}", _VIEW),
    "ReshapeAliasBackward0": _shape_op("{a}.reshape{out}", _VIEW),
    "ExpandBackward0": _shape_op("{a}.expand{out}", "{g} summed over the expanded dimensions"),
    "SqueezeBackward0": _shape_op("{a}.squeeze()", _VIEW),
    "SqueezeBackward1": _shape_op("{a}.squeeze({dim})", _VIEW),
    "SqueezeBackward2": _shape_op("{a}.squeeze({dim})", _VIEW),
    "UnsqueezeBackward0": _shape_op("{a}.unsqueeze({dim})", _VIEW),
    "SelectBackward0": _shape_op(
        "{a}.select({dim}, {index})", "zeros {in} with {g} put at index {index} of dim {dim}"
    ),
    "SliceBackward0": _shape_op(
        "{a}[{start}:{end} along dim {dim}]",
        "zeros {in} with {g} put at {start}:{end} of dim {dim}",
    ),
    "IndexBackward0": _shape_op("{a}[indices]", "zeros {in} with {g} added at the indices"),
    "GatherBackward0": _shape_op(
        "{a}.gather({dim}, index)", "zeros {in} with {g} added back along dim {dim} at the index"
    ),
    "EmbeddingBackward0": _shape_op(
        "{a}[indices] (the row of each index)",
        "zeros {in} with each row of {g} added to the row its index picked",
    ),
    "CatBackward0": _joined("cat"),
    "CopySlices": _copy_slices,
    "StackBackward0": _joined("stack"),
    "MseLossBackward0": _mse,
    "NllLossBackward0": _nll,
}


def formula(ctx: Ctx) -> Formula | None:
    """The formula of `ctx.node`, or None when gradviz has no rule for its op (`RULES`, then
    the activations, losses and layers of `nn_rules`, which build on this module)."""
    from graphviz_grad.teach.nn_rules import NN_RULES

    op = ctx.node.op or ""
    build = RULES.get(op) or NN_RULES.get(op)
    return build(ctx) if build is not None else None
