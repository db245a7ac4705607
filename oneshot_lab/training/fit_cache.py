"""Finished training runs kept on disk, keyed by their content, so a second study of the same network reuses
the first one's training instead of repeating it (notebook 04's sweep repeats notebook 01's dense runs and
the fine-tunes of the methods they share).

The key is a digest of everything that determines the trained weights and the history: the network's
architecture and starting weights, the binding masks, every split of the data, the training config, the
torch thread count, the torch version and the source of this package. Changing any of them is a miss, never a stale hit.
Entries are written atomically (a temporary file, then one rename); an unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from typing import Mapping

from ..core.data import Dataset
from .train import History, TrainConfig, fit

PACKAGE = Path(__file__).resolve().parent.parent  # the whole package source is part of every key
ENV = "ONESHOT_LAB_CACHE"  # a directory, or "off" to train every time
OFF = ("off", "0", "none", "false")


def directory() -> Path | None:
    """Where finished runs are kept: $ONESHOT_LAB_CACHE ('off' disables), else the user's cache directory."""
    text = os.environ.get(ENV, "").strip()
    if text.lower() in OFF:
        return None
    if text:
        return Path(text).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "oneshot_lab" / "fits"


@lru_cache(maxsize=1)
def code_version() -> str:
    """Digest of this package's source files and the torch version (a code change is a cache miss)."""
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _tensor_bytes(digest: "hashlib._Hash", tensor: torch.Tensor) -> None:
    """Feed a tensor's dtype, shape and values to `digest`."""
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())


def key(model: nn.Module, dataset: Dataset, config: TrainConfig,
        masks: Mapping[str, torch.Tensor] | None = None) -> str:
    """Hex digest identifying the run `fit(model, dataset, config, masks)` would do from the model's current state."""
    digest = hashlib.sha256(code_version().encode())
    digest.update(json.dumps({"config": config.as_dict(), "threads": torch.get_num_threads(),
                              "model": repr(model), "dataset": dataset.name}, sort_keys=True, default=str).encode())
    for module in model.modules():  # a user-defined forward() is part of the run
        if not type(module).__module__.startswith("torch."):
            digest.update(inspect.getsource(type(module)).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        _tensor_bytes(digest, tensor)
    for name, mask in sorted((masks or {}).items()):
        digest.update(f"mask:{name}".encode())
        _tensor_bytes(digest, mask)
    for split in ("train", "val", "test"):
        for tensor in dataset.split(split):
            _tensor_bytes(digest, tensor)
    return digest.hexdigest()


def cached_fit(model: nn.Module, dataset: Dataset, config: TrainConfig,
               masks: Mapping[str, torch.Tensor] | None = None, progress: bool = False) -> History:
    """`train.fit(model, dataset, config, masks)`: trained in place, or loaded when this exact run is on disk."""
    root = directory()
    if root is None:
        return fit(model, dataset, config, masks=masks, progress=progress)
    try:
        path = root / f"{key(model, dataset, config, masks)}.pt"
    except (OSError, TypeError):  # a module class whose source cannot be read: never cached
        return fit(model, dataset, config, masks=masks, progress=progress)
    stored = load(path)
    if stored is not None:
        model.load_state_dict(stored["state"])
        return History(rows=stored["rows"])
    history = fit(model, dataset, config, masks=masks, progress=progress)
    save(path, {"state": model.state_dict(), "rows": history.rows})
    return history


def load(path: Path) -> dict | None:
    """The entry at `path`, or None when it is missing or unreadable (then it is recomputed)."""
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # missing, truncated by a crash elsewhere, or written by another torch
        return None


def save(path: Path, entry: dict) -> None:
    """Write `entry` to `path` atomically: a reader sees the old file, or the whole new one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(entry, partial)
        os.replace(partial, path)
    except OSError as error:  # the cache only saves time: a failed write never fails the study
        warnings.warn(f"fit cache: could not write {path} ({error}); continuing without it", stacklevel=3)
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass


code_version()  # the source as imported, not as it may be on disk later
