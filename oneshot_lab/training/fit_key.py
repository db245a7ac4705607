"""The key of the fit cache: a digest of everything that can change what `train.fit` produces.

It covers the source of this package; the machine and the build that run it (CPU model and instruction set,
torch version and build configuration, Python, the kernel settings that can be changed at run time); the
model: its classes and the code they come from (every class of every MRO outside torch and the standard library,
the source file of the module it lives in, the code objects of its functions as imported, and, for user code
outside site-packages, every module those modules refer to or import inside a function, and the values of the
globals its reachable code reads), every attribute of every module, the values of
parameters and buffers and each parameter's `requires_grad`; the masks; every split of the data; and the
training config. A model whose code has no source file (a class defined in a notebook), that has hooks, or an
attribute or a global it reads that the key cannot describe (of another type, or beyond MAX_DEPTH / MAX_ITEMS) is
`Uncacheable`: it is trained every time.
"""

from __future__ import annotations

import dis
import hashlib
import importlib
import importlib.util
import json
import os
import platform
import sys
import sysconfig
import types
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..core.data import Dataset
from .train import TrainConfig

PACKAGE = Path(__file__).resolve().parent.parent  # the whole package source is part of every key
INSTALLED = tuple(str(Path(sysconfig.get_paths()[k]).resolve()) for k in ("purelib", "platlib"))
NOT_HASHED = frozenset(sys.stdlib_module_names) | {"torch"}  # torch is in build(), the standard library in sys.version
BASE_ATTRIBUTES = frozenset(vars(nn.Module()))  # what every nn.Module holds (parameters, buffers, hooks, ...)
MAX_DEPTH, MAX_ITEMS = 20, 100_000  # bounds on a described value: deeper or larger is Uncacheable
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE", "DNNL_MAX_CPU_ISA",
              "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class Uncacheable(Exception):
    """A model the key cannot describe completely (it is trained every time)."""


@lru_cache(maxsize=1)
def code_version() -> str:
    """Digest of this package's source files (a code change is a cache miss)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cpu_model() -> str:
    """The CPU's model name and instruction-set flags (from /proc/cpuinfo where there is one)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor()
    first = text.split("\n\n")[0].splitlines()
    return "\n".join(line for line in first if line.split(":")[0].strip() in
                     ("vendor_id", "model name", "cpu family", "model", "flags", "Features", "CPU implementer",
                      "CPU architecture", "CPU variant", "CPU part"))


@lru_cache(maxsize=1)
def build() -> str:
    """Digest of what runs the code: CPU, instruction set used, torch version and build, Python, kernel settings."""
    parts = [cpu_model(), platform.machine(), platform.system(), sys.version, torch.__version__,
             str(torch.version.git_version), str(torch.version.cuda), torch.__config__.show(),
             torch.backends.cpu.get_cpu_capability(), json.dumps({k: os.environ.get(k) for k in KERNEL_ENV})]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def settings() -> dict:
    """Torch settings a session can change that change results (threads, default dtype, kernels chosen)."""
    return {"threads": torch.get_num_threads(), "dtype": str(torch.get_default_dtype()),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "matmul": torch.get_float32_matmul_precision(), "mkldnn": torch.backends.mkldnn.enabled}


def tensor_bytes(digest: "hashlib._Hash", tensor: torch.Tensor) -> None:
    """Feed a tensor's dtype, shape, layout and values to `digest`."""
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}{tensor.stride()}{tensor.device}".encode())
    digest.update(tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())


def is_user_code(module: types.ModuleType) -> bool:
    """Code outside the installed libraries (its references to further modules are followed)."""
    return not str(Path(module.__file__).resolve()).startswith(INSTALLED)


def module_of(item: Any) -> types.ModuleType | None:
    """The module whose code a class, function or module is; None for the standard library, torch and this package
    (covered by the rest of the key); Uncacheable for code without a source file."""
    name = item.__name__ if isinstance(item, types.ModuleType) else getattr(item, "__module__", None)
    if not isinstance(name, str) or name.split(".")[0] in NOT_HASHED or name in sys.builtin_module_names:
        return None
    module = sys.modules.get(name)
    if module is None or not getattr(module, "__file__", None):
        raise Uncacheable(f"{getattr(item, '__qualname__', name)} has no source file (defined in a notebook?)")
    return None if str(Path(module.__file__).resolve()).startswith(str(PACKAGE)) else module


def constant(value: Any) -> str:
    """A code object's constant as text that does not depend on hash randomisation (frozensets sorted)."""
    if isinstance(value, types.CodeType):
        return code_digest(value)
    if isinstance(value, (tuple, frozenset)):
        items = [constant(v) for v in value]
        return f"{type(value).__name__}({sorted(items) if isinstance(value, frozenset) else items})"
    return repr(value)


