"""Binary masks over prunable parameters: selection from scores, application, reports, interop."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from ..util import checks
from . import topk

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
SCOPES = ("global", "layer")


def prunable(model: nn.Module) -> list[str]:
    """Names of the prunable parameters: the `weight` of every Linear / Conv layer, in model order."""
    names = [f"{mod_name}.weight" if mod_name else "weight"
             for mod_name, module in model.named_modules() if isinstance(module, PRUNABLE_TYPES)]
    if not names:
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(f"model has no prunable layers (Linear / Conv1d / Conv2d / Conv3d); "
                         f"it contains: {', '.join(kinds)}")
    return names


def parameter(model: nn.Module, name: str) -> torch.Tensor:
    """The live tensor behind parameter `name` (`weight_orig` under torch.nn.utils.prune)."""
    mod_name, _, attr = name.rpartition(".")
    module = model.get_submodule(mod_name)
    if torch_prune.is_pruned(module) and hasattr(module, f"{attr}_orig"):
        return getattr(module, f"{attr}_orig")
    return getattr(module, attr)


class Masks(Mapping[str, torch.Tensor]):
    """A mapping from parameter name to a bool tensor: True keeps the entry, False prunes it."""

    def __init__(self, masks: Mapping[str, torch.Tensor]):
        self._masks: dict[str, torch.Tensor] = {}
        for name, mask in masks.items():
            mask = torch.as_tensor(mask)
            if mask.dtype != torch.bool:
                raise TypeError(f"mask {name!r} must be a bool tensor, got {mask.dtype}")
            self._masks[name] = mask.detach().clone()

    @classmethod
    def ones(cls, model: nn.Module, names: list[str] | None = None) -> "Masks":
        """All-True masks over `names` (default: the prunable parameters of `model`)."""
        names = prunable(model) if names is None else names
        return cls({n: torch.ones_like(parameter(model, n), dtype=torch.bool) for n in names})

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def __repr__(self) -> str:
        return f"Masks({len(self)} tensors, sparsity={self.sparsity():.4f})"

    def __and__(self, other: Mapping[str, torch.Tensor]) -> "Masks":
        """Entries kept by both masks (over this mask's names)."""
        return Masks({n: m & other[n] if n in other else m for n, m in self.items()})

    def equal(self, other: Mapping[str, torch.Tensor]) -> bool:
        """Whether `other` has the same names and identical entries."""
        return set(self) == set(other) and all(torch.equal(self[n], other[n]) for n in self)

    def check(self, model: nn.Module) -> None:
        """Raise if a mask names a missing parameter or has the wrong shape."""
        params = dict(model.named_parameters())
        for name, mask in self.items():
            try:
                live = params[name] if name in params else parameter(model, name)
            except AttributeError:
                raise ValueError(f"mask {name!r} names no parameter of the model; prunable parameters: "
                                 f"{', '.join(prunable(model))}") from None
            if live.shape != mask.shape:
                raise ValueError(f"mask {name!r} has shape {tuple(mask.shape)} but the parameter has "
                                 f"{tuple(live.shape)}")

    def apply(self, model: nn.Module) -> nn.Module:
        """Zero the pruned entries of `model` in place and return it."""
        self.check(model)
        with torch.no_grad():
            for name, mask in self.items():
                parameter(model, name).mul_(mask)
        return model

    def binder(self, model: nn.Module) -> "MaskBinder":
        """A fast re-zeroing callable for the training loop."""
        return MaskBinder(model, self)

    def count(self) -> tuple[int, int]:
        """(kept entries, total entries) over all masks."""
        kept = sum(int(m.sum()) for m in self.values())
        return kept, sum(m.numel() for m in self.values())

    def density(self) -> float:
        """Fraction of masked entries that are kept."""
        kept, total = self.count()
        return kept / total if total else 1.0

    def sparsity(self) -> float:
        """Fraction of masked entries that are pruned."""
        return 1.0 - self.density()

    def table(self, **labels) -> pd.DataFrame:
        """One row per layer: the `labels` columns, layer, entries, kept, density and collapsed (nothing kept)."""
        rows = []
        for name, mask in self.items():
            kept = int(mask.sum())
            rows.append({**labels, "layer": name, "entries": mask.numel(), "kept": kept,
                         "density": kept / mask.numel(), "collapsed": kept == 0})
        return pd.DataFrame(rows, columns=[*labels, "layer", "entries", "kept", "density", "collapsed"])

    def report(self) -> pd.DataFrame:
        """`table` with each layer's shape and sparsity, plus a 'total' row."""
        layers = self.table()
        layers.insert(1, "shape", [tuple(m.shape) for m in self.values()])
        layers.insert(5, "sparsity", 1 - layers["density"])
        kept, total = self.count()
        total_row = {"layer": "total", "shape": (), "entries": total, "kept": kept, "density": self.density(),
                     "sparsity": self.sparsity(), "collapsed": bool(layers["collapsed"].any())}
        return pd.concat([layers, pd.DataFrame([total_row])], ignore_index=True)

    def collapsed_layers(self) -> list[str]:
        """Names of masks that prune every entry (layer collapse)."""
        return [n for n, m in self.items() if not bool(m.any())]

    def to_torch_prune(self, model: nn.Module) -> nn.Module:
        """Attach these masks to `model` with `torch.nn.utils.prune.custom_from_mask`."""
        self.check(model)
        for name, mask in self.items():
            mod_name, _, attr = name.rpartition(".")
            torch_prune.custom_from_mask(model.get_submodule(mod_name), attr, mask)
        return model

    @classmethod
    def from_torch_prune(cls, model: nn.Module) -> "Masks":
        """Read the masks of every parameter pruned with `torch.nn.utils.prune` in `model`."""
        masks = {}
        for mod_name, module in model.named_modules():
            for buffer_name, buffer in module.named_buffers(recurse=False):
                if buffer_name.endswith("_mask"):
                    attr = buffer_name[: -len("_mask")]
                    masks[f"{mod_name}.{attr}" if mod_name else attr] = buffer.bool()
        if not masks:
            raise ValueError("model has no torch.nn.utils.prune masks (no '*_mask' buffers)")
        return cls(masks)


def as_masks(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, complete: bool = False) -> Masks | None:
    """`masks` checked against `model` (names, shapes, bool) as `Masks`; None stays None.

    complete=True: masks over exactly the prunable parameters, a parameter `masks` does not name keeping every
    entry (None: all-True masks).
    """
    if masks is None:
        return Masks.ones(model) if complete else None
    if not isinstance(masks, Mapping):
        raise ValueError(f"masks must be a Masks (prunable parameter names mapped to bool tensors), "
                         f"got {type(masks).__name__}")
    names = prunable(model)
    unknown = sorted(set(masks) - set(names)) if complete else []
    if unknown:
        raise ValueError(f"masks name {unknown[0]!r}, not a prunable parameter; prunable parameters: {', '.join(names)}")
    try:
        given = masks if isinstance(masks, Masks) else Masks(masks)
    except (TypeError, RuntimeError) as error:
        raise ValueError(str(error)) from None
    given.check(model)
    if not complete:
        return given
    return Masks({n: given[n] if n in given else torch.ones_like(parameter(model, n), dtype=torch.bool)
                  for n in names})


class MaskBinder:
    """Re-zeroes pruned entries in place; called after every optimizer step."""

    def __init__(self, model: nn.Module, masks: Masks):
        masks.check(model)
        # Detached views share storage with the parameters: in-place products on them need no autograd context.
        self.params = [parameter(model, n).detach() for n in masks]
        self.factors = [masks[n].to(p.dtype) for n, p in zip(masks, self.params)]

    def __call__(self) -> None:
        if self.params:
            torch._foreach_mul_(self.params, self.factors)


def macs(model: nn.Module, input_shape: tuple[int, ...], masks: Mapping[str, torch.Tensor] | None = None) -> pd.DataFrame:
    """Multiply-accumulates per example of every prunable layer, dense and counting only kept weights.

    What counts: one MAC per weight per position it is applied at (Linear: once; Conv: every output
    position); biases, activations and pooling are not counted. Pruned weights cost nothing, the
    theoretical (unstructured-sparsity) figure of Blalock et al. (2020).
    """
    names = prunable(model)
    positions: dict[str, int] = {}
    hooks = []
    for name in names:
        module = model.get_submodule(name.rpartition(".")[0])
        out_dim = -1 if isinstance(module, nn.Linear) else 1

        def record(mod, args, output, name=name, out_dim=out_dim):
            positions[name] = output.numel() // output.shape[out_dim]
        hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, dtype=next(model.parameters()).dtype))
    finally:
        for hook in hooks:
            hook.remove()
    rows = []
    for name in names:
        weights = parameter(model, name).numel()
        kept = int(masks[name].sum()) if masks is not None and name in masks else weights
        rows.append({"layer": name, "dense_macs": weights * positions[name], "kept_macs": kept * positions[name]})
    return pd.DataFrame(rows)


