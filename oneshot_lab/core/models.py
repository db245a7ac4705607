"""Model zoo: plain `nn.Sequential` networks sized from a dataset, seeded initialisation."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from ..util import checks, rules

from .data import Dataset

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _activation(name: str) -> nn.Module:
    """A fresh (never in-place) activation module called `name`."""
    checks.one_of("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def _dense_stack(in_features: int, widths: Sequence[int], out_features: int, activation: str) -> list[nn.Module]:
    """Linear layers of the given hidden widths with an activation between them."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(in_features, int(width)), _activation(activation)]
        in_features = int(width)
    return layers + [nn.Linear(in_features, out_features)]


def mlp(dataset: Dataset, widths: Sequence[int] = (100,), activation: str = "relu") -> nn.Sequential:
    """Fully connected network with the given hidden widths."""
    widths = rules.RULES["widths"].check("widths", widths)
    in_features = math.prod(dataset.input_shape)
    return nn.Sequential(nn.Flatten(), *_dense_stack(in_features, widths, dataset.num_classes, activation))


def lenet_300_100(dataset: Dataset, activation: str = "relu") -> nn.Sequential:
    """LeNet-300-100, the fully connected network of the lottery-ticket paper."""
    return mlp(dataset, widths=(300, 100), activation=activation)


def _flat_size(features: nn.Sequential, input_shape: tuple[int, ...]) -> int:
    """Number of features `features` produces for one input of `input_shape`."""
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())


def lenet5(dataset: Dataset, activation: str = "relu") -> nn.Sequential:
    """LeNet-5-style convnet for 2-D images (padding 2 so it also fits 8x8 digits)."""
    if len(dataset.input_shape) != 3:
        raise ValueError(f"lenet5 needs 2-D images (C x H x W); {dataset.name} has input shape "
                         f"{dataset.input_shape}; use 'conv1d', 'mlp' or 'lenet_300_100'")
    channels = dataset.input_shape[0]
    features = nn.Sequential(
        nn.Conv2d(channels, 6, 5, padding=2), _activation(activation), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, padding=2), _activation(activation), nn.MaxPool2d(2),
        nn.Flatten(),
    )
    head = _dense_stack(_flat_size(features, dataset.input_shape), (120, 84), dataset.num_classes, activation)
    return nn.Sequential(*features, *head)


def conv1d(dataset: Dataset, channels: int = 64, activation: str = "relu") -> nn.Sequential:
    """The MNIST-1D convnet of Greydanus (2020): three strided Conv1d layers and a linear head.

    Greydanus used 25 channels; 64 by default here gives ~28k prunable weights (its accuracy with notebook 01's
    recipe is in docs/results.md, generated from results/01_magnitude_pruning).
    """
    if len(dataset.input_shape) != 2:
        raise ValueError(f"conv1d needs 1-D signals (C x L); {dataset.name} has input shape "
                         f"{dataset.input_shape}; use 'lenet5', 'mlp' or 'lenet_300_100'")
    features = nn.Sequential(
        nn.Conv1d(dataset.input_shape[0], channels, 5, stride=2, padding=1), _activation(activation),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1), _activation(activation),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1), _activation(activation),
        nn.Flatten(),
    )
    head = nn.Linear(_flat_size(features, dataset.input_shape), dataset.num_classes)
    return nn.Sequential(*features, head)


BUILDERS: dict[str, Callable[..., nn.Sequential]] = {
    "lenet_300_100": lenet_300_100,
    "lenet5": lenet5,
    "conv1d": conv1d,
    "mlp": mlp,
}


def build(name: str, dataset: Dataset, seed: int = 0, **options) -> nn.Sequential:
    """Build model `name` for `dataset`, initialised from `seed` without touching global RNG state."""
    checks.one_of("model", name, BUILDERS)
    seed = checks.seed("seed", seed)
    options = rules.model_options(name, options, f"options of model {name!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return BUILDERS[name](dataset, **options)
        except TypeError as err:
            raise ValueError(f"bad options {options} for model {name!r}: {err}") from err