def code_digest(code: types.CodeType) -> str:
    """A code object's instructions, names and constants (nested code included), independent of memory addresses."""
    consts = [constant(c) for c in code.co_consts]
    return hashlib.sha256(repr((code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars,
                                code.co_cellvars, code.co_flags, code.co_argcount, code.co_kwonlyargcount)).encode()
                          ).hexdigest()


def describe(value: Any, modules: set, depth: int = 0, budget: list[int] | None = None) -> Any:
    """A JSON-able description of an attribute value; the modules its code comes from are added to `modules`.
    Uncacheable when it is nested deeper than MAX_DEPTH (or refers to itself) or holds more than MAX_ITEMS values."""
    budget = [MAX_ITEMS] if budget is None else budget
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        raise Uncacheable(f"a value nested deeper than {MAX_DEPTH}, referring to itself or holding more than "
                          f"{MAX_ITEMS} values cannot be part of the key")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, bytes):
        return ["bytes", hashlib.sha256(value).hexdigest()]
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return [type(value).__name__, [describe(v, modules, depth + 1, budget) for v in value]]
    if isinstance(value, dict):
        return ["dict", sorted([str(k), describe(v, modules, depth + 1, budget)] for k, v in value.items())]
    if isinstance(value, (set, frozenset)):
        return ["set", sorted(json.dumps(describe(v, modules, depth + 1, budget), default=str) for v in value)]
    if isinstance(value, torch.Tensor):
        digest = hashlib.sha256()
        tensor_bytes(digest, value)
        return ["tensor", digest.hexdigest()]
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype != object:
        array = np.ascontiguousarray(value)
        return ["ndarray", str(array.dtype), list(array.shape), hashlib.sha256(array.tobytes()).hexdigest()]
    if isinstance(value, (torch.dtype, torch.device, torch.Size)):
        return str(value)
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        target = getattr(value, "__func__", value)
        if (module := module_of(target)) is not None:
            modules.add(module)
        code = getattr(target, "__code__", None)
        return [getattr(target, "__module__", None), getattr(target, "__qualname__", repr(target)),
                code and code_digest(code), describe(getattr(target, "__defaults__", None), modules, depth + 1, budget),
                describe([c.cell_contents for c in getattr(target, "__closure__", None) or ()], modules,
                         depth + 1, budget),
                describe(getattr(value, "__self__", None) if isinstance(value, types.MethodType) else None,
                         modules, depth + 1, budget)]
    raise Uncacheable(f"an attribute of type {type(value).__name__} cannot be part of the key")


def class_code(cls: type, modules: set) -> list:
    """The code objects of a class's own functions (what runs, even when its file changed since import)."""
    out = []
    for name, item in sorted(vars(cls).items()):
        for function in (getattr(item, "__func__", item), getattr(item, "fget", None), getattr(item, "fset", None)):
            if isinstance(function, types.FunctionType):
                out.append([name, code_digest(function.__code__), describe(function.__defaults__, modules)])
    return out


def module_code(module: types.ModuleType, modules: set) -> list:
    """A module's source file, its functions' and classes' code and its plain constants, as imported."""
    try:
        source = hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()
    except OSError as error:
        raise Uncacheable(f"cannot read the source of {module.__name__}: {error}") from None
    out: list = [module.__name__, source]
    for name, item in sorted(vars(module).items()):
        if name.startswith("__"):
            continue
        if isinstance(item, (types.FunctionType, type)) and getattr(item, "__module__", None) == module.__name__:
            out.append([name, code_digest(item.__code__) if isinstance(item, types.FunctionType)
                        else class_code(item, modules)])
        elif isinstance(item, (bool, int, float, str, bytes, type(None))):
            out.append([name, repr(item)])
        if is_user_code(module) and isinstance(item, (types.ModuleType, types.FunctionType, type)):
            try:
                if (other := module_of(item)) is not None and is_user_code(other):
                    modules.add(other)
            except Uncacheable:
                pass  # a name imported from a module without a file is not code a forward pass can come from
    return out


def code_objects(item: Any) -> list[types.CodeType]:
    """The code objects of a function or a class's own methods and properties, nested code included."""
    functions = [item] if isinstance(item, types.FunctionType) else [
        f for v in vars(item).values() for f in (getattr(v, "__func__", v), getattr(v, "fget", None),
                                                 getattr(v, "fset", None)) if isinstance(f, types.FunctionType)]
    found, todo = [], [f.__code__ for f in functions]
    while todo:
        code = todo.pop()
        found.append(code)
        todo += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return found


