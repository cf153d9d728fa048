"""Formulas of the ops neural-network code adds to the arithmetic of `formulas`: activations,
clamps and selections, step functions, the losses of binary classification and regression,
norms and reductions, layer norm and convolution.

Each builder follows `formulas`' pattern: the forward expression with names and numbers, one
`Local` per input slot (a number when every input is a recorded number), and a `Chain` where a
tensor's rule is more than "upstream ⊙ local". Every local derivative is PyTorch's own backward
formula (derivatives.yaml), boundaries included: `clamp` passes the gradient at its bounds,
`hardtanh` does not, `maximum` splits it at a tie. `tests/teach/test_teach_nn_rules.py` checks each
number against the gradient PyTorch recorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from graphviz_grad.model import TensorSummary
from graphviz_grad.teach.formulas import Chain, Ctx, Formula, _loc, _need, _unary, scalar

_LN2, _LN10 = math.log(2.0), math.log(10.0)
_REDUCTIONS = {"0": "none", "1": "mean", "2": "sum"}
_STEP_NOTE = (
    "a step function: its derivative is 0 wherever it is defined, so no gradient flows back "
    "through it (a straight-through estimator, `x + (f(x) - x).detach()`, lets it pass)"
)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _opt(c: Ctx, name: str) -> float | None:
    """The saved optional number `name` (`min` of a clamp), None when absent or None."""
    try:
        return float(c.param(name, ""))
    except ValueError:
        return None


def _saved_summary(c: Ctx, name: str) -> TensorSummary | None:
    return next((s.summary for s in c.node.saved if s.name == name), None)


# -- clamps, maxima and selections -----------------------------------------------------------
def _clamp(c: Ctx) -> Formula:
    lo, hi, a = _opt(c, "min"), _opt(c, "max"), c.s(0)
    if lo is not None and hi is not None:
        fwd, cond = f"clamp({a}, {c.fmt(lo)}, {c.fmt(hi)})", f"{c.fmt(lo)} ≤ {a} ≤ {c.fmt(hi)}"
    elif lo is not None:
        fwd, cond = f"max({a}, {c.fmt(lo)})", f"{a} ≥ {c.fmt(lo)}"
    else:
        fwd, cond = f"min({a}, {c.fmt(hi)})", f"{a} ≤ {c.fmt(hi)}"

    def value() -> float:
        x = _need(c.v(0))
        return float((lo is None or x >= lo) and (hi is None or x <= hi))

    return Formula(fwd, None, (_loc(c, 0, f"1 if {cond} else 0", None, value),))


def _hardtanh(c: Ctx) -> Formula:
    lo, hi, a = _opt(c, "min_val"), _opt(c, "max_val"), c.s(0)
    lo, hi = -1.0 if lo is None else lo, 1.0 if hi is None else hi
    cond = f"{c.fmt(lo)} < {a} < {c.fmt(hi)}"
    return Formula(
        f"clamp({a}, {c.fmt(lo)}, {c.fmt(hi)}) (hardtanh)",
        None,
        (_loc(c, 0, f"1 if {cond} else 0", None, lambda: float(lo < _need(c.v(0)) < hi)),),
    )


def _extremum(kind: str) -> Callable[[Ctx], Formula]:
    """maximum / minimum of two tensors: the gradient goes to the winner, half each at a tie."""

    def build(c: Ctx) -> Formula:
        a, b = c.s(0), c.s(1)
        wins = ">" if kind == "max" else "<"

        def share(first: int) -> float:
            x, y = _need(c.v(first)), _need(c.v(1 - first))
            return 0.5 if x == y else float(x > y if kind == "max" else x < y)

        return Formula(
            f"{kind}({a}, {b})",
            f"{kind}({c.num(0)}, {c.num(1)})",
            (
                _loc(c, 0, f"1 if {a} {wins} {b}, ½ if equal, else 0", None, lambda: share(0)),
                _loc(c, 1, f"1 if {b} {wins} {a}, ½ if equal, else 0", None, lambda: share(1)),
            ),
        )

    return build


def _operand(c: Ctx, slot: int, position: int) -> str:
    """The symbol of input `slot`, whose argument `position` differs (`where`'s condition
    comes first and is no input): the edge's node, else the script's name or the number."""
    if slot in c.edge_slots:
        return c.s(slot)
    named = dict(c.node.operands).get(position)
    const = scalar(dict(c.node.constants).get(position))
    return named or (c.paren(const) if const is not None else c.constant())


def _where(c: Ctx) -> Formula:
    """`torch.where(cond, a, b)`: slots 0 and 1 are `a` and `b` (the condition is no input)."""
    cond = dict(c.node.operands).get(0) or "cond"
    mask = scalar(_saved_summary(c, "condition"))
    a, b, g = _operand(c, 0, 1), _operand(c, 1, 2), c.grad_name
    return Formula(
        f"where({cond}, {a}, {b})",
        None,
        (
            _loc(c, 0, f"1 where {cond} else 0", None, lambda: float(bool(_need(mask)))),
            _loc(c, 1, f"0 where {cond} else 1", None, lambda: float(not _need(mask))),
        ),
        (
            Chain(0, f"{g} where {cond}, 0 elsewhere", c.shape(0)),
            Chain(1, f"{g} where not {cond}, 0 elsewhere", c.shape(1)),
        ),
        note=(
            "both branches are computed for every element: a NaN or Inf of the branch not "
            "taken still reaches backward, and 0 · Inf is NaN"
        ),
    )


def _masked_fill(c: Ctx) -> Formula:
    mask = scalar(_saved_summary(c, "mask"))
    a, g = c.s(0), c.grad_name
    return Formula(
        f"{a}.masked_fill(mask, value)",
        None,
        (_loc(c, 0, "0 where mask else 1", None, lambda: float(not _need(mask))),),
        (Chain(0, f"{g} with 0 where the mask is set", c.shape(0)),),
    )


def _same_values(fwd: str, rule: str) -> Callable[[Ctx], Formula]:
    """Ops that pass the values on unchanged (a copy, a cast): local derivative 1."""

    def build(c: Ctx) -> Formula:
        dtype = c.node.dtype or "?"
        fill = {"a": c.s(0), "g": c.grad_name, "dtype": dtype}
        return Formula(
            fwd.format(**fill),
            None,
            (_loc(c, 0, "1", None, lambda: 1.0),),
            (Chain(0, rule.format(**fill), c.shape(0)),),
        )

    return build


def _step(fwd: str) -> Callable[[Ctx], Formula]:
    def build(c: Ctx) -> Formula:
        a = c.s(0)
        return Formula(
            fwd.format(a=a),
            fwd.format(a=c.num(0)),
            (_loc(c, 0, "0", None, lambda: 0.0),),
            note=_STEP_NOTE,
        )

    return build


# -- activations -----------------------------------------------------------------------------
def _softplus(c: Ctx) -> Formula:
    beta, threshold = _opt(c, "beta") or 1.0, _opt(c, "threshold") or 20.0
    a = c.s(0)
    scaled = a if beta == 1.0 else f"{c.fmt(beta)}·{a}"
    fwd = f"ln(1 + exp({scaled}))" + ("" if beta == 1.0 else f" / {c.fmt(beta)}")

    def value() -> float:
        x = beta * _need(c.v(0))
        return 1.0 if x > threshold else _sigmoid(x)

    text = f"σ({scaled}) (1 once {scaled} > {c.fmt(threshold)})"
    return Formula(fwd, None, (_loc(c, 0, text, None, value),))


# -- losses ----------------------------------------------------------------------------------
def _per(c: Ctx, red: str) -> tuple[str, float | None]:
    """The divisor of a loss's reduction: (" / N" text, N), or ("", 1.0) for a sum."""
    if red != "mean":
        return "", 1.0
    s = c.summary(0)
    if s is None:
        return " / N", None
    return (f" / {s.numel}" if s.numel > 1 else ""), float(s.numel)


