"""Checks on the script's own tensors and modules at the end of the run (they are still alive).

[unused-param]: tensors that require grad and that the root does not depend on.
[graph-retained]: a tensor whose graph holds the graphs of earlier backward calls.
"""

from __future__ import annotations

import ast
import dataclasses
import linecache
import re
import weakref
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import torch

from ..capture import gathered, saved_attrs, unregistered, unwrap
from ..capture.naming import own_object
from ..capture.recorder import CREATE_GRAPH_KEY
from ..model import CallInfo, Finding, Graph, display_path
from ._common import at_line, listing, outside_optimizers, plural, source_line

#: Nodes walked at most per retained graph.
WALK_LIMIT = 500_000


def _modules(namespace: Mapping[str, Any]) -> list[tuple[str, torch.nn.Module]]:
    seen: set[int] = set()
    found = []
    for name, value in namespace.items():
        if (
            isinstance(value, torch.nn.Module)
            and not name.startswith("_")
            and id(value) not in seen
        ):
            seen.add(id(value))
            found.append((name, value))
    return found


def module_params(namespace: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The parameters of the script's modules by their names in `steps` (`model.fc.weight`)."""
    found: dict[str, torch.Tensor] = {}
    for name, module in _modules(namespace):
        for pname, p in module.named_parameters():
            found.setdefault(f"{name}.{pname}", p)
    return found


def _was_called(root: torch.nn.Module, prefix: str, called: Any, grad_called: Any) -> bool | None:
    """Whether the module owning parameter `prefix.x`, or the nearest module above it that
    was called, ran with grad enabled: None if it ran only without (`torch.no_grad()`: an
    inference model, a frozen backbone), False if no such module was called."""
    chain: list[Any] = [root]
    for part in prefix.split(".")[:-1]:
        module = getattr(chain[-1], part, None)
        if module is None:
            break
        chain.append(module)
    for module in reversed(chain):
        if module in called:
            return True if grad_called is None or module in grad_called else None
    return False


def _swapped(root: torch.nn.Module, name: str, p: Any, call_params: Any) -> bool:
    """Whether parameter `name` of `root` was another tensor when its module first ran (the
    stateless call of `torch.func.functional_call(model, params, x)`): not its to be used."""
    owner: Any = root
    for part in name.split(".")[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return False
    seen = call_params.get(owner) if call_params is not None else None
    return seen is not None and id(p) not in seen


def unused(
    graph: Graph,
    namespace: Mapping[str, Any],
    leaves: Iterable[weakref.ref[torch.Tensor]],
    called: Any,
    used: Any,
    free: bool = True,
    optimized: Mapping[int, Any] | None = None,
    reached: Mapping[int, Any] | None = None,
    grad_called: Any = None,
    last_use: Mapping[int, int] | None = None,
    stepped: Mapping[int, Any] | None = None,
    call_params: Any = None,
    first_use: Mapping[int, tuple[str | None, int | None]] | None = None,
    leaf_cuts: Mapping[int, tuple[Any, Any]] | None = None,
    reached_at: Mapping[int, tuple[tuple[str | None, int | None], ...] | None] | None = None,
    seen_to_end: bool = True,
) -> list[Finding]:
    """[unused-param]: parameters and script tensors that need a gradient and get none.

    Script tensors are judged by object, not by name, and only when `free` (the graph shown is
    the run's last call, or gradviz's own pass): the namespace at the end of the run says
    nothing true about an earlier call, whose names may since have been rebound. When
    optimizers ran (`optimized`: the parameters they step, by id), a module parameter in none
    of them is not meant to get a gradient (a DQN's target network) and is not reported, nor is
    one that was another tensor when its module ran (`call_params`: `functional_call`). One
    that was in the graph of another backward call (`reached`) is used conditionally (mixture of
    experts routing, LayerDrop): an `info`. One whose module ran only under `torch.no_grad()`
    (`grad_called` lacks it: an inference model, a frozen backbone) is not reported, unless an
    optimizer steps that parameter. A module none of whose parameters is in the call shown,
    reached only by backward calls made at other lines (`reached_at`), is another model with a
    loss of its own (two models trained side by side, an actor and its critic): not reported.
    A module never called is only reported when the run was watched to its end (`seen_to_end`:
    `--call N` stops watching after call N, and a model made later, in `model`, was unseen)."""
    in_graph = {id(t) for r in leaves if (t := r()) is not None}
    stepped = stepped or {}
    seen = set(in_graph)
    found = []
    reached = reached or {}
    for name, module in _modules(namespace):
        groups: dict[bool, list[str]] = {True: [], False: []}
        elsewhere: list[str] = []
        elsewhere_ids: list[int] = []
        full = gathered(module)  # FSDP2: the graph holds a gathered copy of each shard
        for pname, p in module.named_parameters():
            if full and (leaf := full.get(id(p))) is not None and id(leaf) in in_graph:
                seen.add(id(p))
                continue
            if id(p) in stepped:  # `stepped_unreached` says more about it
                continue
            if _swapped(module, pname, p, call_params):
                seen.add(id(p))
                continue
            if p.requires_grad and id(p) not in seen and not outside_optimizers(p, optimized):
                seen.add(id(p))
                state = _was_called(module, pname, called, grad_called)
                # ran only under no_grad (state None): a problem only if an optimizer trains it
                if state is None:
                    if not (optimized and optimized.get(id(p)) is p):
                        continue
                    state = True
                if reached.get(id(p)) is p:
                    elsewhere.append(f"{name}.{pname}")
                    elsewhere_ids.append(id(p))
                else:
                    groups[state].append(f"{name}.{pname}")
            seen.add(id(p))
        for was_called, names in groups.items():
            # "never called" needs the whole run: `--call N` stops watching after call N
            if names and (was_called or seen_to_end):
                every = len(names) == sum(1 for p in module.parameters() if p.requires_grad)
                finding = _module_finding(name, module, names, was_called, called, every)
                if not seen_to_end:
                    finding = dataclasses.replace(
                        finding,
                        message=f"{finding.message} gradviz stopped watching after this call "
                        "(--call), so it cannot tell whether a later backward call trains "
                        f"`{name}`.",
                    )
                found.append(finding)
        if elsewhere and not _own_loss(module, in_graph, elsewhere_ids, reached_at, graph):
            found.append(_elsewhere_finding(name, module, elsewhere))
    if free:
        labels = {name for n in graph.leaves for name in n.names}
        # a tensor last used outside the forward pass of the call shown was not meant for it
        # (`b = x + z` after the tutorial's backward, to show that `b` requires grad)
        other = {
            i for i, n in (last_use or {}).items() if graph.call is not None and n != graph.call - 1
        }
        found.extend(
            _free_tensors(
                namespace, seen, used, labels, other, graph, first_use or {}, leaf_cuts or {}
            )
        )
    return found


def no_backward(watch: Any, calls: Sequence[Any]) -> list[Finding]:
    """[no-backward]: the optimizer stepped, and the script never made a backward call: no
    parameter ever had a gradient, so no step changed anything (`loss.backward()` forgotten)."""
    if calls or watch.backward_calls or not watch.blind_steps or watch.blind_where is None:
        return []
    file, line = watch.blind_where
    ran = f"`optimizer.step()`{at_line(line)} ran {plural(watch.blind_steps, 'time')}"
    message = (
        f"{ran}, but the script never called `backward()`: no parameter got a gradient, so "
        "no step changed anything and the model does not train. The gradients shown are "
        "gradviz's own, computed from the root after the script ended."
    )
    hint = (
        "Call `loss.backward()` after computing the loss and before `optimizer.step()`: "
        "`optimizer.zero_grad()`, forward, `loss.backward()`, `optimizer.step()`."
    )
    return [Finding("no-backward", "error", message, display_path(file), line, (), hint)]


def stepped_unreached(watch: Any, namespace: Mapping[str, Any]) -> list[Finding]:
    """[unused-param]: an optimizer stepped after backward calls, and no backward call ever
    reached the parameters it updates: it holds another model's parameters, or layers that
    `forward` has replaced since (`self.fc = nn.Linear(...)` in `forward`)."""
    kept = [p for p in watch.unreached_params.values() if watch.reached.get(id(p)) is not p]
    if not watch.unreached_steps or not kept or watch.unreached_where is None:
        return []
    owners = {
        id(p): (name, m, pname)
        for name, m in _modules(namespace)
        for pname, p in m.named_parameters(remove_duplicate=False)
    }
    found = [owners[id(p)] for p in kept if id(p) in owners]
    named = [f"{name}.{pname}" for name, _, pname in found]
    ran_forward = [
        name for name, m, pname in found if _was_called(m, pname, watch.called, watch.grad_called)
    ]
    file, line = watch.unreached_where
    count = watch.unreached_count
    ran = f"`optimizer.step()`{at_line(line)} ran {plural(watch.unreached_steps, 'time')}"
    if named:
        what = f"the parameters it updates ({listing(named)}"
        what += f" of {count})" if count > len(named) else ")"
        why = "The loss is computed from other parameters."
        if ran_forward:  # the model ran: something on the way to the loss cut it off
            why = (
                f"`{ran_forward[0]}` ran in the forward pass, but the loss does not depend on "
                "it: a `.detach()`, `.item()` or `torch.no_grad()` on the way cuts the graph "
                "(a `cut` finding names it when gradviz saw it)."
            )
    else:
        what = f"the {plural(count, 'parameter')} it updates"
        why = (
            "None of them belongs to a module of the script any more: a layer made again in "
            "`forward` (`self.fc = nn.Linear(...)`) replaces the one the optimizer took."
        )
    copies = [] if named else _copies_of(kept, namespace)
    if copies:
        why = (
            f"They are copies of {listing(copies)} (`p.clone()`, `copy.deepcopy(model)`, "
            "`torch.tensor(p)` make new tensors): the optimizer updates the copies, the loss "
            "is computed from the originals."
        )
    message = f"{ran}, but no backward call reached {what}, so the update does nothing. {why}"
    hint = (
        "Create the optimizer from the parameters the loss is computed from "
        "(`torch.optim.SGD(model.parameters(), ...)`, after the model), and create layers in "
        "`__init__`, not in `forward`."
    )
    if copies:
        hint = (
            "Give the optimizer the parameters themselves, not copies: "
            "`torch.optim.SGD(model.parameters(), ...)`."
        )
    if named and ran_forward:
        hint = (
            f"Make the loss depend on `{ran_forward[0]}`'s output: drop the `.detach()`, "
            "`.item()` or `torch.no_grad()` between them (`torch.tensor(loss.item())` makes a "
            "new tensor with no graph)."
        )
    return [Finding("unused-param", "warning", message, display_path(file), line, (), hint)]


def _copies_of(kept: Sequence[torch.Tensor], namespace: Mapping[str, Any]) -> list[str]:
    """The module parameters that tensors an optimizer holds are copies of: another tensor of
    the same shape, dtype, device and values (no gradient reached the copy, so no step moved
    it: it still equals what it was copied from, unless that was trained meanwhile)."""
    params = [
        (f"{name}.{pname}", p)
        for name, m in _modules(namespace)
        for pname, p in m.named_parameters()
    ]
    found = []
    for t in kept:
        for label, p in params:
            if p is t or p.shape != t.shape or p.dtype != t.dtype or p.device != t.device:
                continue
            if torch.equal(p.detach(), t.detach()):
                found.append(label)
                break
    return found


#: A plain container of layers nothing updates: (model name, `Unregistered`, its parameters
#: by full name), as `untrained` finds them.
Untrained = tuple[str, Any, list[tuple[str, torch.Tensor]]]


def unregistered_layers(watch: Any, untrained: Iterable[Untrained]) -> list[Finding]:
    """[params-frozen]: layers a model keeps in a plain list or dict (`self.layers = [...]`,
    not `nn.ModuleList`) whose parameters backward reached and nothing updates (`untrained`):
    an optimizer made from `model.parameters()` leaves them out. One finding per attribute of a
    class (every block of a model that repeats one is listed in it)."""
    groups: dict[tuple[type, str], list[tuple[str, Any, int]]] = {}
    for name, layer, params in untrained:
        if any(watch.reached.get(id(p)) is p or p.grad is not None for _, p in params):
            key = (type(layer.owner), layer.path.rsplit(".", 1)[-1])
            groups.setdefault(key, []).append((name, layer, len(params)))
    return [_unregistered_finding(layers) for layers in groups.values()]


def untrained(
    watch: Any, namespace: Mapping[str, Any], calls: Sequence[CallInfo]
) -> list[Untrained]:
    """(model name, `Unregistered`, its parameters by full name) for each plain container of
    layers whose parameters no optimizer steps and whose values did not change over the calls:
    `unregistered_layers` reports them, and `params-frozen` and `grad-accumulates` leave their
    parameters to it.
    Layers that train themselves (each with its own optimizer, as in a forward-forward
    network) or that a loop over the layers updates by hand are not a mistake."""
    optimized = getattr(watch, "optimized", None) or {}
    values: dict[str, list[Any]] = {}
    for call in calls:
        for step in call.leaves:
            values.setdefault(step.name, []).append(step.value)
    found: list[Untrained] = []
    for name, model in _modules(namespace):
        for layer in unregistered(unwrap(model)):
            params: list[tuple[str, torch.Tensor]] = [
                (f"{name}.{label}.{pname}", p)
                for label, sub in layer.items
                for pname, p in sub.named_parameters()
            ]
            if any(optimized.get(id(p)) is p for _, p in params):
                continue
            if any(_moved(values.get(label, ())) for label, _ in params):
                continue
            found.append((name, layer, params))
    return found


def _moved(values: Sequence[Any]) -> bool:
    """Whether a leaf's value (its summary at each call) changed between calls."""
    known = [v for v in values if v is not None]
    return any(v != known[0] for v in known[1:])


def _unregistered_finding(layers: list[tuple[str, Any, int]]) -> Finding:
    name, layer, _ = layers[0]
    cls = type(layer.owner).__name__
    kinds = ", ".join(dict.fromkeys(type(m).__name__ for _, m in layer.items))
    count = sum(n for _, _, n in layers)
    attr = layer.path.rsplit(".", 1)[-1]
    paths = [f"{n}.{other.path}" for n, other, _ in layers]
    labels = [f"{n}.{label}" for n, other, _ in layers for label, _ in other.items]
    one = len(layers) == 1
    message = (
        f"{listing(paths, limit=3)} {'is a plain' if one else 'are plain'} {layer.kind}"
        f"{'' if one else 's'}, so `{cls}` does not register the layers in "
        f"{'it' if one else 'them'} ({listing(labels, limit=3)}: {kinds}). Their "
        f"{plural(count, 'parameter')} get gradients but are not in `{name}.parameters()`: an "
        f"optimizer made from it never updates them, `{name}.zero_grad()` never clears their "
        f"gradients, and `{name}.to(device)`, `.eval()` and `state_dict()` leave them out."
    )
    container = "nn.ModuleDict({...})" if layer.kind == "dict" else "nn.ModuleList([...])"
    hint = (
        f"Keep them in `{container.split('(')[0]}`: `self.{attr} = {container}` in "
        f"`{cls}.__init__` (it indexes and iterates as the {layer.kind} does), so "
        f"`{name}.parameters()` includes them."
    )
    file, line = _assigned_at(type(layer.owner), attr)
    return Finding("params-frozen", "warning", message, file, line, (), hint)


def _assigned_at(cls: type, attr: str) -> tuple[str | None, int | None]:
    """The file and line of `self.<attr> = ...` in the `__init__` of `cls` or a base class."""
    pattern = re.compile(rf"^\s*self\.{re.escape(attr)}\s*(:[^=]*)?=(?!=)")
    for klass in cls.__mro__:
        code = getattr(klass.__dict__.get("__init__"), "__code__", None)
        if code is None:
            continue
        lines = [n for _, _, n in code.co_lines() if n is not None]
        for n in range(code.co_firstlineno, max(lines, default=0) + 1):
            if pattern.match(linecache.getline(code.co_filename, n)):
                return display_path(code.co_filename), n
    return None, None


def _module_finding(
    name: str,
    module: torch.nn.Module,
    names: list[str],
    was_called: bool,
    called: Any,
    every: bool = False,
) -> Finding:
    """`every`: none of the module's trainable parameters gets a gradient (its output never
    reaches the root: a cut on the way), rather than a few (a sub-layer never applied)."""
    kind = type(module).__name__
    count = plural(len(names), "parameter")
    get, them = ("gets", "it") if len(names) == 1 else ("get", "them")
    if was_called:
        file, line = called.get(module, (None, None))
        message = (
            f"{count} of `{name}` ({kind}) {get} no gradient: {listing(names)}. `{name}` ran in "
            f"the forward pass, but the root does not depend on {them}."
        )
        hint = "Use them in forward (a layer defined but never applied?), or freeze them."
        idle = _idle_owners(name, module, names, called)
        if idle and not every:
            message = (
                f"{count} of `{name}` ({kind}) {get} no gradient: {listing(names)}. "
                f"{'Its module' if len(idle) == 1 else 'Their modules'} ({listing(idle, 3)}) "
                "never ran, though a module that holds them did: a module applied only "
                "sometimes (an expert no token was routed to), or one defined and never applied."
            )
            hint = (
                "An expert the router never picks gets no gradient: balance the routing (an "
                "auxiliary load-balancing loss, a capacity per expert). A layer defined and "
                "never applied: use it in forward, or remove it."
            )
        if every:
            hint = (
                f"Make the loss depend on `{name}`'s output: a `.detach()`, `.item()` or "
                "`torch.no_grad()` on the way cuts the graph (a `cut` finding names it when "
                "gradviz saw it); or freeze them if they should not train."
            )
        return Finding("unused-param", "warning", message, display_path(file), line, (), hint)
    message = (
        f"{count} of `{name}` ({kind}) {get} no gradient: `{name}` was never called (e.g. a "
        "template layer that another module copies)."
    )
    hint = "Nothing to do if it is only a template; otherwise call it in the forward pass."
    return Finding("unused-param", "info", message, None, None, (), hint)


def _idle_owners(name: str, module: torch.nn.Module, names: list[str], called: Any) -> list[str]:
    """The modules that own `names` (`model.experts.2` for `model.experts.2.weight`), when
    none of them ever ran (a ModuleDict's or ModuleList's member a router never picked); else
    empty."""
    owners: dict[str, Any] = {}
    containers = (torch.nn.ModuleList, torch.nn.ModuleDict)
    for full in names:
        path = full[len(name) + 1 :].rpartition(".")[0] if full.startswith(name + ".") else ""
        try:
            parts = path.split(".") if path else []
            # up to the outermost module that never ran (`experts.2`, not its `experts.2.0`)
            while len(parts) > 1:
                parent = module.get_submodule(".".join(parts[:-1]))
                if parent in called or isinstance(parent, containers):
                    break
                parts = parts[:-1]
            path = ".".join(parts)
            owners.setdefault(f"{name}.{path}" if path else name, module.get_submodule(path))
        except AttributeError:
            return []
    if any(sub in called for sub in owners.values()):
        return []
    return list(owners)


def _own_loss(
    module: torch.nn.Module,
    in_graph: Collection[int],
    ids: list[int],
    reached_at: Mapping[int, tuple[tuple[str | None, int | None], ...] | None] | None,
    graph: Graph,
) -> bool:
    """Whether `module` is trained by backward calls of its own: none of its parameters is in
    the call shown, and the calls that reached them (`ids`) were all made at other lines."""
    if reached_at is None or any(id(p) in in_graph for p in module.parameters()):
        return False
    here = (graph.call_file, graph.call_line)
    for pid in ids:
        sites = reached_at.get(pid)
        if sites is None or any((display_path(f), line) == here for f, line in sites):
            return False
    return True


def _elsewhere_finding(name: str, module: torch.nn.Module, names: list[str]) -> Finding:
    count = plural(len(names), "parameter")
    get, they = ("gets", "It is") if len(names) == 1 else ("get", "They are")
    message = (
        f"{count} of `{name}` ({type(module).__name__}) {get} no gradient in this backward call, "
        f"but did in another: {listing(names)}. {they} used in some calls only (a GAN's "
        "generator in the discriminator's step, an expert the router did not choose, a block "
        "LayerDrop skipped)."
    )
    hint = "Nothing to do if they are used conditionally; the other calls train them."
    return Finding("unused-param", "info", message, None, None, (), hint)


def _free_tensors(
    namespace: Mapping[str, Any],
    seen: set[int],
    used: Any,
    labels: set[str],
    elsewhere: Collection[int],
    graph: Graph,
    first_use: Mapping[int, tuple[str | None, int | None]],
    leaf_cuts: Mapping[int, tuple[Any, Any]],
) -> list[Finding]:
    """Script tensors that require grad, are in no graph shown, and got no gradient from any
    call (a `.grad` filled by another backward call means it was used there); not those used
    only outside the forward pass of the call shown (`elsewhere`, by id). One that fed other
    tensors is placed on the line of the first op it fed (`first_use`, by id); one used only
    through a cut (`w.detach()` into NumPy, an op under `no_grad`) on the cut's line
    (`leaf_cuts`, by id: a weak reference and the `Cut`)."""
    source = graph.grad_source
    found = []
    for name, t in namespace.items():
        if name.startswith("_") or not isinstance(t, torch.Tensor) or id(t) in seen:
            continue
        if not t.requires_grad or t.grad_fn is not None or t.grad is not None:
            continue
        if name in labels:  # the name labels a leaf of this graph: another tensor then
            continue
        seen.add(id(t))
        feeds = used.get(id(t)) is t
        if feeds and id(t) in elsewhere:
            continue
        gets = (
            "it gets no gradient (`torch.autograd.grad` gives None for it)"
            if source == "autograd.grad"
            else f"`{name}.grad` stays None"
        )
        file, line = first_use.get(id(t), (None, None)) if feeds else (None, None)
        message = f"`{name}` requires grad but the root does not depend on it, so {gets}" + (
            f" although it feeds other tensors{f' (first at line {line})' if line else ''}."
            if feeds
            else "."
        )
        hint = (
            "Check that the loss is computed from it (a `.detach()`, `.item()` or `no_grad` "
            "on the way cuts the graph)."
        )
        entry = None if feeds else leaf_cuts.get(id(t))
        cut = entry[1] if entry is not None and entry[0]() is t else None
        # set to require grad after an op read it: that op may be noted as feeding from it
        # (its record is completed at the next op), though it tracked nothing
        late = None if cut is not None else _required_late(namespace, name)
        if cut is not None and cut.line is not None:
            file, line = cut.file, cut.line
            message, hint = _cut_only(name, gets, cut)
        if late is not None:
            file, line = namespace.get("__file__"), late[0]
            message = (
                f"`{name}` requires grad but the root does not depend on it, so {gets}: it was "
                f"made to require grad at line {line}, after line {late[1]} had used it "
                f"(`{late[2]}`), and the ops that ran before do not track it."
            )
            hint = (
                f"Make `{name}` require grad before the forward pass: `{name}.requires_grad_()` "
                f"before line {late[1]}."
            )
        found.append(
            Finding(
                "unused-param",
                "warning" if feeds or cut is not None or late is not None else "info",
                message,
                display_path(file) if file else None,
                line,
                hint=hint,
            )
        )
    return found


def _required_late(namespace: Mapping[str, Any], name: str) -> tuple[int, int, str] | None:
    """(the line that makes `name` require grad, an earlier line of the same function that
    passed it to a call, that line's text), read from the script's source: FGSM's
    `output = model(images)` then `images.requires_grad = True`. None if there is none."""
    path = namespace.get("__file__")
    if not isinstance(path, str):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return None
    for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, _FUNCTIONS))]:
        own = list(_own_nodes(scope))
        sets = [getattr(n, "lineno", 0) for n in own if _sets_requires_grad(n, name)]
        if not sets:
            continue
        line = min(sets)
        uses = [
            n.lineno
            for n in own
            if isinstance(n, ast.Call)
            and n.lineno < line
            and any(isinstance(a, ast.Name) and a.id == name for a in n.args)
        ]
        if uses:
            return line, max(uses), source_line(path, max(uses))
    return None


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _own_nodes(scope: ast.AST) -> Iterable[ast.AST]:
    """The nodes of `scope` outside the functions it defines."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        if isinstance(node, (*_FUNCTIONS, ast.Lambda, ast.ClassDef)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _sets_requires_grad(node: ast.AST, name: str) -> bool:
    """`name.requires_grad = True` or `name.requires_grad_()`."""
    if isinstance(node, ast.Assign):
        return any(
            isinstance(t, ast.Attribute)
            and t.attr == "requires_grad"
            and isinstance(t.value, ast.Name)
            and t.value.id == name
            for t in node.targets
        )
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "requires_grad_"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == name
    )


def _cut_only(name: str, gets: str, cut: Any) -> tuple[str, str]:
    """The message and hint for a tensor the script used only through `cut`."""
    what = {
        "no_grad": "ops under `torch.no_grad()`",
        "inference_mode": "ops under `torch.inference_mode()`",
    }.get(cut.kind, f"`{name}.detach()` (or `.data`)")
    message = (
        f"`{name}` requires grad but the root does not depend on it, so {gets}: the script uses "
        f"it only through {what}, first at line {cut.line}, which gives a constant with no "
        f"way back to `{name}`."
    )
    if cut.kind in ("no_grad", "inference_mode"):
        block = "torch.no_grad()" if cut.kind == "no_grad" else "torch.inference_mode()"
        hint = f"Compute the loss from `{name}` outside `{block}`."
    else:
        hint = (
            f"Compute with torch ops on `{name}` itself (`torch.tanh({name})`): a round trip "
            f"through NumPy (`{name}.detach().numpy()`, then `torch.from_numpy`) starts a new "
            "graph that ends there. Keep `.detach()` for values meant to be constants."
        )
    return message, hint


def _walk(node: Any) -> tuple[list[Any], int]:
    """The nodes reachable from `node` and how many were roots of recorded backward calls."""
    seen = {id(node)}
    stack = [node]
    nodes: list[Any] = []
    roots = 0
    while stack and len(nodes) < WALK_LIMIT:
        n = stack.pop()
        nodes.append(n)
        if n is not node and _calls(n) and not _differentiable(n):
            roots += 1
        for child, _ in n.next_functions:
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return nodes, roots


def _root_inputs(node: Any) -> int:
    """How many of `node`'s own inputs were roots of recorded backward calls."""
    return sum(
        1
        for child, _ in node.next_functions
        if child is not None and _calls(child) and not _differentiable(child)
    )


