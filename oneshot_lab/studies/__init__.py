"""Studies that train and prune: one-shot, iterative, OBD calibration, second order, lottery tickets, pruning at
initialisation."""

from ..util.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {}, globals())
