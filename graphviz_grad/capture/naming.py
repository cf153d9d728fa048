"""Names for tensors: the user's variables, module parameters, and items of small containers.

`Names.scan` looks at namespaces (a frame's locals, a script's globals) and remembers, for every
tensor it sees, the names it goes by. A leaf is found again by identity (`AccumulateGrad.variable
is w`), a non-leaf by its `(grad_fn, output_nr)`. The scanned objects are held for as long as the
`Names` lives, so no identity can be reused meanwhile.

A loop variable (`for param in model.parameters()`) still names the last item when the scan
happens; where a tensor also has a module-qualified name (`model.0.bias`), the loop variable is
not listed as its name.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import itertools
import linecache
import sys
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .fsdp import gathered, sharded

_MAX_ITEMS = 64

#: Modules that wrap the user's model and hold it in one attribute: their parameters are the
#: model's, named without the wrapper's prefix (`model.0.weight`, not `model.module.0.weight`).
WRAPPERS: dict[tuple[str, str], str] = {
    ("torch.nn.parallel.distributed", "DistributedDataParallel"): "module",
    ("torch.nn.parallel.data_parallel", "DataParallel"): "module",
    ("torch._dynamo.eval_frame", "OptimizedModule"): "_orig_mod",
}


def is_wrapper(module: Any) -> bool:
    """Whether `module` is DDP, DataParallel or `torch.compile`'s `OptimizedModule`."""
    kind = type(module)
    return (kind.__module__, kind.__name__) in WRAPPERS


def is_compile_wrapper(module: Any) -> bool:
    """Whether `module` is the `OptimizedModule` that `torch.compile(model)` returns."""
    kind = type(module)
    return (kind.__module__, kind.__name__) == ("torch._dynamo.eval_frame", "OptimizedModule")


def unwrap(module: Any) -> Any:
    """The user's model inside any number of wrappers (`DDP(torch.compile(model))`)."""
    while True:
        kind = type(module)
        attr = WRAPPERS.get((kind.__module__, kind.__name__))
        inner = getattr(module, attr, None) if attr is not None else None
        if inner is None:
            return module
        module = inner


@dataclasses.dataclass(frozen=True)
class Unregistered:
    """Layers a module keeps in a plain list, tuple or dict attribute (`self.layers = [...]`):
    `nn.Module` does not register them, so `module.parameters()`, `.to()`, `.train()` and
    `state_dict()` leave them out."""

    owner: torch.nn.Module
    path: str  # the attribute, from the top module: `layers`, `block.heads`
    kind: str  # "list", "tuple" or "dict"
    items: tuple[tuple[str, torch.nn.Module], ...]  # (`layers[0]`, the layer)


def unregistered(module: torch.nn.Module) -> list[Unregistered]:
    """The plain containers of layers in `module` and in its submodules (registered or not),
    outermost first. A container of modules without parameters (activations) is left out:
    leaving them unregistered changes nothing but `.train()`/`.eval()`; so are layers that are
    registered elsewhere in `module` (`self.order = [self.layers[1], self.layers[0]]`) or
    whose parameters all are."""
    found: list[Unregistered] = []
    todo: list[tuple[str, torch.nn.Module]] = [("", module)]
    seen: set[int] = set()
    registered = {id(m) for m in module.modules()}
    params: set[int] | None = None
    while todo and len(found) < _MAX_ITEMS:
        prefix, top = todo.pop(0)
        for sub_name, sub in top.named_modules():
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            at = f"{prefix}{sub_name}." if sub_name else prefix
            for attr, value in vars(sub).items():
                items = _layers_in(value)
                if attr.startswith("_") or not items:
                    continue
                labels = tuple(
                    (f"{at}{attr}[{key!r}]", m) for key, m in items if id(m) not in registered
                )
                if not any(True for _, m in labels for _ in m.parameters()):
                    continue
                params = {id(p) for p in module.parameters()} if params is None else params
                labels = tuple(
                    (label, m)
                    for label, m in labels
                    if any(id(p) not in params for p in m.parameters())
                )
                if not labels:  # their parameters are the model's own (tied weights)
                    continue
                kind = type(value).__name__ if isinstance(value, (list, tuple)) else "dict"
                found.append(Unregistered(sub, f"{at}{attr}", kind, labels))
                todo.extend((f"{label}.", m) for label, m in labels)
    return found


