"""Grouping by `nn.Module`: collapse module calls below a depth, fold repeated identical blocks.

Every op node carries its `scopes`, the module calls around it (outermost first). Depth 0 is the
top-level modules (the ones the script calls), depth 1 their children, and so on. A module called
several times (an `LSTMCell` in a loop) gives one group per call. Two calls are *identical
blocks* when they sit in the same parent call, have the same class, the same name up to numbers
(``layers.0`` / ``layers.5``) and the same ops: `--fold` draws such a family once, with ``×N``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from graphviz_grad.model import Graph

from ._model import DROP, Group, Scope

#: A numbered child in a path (``layers.3``): the part that differs between repeated blocks.
_NUMBER = re.compile(r"(?<=\.)\d+(?=\.|$)")
Key = tuple[str, int]


def max_depth(graph: Graph) -> int:
    """How many module levels the graph has (0 when no op ran inside a module)."""
    return max((len(n.scopes) for n in graph.nodes), default=0)


class _Grouper:
    """Assigns op nodes to module and fold groups, level by level from the outermost."""

    def __init__(self, graph: Graph, owner: list[int], groups: list[Group]) -> None:
        self.graph = graph
        self.owner = owner
        self.groups = groups
        self.free = [i for i, n in enumerate(graph.nodes) if owner[i] != DROP and n.scopes]
        self.paths_of: dict[int, tuple[str, ...]] = {}

    def by_scope(self, level: int) -> dict[Key, list[int]]:
        found: dict[Key, list[int]] = {}
        for i in self.free:
            scopes = self.graph.nodes[i].scopes
            if len(scopes) > level:
                path, _, call = scopes[level]
                found.setdefault((path, call), []).append(i)
        return found

    def families(self, level: int, members: dict[Key, list[int]]) -> list[list[Key]]:
        """Families of two or more identical sibling calls at `level`, in first-seen order:
        the same ops with the same shapes (`Linear(8, 16)` and `Linear(16, 4)` differ). Blocks
        of different names must also follow one another, no other sibling called between them
        (`layers.0` … `layers.5`; not the Linears of `Sequential(Linear, ReLU, Linear, ...)`,
        which would be drawn as a loop); calls of one module (an RNN cell in a loop) need not."""
        found: dict[tuple[object, ...], list[Key]] = {}
        parents: dict[Key, object] = {}
        for key, ids in members.items():
            scopes = self.graph.nodes[ids[0]].scopes
            parent = parents[key] = scopes[level - 1][::2] if level else None
            nodes = self.graph.nodes
            ops = tuple(sorted((nodes[i].op or "", str(nodes[i].shape)) for i in ids))
            sig = (parent, scopes[level][1], _NUMBER.sub("#", key[0]), ops)
            found.setdefault(sig, []).append(key)
        families = [sorted(keys, key=lambda k: k[1]) for keys in found.values() if len(keys) > 1]
        return [keys for keys in families if _one_after_another(keys, parents)]

    def add(
        self, kind: str, keys: list[Key], members: dict[Key, list[int]], level: int, title: str
    ) -> None:
        ids = sorted(i for k in keys for i in members[k])
        first = self.graph.nodes[ids[0]].scopes
        gid = len(self.graph.nodes) + len(self.groups)
        # a fold shows the last block's output (the one the rest of the model reads last)
        output = _output(self.graph, sorted(members[keys[-1]]) if kind == "fold" else ids)
        group = Group(
            id=gid,
            kind="fold" if kind == "fold" else "module",
            title=title,
            module_type=first[level][1],
            members=tuple(ids),
            ops=sum(1 for i in ids if self.graph.nodes[i].kind == "op"),
            output=output,
            repeat=len(keys),
            enclosing=first[:level],
            path=keys[0][0],
        )
        if kind == "fold":
            group = _instances(group, self.graph.nodes[output].scopes[level], keys)
        self.groups.append(group)
        self.paths_of[gid] = tuple(dict.fromkeys(k[0] for k in keys))
        for i in ids:
            self.owner[i] = gid
        taken = set(ids)
        self.free = [i for i in self.free if i not in taken]


def _one_after_another(keys: list[Key], parents: dict[Key, object]) -> bool:
    """Whether no sibling call outside `keys` (same parent call) came between its first and
    last, when `keys` are blocks of different names (calls of one module always are)."""
    if len({path for path, _ in keys}) == 1:
        return True
    first, last, parent = keys[0][1], keys[-1][1], parents[keys[0]]
    family = set(keys)
    return not any(
        first < key[1] < last and parents[key] == parent and key not in family for key in parents
    )


def _output(graph: Graph, ids: Sequence[int]) -> int:
    """The member whose output leaves the group (or is a root), nearest the root."""
    inside = set(ids)
    roots = set(graph.roots)
    for i in ids:
        if i in roots or any(e.dst not in inside for e in graph.consumers[i]):
            return i
    return ids[0]


def _instances(group: Group, out_scope: Scope, keys: list[Key]) -> Group:
    """Say which block of a fold its numbers come from: the output's, and the parameters'."""
    paths = list(dict.fromkeys(k[0] for k in keys))
    if len(paths) > 1:
        return replace(group, output_of=out_scope[0], params_of=paths[0])
    calls = sorted(k[1] for k in keys)
    j = calls.index(out_scope[2]) + 1 if out_scope[2] in calls else len(calls)
    return replace(
        group, output_of=f"call {j} of {len(calls)}", params_of=f"all {len(calls)} calls (shared)"
    )


def _call_titles(members: dict[Key, list[int]]) -> dict[Key, str]:
    """``path``, or ``path [call j]`` when the graph holds several calls of one module."""
    calls: dict[str, list[int]] = {}
    for path, call in sorted(members, key=lambda k: k[1]):
        calls.setdefault(path, []).append(call)
    titles = {}
    for path, numbers in calls.items():
        for j, call in enumerate(numbers, 1):
            titles[(path, call)] = path if len(numbers) == 1 else f"{path} [call {j}]"
    return titles


def _fold_title(keys: list[Key]) -> str:
    paths = list(dict.fromkeys(k[0] for k in keys))
    return paths[0] if len(paths) == 1 else f"{paths[0]} … {paths[-1]}"


def group_modules(
    graph: Graph, owner: list[int], groups: list[Group], depth: int | None, fold: bool
) -> None:
    """Collapse module calls at `depth` (None: none) and, with `fold`, repeated blocks."""
    grouper = _Grouper(graph, owner, groups)
    last = max_depth(graph) - 1 if depth is None else min(depth, max_depth(graph) - 1)
    for level in range(last + 1):
        members = grouper.by_scope(level)
        if fold:
            for keys in grouper.families(level, members):
                grouper.add("fold", keys, members, level, _fold_title(keys))
        if depth is not None and level == depth:
            titles = _call_titles(members)
            for key, ids in members.items():
                if _still_free(grouper, ids):
                    grouper.add("module", [key], members, level, titles[key])
    _absorb_params(graph, owner, groups, grouper.paths_of)


def _still_free(grouper: _Grouper, ids: list[int]) -> bool:
    return grouper.owner[ids[0]] < len(grouper.graph.nodes)


def _leaves_under(graph: Graph) -> dict[str, list[int]]:
    """Module path -> the leaves whose name lies under it (``enc.l0.weight`` under ``enc.l0``)."""
    found: dict[str, list[int]] = {}
    for node in graph.nodes:
        if node.kind != "leaf" or not node.names:
            continue
        parts = node.names[0].split(".")
        for end in range(1, len(parts)):
            found.setdefault(".".join(parts[:end]), []).append(node.id)
    return found


def _absorb_params(
    graph: Graph, owner: list[int], groups: list[Group], paths_of: dict[int, tuple[str, ...]]
) -> None:
    """List each group's parameters; draw a parameter inside its group when only it uses it."""
    under = _leaves_under(graph) if paths_of else {}
    for k, group in enumerate(groups):
        paths = paths_of.get(group.id)
        if not paths:
            continue
        params = tuple(dict.fromkeys(i for p in paths for i in under.get(p, ())))
        for leaf in params:
            users = {owner[e.dst] for e in graph.consumers[leaf]}
            if owner[leaf] == leaf and users == {group.id}:
                owner[leaf] = group.id
        shown = tuple(i for i in params if i in under.get(paths[0], ()))
        groups[k] = _with_params(group, shown)


def _with_params(group: Group, params: tuple[int, ...]) -> Group:
    return replace(group, params=params)


__all__ = ["Scope", "group_modules", "max_depth"]