def _calls(node: Any) -> list[int]:
    try:
        found = node.metadata.get("gradviz_calls")
    except (AttributeError, RuntimeError):
        return []
    return found if isinstance(found, list) else []


def _differentiable(node: Any) -> bool:
    """Whether `node` was the root of a call with `create_graph=True`: a graph built on its
    gradient (a PINN's `u''`, a gradient penalty) holds it on purpose, not an earlier iteration."""
    try:
        return bool(node.metadata.get(CREATE_GRAPH_KEY))
    except (AttributeError, RuntimeError):
        return False


def _saved_bytes(nodes: list[Any]) -> int:
    total = 0
    for n in nodes:
        for attr in saved_attrs(n):
            try:
                value = getattr(n, attr)
            except RuntimeError:
                continue
            if isinstance(value, torch.Tensor):
                total += value.numel() * value.element_size()
    return total


def retained(graph: Graph, namespace: Mapping[str, Any]) -> list[Finding]:
    """[graph-retained]: a script tensor keeps the graphs of earlier backward calls alive."""
    from ..capture import op_record

    found = []
    done: set[int] = set()
    places = _places(namespace)
    for name, t in places:
        if not isinstance(t, torch.Tensor) or t.grad_fn is None:
            continue
        if id(t.grad_fn) in done:
            continue
        done.add(id(t.grad_fn))
        nodes, roots = _walk(t.grad_fn)
        if roots < 2 or roots == _root_inputs(t.grad_fn):
            continue  # one op summing losses after their backward calls (DCGAN's `errD =
            # errD_real + errD_fake`, for the log): rebuilt every step, nothing accumulates
        record = op_record(t.grad_fn)
        file, line = (record.file, record.line) if record is not None else (None, None)
        found.append(_retained_finding(graph, name, nodes, roots, file, line))
    for name, value in places:
        if isinstance(value, (list, tuple)):
            found.extend(_kept_roots(graph, name, value) or _kept_forwards(graph, name, value))
    return found