def _bce_logits(c: Ctx) -> Formula:
    red = _REDUCTIONS.get(c.param("reduction", "1"), "mean")
    x, t, g = c.s(0), c.s(1), c.grad_name
    per, n = _per(c, red)
    weighted = any(s.name in ("weight", "pos_weight") and s.state != "none" for s in c.node.saved)
    if weighted:  # the numbers below leave the weights out: none is worked out
        n = None
    dx = f"(σ({x}) - {t}){per}"
    dt = f"-{x}{per}"
    return Formula(
        f"{red}(-({t}·ln σ({x}) + (1 - {t})·ln(1 - σ({x}))))",
        None,
        (
            _loc(c, 0, dx, None, lambda: (_sigmoid(_need(c.v(0))) - _need(c.v(1))) / _need(n)),
            _loc(c, 1, dt, None, lambda: -_need(c.v(0)) / _need(n)),
        ),
        (Chain(0, f"{g} · {dx}", c.shape(0)), Chain(1, f"{g} · {dt}", c.shape(1))),
        note="with `weight` or `pos_weight` each term is scaled by them" if weighted else None,
    )


def _bce(c: Ctx) -> Formula:
    red = _REDUCTIONS.get(c.param("reduction", "1"), "mean")
    p, t, g = c.s(0), c.s(1), c.grad_name
    per, n = _per(c, red)
    dp = f"({p} - {t}) / ({p}·(1 - {p})){per}"
    dt = f"(ln(1 - {p}) - ln {p}){per}"

    def d_p() -> float:
        q, y = _need(c.v(0)), _need(c.v(1))
        return (q - y) / max(q * (1.0 - q), 1e-12) / _need(n)

    def d_t() -> float:
        q = _need(c.v(0))
        return (max(math.log(1.0 - q), -100.0) - max(math.log(q), -100.0)) / _need(n)

    return Formula(
        f"{red}(-({t}·ln {p} + (1 - {t})·ln(1 - {p})))",
        None,
        (_loc(c, 0, dp, None, d_p), _loc(c, 1, dt, None, d_t)),
        (Chain(0, f"{g} · {dp}", c.shape(0)), Chain(1, f"{g} · {dt}", c.shape(1))),
        note="PyTorch clamps each log at -100, so a probability of exactly 0 or 1 stays finite",
    )


