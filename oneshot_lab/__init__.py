"""oneshot_lab: one-shot pruning of neural networks (OBD, magnitude, lottery tickets) on a CPU.

The package is layered; each subpackage imports only those listed before it:
util, core, training, pruning, studies, analysis, records, runner, interactive, bench.
Importing the package is instant: every subpackage and every name exported here (`ol.load`, `ol.prune`, ...)
is imported on first use, so the command line never waits for torch.
"""

from __future__ import annotations

from .util.lazy import attach

__version__ = "0.1.0"

LAYERS = ("util", "core", "training", "pruning", "studies", "analysis", "records", "runner", "interactive", "bench")

_EXPORTS = {  # name -> module defining it
    "Dataset": "core.data", "load": "core.data", "build": "core.models",
    "Masks": "core.masks", "masks_from_scores": "core.masks", "prunable": "core.masks",
    "History": "training.train", "TrainConfig": "training.train", "evaluate": "training.train",
    "fit": "training.train",
    "prune": "pruning.prune", "Pruned": "pruning.prune", "Method": "pruning.registry", "Option": "pruning.registry",
    "METHODS": "pruning.registry", "register": "pruning.registry", "Rule": "util.rules",
}
_ALIASES = {  # public short names of modules (the README's `ol.stats.summarize`, `ol.lottery.imp`, ...)
    "stats": "analysis.stats", "findings": "analysis.findings", "lottery": "studies.lottery",
    "results": "records", "widgets": "interactive.widgets",
}

_getattr, _dir, _names = attach(__name__, __path__, _EXPORTS, globals())
__all__ = sorted({*_names, *_ALIASES})


def __getattr__(name: str):
    """A subpackage, an exported name or a module alias, imported on first access."""
    if name in _ALIASES:
        import importlib

        module = importlib.import_module(f"{__name__}.{_ALIASES[name]}")
        globals()[name] = module
        return module
    return _getattr(name)


def __dir__() -> list[str]:
    """The package's names, including those not imported yet."""
    return sorted({*_dir(), *_ALIASES})
