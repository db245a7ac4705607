"""Packages whose submodules and exported names are imported on first use, so `import oneshot_lab` is instant."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def submodules(path: Iterable[str]) -> tuple[str, ...]:
    """The public submodules and subpackages found on a package's `__path__`."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_")))


def attach(package: str, path: Iterable[str], exports: Mapping[str, str] | None = None,
           namespace: dict | None = None) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """(`__getattr__`, `__dir__`, `__all__`) for `package`: submodules, and `exports` {name: module defining it}."""
    exports = dict(exports or {})
    children = submodules(path)

    def __getattr__(name: str) -> Any:
        """A submodule or an exported name, imported on first access."""
        if name in children:
            return importlib.import_module(f"{package}.{name}")
        if name in exports:
            module = importlib.import_module(f"{package}.{exports[name]}")
            value = getattr(module, name)
            if namespace is not None:
                namespace[name] = value  # later look-ups skip __getattr__
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        """The package's names, including those not imported yet."""
        return sorted(set(namespace or ()) | set(children) | set(exports))

    return __getattr__, __dir__, [*children, *exports]
