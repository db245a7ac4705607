"""Training with binding masks, evaluation, and the fit cache."""

from ..util.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {}, globals())
