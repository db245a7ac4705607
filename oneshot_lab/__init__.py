"""oneshot_lab: one-shot pruning of neural networks (OBD, magnitude, lottery tickets) on a CPU.

Importing the package is instant: every submodule (`ol.prune`, `ol.sweep`, ...) and every name exported
here (`ol.load`, `ol.Masks`, ...) is imported on first use, so the command line never waits for torch.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))

_EXPORTS = {  # name -> submodule defining it
    "Dataset": "data", "load": "data", "build": "models",
    "Masks": "prune", "masks_from_scores": "prune", "prunable": "prune",
    "History": "train", "TrainConfig": "train", "evaluate": "train", "fit": "train",
}

__all__ = [*_SUBMODULES, *_EXPORTS]


def __getattr__(name: str) -> Any:
    """A submodule or an exported name, imported on first access."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _EXPORTS:
        module: ModuleType = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The package's names, including those not imported yet."""
    return sorted(set(globals()) | set(__all__))
