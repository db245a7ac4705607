"""Diagonal curvature of the mean cross-entropy loss: exact Hessian, GGN, MC-GGN, empirical Fisher, Hutchinson."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence

import pandas as pd
import torch
from torch import nn

from ..util import checks, rules
from ..core.data import Dataset, sample
from ..core.masks import working_copy

Diagonal = dict[str, torch.Tensor]

CURVATURES = ("hessian", "ggn", "ggn_mc", "fisher", "hutchinson")
BACKPACK_CURVATURES = ("hessian", "ggn", "ggn_mc", "fisher")
# Second-order extensions back-propagate through every module; first-order ones only need the
# modules that own parameters.
_SECOND_ORDER = ("hessian", "ggn", "ggn_mc")
_SAVEFIELDS = {"hessian": "diag_h", "ggn": "diag_ggn_exact", "ggn_mc": "diag_ggn_mc", "fisher": "sum_grad_squared"}
_HOOK_WARNING = "Full backward hook is firing"


def _extension(curvature: str):
    """A fresh BackPACK extension object computing `curvature`."""
    from backpack.extensions import DiagGGNExact, DiagGGNMC, DiagHessian, SumGradSquared

    return {"hessian": DiagHessian, "ggn": DiagGGNExact, "ggn_mc": DiagGGNMC, "fisher": SumGradSquared}[curvature]()


def _supported_types(curvature: str) -> tuple[type, ...] | None:
    """Module types BackPACK handles for `curvature` (None: everything, or unknown)."""
    if curvature not in BACKPACK_CURVATURES:
        return None
    table = getattr(_extension(curvature), "_BackpropExtension__module_extensions", None)
    return tuple(table) if table else None


def _unsupported(model: nn.Module, curvature: str) -> list[str]:
    """'name (Type)' of each module of `model` that stops `curvature` from being computed."""
    supported = _supported_types(curvature)
    bad = []
    for name, module in model.named_modules():
        if list(module.children()):
            if curvature in _SECOND_ORDER and type(module) is not nn.Sequential:
                bad.append(f"{name or '<root>'} ({type(module).__name__}, a container BackPACK cannot trace)")
            continue
        if getattr(module, "inplace", False) and curvature in BACKPACK_CURVATURES:
            bad.append(f"{name} ({type(module).__name__}, in-place)")
        elif supported is not None and not isinstance(module, supported):
            has_params = any(True for _ in module.parameters(recurse=False))
            if curvature in _SECOND_ORDER or has_params:
                bad.append(f"{name} ({type(module).__name__})")
    return bad


def check_names(curvatures: Sequence[str]) -> list[str]:
    """`curvatures` as a list of distinct known names; ValueError if it is empty or names an unknown curvature."""
    curvatures = checks.listing("curvatures", curvatures, distinct=True, nonempty=False)
    unknown = [c for c in curvatures if c not in CURVATURES]
    if not curvatures or unknown:
        raise ValueError(f"unknown or no curvatures {unknown or list(curvatures)!r}; valid curvatures: "
                         f"{', '.join(CURVATURES)}")
    return curvatures


def preferred(curvatures: Sequence[str]) -> str:
    """The curvature a study features: 'ggn' (LeCun's) if listed, else the first listed one that is not
    'hutchinson' (the noisiest), else 'hutchinson'."""
    curvatures = check_names(curvatures)
    if "ggn" in curvatures:
        return "ggn"
    return next((c for c in curvatures if c != "hutchinson"), curvatures[0])


def check_options(samples: int | None, batch_size: int, probes: int, seed: int) -> None:
    """Raise a ValueError for a bad sample count, batch size, probe count or seed."""
    for name, value in (("samples", samples), ("batch_size", batch_size), ("probes", probes), ("seed", seed)):
        if value is not None or name != "samples":
            rules.RULES[name].check(name, value)


def supported_curvatures(model: nn.Module) -> list[str]:
    """The curvatures that can be computed for `model` ('hutchinson' always can)."""
    return [c for c in CURVATURES if not _unsupported(model, c)]


def check(model: nn.Module, curvature: str) -> None:
    """Raise a ValueError if `curvature` is unknown or cannot be computed for `model`."""
    if curvature not in CURVATURES:
        raise ValueError(f"unknown curvature {curvature!r}; valid curvatures: {', '.join(CURVATURES)}")
    bad = _unsupported(model, curvature)
    if bad:
        raise ValueError(f"curvature {curvature!r} is not supported for this model: BackPACK cannot handle "
                         f"layer {', '.join(bad)}; curvatures that work for it: "
                         f"{', '.join(supported_curvatures(model))}")


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive mini-batches."""
    for start in range(0, len(y), batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence BackPACK's backward-hook warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_HOOK_WARNING)
        yield


def _backpack_diagonal(model: nn.Module, x: torch.Tensor, y: torch.Tensor, curvature: str,
                       batch_size: int, seed: int) -> Diagonal:
    """Sum over batches of a BackPACK quantity of the summed loss, divided by N (= mean-loss curvature)."""
    from backpack import backpack, extend

    # reduction="sum" makes each batch contribute sum_i H_i (and sum_i g_i^2 for Fisher, where a
    # mean reduction would give sum_i g_i^2 / B^2); dividing the total by N gives the mean.
    model, loss_fn = extend(model), extend(nn.CrossEntropyLoss(reduction="sum"))
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    field = _SAVEFIELDS[curvature]
    with _quiet(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # DiagGGNMC samples labels from the global generator
        for xb, yb in _batches(x, y, batch_size):
            model.zero_grad(set_to_none=True)
            with backpack(_extension(curvature)):
                loss_fn(model(xb), yb).backward()
            for n, p in params.items():
                total[n] += getattr(p, field).detach()
                delattr(p, field)
    return {n: t / len(y) for n, t in total.items()}


def _hutchinson_diagonal(model: nn.Module, x: torch.Tensor, y: torch.Tensor, probes: int,
                         batch_size: int, seed: int, chunk: int = 16) -> Diagonal:
    """E_z[z * Hz] over `probes` Rademacher vectors, Hessian-vector products by forward-over-reverse torch.func."""
    from torch.func import functional_call, grad, jvp, vmap

    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())

    def loss(p: Diagonal, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, (p, buffers), (xb,)), yb, reduction="sum")

    gen = torch.Generator().manual_seed(seed)
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for done in range(0, probes, chunk):
        k = min(chunk, probes - done)
        z = {n: torch.randint(0, 2, (k, *p.shape), generator=gen).to(p.dtype) * 2 - 1 for n, p in params.items()}
        for xb, yb in _batches(x, y, batch_size):
            hvp = vmap(lambda v: jvp(lambda p: grad(loss)(p, xb, yb), (params,), (v,))[1])(z)
            for n in total:
                total[n] += (z[n] * hvp[n]).sum(0)
    return {n: t / (probes * len(y)) for n, t in total.items()}


def diagonal(model: nn.Module, dataset: Dataset, curvature: str = "ggn", samples: int | None = 2048,
             batch_size: int = 256, probes: int = 100, seed: int = 0, split: str = "train") -> Diagonal:
    """Diagonal curvature of the mean cross-entropy over `samples` examples, for every trainable parameter.

    'hessian' (exact, may be negative), 'ggn' (exact Gauss-Newton, LeCun's Levenberg-Marquardt),
    'ggn_mc' (one sampled label per example), 'fisher' (empirical: mean squared per-example gradient),
    'hutchinson' (`probes` Rademacher probes). `model` is never modified; the result is signed.
    """
    check(model, curvature)
    check_options(samples, batch_size, probes, seed)
    x, y = sample(dataset, samples, seed, split)
    clone = working_copy(model)
    if curvature == "hutchinson":
        return _hutchinson_diagonal(clone, x, y, int(probes), int(batch_size), seed)
    return _backpack_diagonal(clone, x, y, curvature, int(batch_size), seed)


def timed_diagonals(model: nn.Module, dataset: Dataset, curvatures: Sequence[str], samples: int | None = 2048,
                    batch_size: int = 256, probes: int = 100, seed: int = 0) -> tuple[dict[str, Diagonal], pd.DataFrame]:
    """`diagonal` for each of `curvatures` with the same options, and a table of the seconds each took.

    Every name and option is checked before the first diagonal is computed.
    """
    import time

    kinds = check_names(curvatures)
    for kind in kinds:
        check(model, kind)
    check_options(samples, batch_size, probes, seed)
    diags, rows = {}, []
    for kind in kinds:
        start = time.perf_counter()
        diags[kind] = diagonal(model, dataset, kind, samples, batch_size, probes, seed)
        rows.append({"curvature": kind, "seconds": time.perf_counter() - start})
    return diags, pd.DataFrame(rows)


def gradient(model: nn.Module, dataset: Dataset, samples: int | None = None, batch_size: int = 256,
             seed: int = 0, split: str = "train") -> Diagonal:
    """Gradient of the mean cross-entropy over `samples` examples, for every trainable parameter (model untouched)."""
    x, y = sample(dataset, samples, seed, split)
    clone = working_copy(model)
    clone.zero_grad(set_to_none=True)
    for xb, yb in _batches(x, y, int(batch_size)):
        (nn.functional.cross_entropy(clone(xb), yb, reduction="sum") / len(y)).backward()
    return {n: p.grad.detach() for n, p in clone.named_parameters() if p.grad is not None}


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two flat tensors."""
    return float(pd.Series(a.numpy()).rank().corr(pd.Series(b.numpy()).rank()))


def compare(estimates: dict[str, Diagonal], reference: str) -> pd.DataFrame:
    """Per (estimate, layer): mean, fraction negative, relative L2 error and rank correlation against `reference`."""
    if reference not in estimates:
        raise ValueError(f"reference {reference!r} is not among the estimates: {', '.join(estimates)}")
    ref = estimates[reference]
    rows = []
    for label, diag in estimates.items():
        for name, value in diag.items():
            exact = ref[name].flatten().double()
            value = value.flatten().double()
            rows.append({"curvature": label, "parameter": name, "mean": float(value.mean()),
                         "fraction_negative": float((value < 0).double().mean()),
                         "relative_error": float((value - exact).norm() / exact.norm().clamp_min(1e-30)),
                         "spearman": _spearman(value, exact)})
    return pd.DataFrame(rows)


def convergence(exact: Diagonal, estimates: dict[int, Diagonal]) -> pd.DataFrame:
    """`compare` of Hutchinson estimates {probes: diagonal} against `exact`: rows 'hutchinson_<p>', a `probes` column."""
    if not estimates:
        raise ValueError("estimates is empty: give {probes: diagonal} for at least one probe count")
    bad = [p for p in estimates if isinstance(p, bool) or not isinstance(p, int) or p < 1]
    if bad:
        raise ValueError(f"estimates must be keyed by positive int probe counts, got {bad!r}")
    table = compare({"exact": exact, **{f"hutchinson_{p}": d for p, d in estimates.items()}}, "exact")
    table = table[table["curvature"] != "exact"]
    return table.assign(probes=table["curvature"].str.split("_").str[1].astype(int))


def values_table(values: dict[str, dict[str, torch.Tensor]], names: Sequence[str], max_points: int | None = 4000,
                 seed: int = 0) -> pd.DataFrame:
    """Long rows (label, parameter, entry, value) of `names` per label, the same seeded `max_points` entries for all."""
    names = list(names)
    if not values:
        raise ValueError("values is empty: give {label: {parameter: tensor}} for at least one label")
    if not names:
        raise ValueError("names is empty: give the parameters to tabulate (e.g. oneshot_lab.prunable(model))")
    if max_points is not None and (isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1):
        raise ValueError(f"max_points must be a positive int or None, got {max_points!r}")
    for label, tensors in values.items():
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ValueError(f"{label!r} has no entry for {', '.join(missing)}; it has: {', '.join(tensors)}")
    first = next(iter(values.values()))
    for label, tensors in values.items():
        bad = [n for n in names if tensors[n].shape != first[n].shape]
        if bad:
            raise ValueError(f"{label!r} has other shapes than the first label for {', '.join(bad)}")
    sizes = [first[n].numel() for n in names]
    total = sum(sizes)
    pick = torch.arange(total)
    if max_points is not None and max_points < total:
        pick = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:max_points].sort().values
    offsets = torch.cumsum(torch.tensor([0, *sizes]), 0)
    which = torch.searchsorted(offsets[1:], pick, right=True)
    parameter = [names[i] for i in which.tolist()]
    entry = (pick - offsets[which]).tolist()
    frames = [pd.DataFrame({"label": label, "parameter": parameter, "entry": entry,
                            "value": torch.cat([t[n].detach().flatten().double().cpu() for n in names])[pick].numpy()})
              for label, t in values.items()]
    return pd.concat(frames, ignore_index=True)