def imported_in(code: types.CodeType, package: str | None) -> list[types.ModuleType]:
    """The modules an `import` inside `code` imports (a `from m import sub` submodule too), imported now as the
    code would (Uncacheable when one cannot be)."""
    found, instructions = [], list(dis.get_instructions(code))
    for i, ins in enumerate(instructions):
        if ins.opname != "IMPORT_NAME":
            continue
        level = instructions[i - 2].argval if i >= 2 and instructions[i - 2].opname == "LOAD_CONST" else 0
        try:
            name = importlib.util.resolve_name("." * level + ins.argval, package) if level else ins.argval
            found.append(importlib.import_module(name))
        except (ImportError, ValueError, TypeError) as error:
            raise Uncacheable(f"cannot import {ins.argval!r} as the model's code would: {error}") from None
        names = instructions[i - 1].argval if instructions[i - 1].opname == "LOAD_CONST" else None
        found += [sys.modules[f"{name}.{n}"] for n in names or () if f"{name}.{n}" in sys.modules]
    return found


def user_module(item: Any) -> types.ModuleType | None:
    """The module of user code (outside installed libraries) that `item` comes from, else None."""
    module = module_of(item)
    return module if module is not None and is_user_code(module) else None


def reached_values(classes: list[type], modules: set) -> list:
    """The module-level values that the user code reachable from `classes` reads when it runs (globals it names,
    followed through the user functions it calls), described by content as they are now, so that a dict changed
    in place, a rebound alias or a tensor filled at run time is a miss; modules it imports are added to `modules`."""
    todo = [(code, module) for cls in classes if (module := user_module(cls)) for code in code_objects(cls)]
    seen, values = set(), {}
    while todo:
        code, module = todo.pop()
        if code in seen:
            continue
        seen.add(code)
        for name in code.co_names:
            if name not in vars(module) or name.startswith("__"):
                continue
            value = vars(module)[name]
            if isinstance(value, types.ModuleType):
                continue
            if isinstance(value, (types.FunctionType, type)) and (home := user_module(value)):
                todo += [(c, home) for c in code_objects(value)]
                modules.add(home)
            else:
                values[f"{module.__name__}.{name}"] = describe(value, modules)
        modules.update(home for item in imported_in(code, module.__package__) if (home := user_module(item)))
    return sorted(values.items())


def model_code(model: nn.Module) -> list:
    """Every module's class and attributes, the code of every class in its MRO and of the modules they come from."""
    modules: set = set()
    layers = []
    for name, module in model.named_modules(remove_duplicate=False):
        attributes = {k: v for k, v in vars(module).items() if k not in BASE_ATTRIBUTES}
        if any(isinstance(v, dict) and v for k, v in vars(module).items() if "hook" in k):
            raise Uncacheable(f"module {name or 'the model'} has hooks")
        mro = [cls for cls in type(module).__mro__ if module_of(cls) is not None]
        for cls in mro:
            modules.add(module_of(cls))
        layers.append([name, f"{type(module).__module__}.{type(module).__qualname__}",
                       describe(attributes, modules), [[c.__qualname__, class_code(c, modules)] for c in mro]])
    if any(isinstance(v, dict) and v for k, v in vars(nn.modules.module).items() if "global" in k and "hook" in k):
        raise Uncacheable("global module hooks are registered")
    values = reached_values([cls for _, module in model.named_modules() for cls in type(module).__mro__], modules)
    described, code = set(), []
    while modules - described:  # the modules' code may name further modules of user code
        module = min(modules - described, key=lambda m: m.__name__)
        described.add(module)
        code.append(module_code(module, modules))
    return [layers, code, values]


def key(model: nn.Module, dataset: Dataset, config: TrainConfig,
        masks: Mapping[str, torch.Tensor] | None = None) -> str:
    """Hex digest identifying the run `fit(model, dataset, config, masks)` would do from the model's current state;
    Uncacheable when the model cannot be described completely."""
    digest = hashlib.sha256(f"{code_version()} {build()}".encode())
    state = model.state_dict(keep_vars=True)
    buffers = dict(model.named_buffers(remove_duplicate=False))
    if set(buffers) - set(state) or any(not isinstance(v, torch.Tensor) for v in state.values()):
        raise Uncacheable("the model has non-persistent buffers or extra state")
    digest.update(json.dumps({"config": config.as_dict(), "settings": settings(), "dataset": dataset.name,
                              "model": model_code(model), "requires_grad": [
                                  [n, p.requires_grad] for n, p in model.named_parameters(remove_duplicate=False)]},
                             sort_keys=True, default=str).encode())
    for name, tensor in state.items():
        digest.update(name.encode())
        tensor_bytes(digest, tensor)
    for name, mask in sorted((masks or {}).items()):
        digest.update(f"mask:{name}".encode())
        tensor_bytes(digest, mask)
    for split in ("train", "val", "test"):
        for tensor in dataset.split(split):
            tensor_bytes(digest, tensor)
    return digest.hexdigest()


code_version()  # the source as imported, not as it may be on disk later
