"""Lottery tickets: IMP with rewinding and controls, one IMP level, stability, notebook 03's study."""

from ...util.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {"IMPConfig": "rewinding", "IMPResult": "rewinding", "imp": "rewinding", "matching": "rewinding"}, globals())