def parameters_with_graph(namespace: Mapping[str, Any]) -> list[Finding]:
    """[graph-retained]: parameters of the script's modules that carry a graph: an in-place
    update with grad tracking on (an EMA copy's `ema_p.mul_(0.99).add_(p, alpha=0.01)` outside
    `torch.no_grad()`) made them part of the graph of what they copy, growing at every update.
    One finding per module, at the line of the update."""
    from ..capture import op_record

    found = []
    for name, module in _modules(namespace):
        hit = [
            (pname, p)
            for pname, p in module.named_parameters()
            if isinstance(p, torch.nn.Parameter) and p.grad_fn is not None
        ]
        if not hit:
            continue
        pname, p = hit[0]
        nodes, _ = _walk(p.grad_fn)
        record = op_record(p.grad_fn)
        file, line = (record.file, record.line) if record is not None else (None, None)
        count = plural(len(hit), "parameter")
        names = listing([f"{name}.{n}" for n, _ in hit])
        carry = "carries" if len(hit) == 1 else "carry"
        message = (
            f"{count} of `{name}` {carry} an autograd graph ({names}"
            f"; `{name}.{pname}` holds {len(nodes):,} nodes, from {type(p.grad_fn).__name__}"
            f"{at_line(line)}): an in-place update ran with grad tracking on, so each parameter is "
            "no longer a leaf but part of the graph of what it was updated from, and the graph "
            "grows at every update."
        )
        hint = (
            "Update them under `torch.no_grad()` (an EMA copy: `with torch.no_grad(): "
            "ema_p.mul_(0.99).add_(p, alpha=0.01)`, or `@torch.no_grad()` on the update "
            "function)."
        )
        found.append(
            Finding(
                "graph-retained",
                "warning",
                message,
                display_path(file) if file else None,
                line,
                hint=hint,
            )
        )
    return found