def _robust(kind: str) -> Callable[[Ctx], Formula]:
    """smooth_l1 (`beta`) and huber (`delta`): quadratic near 0, linear past the threshold."""

    def build(c: Ctx) -> Formula:
        red = _REDUCTIONS.get(c.param("reduction", "1"), "mean")
        name = "beta" if kind == "smooth_l1" else "delta"
        k = _opt(c, name) or 1.0
        x, t, g = c.s(0), c.s(1), c.grad_name
        per, n = _per(c, red)
        if kind == "smooth_l1":
            text = f"d / {c.fmt(k)} if |d| < {c.fmt(k)} else sign(d)"
        else:
            text = f"d if |d| < {c.fmt(k)} else {c.fmt(k)}·sign(d)"
        # d first: the number printed after a local derivative is its value, not d's
        x0, t0 = c.v(0), c.v(1)
        d = f" = {c.fmt(x0 - t0)}" if x0 is not None and t0 is not None else ""
        with_d = f"with d = {x} - {t}{d}: "
        local = with_d + (f"({text}){per}" if per else text)
        minus = f"{with_d}-({text}){per}"

        def value(sign: float) -> float:
            diff = _need(c.v(0)) - _need(c.v(1))
            if abs(diff) < k:  # at |diff| = k both branches agree
                inner = diff / k if kind == "smooth_l1" else diff
            else:
                inner = math.copysign(1.0 if kind == "smooth_l1" else k, diff)
            return sign * inner / _need(n)

        return Formula(
            f"{red}({kind}({x} - {t}, {name}={c.fmt(k)}))",
            None,
            (
                _loc(c, 0, local, None, lambda: value(1.0)),
                _loc(c, 1, minus, None, lambda: value(-1.0)),
            ),
            (Chain(0, f"{g} · {local}", c.shape(0)), Chain(1, f"{g} · {minus}", c.shape(1))),
        )

    return build


