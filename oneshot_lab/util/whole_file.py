"""Writing a file whole or not at all, through a fresh temporary file beside it that is never a planted link."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

NOFOLLOW, CLOEXEC = (getattr(os, f"O_{flag}", 0) for flag in ("NOFOLLOW", "CLOEXEC"))


def write_whole(path: Path, payload: bytes, sync: bool = True) -> None:
    """Put `payload` at `path` whole or not at all: a fresh temporary file beside it (created exclusively, never
    through a link), synced if `sync`, then renamed over `path` (a link there is replaced, not followed); the
    temporary file is removed on any failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.partial")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC, 0o666)
            break
        except FileExistsError:  # planted, or a rare clash of names: never write through it
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no fresh temporary name", str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            temp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