def check_sparsity(sparsity: float) -> float:
    """`sparsity` as a float in [0, 1], or a clear error."""
    return checks.fraction("sparsity", sparsity)


def check_scope(scope: str) -> str:
    """`scope` if it is 'global' or 'layer'."""
    return checks.one_of("scope", scope, SCOPES)


def n_to_prune(sparsity: float, n: int) -> int:
    """Entries to prune out of `n`: round(s * n), Python rounding, as torch.nn.utils.prune does."""
    return round(check_sparsity(sparsity) * n)


def masks_from_scores(scores: Mapping[str, torch.Tensor], sparsity: float, scope: str = "global",
                      masks: Mapping[str, torch.Tensor] | None = None) -> Masks:
    """Prune the lowest-scoring entries to `sparsity`; entries already pruned in `masks` stay pruned.

    Sparsity is the target: at sparsity 0 nothing is pruned whatever the scores (-inf included); entries
    count as pruned earlier only when `masks` says so.
    """
    sparsity = check_sparsity(sparsity)
    check_scope(scope)
    if not scores:
        raise ValueError("scores is empty: nothing to prune")
    scored, already = {}, {}
    for name, score in scores.items():
        score = score.detach()
        if not score.is_floating_point():
            score = score.to(torch.float32)
        low = score.min() if score.numel() else score.new_zeros(())  # min propagates NaN: one read-only pass
        if torch.isnan(low):
            raise ValueError(f"scores for {name!r} contain NaN")
        if torch.isneginf(low):
            score = score.clamp(min=torch.finfo(score.dtype).min)  # a -inf score is low, not "already pruned"
        if masks is not None and name in masks and tuple(masks[name].shape) != tuple(score.shape):
            raise ValueError(f"mask {name!r} has shape {tuple(masks[name].shape)} but its scores have "
                             f"{tuple(score.shape)}")
        pruned = ~masks[name].bool() if masks is not None and name in masks else None
        if pruned is not None:
            score = score.masked_fill(pruned, float("-inf"))
        scored[name], already[name] = score, int(pruned.sum()) if pruned is not None else 0
    if scope == "layer":
        return Masks({name: _keep_mask([s], sparsity, already[name])[0] for name, s in scored.items()})
    return Masks(dict(zip(scored, _keep_mask(list(scored.values()), sparsity, sum(already.values())))))