# -- norms and reductions --------------------------------------------------------------------
def _vector_norm(c: Ctx) -> Formula:
    p, a, y, g = c.param("ord", "2"), c.s(0), c.out_name, c.grad_name
    if p in ("2", "2.0"):
        local, fwd, fn = f"{a} / {y}", f"‖{a}‖₂", lambda: _need(c.v(0)) / _need(c.y)
        note = "at a zero vector PyTorch gives 0, not 0/0"
    elif p in ("1", "1.0"):
        local, fwd, note = f"sign({a})", f"‖{a}‖₁", None
        fn = lambda: float((_need(c.v(0)) > 0) - (_need(c.v(0)) < 0))  # noqa: E731
    else:
        local, fwd, note = f"sign({a})·|{a}|^({p}-1) / {y}^({p}-1)", f"‖{a}‖_{p}", None
        fn = lambda: math.nan  # noqa: E731 - no number: written out only
    return Formula(
        fwd,
        None,
        (_loc(c, 0, local, None, fn),),
        (Chain(0, f"{g} · {local}", c.shape(0)),),
        note=note,
    )


def _extreme_of(kind: str, along: bool) -> Callable[[Ctx], Formula]:
    """max / min / amax / amin: the gradient goes to the extreme element(s)."""

    def build(c: Ctx) -> Formula:
        a, g, dim = c.s(0), c.grad_name, c.param("dim", "")
        over = f", dim={dim.strip('()').rstrip(',')}" if dim else ""
        if along:
            rule = f"{g} put at the index of each {kind}imum along dim {dim}, 0 elsewhere"
        else:
            rule = f"{g} shared evenly by the elements equal to the {kind}imum, 0 elsewhere"
        return Formula(
            f"{kind}({a}{over})",
            None,
            (_loc(c, 0, "1", None, lambda: 1.0),),
            (Chain(0, rule, c.shape(0)),),
        )

    return build


def _prod(c: Ctx) -> Formula:
    a, y, g = c.s(0), c.out_name, c.grad_name
    return Formula(
        f"prod({a})",
        None,
        (
            _loc(
                c,
                0,
                f"{y} / {a} (the product of the other elements)",
                None,
                lambda: _need(c.y) / _need(c.v(0)),
            ),
        ),
        (
            Chain(
                0,
                f"{g} · the product of the other elements (PyTorch does not divide by 0)",
                c.shape(0),
            ),
        ),
    )


def _variance(kind: str) -> Callable[[Ctx], Formula]:
    def build(c: Ctx) -> Formula:
        a, g, y = c.s(0), c.grad_name, c.out_name
        correction = c.param("correction", "None")
        n_minus = "N - 1" if correction == "None" else f"N - {correction}"
        local = f"2·({a} - mean) / ({n_minus})"
        if kind == "std":
            local = f"({a} - mean) / (({n_minus})·{y})"
        return Formula(
            f"{kind}({a})",
            None,
            chains=(Chain(0, f"{g} · {local}", c.shape(0)),),
        )

    return build


def _pieces(c: Ctx) -> Formula:
    a, dim = c.s(0), c.param("dim", "0")
    return Formula(
        f"piece 0 of {a} cut along dim {dim}",
        None,
        (_loc(c, 0, "1", None, lambda: 1.0),),
        (
            Chain(
                0,
                f"the gradients of the pieces put back together along dim {dim} "
                "(zeros for a piece that got none)",
                c.shape(0),
            ),
        ),
    )


def _chain_only(fwd: str, rule: str) -> Callable[[Ctx], Formula]:
    """Reductions and rearrangements whose rule is only written out (`{a}`, `{g}`, params)."""

    def build(c: Ctx) -> Formula:
        fill = {"a": c.s(0), "g": c.grad_name, "dim": c.param("dim"),
                "repeats": c.param("repeats")}  # fmt: skip
        return Formula(
            fwd.format(**fill),
            None,
            (_loc(c, 0, "1", None, lambda: 1.0),),
            (Chain(0, rule.format(**fill), c.shape(0)),),
        )

    return build


