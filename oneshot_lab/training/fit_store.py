"""The files of the fit cache: entries that carry their own key and a checksum keyed by the user's secret, reads
and writes that no planted file can divert, and a size cap with least-recently-used eviction.

Where the files live and how large they may grow come from the environment. Reads never follow a link or open
anything but a regular file; writes go through a temporary file created exclusively. Imports no torch (the CLI's
`cache info | clear` and its check of the environment use it).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import re
import secrets
import stat
import time
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from ..util import whole_file

ENV, ENV_MAX = "ONESHOT_LAB_CACHE", "ONESHOT_LAB_CACHE_MAX"
OFF = ("off", "no", "false", "0", "none", "disable", "disabled")  # values of ENV that turn the cache off
SWITCHES = ("on", "yes", "true", "1", "y", "n", "t", "f", "enable", "enabled", "default", "auto", "null", "nil")
DEFAULT_MAX = "1GB"
UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
         "tb": 10**12, "pb": 10**15, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
MAGIC = b"oneshot_lab-fit-cache-2"
MAX_SIZE = 10**15  # the largest cap accepted (1 PB)
SECRET_BYTES = 32
ENTRY = re.compile(r"[0-9a-f]{64}\.pt")  # only names like these (and TEMP) are ever evicted or cleared
TEMP = re.compile(r"\.[0-9a-f]{64}\..*\.partial")
STALE_TEMP_S = 3600  # a temporary file older than this was left by a killed process
SCAN_EVERY = 0.01  # a process scans for eviction when it wrote this fraction of the cap since its last scan
PENDING: dict[str, int] = {}  # bytes this process wrote per directory since its last scan
NOFOLLOW, NONBLOCK, CLOEXEC = (getattr(os, f"O_{flag}", 0) for flag in ("NOFOLLOW", "NONBLOCK", "CLOEXEC"))


class EntryProblem(Exception):
    """The file at an entry's name is not a usable entry for its key (it is trained again and replaced)."""


def directory() -> Path | None:
    """Where entries are kept: $ONESHOT_LAB_CACHE (one of OFF disables), else the user's cache directory."""
    text = os.environ.get(ENV, "").strip()
    if text.lower() in OFF:
        return None
    if text.lower() in SWITCHES:
        raise ValueError(f"{ENV}={text!r} looks like a switch: give a directory (./{text} for one of that name), "
                         f"one of {', '.join(OFF)} to turn the cache off, or leave it unset for the default")
    if text:
        return Path(text).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "oneshot_lab" / "fits"


def parse_size(text: str) -> int:
    """Bytes in a size such as '500MB', '2GiB' or '1000000' (decimal and binary units), from 1 B to 1 PB."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    try:
        size = int(Decimal(match.group(1)) * UNITS[match.group(2).lower()]) if match and len(text) < 40 else 0
    except (KeyError, InvalidOperation):
        size = 0
    if not 1 <= size <= MAX_SIZE:
        raise ValueError(f"{ENV_MAX}={text[:40]!r}: give a size from 1 B to 1 PB such as 500MB or 2GB (units B, KB, "
                         f"MB, GB, TB, PB, KiB, MiB, GiB, TiB); {ENV}=off turns the cache off")
    return size


def max_bytes() -> int:
    """The size cap of the cache directory: $ONESHOT_LAB_CACHE_MAX, else DEFAULT_MAX."""
    return parse_size(os.environ.get(ENV_MAX, "").strip() or DEFAULT_MAX)


def check_environment() -> None:
    """Raise ValueError for a bad $ONESHOT_LAB_CACHE or $ONESHOT_LAB_CACHE_MAX (before any work)."""
    directory()
    max_bytes()


def secret_path() -> Path:
    """Where this user's key for the entries' checksums lives: outside any cache directory, in the user's config."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "oneshot_lab" / "fit-cache.key"


def secret() -> bytes:
    """This user's key for the entries' checksums (made on first use); OSError when it cannot be made or read, or is
    not a private regular file of this user (then the cache is not used)."""
    return load_secret(str(secret_path()))


