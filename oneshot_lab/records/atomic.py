"""File-system atomics of run records: a file written whole or not at all, a directory published by one rename."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .integrity import MANIFEST


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: records in a shared runs dir must be readable
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        at_fdcwd, rename_exchange = -100, 2
        return libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
    except (OSError, AttributeError):
        return False


def _fill(staging: Path, final: Path) -> None:
    """Move the entries of `staging` into the empty directory `final`, the manifest last (so `final` is a
    record only once whole), and remove `staging`."""
    entries = sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST)
    for entry in entries:
        os.rename(entry, final / entry.name)
    staging.rmdir()


def publish(staging: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Move a finished run directory to `final` by rename, replacing an older record of the same run.

    Readers see the old record or the new one, never a mix or neither (an atomic exchange where the file
    system supports it); `staging` must be on the same file system. An existing empty directory (`--out .`)
    is filled in place, the manifest last, so that it stays the directory a shell or a user's settings
    know.
    """
    staging, final = Path(staging), Path(final)
    if not final.exists():
        os.replace(staging, final)
        return final
    if final.is_dir() and not any(final.iterdir()):
        _fill(staging, final)
        return final
    if _exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)  # now the old record
        return final
    old = staging.with_name(staging.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)
    return final
