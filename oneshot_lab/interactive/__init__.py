"""Interactive exploration: explorer state, ipywidgets explorers, offline HTML pages."""

from ..util.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {}, globals())
