"""What every pruner needs of a model and its data, checked before any work: no shared layers or tied weights,
weights that are parameters, and data the model takes (one forward pass of one example)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .data import Dataset
from .masks import PRUNABLE_TYPES, parameter, prunable, working_copy


def check_model(model: Any, data: Dataset | None = None) -> list[str]:
    """The prunable parameter names of `model`, or one ValueError naming why the pruners cannot take it: not a
    module, no prunable layers, a shared layer, a weight that is no parameter, tied weights, or (with `data`)
    one training example of `data` that the model cannot take."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"the model must be a torch nn.Module, got {type(model).__name__}")
    names = prunable(model)
    places: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, PRUNABLE_TYPES):
            places.setdefault(id(module), []).append(name)
    shared = next((found for found in places.values() if len(found) > 1), None)
    if shared:
        raise ValueError(f"layer {shared[0]!r} is also layer {shared[1]!r} (one module in two places); the pruners "
                         f"prune and count each layer once: give each place a layer of its own")
    owners: dict[int, list[str]] = {}
    for name, tensor in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(tensor), []).append(name)
    for name in names:
        weight = parameter(model, name)
        if not isinstance(weight, nn.Parameter) or not weight.is_floating_point():
            raise ValueError(f"prunable weight {name!r} is a {type(weight).__name__} of {getattr(weight, 'dtype', '?')}, "
                             f"not a floating-point parameter (nn.Parameter): the pruners cannot train or prune it")
        tied = owners.get(id(weight), [name])
        if len(tied) > 1:
            raise ValueError(f"parameters {tied[0]!r} and {tied[1]!r} are one tensor (tied weights); the pruners "
                             f"mask and count each weight once: give each layer a weight of its own")
    if data is not None:
        check_forward(model, data, names)
    return names


def check_forward(model: nn.Module, data: Dataset, names: list[str]) -> None:
    """Raise one ValueError unless the labels of `data` are classes and a working copy of `model` maps one training
    example of `data` to (1, k) logits, k >= the classes of `data`, applying each prunable layer `names` at most
    once."""
    example, labels = data.train.x[:1], data.train.y
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool or labels.numel() and (
            int(labels.min()) < 0 or int(labels.max()) >= data.num_classes):
        shown = f"{labels.dtype}" if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool \
            else f"from {int(labels.min())} to {int(labels.max())}"
        raise ValueError(f"the training labels of {data.name} are {shown}; the pruners need integer class labels in "
                         f"[0, {data.num_classes - 1}] (num_classes {data.num_classes})")
    dtypes = sorted({str(p.dtype) for p in model.parameters() if p.is_floating_point()} - {str(example.dtype)})
    if dtypes:
        raise ValueError(f"the model's parameters are {', '.join(dtypes)} but the data ({data.name}) is "
                         f"{example.dtype}: convert one to the other (e.g. model.float())")
    clone = working_copy(model)
    calls = dict.fromkeys(names, 0)
    hooks = [clone.get_submodule(name.rpartition(".")[0]).register_forward_hook(
        lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)) for name in names]
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):  # a model drawing random numbers leaves no trace
            out = clone(example)
    except Exception as error:  # whatever the model's own code raises on this input
        raise ValueError(f"the model cannot take the data: one example of {data.name} (shape "
                         f"{tuple(example.shape)}) raised {type(error).__name__}: {' '.join(str(error).split())[:200]}"
                         ) from None
    finally:
        for hook in hooks:
            hook.remove()
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1 or out.shape[1] < data.num_classes \
            or not out.is_floating_point():
        raise ValueError(f"the model maps one example of {data.name} to {shape}; the pruners need logits of shape "
                         f"(1, {data.num_classes}) (one per class of the data)")
    again = next((name for name, count in calls.items() if count > 1), None)
    if again:
        raise ValueError(f"layer {again.rpartition('.')[0]!r} is applied {calls[again]} times in one forward pass (a "
                         f"shared module); the pruners prune and count each layer once: give each use a layer of "
                         f"its own")
