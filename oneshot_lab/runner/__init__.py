"""Running notebooks headlessly: parameters, sweep specs, staged runs, local and Dask execution."""

from ..util.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {}, globals())
