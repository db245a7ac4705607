"""Numpy arrays out of a pickle the lab did not write, without running anything else the pickle names.

A pickle is a program: each global it names is imported and may be called. This reader resolves only the globals
that rebuilding a numpy array needs (`ALLOWED`) and refuses every other one (`os.system`, `builtins.eval`, ...)
when the unpickler meets it, before it is imported or called; copyreg extension codes and persistent ids, which
would reach objects without naming them, are refused before anything is read.
"""

from __future__ import annotations

import io
import pickle
import pickletools

import numpy as np

try:  # numpy >= 2 keeps it here; `numpy.core` itself is deprecated there and is never imported
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core.multiarray import _reconstruct

ALLOWED = {  # (module, name) as a pickle names it -> the object it gets
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # written by numpy < 2 (and Python 2)
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # written by numpy >= 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
INDIRECT = ("EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID")  # opcodes that reach objects without a global's name


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names something other than what numpy arrays need; nothing it names was imported or called."""


class ArraysOnly(pickle.Unpickler):
    """An unpickler that hands out only the globals in `ALLOWED`."""

    def find_class(self, module: str, name: str) -> object:
        """The allowed object for `module.name`; RefusedGlobal for any other."""
        if (module, name) not in ALLOWED:
            raise RefusedGlobal(f"refused global {module}.{name}: a pickle read by the lab may name only "
                                f"{', '.join(f'{m}.{n}' for m, n in ALLOWED)} (numpy arrays); nothing was run")
        return ALLOWED[(module, name)]

    def persistent_load(self, pid: object) -> object:
        """Refuse a persistent id (an object the pickle reaches outside itself)."""
        raise RefusedGlobal(f"refused persistent id {str(pid)[:60]!r}: a pickle read by the lab holds numpy arrays "
                            "only")


def refuse_indirect(data: bytes) -> None:
    """RefusedGlobal when `data` uses an opcode that reaches an object without naming a global (`INDIRECT`)."""
    for opcode, arg, position in pickletools.genops(data):
        if opcode.name in INDIRECT:
            raise RefusedGlobal(f"refused opcode {opcode.name} ({arg!r}) at byte {position}: a pickle read by the "
                                f"lab may reach objects only through the globals numpy arrays need; nothing was run")


def loads(data: bytes, encoding: str = "latin1") -> object:
    """The object pickled in `data`, built from numpy arrays and plain Python values only.

    `encoding` decodes Python 2 byte strings (numpy's own pickles from Python 2 need "latin1"). Raises RefusedGlobal
    naming the refused global, or pickle.UnpicklingError / EOFError / ValueError for a malformed pickle.
    """
    refuse_indirect(data)
    return ArraysOnly(io.BytesIO(data), encoding=encoding).load()