@lru_cache(maxsize=4)
def load_secret(name: str) -> bytes:
    """The key in file `name`, made there (0600, exclusively, whole or not at all) when there is none."""
    path = Path(name)
    if not path.exists() and not path.is_symlink():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(SECRET_BYTES))
            os.link(temp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
    fd = os.open(path, os.O_RDONLY | NOFOLLOW | NONBLOCK | CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise PermissionError(errno.EPERM, "not a private file of this user (chmod 600, or delete it)", name)
        key = handle.read(SECRET_BYTES + 1)
    if len(key) != SECRET_BYTES:
        raise OSError(errno.EINVAL, f"not a key of {SECRET_BYTES} bytes (delete it to make a new one)", name)
    return key


def checksum(key: str, payload: bytes) -> bytes:
    """HMAC-SHA256 of an entry's key and payload under this user's secret: only this user can make a valid entry."""
    return hmac.new(secret(), key.encode() + b"\n" + payload, hashlib.sha256).hexdigest().encode()


def pack(key: str, payload: bytes) -> bytes:
    """An entry: one header line (magic, key, keyed checksum and length of the payload), then the payload."""
    return b"%s %s %s %d\n" % (MAGIC, key.encode(), checksum(key, payload), len(payload)) + payload


def unpack(data: bytes, key: str) -> bytes:
    """The payload of entry `data` written for `key`; EntryProblem when it is foreign, another key's, corrupt, or
    not written by this user."""
    header, _, payload = data.partition(b"\n")
    fields = header.split(b" ")
    if len(fields) != 4 or fields[0] != MAGIC:
        raise EntryProblem("is not an entry of this cache (another program or version wrote it)")
    if fields[1] != key.encode():
        raise EntryProblem("holds the entry of another key (copied or renamed)")
    if fields[3] != str(len(payload)).encode() or not hmac.compare_digest(fields[2], checksum(key, payload)):
        raise EntryProblem("fails its check (corrupt, or not written by this user)")
    return payload


def read(path: Path, key: str, limit: int) -> bytes | None:
    """The payload stored at `path` for `key`, or None when there is none; EntryProblem for an unusable file,
    OSError when it cannot be read. Never follows a symbolic link, never blocks on a FIFO or a device."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | NONBLOCK | CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise EntryProblem("is a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise EntryProblem("is not a regular file")
        if info.st_size > limit + 512:
            raise EntryProblem(f"is larger than the cap ({info.st_size} bytes)")
        return unpack(handle.read(limit + 512), key)


def write(path: Path, data: bytes) -> None:
    """Put `data` at `path` atomically through a fresh temporary file in the same directory (created exclusively,
    never through a link), removed again on any failure; OSError when it cannot be written."""
    whole_file.write_whole(path, data, sync=False)
    touch(path)


def touch(path: Path) -> None:
    """Mark the entry at `path` as just used (its modification time orders eviction); best effort."""
    try:
        now = time.time_ns()
        os.utime(path, ns=(now, now), follow_symlinks=False)
    except OSError:
        pass


def entries(root: Path) -> list[tuple[Path, int, int]]:
    """(path, size, last use in ns) of every entry file in `root`, least recently used first."""
    found = []
    try:
        with os.scandir(root) as listing:
            for item in listing:
                if ENTRY.fullmatch(item.name) and item.is_file(follow_symlinks=False):
                    info = item.stat(follow_symlinks=False)
                    found.append((Path(item.path), info.st_size, info.st_mtime_ns))
    except FileNotFoundError:
        return []
    return sorted(found, key=lambda e: (e[2], e[0].name))


def _remove(path: Path) -> bool:
    """Delete `path`; False when another process was first or it cannot be removed."""
    try:
        path.unlink()
        return True
    except OSError:
        return False


def evict(root: Path, cap: int) -> int:
    """Delete least recently used entries until `root` holds at most `cap` bytes, and temporary files left by
    killed processes; the number of entries deleted."""
    found = entries(root)
    total, removed = sum(size for _, size, _ in found), 0
    for path, size, _ in found:
        if total <= cap:
            break
        removed += _remove(path)
        total -= size
    with os.scandir(root) as listing:
        stale = [Path(item.path) for item in listing if TEMP.fullmatch(item.name)
                 and item.stat(follow_symlinks=False).st_mtime < time.time() - STALE_TEMP_S]
    for path in stale:
        _remove(path)
    return removed


def written(root: Path, size: int, cap: int) -> None:
    """Account `size` bytes just written to `root`: evict at a process's first write and whenever it has written
    SCAN_EVERY of the cap since (a scan stats every entry; the cap is kept to within that fraction per writer)."""
    if str(root) in PENDING and PENDING[str(root)] + size <= cap * SCAN_EVERY:
        PENDING[str(root)] += size
        return
    evict(root, cap)
    PENDING[str(root)] = 0


def clear(root: Path) -> tuple[int, int]:
    """Delete every entry and temporary file of the cache in `root` (nothing else); (entries, bytes) deleted."""
    found = entries(root)
    count = sum(_remove(path) for path, _, _ in found)
    if root.is_dir():
        with os.scandir(root) as listing:
            for item in listing:
                if TEMP.fullmatch(item.name):
                    _remove(Path(item.path))
    return count, sum(size for _, size, _ in found)


def clear_lines() -> list[str]:
    """Delete the cache's entries (`oneshot-lab cache clear`); what was deleted, as lines."""
    root = directory()
    if root is None:
        return summary()
    count, size = clear(root)
    return [f"deleted {count} entries ({human(size)}) from {root}"]


def human(size: float) -> str:
    """A byte count as '12.3 MB'."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def summary() -> list[str]:
    """Lines for `oneshot-lab cache info`: directory, entries, size and cap."""
    root = directory()
    if root is None:
        return [f"the fit cache is off ({ENV}={os.environ.get(ENV, '').strip()})"]
    found = entries(root)
    source = f"{ENV_MAX}" if os.environ.get(ENV_MAX, "").strip() else f"default; set {ENV_MAX} to change"
    return [f"directory: {root}", f"entries: {len(found)}", f"size: {human(sum(e[1] for e in found))}",
            f"cap: {human(max_bytes())} ({source}); least recently used entries are deleted above it"]
