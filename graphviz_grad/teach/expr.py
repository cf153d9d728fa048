"""One-liners: the graph of an expression typed on the command line, without writing a script.

``gradviz render --expr "(x*w - y)**2" --let x=2 --let y=4 --param w=1.0`` builds the graph of
that expression: `--param` values are leaves that require grad, `--let` values are constants.
Statements may be chained with ``;`` to name the steps, as the lesson does:
``y_hat = x*w; loss = (y_hat - y)**2``. The last statement is the root.

The text is parsed with `ast` and only arithmetic, names, number literals and calls of a short
list of torch functions are allowed: no attributes, no subscripts, nothing that can reach an
arbitrary object. Evaluation walks the tree with an explicit stack.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from graphviz_grad.errors import ExprError
from graphviz_grad.model import Graph
from graphviz_grad.teach.sources import Annotations

MAX_CHARS = 2000
MAX_ELEMENTS = 4096
_TAG = "<expr {}>"
_FUNCTIONS = [
    *("exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu"),
    *("leaky_relu", "gelu", "softmax", "log_softmax", "sum", "mean", "matmul", "mm", "dot"),
    "mse_loss",
]
_KEYWORDS = {"dim", "negative_slope", "keepdim"}
_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "div",
    ast.Pow: "pow",
    ast.MatMult: "matmul",
}
_HINT = (
    "Use numbers, names given with --let/--param, + - * / ** @ and the functions "
    + ", ".join(_FUNCTIONS)
    + "."
)


@dataclass(frozen=True)
class ExprGraph:
    """The graph of an expression and what names its steps (for `explain`)."""

    graph: Graph
    notes: Annotations


def parse_bindings(items: Sequence[str], option: str) -> dict[str, Any]:
    """``["x=2", "v=[1, 2]"]`` -> ``{"x": 2, "v": [1, 2]}``: names and literal numbers only."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ExprError(
                f"{option} `{item}` is not NAME=VALUE.", hint=f"Write e.g. {option} x=2.0"
            )
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            raise ExprError(
                f"{option} {name}: `{raw}` is not a number or a list of numbers.",
                hint=f"Write e.g. {option} {name}=2.0 or {option} {name}=[1, 2, 3]",
            ) from None
        _check_value(name, value, option)
        out[name] = value
    return out


def _check_value(name: str, value: Any, option: str) -> None:
    stack, count = [value], 0
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        count += 1
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ExprError(
                f"{option} {name}: only numbers and lists of numbers are allowed.",
                hint=f"Write e.g. {option} {name}=[1.0, 2.0]",
            )
    if count > MAX_ELEMENTS:
        raise ExprError(f"{option} {name} has {count} numbers; at most {MAX_ELEMENTS} fit here.")


def parse_program(text: str) -> list[ast.stmt]:
    """The statements of `text`, each checked against the allowed syntax."""
    if len(text) > MAX_CHARS:
        raise ExprError(f"The expression is {len(text)} characters long; at most {MAX_CHARS}.")
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except SyntaxError as exc:
        raise ExprError(f"The expression has a syntax error: {exc.msg}.", hint=_HINT) from None
    if not tree.body:
        raise ExprError("The expression is empty.", hint=_HINT)
    for stmt in tree.body:
        _check_statement(stmt)
    return tree.body


def _check_statement(stmt: ast.stmt) -> None:
    if isinstance(stmt, ast.Assign):
        if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            raise ExprError("Only `name = expression` assignments are allowed.", hint=_HINT)
        _check_expression(stmt.value)
    elif isinstance(stmt, ast.Expr):
        _check_expression(stmt.value)
    else:
        raise ExprError(f"`{ast.unparse(stmt)}` is not an expression.", hint=_HINT)


def _check_expression(expr: ast.expr) -> None:
    for node in ast.walk(expr):
        if isinstance(node, (ast.operator, ast.unaryop, ast.expr_context, ast.keyword)):
            if isinstance(node, ast.keyword) and node.arg not in _KEYWORDS:
                raise ExprError(f"The keyword `{node.arg}=` is not allowed.", hint=_HINT)
            continue
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            continue
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            continue
        if isinstance(node, ast.Name):
            continue
        if isinstance(node, ast.Constant) and _is_number(node.value):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id not in _FUNCTIONS:
                raise ExprError(f"The function `{node.func.id}` is not allowed.", hint=_HINT)
            continue
        raise ExprError(f"`{ast.unparse(node)}` is not allowed in an expression.", hint=_HINT)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Names read as data rather than as what to differentiate, in the lesson's spelling (also
