"""The package's structure, read from its own imports (ast): parts depend one way, no part reaches
into another part's private module or name, capture stays below everything that shows a graph.

Parts, bottom to top: errors, model | capture | diagnose, views | render | teach | notebook | cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "graphviz_grad"

#: A part may import parts of a lower or equal layer only.
LAYER = {
    "errors": 0,
    "model": 0,
    "_gc": 0,  # the collector paused while big graphs are built and drawn
    "capture": 1,
    "diagnose": 2,
    "views": 2,
    "render": 3,
    "teach": 4,
    "notebook": 5,
    "magic": 5,
    "cli": 6,
    "__init__": 7,
    "__main__": 7,
    "native": 7,  # `python -m graphviz_grad.native` builds the C++ hooks of capture
}
#: The one import that goes up on purpose: a Graph displays itself in Jupyter and rich.
ALLOWED_UP = {("model", "notebook")}


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names imported from it, line) for every import in `path`."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((module, [a.name for a in node.names], node.lineno))
    return [f for f in found if f[0] == "graphviz_grad" or f[0].startswith("graphviz_grad.")]


def _edges() -> list[tuple[str, str, str, list[str], int]]:
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _module_name(path)
        for module, names, line in _imports(path):
            edges.append((here, module, f"{path.relative_to(PACKAGE.parent)}:{line}", names, line))
    return edges


def _parts_of(module: str, names: list[str]) -> list[str]:
    """The parts an import reaches: `from graphviz_grad import render` reaches render."""
    if module == "graphviz_grad":  # `from graphviz_grad import __version__` is the bottom
        return [n if n in LAYER else "__init__" for n in names if n != "__version__"]
    return [_part(module)]


def test_every_part_has_a_layer() -> None:
    parts = {_part(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert parts <= set(LAYER), f"new part(s) {parts - set(LAYER)}: give them a layer here"


def test_parts_depend_one_way() -> None:
    wrong = []
    for here, module, where, names, _ in _edges():
        src = _part(here)
        for dst in _parts_of(module, names):
            if src != dst and LAYER[dst] > LAYER[src] and (src, dst) not in ALLOWED_UP:
                wrong.append(f"{where}: {src} imports {dst} ({module})")
    assert not wrong, "imports against the pipeline:\n" + "\n".join(wrong)


def test_no_cycle_between_parts() -> None:
    deps: dict[str, set[str]] = {}
    for here, module, _, names, _ in _edges():
        for dst in _parts_of(module, names):
            if _part(here) != dst and (_part(here), dst) not in ALLOWED_UP:
                deps.setdefault(_part(here), set()).add(dst)
    for start in deps:
        stack, seen = list(deps[start]), set()
        while stack:
            part = stack.pop()
            assert part != start, f"cycle through {start}"
            if part not in seen:
                seen.add(part)
                stack.extend(deps.get(part, ()))


def test_no_part_imports_another_parts_private_names() -> None:
    wrong = []
    for here, module, where, names, _ in _edges():
        if module == "graphviz_grad":
            continue
        if _part(here) == _part(module):
            continue
        private_module = any(p.startswith("_") for p in module.split(".")[2:])
        private_names = [n for n in names if n.startswith("_") and n != "__version__"]
        if private_module or private_names:
            wrong.append(f"{where}: {module} {private_names or ''}")
    assert not wrong, "private imports across parts:\n" + "\n".join(wrong)


def test_capture_imports_nothing_that_shows_a_graph() -> None:
    shown = {"diagnose", "views", "render", "teach", "cli", "notebook"}
    wrong = [
        f"{where}: {module}"
        for here, module, where, names, _ in _edges()
        if _part(here) == "capture" and set(_parts_of(module, names)) & shown
    ]
    assert not wrong, "\n".join(wrong)


def test_model_and_errors_are_torch_free() -> None:
    for name in ("model.py", "errors.py"):
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        mods = [n.names[0].name for n in ast.walk(tree) if isinstance(n, ast.Import)]
        mods += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in mods if m.split(".")[0] in ("torch", "graphviz", "rich", "typer")]
