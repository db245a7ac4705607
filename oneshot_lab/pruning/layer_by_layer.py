"""The layer-wise algorithms of `reconstruction` (OBC, SparseGPT, Wanda per row) run over a whole model: layers in
order, each on inputs through the already pruned layers before it, and entries already pruned (a prior mask)
treated as removed from the start. Where layers share a count, the per-layer counts come from the dense model's
calibration inputs: OBC's from the per-row counts of least total greedy-trace error over all rows of all layers
(`obc_global_counts`), SparseGPT's and Wanda's from one global ranking of OBS saliencies (`global_counts`).

OBC on a layer (`obc_layer`) is OBC as published: every row's greedy trace (each step's error increment when the
row is pruned completely by exact greedy OBS, `obc_rows.traces`), the row counts of least total trace error
(`obc_counts.allocate`), then the exact per-row solver given those counts (`reconstruction.obc`).

A prior mask prunes whole entries, so rows of one layer may keep different columns. The curvature of the
surviving weights of a row is H restricted to its kept columns: rows are grouped by their pattern of kept
columns and every group is solved on its own restricted curvature (OBC's traces and rows, and the OBS
saliencies of the global ranking); the prior entries count toward the layer's count. SparseGPT puts the prior
entries into its mask at their columns (its column-by-column elimination treats a pruned entry the same way
whenever it was chosen); Wanda forces them into its per-row mask.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core import topk
from . import obc_counts, obc_rows
from .reconstruction import (curvature, error, flat_weight, grams, inverse, obc, row_mask, saliency, sparsegpt, spread,
                             wanda)

Groups = list[tuple[tuple[str, ...], int]]  # (layers pruned together, entries pruned in them in the end)


def patterns(keep: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(rows, kept columns) for every distinct row of `keep` (rows x d), rows in increasing order."""
    if bool(keep.all()):
        return [(torch.arange(keep.shape[0]), torch.arange(keep.shape[1]))]
    unique, which = torch.unique(keep.to(torch.uint8), dim=0, return_inverse=True)
    return [((which == i).nonzero()[:, 0], row.nonzero()[:, 0]) for i, row in enumerate(unique.bool())]


def restricted_saliency(weight: torch.Tensor, h: torch.Tensor, keep: torch.Tensor, name: str) -> torch.Tensor:
    """OBS saliency of every kept entry on its row's curvature restricted to the row's kept columns; -inf where pruned."""
    out = torch.full_like(weight, float("-inf"))
    for rows, cols in patterns(keep):
        if len(cols):
            out[rows[:, None], cols] = saliency(weight[rows][:, cols], inverse(h[cols][:, cols], name))
    return out


def row_groups(h: torch.Tensor, keep: torch.Tensor, name: str) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(rows, kept columns, H^-1 of H restricted to them) for every pattern of `keep` that keeps any column."""
    return [(rows, cols, inverse(h if len(cols) == h.shape[0] else h[cols][:, cols], name))
            for rows, cols in patterns(keep) if len(cols)]


def row_traces(weight: torch.Tensor, groups: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Every row's greedy trace (`obc_rows.traces`) on its group's restricted curvature (rows x d: increments in
    order of removal, +inf past the row's kept columns)."""
    out = torch.full(weight.shape, float("inf"), dtype=torch.float64)
    for rows, cols, h_inv in groups:
        out[rows, :len(cols)] = obc_rows.traces(weight[rows][:, cols], h_inv)
    return out