def _as_number(text: str) -> str | None:
    """The line that adds to a running total, adding a number instead: `self.running += loss`
    -> `self.running += loss.item()` (None if the line is not such an addition)."""
    try:
        tree = ast.parse(text.strip())
    except SyntaxError:
        return None
    stmt = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(stmt, ast.AugAssign) or not isinstance(stmt.op, ast.Add):
        return None
    value = ast.unparse(stmt.value)
    if not isinstance(stmt.value, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
        value = f"({value})"
    return f"{ast.unparse(stmt.target)} += {value}.item()"


#: Values looked at inside the script's variables (dict entries, attributes of its objects).
PLACES_LIMIT = 4096


def _places(namespace: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The script's variables, and what they hold where a script keeps its history: the
    entries of a dict (`history["loss"]`) and the attributes of an object of its own
    (`trainer.losses`, `self.running`), two levels deep at most."""
    from ..capture import USER_FRAMES

    found: list[tuple[str, Any]] = []
    seen: set[int] = set()
    todo: list[tuple[str, Any, int]] = [
        (name, value, 0) for name, value in namespace.items() if not name.startswith("_")
    ]
    while todo and len(found) < PLACES_LIMIT:
        name, value, depth = todo.pop(0)
        if id(value) in seen:
            continue
        seen.add(id(value))
        found.append((name, value))
        if depth >= 2 or isinstance(value, (torch.Tensor, list, tuple, str, bytes)):
            continue
        inner: Iterable[tuple[str, Any]] = ()
        if isinstance(value, dict):
            inner = [(_entry(name, k), v) for k, v in value.items() if isinstance(k, (str, int))]
        elif own_object(value, USER_FRAMES.is_user):
            inner = [(f"{name}.{k}", v) for k, v in vars(value).items() if not k.startswith("_")]
        todo += [(n, v, depth + 1) for n, v in list(inner)[:PLACES_LIMIT]]
    return found


def _entry(name: str, key: str | int) -> str:
    return f'{name}["{key}"]' if isinstance(key, str) else f"{name}[{key}]"


#: Separate graphs, never run backward, that a script list must hold to be reported.
KEPT_GRAPHS = 3


def _kept_forwards(graph: Graph, name: str, items: Any) -> list[Finding]:
    """A list of outputs of separate forward passes that no backward call ran through
    (`val_preds.append(model(xv))` outside `torch.no_grad()`): each keeps its graph and the
    activations it saved, one more every step."""
    outputs = [
        t
        for t in items
        if isinstance(t, torch.Tensor) and t.grad_fn is not None and not _calls(t.grad_fn)
    ]
    if len(outputs) < KEPT_GRAPHS:
        return []
    nodes, separate = _graphs_of(outputs)
    if any(_calls(n) for n in nodes):  # part of a graph a backward call ran: not kept for nothing
        return []
    size = _saved_bytes(nodes)
    if separate < KEPT_GRAPHS or not size:
        return []
    file, line = _append_line(graph, name)
    # appended to in a loop, it grows with every step; else (a comprehension) it is built once
    more = ", more with every step" if line is not None else ""
    message = (
        f"`{name}` holds {len(outputs)} tensors that still require grad, from {separate} separate "
        "forward passes that no backward call ran through: their graphs keep "
        f"{plural(len(nodes), 'node')} and {_bytes(size)} of saved tensors (activations) alive"
        f"{more}."
    )
    keep = f"keep `{name}.append(out.detach())`" if more else "`.detach()` each one you keep"
    hint = f"Compute them under `torch.no_grad()` (evaluation), or {keep}."
    return [Finding("graph-retained", "warning", message, file, line, (), hint)]


def _graphs_of(tensors: list[torch.Tensor]) -> tuple[list[Any], int]:
    """The nodes of the graphs of `tensors` (each once, `WALK_LIMIT` at most), and how many
    separate forward passes made them: a tensor whose graph shares an op with one before it
    (not only leaves, the parameters every pass reads) adds none (the entries of one pass's
    list, `viterbivars_t.append(v[best])` in a Viterbi step)."""
    nodes: list[Any] = []
    seen: set[int] = set()
    separate = 0
    for t in tensors:
        if id(t.grad_fn) in seen or len(nodes) >= WALK_LIMIT:
            continue
        walked = _walk(t.grad_fn)[0]
        if not any(id(n) in seen and not hasattr(n, "variable") for n in walked):
            separate += 1
        for n in walked:
            if id(n) not in seen:
                seen.add(id(n))
                nodes.append(n)
    return nodes, separate


def _kept_roots(graph: Graph, name: str, items: Any) -> list[Finding]:
    """A list of tensors that were each the root of a backward call (`losses.append(loss)`):
    it keeps every one of those graphs alive, as `total += loss` does."""
    roots = [
        t
        for t in items
        if isinstance(t, torch.Tensor) and t.grad_fn is not None and _calls(t.grad_fn)
    ]
    if len(roots) < 2:
        return []
    nodes, _ = _graphs_of(roots)
    shown = (graph.root,) if any(graph.call in _calls(n) for n in nodes) else ()
    size = _saved_bytes(nodes)
    held = (
        f" and {_bytes(size)} of saved tensors" if size else " (backward freed their saved tensors)"
    )
    message = (
        f"`{name}` holds {len(roots)} tensors that were each the root of a backward call, and "
        f"with them their graphs: {plural(len(nodes), 'node')}{held}, kept alive to the end of "
        "the script, more with every step."
    )
    hint = f"Keep numbers: `{name}.append(loss.item())` (or `loss.detach()`)."
    file, line = _append_line(graph, name)
    return [Finding("graph-retained", "warning", message, file, line, shown, hint)]


def _append_line(graph: Graph, name: str) -> tuple[str | None, int | None]:
    """The line of the script that appends to list `name` (`self.history.append(loss)`), found
    in the files of the graph's ops: (None, None) if none does."""
    last = name.rsplit(".", 1)[-1]  # `history` of `self.history`; `h` of `h["loss"]`
    head, _, key = last.partition("[")
    attr = re.escape(head) + (r"\[[^\]]*\]" if key else "")
    pattern = re.compile(rf"(?<![\w]){attr}\.(append|extend|insert)\(")
    files = dict.fromkeys(n.file for n in graph.nodes if n.file)
    for file in files:
        for number, text in enumerate(linecache.getlines(file), 1):
            if pattern.search(text) and not text.lstrip().startswith("#"):
                return display_path(file), number
    return None, None


def _retained_finding(
    graph: Graph, name: str, nodes: list[Any], roots: int, file: str | None, line: int | None
) -> Finding:
    size = _saved_bytes(nodes)
    shown = (graph.root,) if any(graph.call in _calls(n) for n in nodes) else ()
    held = (
        f", {_bytes(size)} of saved tensors"
        if size
        else "; backward freed their saved tensors, the nodes stay"
    )
    message = (
        f"`{name}` keeps the graphs of {roots} iterations alive: {plural(len(nodes), 'node')}, "
        f"{roots} repeated per-iteration subgraphs (each the graph of an earlier backward call)"
        f"{held}. It is built{at_line(line)}."
    )
    code = _as_number(source_line(file, line)) or f"{name} += l.item()"
    hint = f"Accumulate a number, not the tensor: `{code}` (or `.detach()` what it adds)."
    return Finding("graph-retained", "warning", message, display_path(file), line, shown, hint)


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:g} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"
