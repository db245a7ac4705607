"""Statistics over seeds, findings, published figures and plots, from tidy tables."""

from ..util.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {}, globals())