# -- layers ----------------------------------------------------------------------------------
def _norm_chains(c: Ctx, over: str, dx: str | None = None) -> tuple[Chain, ...]:
    """The gradients of a normalisation `x̂·w + b` (layer or batch norm): of its input (`dx`,
    by default through the statistics it normalised with), its weight and its bias, each
    summed `over` the dimensions the weight is shared across."""
    w, g = c.s(1), c.grad_name
    return (
        Chain(0, dx or f"(ĝ - mean(ĝ) - x̂ ⊙ mean(ĝ ⊙ x̂)) / σ, with ĝ = {g} ⊙ {w}", c.shape(0)),
        Chain(1, f"{g} ⊙ x̂ summed over {over}", c.shape(1)),
        Chain(2, f"{g} summed over {over}", c.shape(2)),
    )


def _layer_norm(c: Ctx) -> Formula:
    x, w, b = c.s(0), c.s(1), c.s(2)
    dims = c.param("normalized_shape")
    return Formula(
        f"layer_norm({x}) = x̂·{w} + {b}, x̂ = ({x} - mean) / σ over the last dims {dims}",
        None,
        chains=_norm_chains(c, "the other dims"),
    )


def _batch_norm(c: Ctx) -> Formula:
    """BatchNorm: per channel over the batch (and positions) when training, else with the
    running statistics, which make it an affine map with no mean to pass the gradient through."""
    x, w, b, g = c.s(0), c.s(1), c.s(2), c.grad_name
    eps, over = c.param("eps"), "the batch and positions"
    if c.param("training", "True") == "False":  # model.eval(): the running statistics
        return Formula(
            f"batch_norm({x}) = x̂·{w} + {b}, x̂ = ({x} - running_mean) / √(running_var + {eps})",
            None,
            chains=_norm_chains(c, over, f"{g} ⊙ {w} / √(running_var + {eps})"),
            note="in eval mode (`model.eval()`): the running statistics are constants",
        )
    return Formula(
        f"batch_norm({x}) = x̂·{w} + {b}, x̂ = ({x} - mean) / σ, mean and σ = √(var + {eps}) "
        "per channel over the batch and positions",
        None,
        chains=_norm_chains(c, over),
        note="the means run over the batch: each example's gradient depends on the others",
    )


def _max_pool(c: Ctx) -> Formula:
    a, g = c.s(0), c.grad_name
    size, stride = c.param("kernel_size"), c.param("stride")
    return Formula(
        f"max_pool({a}, kernel_size={size}, stride={stride}): the largest value of each window",
        None,
        chains=(
            Chain(
                0,
                f"zeros {c.shape(0)} with each element of {g} put where its window's maximum "
                "was (the saved indices)",
                f"{c.shape(0)} ← {c.out_shape()}",
            ),
        ),
    )


def _avg_pool(c: Ctx) -> Formula:
    a, g = c.s(0), c.grad_name
    return Formula(
        f"avg_pool({a}): the mean of each window",
        None,
        chains=(
            Chain(
                0,
                f"each element of {g} shared out evenly over its window",
                f"{c.shape(0)} ← {c.out_shape()}",
            ),
        ),
    )


def _convolution(c: Ctx) -> Formula:
    # `bias=False`: no bias at all (saved sizes `(0,)`), not a constant tensor
    biased = 2 in c.edge_slots or c.param("bias_sym_sizes_opt", "?") not in ("None", "(0,)", "[0]")
    x, w, b, g = c.s(0), c.s(1), c.s(2) if biased else "None", c.grad_name
    stride, padding = c.param("stride"), c.param("padding")
    transposed = c.param("transposed", "False") == "True"
    kind = "conv_transpose" if transposed else "conv"
    return Formula(
        f"{kind}({x}, {w}, {b}, stride={stride}, padding={padding})",
        None,
        chains=(
            Chain(0, f"{g} taken back through {w}: the transposed operation", c.shape(0)),
            Chain(1, f"{x} correlated with {g}: each weight gathers what it touched", c.shape(1)),
            Chain(2, f"{g} summed over the batch and the positions", c.shape(2)),
        ),
    )


