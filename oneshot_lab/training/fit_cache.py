"""Finished training runs kept on disk, keyed by their content, so a second study of the same network reuses
the first one's training instead of repeating it (notebook 04's sweep repeats notebook 01's dense runs and
the fine-tunes of the methods they share).

The cache is only ever an accelerator: a hit gives the weights and history a fresh `train.fit` would (the key,
`fit_key.key`, covers everything that can change them), and anything else trains. An entry that is corrupt,
foreign, another key's or does not fit the model is a miss with one warning and is replaced; a cache that cannot
be read or written (read-only, full, permission denied) trains without it, with one warning. A run that draws
from a global random number generator (dropout, say) depends on the generator's state and is never kept.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from ..core.data import Dataset
from . import fit_store
from .fit_key import Uncacheable, key
from .train import History, TrainConfig, fit

ROW = {"iteration", "epoch", "split", "loss", "accuracy"}
WARNED: set[str] = set()  # a failure of the whole cache (read-only, full) is said once per process


def cached_fit(model: nn.Module, dataset: Dataset, config: TrainConfig,
               masks: Mapping[str, torch.Tensor] | None = None, progress: bool = False) -> History:
    """`train.fit(model, dataset, config, masks)`: trained in place, or loaded when this exact run is on disk."""
    root = fit_store.directory()
    try:
        name = None if root is None else key(model, dataset, config, masks)
    except Uncacheable:
        name = None
    if name is not None:
        try:
            fit_store.secret()
        except OSError as error:
            warn(f"fit cache: its key file {fit_store.secret_path()} cannot be used ({error.strerror or error}); "
                 "trained without the cache")
            name = None
    if name is None:
        return fit(model, dataset, config, masks=masks, progress=progress)
    path, cap, problems = root / f"{name}.pt", fit_store.max_bytes(), []
    try:
        payload = fit_store.read(path, name, cap)
        if payload is not None:
            entry = decode(payload, model)
            model.load_state_dict(entry["state"])
            model.train()  # as fit leaves it
            fit_store.touch(path)
            return History(rows=entry["rows"])
    except fit_store.EntryProblem as problem:
        problems.append(f"entry {path} {problem}; trained again")
    except OSError as error:
        problems.append(f"could not read {path} ({error.strerror or error}); trained without it")
    before = rng_state()
    history = fit(model, dataset, config, masks=masks, progress=progress)
    if rng_state() == before:  # else the run depends on the generators' state, which is not in the key
        failed = store(root, path, name, {"state": model.state_dict(), "rows": history.rows}, cap)
        problems = [f"{p} and replaced" if p.startswith("entry ") and not failed else p for p in problems] + failed
    if problems:
        warn("fit cache: " + "; ".join(problems))
    return history


def store(root: Path, path: Path, name: str, entry: dict, cap: int) -> list[str]:
    """Write `entry` for key `name` at `path` and evict down to `cap`; the problems met (none: an empty list)."""
    try:
        buffer = io.BytesIO()
        torch.save(entry, buffer)
        data = fit_store.pack(name, buffer.getvalue())
        if len(data) > cap:
            return []
        fit_store.write(path, data)
        fit_store.written(root, len(data), cap)
    except Exception as error:  # OSError from the disk; whatever else, the cache only saves time
        return [f"could not write in {root} ({getattr(error, 'strerror', None) or error}); continuing without it"]
    return []


def decode(payload: bytes, model: nn.Module) -> dict:
    """The entry in `payload` checked against `model` (names, shapes, dtypes) and the history's rows."""
    try:
        entry = torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as error:  # a checksum guards the bytes; this guards a torch that cannot read them
        raise fit_store.EntryProblem(f"cannot be loaded by this torch ({type(error).__name__})") from None
    expected = model.state_dict()
    state = entry.get("state") if isinstance(entry, dict) else None
    rows = entry.get("rows") if isinstance(entry, dict) else None
    if not isinstance(state, dict) or set(state) != set(expected) or any(
            not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape or state[k].dtype != v.dtype
            for k, v in expected.items()):
        raise fit_store.EntryProblem("does not hold this model's weights")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and set(r) == ROW for r in rows):
        raise fit_store.EntryProblem("does not hold a training history")
    return entry


def rng_state() -> str:
    """Digest of the global random number generators' states (torch, CUDA when in use, numpy, random)."""
    digest = hashlib.sha256(torch.get_rng_state().numpy().tobytes())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for state in torch.cuda.get_rng_state_all():
            digest.update(state.numpy().tobytes())
    digest.update(pickle.dumps(np.random.get_state()))
    digest.update(pickle.dumps(random.getstate()))
    return digest.hexdigest()


def warn(message: str) -> None:
    """Warn once per process about `message`."""
    if message not in WARNED:
        WARNED.add(message)
        warnings.warn(message, stacklevel=3)