def _layers_in(value: Any) -> list[tuple[Any, torch.nn.Module]]:
    """The modules of a plain list, tuple or dict made only of modules, by index or key."""
    if isinstance(value, (list, tuple)) and 0 < len(value) <= _MAX_ITEMS:
        pairs: list[tuple[Any, Any]] = list(enumerate(value))
    elif isinstance(value, dict) and 0 < len(value) <= _MAX_ITEMS:
        pairs = list(value.items())
    else:
        return []
    if all(isinstance(m, torch.nn.Module) and isinstance(k, (int, str)) for k, m in pairs):
        return pairs
    return []


#: Whether a class is the script's own (or a library's outside PyTorch), by class.
_own_classes: dict[type, bool] = {}


def _is_user() -> Any:
    """`USER_FRAMES.is_user` (imported late: the forward recorder imports this module)."""
    from ._forward import USER_FRAMES

    return USER_FRAMES.is_user


def own_object(value: Any, is_user: Any) -> bool:
    """An instance of a class the script (or a library outside PyTorch) defines, with a
    `__dict__`: a trainer, a logger, a model's own attributes. `is_user(path)` says whether a
    file is the user's (`USER_FRAMES.is_user`). Answered once per class."""
    kind = type(value)
    known = _own_classes.get(kind)
    if known is None:
        known = _own_class(value, is_user)
        if len(_own_classes) < 4096:
            _own_classes[kind] = known
    return known


def _own_class(value: Any, is_user: Any) -> bool:
    kind = type(value)
    if kind.__module__ in ("builtins", "types") or not hasattr(value, "__dict__"):
        return False
    if isinstance(value, type) or callable(value) and not isinstance(value, torch.nn.Module):
        return False
    if kind.__module__ == "__main__":  # the script's own class
        return True
    module = sys.modules.get(kind.__module__)
    path = getattr(module, "__file__", None)
    return bool(path) and is_user(path)


@dataclasses.dataclass(frozen=True)
class _Layout:
    """What a model holds, as `Names` names it: its layers (`named_modules`, the model itself
    left out) and its parameters then its buffers (`named_parameters`, `named_buffers`), every
    alias included, with the names relative to the model; and the `shape` they were read from."""

    shape: tuple[Any, ...] | None
    layers: tuple[tuple[torch.nn.Module, str], ...]
    tensors: tuple[tuple[str, torch.Tensor], ...]
    #: A layer is FSDP2's (`fsdp.sharded`): its parameters' leaves are looked up (`gathered`).
    sharded: bool = False


#: Each model's `_Layout`, read again only when its `shape` changed: a training loop names the
#: same model at every backward call, and walking it through `named_modules`,
#: `named_parameters` and `named_buffers` each time cost more than the rest of the naming.
_LAYOUTS: weakref.WeakKeyDictionary[torch.nn.Module, _Layout] = weakref.WeakKeyDictionary()

_WALKS = ("named_modules", "named_parameters", "named_buffers", "_named_members")
#: Classes that walk their layers as `nn.Module` does (none of `_WALKS` overridden).
_PLAIN_KINDS: set[type] = set()


def _plain(kind: type) -> bool:
    if kind in _PLAIN_KINDS:
        return True
    if any(getattr(kind, walk, None) is not getattr(torch.nn.Module, walk) for walk in _WALKS):
        return False
    _PLAIN_KINDS.add(kind)
    return True


def _shape(module: torch.nn.Module) -> tuple[Any, ...] | None:
    """Every layer, parameter and buffer of `module` by key and identity, in the order of the
    registries `named_modules` and `_named_members` read: equal only if they would give the same
    names for the same objects. None where a class walks its layers its own way (it overrides
    one of those methods): then it is read every time."""
    found: list[Any] = []
    stack = [module]
    seen = 0
    while stack:
        m = stack.pop()
        if type(m) not in _PLAIN_KINDS and not _plain(type(m)):
            return None
        d = m.__dict__
        layers, params, buffers = d.get("_modules"), d.get("_parameters"), d.get("_buffers")
        if type(layers) is not dict or type(params) is not dict or type(buffers) is not dict:
            return None
        found.append(id(m))
        found.append(id(type(m)))  # `fully_shard` changes a layer's class
        found.append(tuple(layers))
        found.append(tuple(map(id, layers.values())))
        found.append(tuple(params))
        found.append(tuple(map(id, params.values())))
        found.append(tuple(buffers))
        found.append(tuple(map(id, buffers.values())))
        seen += 1
        if seen > _MAX_LAYERS:
            return None
        stack.extend(v for v in reversed(layers.values()) if v is not None)
    return tuple(found)