#: `x1`, `xs`, `x_data`, `targets`).
_DATA_NAMES = ("x", "y", "target", "label", "input")


def _is_data(name: str) -> bool:
    return name.split("_")[0].rstrip("0123456789").removesuffix("s") in _DATA_NAMES


def _missing_message(names: list[str]) -> tuple[str, str]:
    """The error and hint for names without a value: the lesson's data (`x`, `y`...) as
    constants, the rest as parameters; every one a parameter when that leaves none."""
    data = [n for n in names if _is_data(n)]
    params = [n for n in names if n not in data]
    if not params:
        data, params = [], names
    quoted = [f"`{n}`" for n in names]
    which = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
    verb = "has" if len(names) == 1 else "have"
    given = " ".join(f"--param {n}=1.0" for n in params)
    hint = f"Give {'it' if len(names) == 1 else 'each'} a value: {given}"
    hint += " (what to differentiate: leaves that get a gradient)"
    if data:
        hint += ", " + " ".join(f"--let {n}=2.0" for n in data) + " (constants)"
    return f"{which} {verb} no value.", hint + "."


def _functions() -> dict[str, Callable[..., Any]]:
    import torch
    import torch.nn.functional as F

    table: dict[str, Callable[..., Any]] = {n: getattr(torch, n) for n in _FUNCTIONS[:9]}
    for name in ("leaky_relu", "gelu", "softmax", "log_softmax", "mse_loss"):
        table[name] = getattr(F, name)
    for name in ("sum", "mean", "matmul", "mm", "dot"):
        table[name] = getattr(torch, name)
    return table


class _Evaluator:
    """Evaluates checked statements; every op result is named after its text in `ns`."""

    def __init__(self, ns: dict[str, Any]) -> None:
        self.ns = ns
        self.env: dict[str, Any] = dict(ns)
        self.functions = _functions()
        self.texts: list[str] = []
        self.args: list[dict[int, str]] = []

    def run(self, body: list[ast.stmt]) -> Any:
        self._check_names(body)
        result: Any = None
        for stmt in body:
            value = stmt.value if isinstance(stmt, (ast.Assign, ast.Expr)) else None
            if value is None:
                continue
            result = self.expression(value)
            if isinstance(stmt, ast.Assign):
                name = stmt.targets[0].id  # type: ignore[attr-defined]
                self.env[name] = self.ns[name] = result
        return result

    def _check_names(self, body: list[ast.stmt]) -> None:
        """Every name the statements read has a value (given, or assigned by an earlier
        statement); else one error naming them all, with the options that give them one."""
        known = set(self.env)
        missing: list[str] = []
        for stmt in body:
            value = stmt.value if isinstance(stmt, (ast.Assign, ast.Expr)) else None
            nodes = list(ast.walk(value)) if value is not None else []
            called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
            names = [n for n in nodes if isinstance(n, ast.Name) and id(n) not in called]
            for node in sorted(names, key=lambda n: (n.lineno, n.col_offset)):  # as written
                if node.id not in known and node.id not in missing:
                    missing.append(node.id)
            if isinstance(stmt, ast.Assign):
                known.add(stmt.targets[0].id)  # type: ignore[attr-defined]
        if missing:
            raise ExprError(*_missing_message(missing))

    def expression(self, root: ast.expr) -> Any:
        values: dict[int, Any] = {}
        stack: list[tuple[ast.expr, bool]] = [(root, False)]
        while stack:
            node, ready = stack.pop()
            children = _children(node)
            if not ready and children:
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(children))
                continue
            values[id(node)] = self.apply(node, [values[id(c)] for c in children])
        return values[id(root)]

    def apply(self, node: ast.expr, args: list[Any]) -> Any:
        import torch

        if isinstance(node, ast.Name):
            if node.id not in self.env:
                raise ExprError(
                    f"`{node.id}` has no value.", hint=f"Give it one: --let {node.id}=2.0"
                )
            return self.env[node.id]
        if isinstance(node, ast.Constant) and _is_number(node.value):
            return float(node.value)  # type: ignore[arg-type]
        if isinstance(node, ast.UnaryOp):
            out = -args[0] if isinstance(node.op, ast.USub) else args[0]
        elif isinstance(node, ast.BinOp):
            out = self._binop(node, args)
        else:
            out = self._call(node, args)
        if isinstance(out, torch.Tensor) and out.grad_fn is not None:
            self._name(node, out)
        return out

    def _binop(self, node: ast.BinOp, args: list[Any]) -> Any:
        import torch

        left, right = args
        if isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant):
            return torch.pow(_tensor(left), right)
        fn = getattr(torch, _BINOPS[type(node.op)])
        return fn(_tensor(left), _tensor(right))

    def _call(self, node: ast.expr, args: list[Any]) -> Any:
        call = node if isinstance(node, ast.Call) else None
        if call is None:
            raise ExprError(f"`{ast.unparse(node)}` is not allowed.", hint=_HINT)
        name = call.func.id  # type: ignore[attr-defined]
        kwargs = {k.arg: _literal(k.value) for k in call.keywords if k.arg}
        try:
            return self.functions[name](*(_tensor(a) for a in args), **kwargs)
        except (RuntimeError, TypeError, ValueError) as exc:
            msg = str(exc).strip().split("\n")[0]
            raise ExprError(f"`{ast.unparse(node)}` failed: {msg}", hint=_HINT) from None

    def _name(self, node: ast.expr, out: Any) -> None:
        self.ns[_TAG.format(len(self.texts))] = out
        self.texts.append(ast.unparse(node))
        operands = _children(node)
        self.args.append(
            {k: ast.unparse(c) for k, c in enumerate(operands) if not isinstance(c, ast.Constant)}
        )