def obc_layer(weight: torch.Tensor, h: torch.Tensor, keep: torch.Tensor, count: int, name: str,
              traces: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """OBC on one layer whose entries outside `keep` are pruned already, `count` pruned in all (prior included).

    Every row's greedy trace on H restricted to its kept columns (`row_traces`; or `traces`, those of this
    very weight, H and keep) gives the row counts of least total trace error for what the count leaves after
    the prior entries (`obc_counts.allocate`); each group of rows sharing a pattern is then pruned to its
    counts by `reconstruction.obc` on its kept columns with H^-1 of H restricted to them. Returns
    (updated weights, keep mask).
    """
    groups = row_groups(h, keep, name)
    traces = row_traces(weight, groups) if traces is None else traces
    more = obc_counts.allocate(traces, count - int((~keep).sum()))
    new, out = weight.masked_fill(~keep, 0.0), keep.clone()
    for rows, cols, h_inv in groups:
        w, k = obc(new[rows][:, cols], h_inv, more[rows])
        new[rows[:, None], cols] = w
        out[rows[:, None], cols] = k
    return new, out


def global_counts(model: nn.Module, names: tuple[str, ...], x: torch.Tensor, total: int, damp: float,
                  prior: dict[str, torch.Tensor] | None = None) -> dict[str, int]:
    """Per-layer counts from one global ranking of the OBS reconstruction saliencies of the model as given.

    Entries pruned in `prior` rank first (they count toward `total`); the others by their restricted saliency.
    The `total` lowest are `topk.lowest_of`'s set (torch.topk's, ties included).
    """
    dense = grams(model, list(names), x)
    scores = []
    for name in names:
        weight = flat_weight(model, name)
        h = curvature(dense[name], len(x), damp)
        scores.append((saliency(weight, inverse(h, name)) if prior is None
                       else restricted_saliency(weight, h, prior[name].reshape(weight.shape), name)).reshape(-1))
    return {n: int(c.sum()) for n, c in zip(names, topk.lowest_of(scores, total))}


def obc_global_counts(model: nn.Module, names: tuple[str, ...], x: torch.Tensor, total: int, damp: float,
                      prior: dict[str, torch.Tensor] | None = None) -> tuple[dict[str, int], dict]:
    """Per-layer counts of OBC with scope='global': the row counts of least total trace error over all rows of
    all layers (`obc_counts.allocate`, traces on the dense model's calibration inputs), summed per layer.

    Entries pruned in `prior` count toward `total`. Also returns {layer: (H, traces)} for reuse where a
    layer's inputs are still those of the dense model (the first layer's).
    """
    dense = grams(model, list(names), x)
    traced, keeps = {}, {}
    for name in names:
        weight = flat_weight(model, name)
        h = curvature(dense[name], len(x), damp)
        keeps[name] = torch.ones_like(weight, dtype=torch.bool) if prior is None else prior[name].reshape(weight.shape)
        traced[name] = (h, row_traces(weight, row_groups(h, keeps[name], name)))
    width = max(t.shape[1] for _, t in traced.values())
    rows = torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=float("inf"))
                      for _, t in traced.values()])
    pre = sum(int((~k).sum()) for k in keeps.values())
    more, start, counts = obc_counts.allocate(rows, total - pre), 0, {}
    for name in names:
        size = keeps[name].shape[0]
        counts[name] = int((~keeps[name]).sum()) + int(more[start:start + size].sum())
        start += size
    return counts, traced


def prune_layers(model: nn.Module, names: list[str], x: torch.Tensor, method: str, groups: Groups, damp: float,
                 block_size: int, prior: dict[str, torch.Tensor] | None = None) -> list[tuple[str, torch.Tensor, float]]:
    """Prune the layers `names` of `model` in place, in order, each on inputs through the pruned layers before it.

    `groups`: (layers, count) pairs; a group of several layers shares its count by `global_counts`. `method`:
    'obc', 'sparsegpt' or 'wanda'. `prior`: keep masks of entries already pruned (0 in `model`), which count
    toward the counts and stay pruned. Returns (name, keep mask shaped like the weight, reconstruction error)
    per layer.
    """
    counts, traced = {}, {}
    for layers, count in groups:
        if len(layers) == 1:
            counts[layers[0]] = count
        elif method == "obc":
            chosen, dense = obc_global_counts(model, layers, x, count, damp, prior)
            counts.update(chosen)
            traced.update(dense)
        else:
            counts.update(global_counts(model, layers, x, count, damp, prior))
    done = []
    for name in names:
        gram = grams(model, [name], x)[name]
        weight = flat_weight(model, name)
        keep = torch.ones_like(weight, dtype=torch.bool) if prior is None else prior[name].reshape(weight.shape)
        k = counts[name]
        if method == "wanda":
            scores = wanda(weight, gram).masked_fill(~keep, float("-inf"))
            pre = (~keep).sum(1)
            keep = row_mask(scores, pre + spread(k - int(pre.sum()), keep.sum(1)))
            new = weight * keep
        else:
            h = curvature(gram, len(x), damp)
            if method == "obc":
                same = name in traced and torch.equal(traced[name][0], h)
                new, keep = obc_layer(weight, h, keep, k, name, traced[name][1] if same else None)
            else:
                inverse(h, name)  # a clear error if H is singular
                new, keep = sparsegpt(weight, h, k, block_size, None if prior is None else keep)
        param = model.get_parameter(name)
        with torch.no_grad():
            param.copy_(new.reshape(param.shape).to(param.dtype))
        done.append((name, keep.reshape(param.shape), error(new - weight, gram, len(x))))
    return done