#: One builder per autograd node name (merged into `formulas.RULES`).
NN_RULES: dict[str, Callable[[Ctx], Formula]] = {
    "ClampBackward1": _clamp,
    "ClampMinBackward0": _clamp,
    "ClampMaxBackward0": _clamp,
    "HardtanhBackward0": _hardtanh,
    "MaximumBackward0": _extremum("max"),
    "MinimumBackward0": _extremum("min"),
    "WhereBackward0": _where,
    "MaskedFillBackward0": _masked_fill,
    "CloneBackward0": _same_values("{a}.clone()", "{g}"),
    "ToCopyBackward0": _same_values("{a} as {dtype}", "{g} converted back to {a}'s dtype"),
    "FloorBackward0": _step("floor({a})"),
    "CeilBackward0": _step("ceil({a})"),
    "RoundBackward0": _step("round({a})"),
    "TruncBackward0": _step("trunc({a})"),
    "SignBackward0": _step("sign({a})"),
    "SgnBackward0": _step("sgn({a})"),
    "Log1PBackward0": _unary("ln(1 + {a})", "1 / (1 + {a})", lambda a, y: 1.0 / (1.0 + a)),
    "Log2Backward0": _unary(
        "log₂({a})", "1 / ({a}·ln 2)", lambda a, y: 1.0 / (a * _LN2), "1 / ({a} · 0.6931)"
    ),
    "Log10Backward0": _unary(
        "log₁₀({a})", "1 / ({a}·ln 10)", lambda a, y: 1.0 / (a * _LN10), "1 / ({a} · 2.303)"
    ),
    "Exp2Backward0": _unary("2^{a}", "{y}·ln 2", lambda a, y: y * _LN2, "{y} · 0.6931"),
    "ReciprocalBackward0": _unary("1 / {a}", "-{y}²", lambda a, y: -y * y),
    "RsqrtBackward0": _unary("1 / √{a}", "-{y}³ / 2", lambda a, y: -0.5 * y**3),
    "TanBackward0": _unary("tan({a})", "1 + {y}²", lambda a, y: 1.0 + y * y),
    "ErfBackward0": _unary(
        "erf({a})", "2/√π · exp(-{a}²)", lambda a, y: 2.0 / math.sqrt(math.pi) * math.exp(-a * a)
    ),
    "SiluBackward0": _unary(
        "{a}·σ({a})",
        "σ({a})·(1 + {a}·(1 - σ({a})))",
        lambda a, y: _sigmoid(a) * (1.0 + a * (1.0 - _sigmoid(a))),
    ),
    "LogSigmoidBackward0": _unary("ln σ({a})", "1 - σ({a})", lambda a, y: 1.0 - _sigmoid(a)),
    "SoftplusBackward0": _softplus,
    "BinaryCrossEntropyWithLogitsBackward0": _bce_logits,
    "BinaryCrossEntropyBackward0": _bce,
    "SmoothL1LossBackward0": _robust("smooth_l1"),
    "HuberLossBackward0": _robust("huber"),
    "LinalgVectorNormBackward0": _vector_norm,
    "MaxBackward1": _extreme_of("max", along=False),
    "MinBackward1": _extreme_of("min", along=False),
    "AmaxBackward0": _extreme_of("max", along=False),
    "AminBackward0": _extreme_of("min", along=False),
    "MaxBackward0": _extreme_of("max", along=True),
    "MinBackward0": _extreme_of("min", along=True),
    "ProdBackward0": _prod,
    "VarBackward0": _variance("var"),
    "StdBackward0": _variance("std"),
    "SplitBackward0": _pieces,
    "SplitWithSizesBackward0": _pieces,
    "UnsafeSplitBackward0": _pieces,
    "UnbindBackward0": _pieces,
    "CumsumBackward0": _chain_only(
        "cumsum({a}, dim={dim})", "{g} summed from each position to the end along dim {dim}"
    ),
    "RepeatBackward0": _chain_only("{a}.repeat{repeats}", "{g} summed over the repeats"),
    "NativeLayerNormBackward0": _layer_norm,
    "NativeBatchNormBackward0": _batch_norm,
    "CudnnBatchNormBackward0": _batch_norm,
    "MaxPool2DWithIndicesBackward0": _max_pool,
    "MaxPool1DWithIndicesBackward0": _max_pool,
    "MaxPool3DWithIndicesBackward0": _max_pool,
    "AvgPool2DBackward0": _avg_pool,
    "AvgPool1DBackward0": _avg_pool,
    "AdaptiveAvgPool2DBackward0": _avg_pool,
    "ConvolutionBackward0": _convolution,
}
