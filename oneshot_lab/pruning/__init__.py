"""Pruning methods: one registry, one `prune` call, criteria, curvature and the weight-updating pruners."""

from ..util.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {}, globals())
