"""Run records: written atomically with a manifest, and loaded back into tidy tables."""

from ..util.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {"start": "writing", "load": "loading", "Run": "writing"}, globals())
