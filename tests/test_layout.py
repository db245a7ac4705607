"""The package's layout shows its architecture: imports only point down the layer list, no two modules import each
other, no module is above ~350 lines, and no private name is imported across modules."""

from __future__ import annotations

import ast
from pathlib import Path

import oneshot_lab

PACKAGE = Path(oneshot_lab.__file__).resolve().parent
MAX_LINES = 350


def module_name(path: Path) -> str:
    """'oneshot_lab.pruning.prune' for oneshot_lab/pruning/prune.py (a package for its __init__)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import of the lab inside module `name`, anywhere in it."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                child = f"{target}.{alias.name}"
                out.append((child if child in MODULES else target, [alias.name]))
        elif isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
    return [(target, names) for target, names in out if target in MODULES and target != name]


def layer(name: str) -> int:
    """The index of a module's layer in `oneshot_lab.LAYERS` (top-level modules above them all)."""
    parts = name.split(".")
    return oneshot_lab.LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in oneshot_lab.LAYERS \
        else len(oneshot_lab.LAYERS)


GRAPH = {name: {target for target, _ in imports(name)} - {"oneshot_lab", "oneshot_lab.util.lazy"} for name in MODULES}


def test_imports_only_point_down_the_layer_list():
    upward = [f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets if layer(b) > layer(a)]
    assert upward == [], upward


def test_no_two_modules_import_each_other():
    pairs = sorted({tuple(sorted((a, b))) for a, targets in GRAPH.items() for b in targets if a in GRAPH[b]})
    assert pairs == [], pairs


def test_no_module_is_above_the_size_limit():
    big = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert big == {}, big


def test_no_private_name_is_imported_across_modules():
    private = [f"{name} imports {n} from {target}" for name in MODULES for target, names in imports(name)
               for n in names if n.startswith("_")]
    assert private == [], private


def test_every_layer_is_a_subpackage_with_a_docstring():
    for name in oneshot_lab.LAYERS:
        init = PACKAGE / name / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), name
