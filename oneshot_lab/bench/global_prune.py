"""Global magnitude pruning at scale: the lab against `torch.nn.utils.prune.global_unstructured`, masks identical."""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from . import measure

# (label, layers, width): stacks of bias-free width x width Linear layers.
SIZES = [("1M", 4, 500), ("10M", 10, 1000), ("40M", 10, 2000)]
QUICK_SIZES = [("40k", 4, 100)]
SPARSITY = 0.9
TIE_GRID = 256  # the "ties" case rounds every weight to a multiple of 1/TIE_GRID: thousands tie at the threshold


def model(layers: int, width: int, ties: bool = False) -> nn.Sequential:
    """A seeded stack of Linear layers (PyTorch's default init), optionally with weights on a coarse grid."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(*[nn.Linear(width, width, bias=False) for _ in range(layers)])
    if ties:
        with torch.no_grad():
            for layer in net:
                layer.weight.mul_(TIE_GRID).round_().div_(TIE_GRID)
    return net


def lab_prune(net: nn.Module, sparsity: float = SPARSITY):
    """The lab's global magnitude pruning: scores, exact masks, weights zeroed in place; returns the masks."""
    import oneshot_lab as ol

    masks = ol.masks_from_scores(ol.pruning.criteria.magnitude(net), sparsity, scope="global")
    masks.apply(net)
    return masks


def torch_prune_global(net: nn.Module, sparsity: float = SPARSITY) -> nn.Module:
    """torch.nn.utils.prune's global L1 pruning of every layer's weight."""
    torch_prune.global_unstructured([(layer, "weight") for layer in net], torch_prune.L1Unstructured,
                                    amount=sparsity)
    return net


def prepare(layers: int, width: int, ties: bool, tool: str) -> Callable[[], Any]:
    """Set-up for a memory measurement: build the model, return the pruning call of `tool` ('lab' or 'torch')."""
    prune = lab_prune if tool == "lab" else torch_prune_global
    for warm_ties in (False, True):  # first-call costs (imports, compiled kernels, allocator pools) are not the
        prune(model(1, min(256, width // 2), warm_ties))  # call's memory: large enough to take the same paths
    net = model(layers, width, ties)
    return lambda: prune(net)


def one_size(label: str, layers: int, width: int, ties: bool, repeats: int, memory: bool = True) -> dict[str, Any]:
    """Time (interleaved medians), peak-memory growth and mask identity of both tools at one size."""
    from oneshot_lab.core.masks import Masks

    base = model(layers, width, ties)
    reference = torch_prune_global(copy.deepcopy(base))
    ours = lab_prune(copy.deepcopy(base))
    identical = ours.equal(Masks.from_torch_prune(reference))
    kept = ours.count()
    del reference, ours
    copies = {"lab": [copy.deepcopy(base) for _ in range(repeats)], "torch": [copy.deepcopy(base) for _ in range(repeats)]}
    times = measure.medians(measure.interleaved({
        "lab": lambda: lab_prune(copies["lab"].pop()),
        "torch": lambda: torch_prune_global(copies["torch"].pop())}, repeats))
    del copies
    memory = {tool: measure.peak_growth(f"{__name__}:prepare", layers=layers, width=width, ties=ties, tool=tool)
              for tool in ("lab", "torch")} if memory else {}
    return {"size": label + (" ties" if ties else ""), "weights": layers * width * width,
            "kept": kept[0], "identical_masks": identical,
            "lab_s": round(times["lab"], 4), "torch_s": round(times["torch"], 4),
            "time_ratio": measure.ratio(times["lab"], times["torch"]),
            "lab_peak_mib": round(memory["lab"] / 2**20, 1) if memory else None,
            "torch_peak_mib": round(memory["torch"] / 2**20, 1) if memory else None,
            "memory_ratio": measure.ratio(max(memory["lab"], 1), max(memory["torch"], 1)) if memory else None}


def run(quick: bool = False, repeats: int = 3) -> dict[str, Any]:
    """Every size, plus a tie-heavy case at the middle size; with markdown."""
    sizes = QUICK_SIZES if quick else SIZES
    rows = [one_size(label, layers, width, False, repeats) for label, layers, width in sizes]
    label, layers, width = sizes[min(1, len(sizes) - 1)]
    rows.append(one_size(label, layers, width, True, repeats, memory=not quick))
    markdown = (f"### Global magnitude pruning to {SPARSITY:.0%} (bias-free Linear stacks), lab vs "
                "torch.nn.utils.prune.global_unstructured\n\n" + measure.markdown_table(rows))
    return {"rows": rows, "sparsity": SPARSITY, "markdown": markdown}