def _keep_mask(pieces: list[torch.Tensor], sparsity: float, already: int) -> list[torch.Tensor]:
    """Bool masks keeping all but the round(s * n) lowest entries of the pieces; the `already` pruned (-inf) go first."""
    k = max(n_to_prune(sparsity, sum(p.numel() for p in pieces)), already)
    # The very set torch.nn.utils.prune.L1Unstructured's topk picks, ties included.
    return [chosen.logical_not_() for chosen in topk.lowest_of(pieces, k)]


def working_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode, with torch.nn.utils.prune masks folded into plain `weight` parameters."""
    # A pruned module's `weight` is a computed (non-leaf) tensor, which deepcopy refuses: copy it detached.
    memo = {id(getattr(m, hook._tensor_name)): getattr(m, hook._tensor_name).detach().clone()
            for m in model.modules() for hook in getattr(m, "_forward_pre_hooks", {}).values()
            if isinstance(hook, torch_prune.BasePruningMethod)}
    clone = copy.deepcopy(model, memo).eval()
    for module in clone.modules():
        for hook in list(getattr(module, "_forward_pre_hooks", {}).values()):
            if isinstance(hook, torch_prune.BasePruningMethod):
                torch_prune.remove(module, hook._tensor_name)  # else `weight_orig` gets no curvature
    return clone