def _children(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.Call):
        return list(node.args)
    return []


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and _is_number(node.value):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if _is_number(value):
            return -value if isinstance(node.op, ast.USub) else value  # type: ignore[operator]
    raise ExprError(f"`{ast.unparse(node)}` must be a number here.", hint=_HINT)


def _tensor(value: Any) -> Any:
    import torch

    return value if isinstance(value, torch.Tensor) else torch.tensor(float(value))


def evaluate(
    text: str,
    lets: dict[str, Any],
    params: dict[str, Any],
    grad_output: str | None = None,
) -> ExprGraph:
    """The graph of `text` with gradients for every `params` leaf (gradviz computes them).

    Example:
        >>> evaluate("(x*w - y)**2", {"x": 2, "y": 4}, {"w": 1.0}).graph.leaves[0].grad.data
        -8.0
    """
    import torch

    from graphviz_grad.capture import Recorder
    from graphviz_grad.diagnose import diagnose

    body = parse_program(text)
    both = sorted(set(lets) & set(params))
    if both:
        raise ExprError(f"`{both[0]}` is given both with --let and with --param; pick one.")
    ns: dict[str, Any] = {n: torch.tensor(v, dtype=torch.float32) for n, v in lets.items()}
    ns.update(
        {n: torch.tensor(v, dtype=torch.float32, requires_grad=True) for n, v in params.items()}
    )
    evaluator = _Evaluator(ns)
    with Recorder(namespaces=[ns]) as rec:
        root = evaluator.run(body)
        if not isinstance(root, torch.Tensor) or root.grad_fn is None:
            raise ExprError(
                "The expression does not depend on any --param, so it has no gradients.",
                hint="Give the variables to differentiate with --param, e.g. --param w=1.0",
            )
        graph = rec.trace(root, grad_output=grad_output)
    found = diagnose(graph, rec.calls, watch=rec.watch, namespace=ns)
    return _relabel(dataclasses.replace(graph, findings=found), evaluator)


def _relabel(graph: Graph, ev: _Evaluator) -> ExprGraph:
    """Move the `<expr k>` names into `Annotations`; keep the user's own names."""
    tags = {_TAG.format(k): k for k in range(len(ev.texts))}
    nodes, sources, arg_names = [], {}, {}
    for node in graph.nodes:
        hits = [tags[n] for n in node.names if n in tags]
        if hits:
            sources[node.id] = ev.texts[hits[0]]
            arg_names[node.id] = ev.args[hits[0]]
        names = tuple(n for n in node.names if n not in tags)
        if node.id == graph.root and not names:
            names = ("L",)
        # the line that made each op is gradviz's own evaluator, not the user's: drop it
        nodes.append(dataclasses.replace(node, names=names, file=None, line=None))
    findings = []
    for f in graph.findings:  # the checks named nodes by their tags: drop those
        message = f.message
        for tag in tags:
            message = message.replace(f" `{tag}`", "")
        findings.append(dataclasses.replace(f, message=message, file=None, line=None))
    graph = dataclasses.replace(graph, nodes=tuple(nodes), findings=tuple(findings))
    return ExprGraph(graph, Annotations(sources, arg_names))
