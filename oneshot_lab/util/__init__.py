"""Small pieces every layer uses: validators, the config base, progress bars, the worker pool, strict YAML."""

from .lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {}, globals())
