"""Data, models, masks and exact top-k selection: what every layer above builds on."""

from ..util.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {}, globals())