#: Models with more layers than this are read every time (their shape costs as much).
_MAX_LAYERS = 4096


def _layout(module: torch.nn.Module) -> _Layout:
    """`module`'s `_Layout`: the one read before while its shape is the same, else read now."""
    shape = _shape(module)
    try:
        known = _LAYOUTS.get(module)
    except TypeError:  # not weakly referenceable, or unhashable: read every time
        known = None
    if known is not None and shape is not None and known.shape == shape:
        return known
    layers = tuple(
        (sub, sub_name)
        for sub_name, sub in module.named_modules(remove_duplicate=False)
        if sub_name
    )
    tensors = (
        *module.named_parameters(remove_duplicate=False),
        *module.named_buffers(remove_duplicate=False),
    )
    layout = _Layout(shape, layers, tuple(tensors), sharded([module, *(s for s, _ in layers)]))
    if shape is not None:
        with contextlib.suppress(TypeError):  # not weakly referenceable, or unhashable
            _LAYOUTS[module] = layout
    return layout


class Names:
    """Variable names by tensor identity, in the order they were first seen."""

    def __init__(self) -> None:
        self._by_tensor: dict[int, list[str]] = {}
        self._by_node: dict[tuple[int, int], list[str]] = {}
        self._modules: dict[int, str] = {}
        self._keep: list[Any] = []
        self._qualified: set[str] = set()
        self._loop_names: set[str] = set()
        #: Names of items of plain lists and dicts (`decay[0]`, an optimizer's parameter group).
        self._items: set[str] = set()
        #: Models whose plain containers of layers were not looked into yet.
        self._models: list[tuple[str, torch.nn.Module]] = []

    def scan(
        self, namespace: Mapping[str, Any], owned: list[tuple[str, Any]] | None = None
    ) -> None:
        """Record the tensors, modules and small containers of tensors in `namespace`; and
        those that objects of the script's own classes hold (`self.model` in a trainer's
        method), after the namespace's own names, or into `owned` for the caller to scan last."""
        wrapped: list[tuple[str, torch.nn.Module]] = []
        objects: list[tuple[str, Any]] = [] if owned is None else owned
        is_user = _is_user()
        models: set[int] = set()
        filename = namespace.get("__file__")
        if isinstance(filename, str):
            self._loop_names |= loop_targets(filename)
        for name, value in list(namespace.items()):
            if name.startswith("__") or name == "_":  # `_`: thrown away (`_, loss = model(x)`)
                continue
            if isinstance(value, torch.Tensor):
                self._add(name, value)
            elif isinstance(value, torch.nn.Module):
                # one name per model object in a namespace: nanoGPT's `raw_model = model` would
                # give every parameter a second name (and a tied weight four)
                if id(value) in models:
                    continue
                models.add(id(value))
                if is_wrapper(value):
                    wrapped.append((name, value))
                else:
                    self._add_module(name, value)
            elif isinstance(value, (list, tuple)) and len(value) <= _MAX_ITEMS:
                for i, item in enumerate(value):
                    if isinstance(item, torch.Tensor):
                        self._items.add(f"{name}[{i}]")
                        self._add(f"{name}[{i}]", item)
            elif isinstance(value, dict) and len(value) <= _MAX_ITEMS:
                for key, item in value.items():
                    if isinstance(item, torch.Tensor) and isinstance(key, (str, int)):
                        self._items.add(f"{name}[{key!r}]")
                        self._add(f"{name}[{key!r}]", item)
            elif own_object(value, is_user):
                objects.append((name, value))
        for name, value in wrapped:  # after the model itself, whose own name comes first
            self._add_module(name, unwrap(value))
        if owned is None:
            self.scan_objects(objects)

    def scan_objects(self, objects: Iterable[tuple[str, Any]]) -> None:
        """The tensors and modules held in the attributes of the script's own objects (a
        trainer's `self.model`, `self.w`), one level deep, `_MAX_ITEMS` of each at most."""
        for name, obj in objects:
            for attr, value in itertools.islice(vars(obj).items(), _MAX_ITEMS):
                if attr.startswith("_"):
                    continue
                if isinstance(value, torch.Tensor):
                    self._add(f"{name}.{attr}", value)
                elif isinstance(value, torch.nn.Module):
                    self._add_module(f"{name}.{attr}", unwrap(value))

    def scan_all(self, namespaces: Iterable[Mapping[str, Any]]) -> None:
        """`scan` each namespace in order, the same one once (a script's top-level frame has
        the same dict for its locals, its globals and its namespace)."""
        seen: set[int] = set()
        owned: list[tuple[str, Any]] = []
        for ns in namespaces:
            if id(ns) not in seen:
                seen.add(id(ns))
                self.scan(ns, owned)
        self.scan_objects(owned)  # last: a model's own name (`model.0.weight`) comes first

    def _add(self, name: str, t: torch.Tensor) -> None:
        self._keep.append(t)
        node = t.grad_fn
        if node is not None:
            self._keep.append(node)
            _append(self._by_node.setdefault((id(node), t.output_nr), []), name)
        else:
            _append(self._by_tensor.setdefault(id(t), []), name)

    def _add_module(self, name: str, module: torch.nn.Module) -> None:
        self._keep.append(module)
        self._modules.setdefault(id(module), name)
        layout = _layout(module)
        # its layers too: one called from a method other than `forward` (`model.loss(x)`
        # calling `self.lstm`) is the outermost module running, and is named `model.lstm`
        for sub, sub_name in layout.layers:
            self._modules.setdefault(id(sub), f"{name}.{sub_name}")
        # FSDP2: the graph's leaf is a gathered copy of the shard
        full = gathered(module) if layout.sharded else None
        # every buffer too: one that takes no gradient is an op's input (a BatchNorm's
        # `running_mean`), drawn under its name
        for tname, t in layout.tensors:
            qualified = f"{name}.{tname}"
            self._qualified.add(qualified)
            self._add(qualified, t)
            if full:
                leaf = full.get(id(t))
                if leaf is not None:
                    self._add(qualified, leaf)
        self._models.append((name, module))

    def _add_unregistered(self) -> None:
        """Name the parameters of layers kept in plain lists and dicts (`model.layers[0].weight`,
        see `unregistered`), once, when a leaf has no name: a walk over every attribute of
        every module is too slow to make at every backward call of a well-built model."""
        models, self._models = self._models, []
        for name, module in models:
            for layer in unregistered(module):
                for label, sub in layer.items:
                    for pname, p in sub.named_parameters(remove_duplicate=False):
                        self._qualified.add(f"{name}.{label}.{pname}")
                        self._add(f"{name}.{label}.{pname}", p)

    def for_leaf(self, variable: torch.Tensor) -> tuple[str, ...]:
        names = self._by_tensor.get(id(variable))
        if names is None and self._models:
            self._add_unregistered()
            names = self._by_tensor.get(id(variable))
        return self._shown(names or ())

    def for_output(self, node: Any, output_nr: int) -> tuple[str, ...]:
        return self._shown(self._by_node.get((id(node), output_nr), ()))

    def _shown(self, names: Iterable[str]) -> tuple[str, ...]:
        """`names` without loop variables and items of plain lists (`decay[0]`, a parameter
        group built by hand) when a module-qualified name is among them."""
        names = tuple(names)
        if (self._loop_names or self._items) and any(n in self._qualified for n in names):
            return tuple(n for n in names if n not in self._loop_names and n not in self._items)
        return names

    def module_name(self, module: Any) -> str | None:
        """The variable a module is bound to, if it was seen."""
        return self._modules.get(id(module))

    def tensors(self) -> list[tuple[str, torch.Tensor]]:
        """Every (first name, tensor) pair seen, for listing root candidates."""
        seen: set[int] = set()
        found = []
        for t in self._keep:
            if isinstance(t, torch.Tensor) and id(t) not in seen:
                seen.add(id(t))
                found.append(t)
        out = []
        for t in found:
            names = (
                self.for_output(t.grad_fn, t.output_nr)
                if t.grad_fn is not None
                else self.for_leaf(t)
            )
            if names:
                out.append((names[0], t))
        return out


@functools.lru_cache(maxsize=64)
def loop_targets(filename: str) -> frozenset[str]:
    """Names bound by `for` loops and comprehensions anywhere in a file (a notebook's cells
    are read from `linecache`, where the runner put them); empty when it cannot be parsed."""
    lines = linecache.getlines(filename)
    if filename.endswith(".ipynb"):
        cell = f"{filename}[cell "
        lines = [
            line
            for key in list(linecache.cache)
            if key.startswith(cell)
            for line in [*linecache.getlines(key), "\n"]
        ]
    try:
        tree = ast.parse("".join(lines))
    except (SyntaxError, ValueError):
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            found.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
    return frozenset(found)


def _append(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)
