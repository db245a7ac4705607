"""Deterministic training with binding masks, weight snapshots and a tidy history."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import pandas as pd
import torch
from torch import nn

from ..util import rules
from ..util.config import Config, option
from ..core.data import Dataset
from ..util.progress import bar
from ..core.masks import as_masks

OPTIMIZERS = rules.RULES["optimizer"].choices  # ("sgd", "adam")
SCHEDULES = rules.RULES["schedule"].choices  # ("constant", "cosine", "step")


@dataclass(frozen=True)
class TrainConfig(Config):
    """Hyperparameters of one training run; `iterations` (if set) overrides `epochs`.

    Every field is checked by its rule in `rules.RULES` (the `Config` base), so lr > 0, batch_size >= 1, ...
    """

    optimizer: str = option("adam", "sgd (with momentum) or adam")
    lr: float = option(1e-3, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum (ignored by adam)")
    weight_decay: float = option(0.0, "coupled L2 weight decay")
    batch_size: int = option(64, "minibatch size")
    epochs: int = option(10, "passes over the training split (unless iterations is set)")
    iterations: int | None = option(None, "optimizer steps of the run; overrides epochs")
    schedule: str = option("constant", "constant | cosine | step (x0.1 at 50% and 75%)")
    eval_every: int | None = option(None, "steps between evaluations (default: once per epoch)")
    seed: int = option(0, "seed of the data order")

    def steps_per_epoch(self, n_train: int) -> int:
        """Optimizer steps in one pass over `n_train` examples (last batch may be partial)."""
        return math.ceil(n_train / self.batch_size)

    def total_iterations(self, n_train: int) -> int:
        """Optimizer steps of the whole run."""
        return int(self.iterations) if self.iterations is not None else self.epochs * self.steps_per_epoch(n_train)

    def lr_at(self, iteration: int, total: int) -> float:
        """Learning rate for the step taken at `iteration` of `total` (replayable from any point)."""
        if self.schedule == "cosine" and total > 0:
            return self.lr * 0.5 * (1 + math.cos(math.pi * iteration / total))
        if self.schedule == "step" and total > 0:
            return self.lr * (0.1 ** sum(iteration >= f * total for f in (0.5, 0.75)))
        return self.lr


@dataclass
class History:
    """Metrics of a run as tidy rows, plus weight snapshots taken at requested iterations."""

    rows: list[dict] = field(default_factory=list)
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """One row per (iteration, split): loss and accuracy."""
        return pd.DataFrame(self.rows, columns=["iteration", "epoch", "split", "loss", "accuracy"])

    def _wide(self) -> pd.DataFrame:
        """One row per evaluated iteration with `<split>_loss` / `<split>_accuracy` columns."""
        frame = self.frame()
        frame = frame[frame.split.isin(("val", "test"))]
        wide = frame.pivot_table(index="iteration", columns="split", values=["loss", "accuracy"])
        wide.columns = [f"{split}_{metric}" for metric, split in wide.columns]
        return wide.reset_index()

    def best(self) -> dict:
        """The evaluation with the lowest validation loss (early stopping; the test split is never used to choose)."""
        wide = self._wide()
        if wide.empty:
            raise ValueError("history has no evaluations")
        return wide.loc[wide["val_loss"].idxmin()].to_dict()

    def final(self) -> dict:
        """The last evaluation."""
        wide = self._wide()
        if wide.empty:
            raise ValueError("history has no evaluations")
        return wide.iloc[-1].to_dict()


def _batch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of epoch `epoch`: a function of (seed, epoch) only, so any iteration can be replayed."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, split: str = "test", batch_size: int = 2048) -> dict:
    """Mean cross-entropy loss and accuracy of `model` on one split."""
    x, y = dataset.split(split)
    was_training = model.training
    model.eval()
    losses, correct = [], []
    for start in range(0, len(y), batch_size):
        logits = model(x[start:start + batch_size])
        target = y[start:start + batch_size]
        losses.append(nn.functional.cross_entropy(logits, target, reduction="sum"))
        correct.append((logits.argmax(1) == target).sum())
    model.train(was_training)
    loss_sum = float(sum(loss.item() for loss in losses))  # one host read per batch, after the forward passes
    return {"loss": loss_sum / len(y), "accuracy": int(torch.stack(correct).sum()) / len(y)}


def optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """A fresh optimizer for `model` (no state carried over between calls), fused where PyTorch has the kernel.

    Fused: one kernel per step instead of a dozen elementwise passes; on CPU it also avoids Adam's
    `sqrt` of second moments that are exactly zero (pruned or dead weights), which PyTorch's elementwise
    kernel runs about 15x slower than on other values (benchmarks/results/training.md).
    """
    fused = all(p.dtype in (torch.float32, torch.float64) for p in model.parameters()) and not any(
        getattr(m, "sparse", False) for m in model.modules())  # sparse embedding gradients: no fused kernel
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, fused=fused)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Cloned (never aliased) copy of the model's state."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fit(model: nn.Module, dataset: Dataset, config: TrainConfig = TrainConfig(),
        masks: Mapping[str, torch.Tensor] | None = None, snapshot_at: Iterable[int] = (),
        start_iteration: int = 0, progress: bool = True) -> History:
    """Train `model` in place; pruned entries stay exactly 0 after every step; returns the history.

    `start_iteration` resumes the data order and LR schedule at that step (for rewinding); `progress`
    shows a bar (a display choice, not a hyperparameter).
    """
    n_train = len(dataset.train.y)
    if n_train == 0:
        raise ValueError(f"dataset {dataset.name!r} has an empty training split: nothing to train on")
    total = config.total_iterations(n_train)
    wanted = sorted({int(i) for i in snapshot_at})
    if not 0 <= start_iteration <= total:
        raise ValueError(f"start_iteration must be in [0, {total}], got {start_iteration}")
    if wanted and not (start_iteration <= wanted[0] and wanted[-1] <= total):
        raise ValueError(f"snapshot_at must lie in [{start_iteration}, {total}], got {wanted}")
    masks = as_masks(model, masks)
    bind = masks.binder(model) if masks is not None else (lambda: None)
    bind()
    opt = optimizer(model, config)
    per_epoch = config.steps_per_epoch(n_train)
    eval_every = config.eval_every or per_epoch
    history = History()
    window = Window()

    def log(iteration: int) -> None:
        epoch = iteration / per_epoch
        if window.seen:
            history.rows.append({"iteration": iteration, "epoch": epoch, "split": "train", **window.drain(y)})
        for split in ("val", "test"):
            history.rows.append({"iteration": iteration, "epoch": epoch, "split": split,
                                 **evaluate(model, dataset, split)})

    model.train()
    x, y = dataset.train
    iteration = start_iteration
    order = _batch_order(n_train, config.seed, iteration // per_epoch)
    if iteration in wanted:
        history.snapshots[iteration] = snapshot(model)
    log(iteration)
    snap_at, lr = set(wanted), None
    with bar(total=total - start_iteration, desc="train", disable=not progress) as meter:
        while iteration < total:
            step_in_epoch = iteration % per_epoch
            if step_in_epoch == 0 and iteration != start_iteration:
                order = _batch_order(n_train, config.seed, iteration // per_epoch)
            idx = order[step_in_epoch * config.batch_size:(step_in_epoch + 1) * config.batch_size]
            if config.lr_at(iteration, total) != lr:
                lr = config.lr_at(iteration, total)
                for group in opt.param_groups:
                    group["lr"] = lr
            logits = model(x[idx])
            loss = nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bind()
            iteration += 1
            window.add(loss, logits, idx)
            if iteration in snap_at:
                history.snapshots[iteration] = snapshot(model)
            if iteration % eval_every == 0 or iteration == total:
                log(iteration)
            meter.update(1)
    return history


class Window:
    """Training loss and predictions since the last evaluation, kept as tensors and read once per evaluation."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every kept step."""
        self.losses: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []
        self.indices: list[torch.Tensor] = []
        self.seen = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, idx: torch.Tensor) -> None:
        """Keep one step's mean loss, logits and batch indices (no host read)."""
        self.losses.append(loss.detach())
        self.logits.append(logits.detach())
        self.indices.append(idx)
        self.seen += len(idx)

    def drain(self, y: torch.Tensor) -> dict:
        """Mean loss and accuracy over the kept steps, weighted by batch size; empties the window."""
        sizes = torch.tensor([len(i) for i in self.indices], dtype=self.losses[0].dtype)
        loss = float((torch.stack(self.losses) * sizes).sum()) / self.seen
        correct = int((torch.cat(self.logits).argmax(1) == y[torch.cat(self.indices)]).sum())
        out = {"loss": loss, "accuracy": correct / self.seen}
        self.clear()
        return out
