"""CPU inference latency of pruned models: dense storage, PyTorch CSR, and physically smaller layers."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from . import measure

SPARSITIES = (0.9, 0.95, 0.98)
BATCHES = (1, 256)
# (label, dataset, model, option scaled for the physically smaller model, its dense value)
CASES = [("LeNet-300-100 (MNIST)", "mnist_subset", "lenet_300_100", "widths", [300, 100]),
         ("conv1d (MNIST-1D)", "mnist1d", "conv1d", "channels", 64)]


class CSRLinear(nn.Module):
    """A Linear layer whose weight is stored as a PyTorch CSR matrix."""

    def __init__(self, layer: nn.Linear):
        super().__init__()
        self.weight = layer.weight.detach().to_sparse_csr()
        self.bias = None if layer.bias is None else layer.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.sparse.mm(self.weight, x.t()).t()
        return out if self.bias is None else out + self.bias


class CSRConv1d(nn.Module):
    """A Conv1d layer computed as unfold + CSR matrix product (PyTorch has no sparse convolution on CPU)."""

    def __init__(self, layer: nn.Conv1d):
        super().__init__()
        self.weight = layer.weight.detach().reshape(layer.out_channels, -1).to_sparse_csr()
        self.bias = None if layer.bias is None else layer.bias.detach()
        self.kernel, self.stride, self.padding = layer.kernel_size[0], layer.stride[0], layer.padding[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, (self.padding, self.padding))
        cols = x.unfold(2, self.kernel, self.stride)  # B x C x L_out x k
        batch, _, length, _ = cols.shape
        cols = cols.permute(1, 3, 0, 2).reshape(-1, batch * length)  # (C k) x (B L_out)
        out = torch.sparse.mm(self.weight, cols).reshape(-1, batch, length).transpose(0, 1)
        return out if self.bias is None else out + self.bias[:, None]


def to_csr(model: nn.Sequential) -> nn.Sequential:
    """A copy of `model` with every Linear / Conv1d layer stored in CSR."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        layers = [CSRLinear(layer) if isinstance(layer, nn.Linear) else
                  CSRConv1d(layer) if isinstance(layer, nn.Conv1d) else layer for layer in model]
    return nn.Sequential(*layers)


def smaller(name: str, data, option: str, dense_value, kept: int) -> nn.Sequential:
    """The same architecture with whole neurons / channels removed, its prunable weights closest to `kept`."""
    import oneshot_lab as ol

    def scaled(f: float):
        value = [max(1, round(w * f)) for w in dense_value] if isinstance(dense_value, list) else max(1, round(dense_value * f))
        return ol.build("mlp" if option == "widths" else name, data, seed=0, **{option: value})

    def weights(net: nn.Module) -> int:
        return sum(net.get_parameter(p).numel() for p in ol.prunable(net))

    best = min((abs(weights(scaled(f / 1000)) - kept), f) for f in range(5, 1001, 5))[1]
    return scaled(best / 1000)


def latency(quick: bool, repeats: int) -> list[dict[str, Any]]:
    """Median milliseconds per forward pass of every storage, sparsity and batch size."""
    import oneshot_lab as ol

    rows = []
    cases = CASES[1:] if quick else CASES
    for label, dataset, name, option, dense_value in cases:
        data = measure.dataset(dataset)
        dense = ol.build(name, data, seed=0)
        for sparsity in SPARSITIES[:1] if quick else SPARSITIES:
            masked = copy.deepcopy(dense)
            masks = ol.masks_from_scores(ol.pruning.criteria.magnitude(masked), sparsity)
            masks.apply(masked)
            variants = {"dense storage": masked, "CSR": to_csr(masked),
                        "smaller layers": smaller(name, data, option, dense_value, masks.count()[0])}
            for batch in BATCHES:
                x = data.test.x[:batch]
                calls = {}
                for kind, net in variants.items():
                    net.eval()
                    calls[kind] = (lambda net=net: [net(x) for _ in range(10)])
                with torch.no_grad():
                    for call in calls.values():
                        call()
                    times = measure.medians(measure.interleaved(calls, repeats))
                ms = {kind: t / 10 * 1e3 for kind, t in times.items()}
                rows.append({"model": label, "sparsity": sparsity, "batch": batch,
                             "dense_ms": round(ms["dense storage"], 4), "csr_ms": round(ms["CSR"], 4),
                             "smaller_ms": round(ms["smaller layers"], 4),
                             "csr_vs_dense": measure.ratio(ms["CSR"], ms["dense storage"]),
                             "smaller_vs_dense": measure.ratio(ms["smaller layers"], ms["dense storage"])})
    return rows


def run(quick: bool = False, repeats: int = 21) -> dict[str, Any]:
    """The latency table, with markdown."""
    rows = latency(quick, 3 if quick else repeats)
    markdown = ("### Inference latency on CPU: pruned weights stored dense, as CSR, or as physically smaller "
                "layers (same number of weights)\n\n" + measure.markdown_table(rows))
    return {"rows": rows, "markdown": markdown}
